"""The test harness's own logic: where releases come from (artifact_source), the mirror's
versions and real-archive overlay (build_mirror), the vars plugin that hands the choice to
Ansible, and the health report's time parsing."""
import importlib.util
import io
import json
import os
import pathlib
import sys
import zipfile

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


source = load("tests/harness/artifact_source.py", "artifact_source")
mirror = load("tests/mirror/build_mirror.py", "build_mirror")
report = load("tests/harness/stack_report.py", "stack_report")

MANIFEST = {
    "prometheus": {"2.53.3": {"real": True, "suite": "trixie"}, "3.5.3": {"real": True, "suite": "sid"},
                   "3.10.0": {"real": True, "suite": "sid"}},
    "alertmanager": {"0.33.1": {"real": True, "templates": "_fixtures/alertmanager-0.33.1-templates.tar.gz"}},
    "loki": {"3.7.6": {"standin": True}, "3.6.0": {"real": True, "supplied": True}},
    "grafana": {"13.2.3": {"standin": True, "build_id": "1"}},
}


def test_the_mirror_pins_its_newest_real_release_and_names_the_older_one_and_the_stand_ins():
    out = source.mirror_vars(MANIFEST, "http://127.0.0.1:8765", "/m")
    assert out["prometheus_version"] == "3.10.0", "versions compare as numbers, not strings"
    assert out["monstack_previous_versions"]["prometheus"] == "3.5.3"
    assert out["loki_version"] == "3.6.0", "a supplied real archive beats a stand-in of another version"
    assert out["monstack_standins"] == ["grafana"]
    assert out["grafana_build_ids"] == {"13.2.3": "1"}
    assert out["monstack_alertmanager_templates"] == "/m/_fixtures/alertmanager-0.33.1-templates.tar.gz"
    assert out["stack_artifact_mirror"] == "http://127.0.0.1:8765"


def test_auto_takes_upstream_when_it_answers_and_pins_nothing():
    out = source.choose("auto", MANIFEST, "http://m", "/m", probe=lambda urls: (True, ""))
    assert out["monstack_artifact_source"] == "upstream"
    assert not any(key.endswith("_version") for key in out), "upstream mode keeps the roles' pinned defaults"
    assert out["stack_artifact_mirror"] == "" and out["monstack_standins"] == []
    assert out["monstack_mirror_versions"]["prometheus"] == "3.10.0"


def test_auto_falls_back_to_the_mirror_and_says_why():
    out = source.choose("auto", MANIFEST, "http://m", "/m", probe=lambda urls: (False, "github.com did not answer (x)"))
    assert out["monstack_artifact_source"] == "mirror"
    assert out["monstack_artifact_reason"] == "auto: github.com did not answer (x)"
    assert "stand-ins (upstream's config contract and readiness, no data APIs): grafana" in source.describe(out)


def test_forced_modes():
    def never(urls):
        raise AssertionError("mirror mode must not probe upstream")
    assert source.choose("mirror", MANIFEST, "http://m", "/m", probe=never)["monstack_artifact_source"] == "mirror"
    with pytest.raises(SystemExit, match="MONSTACK_ARTIFACTS=upstream, but github.com did not answer"):
        source.choose("upstream", MANIFEST, "http://m", "/m", probe=lambda urls: (False, "github.com did not answer"))


def test_the_probe_asks_for_pinned_releases_on_each_download_host():
    urls = source.probe_urls()
    assert {u.split("/")[2] for u in urls} == {"github.com", "dl.grafana.com"}
    assert all("{" not in u for u in urls)


def test_a_package_gone_from_debian_fails_the_mirror_build_naming_it(tmp_path, monkeypatch):
    monkeypatch.setattr(mirror, "packages_index", lambda suite, arch, cache: {
        "prometheus": {"Version": "3.5.3+ds1-6"}, "promtool": {"Version": "3.5.3+ds1-6"}})
    with pytest.raises(mirror.MirrorError, match="sid \\(amd64\\) has no package prometheus-alertmanager, prometheus-blackbox-exporter, prometheus-node-exporter"):
        mirror.build_prom_family(str(tmp_path), str(tmp_path), "amd64", {})


def test_stand_ins_claim_the_roles_pinned_versions():
    versions, build_id = mirror.standin_versions()
    defaults = yaml.safe_load((ROOT / "roles/loki/defaults/main.yml").read_text())
    assert versions["loki"] == defaults["loki_version"]
    assert f'VERSIONS = {json.dumps(versions, sort_keys=True)}' in mirror.standin_bytes(versions).decode()
    assert build_id.isdigit()


def test_supplied_real_archives_replace_the_stand_ins(tmp_path):
    real = tmp_path / "real"
    release = real / "github.com/grafana/loki/releases/download/v3.7.6"
    release.mkdir(parents=True)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("loki-linux-amd64", b"real loki")
    (release / "loki-linux-amd64.zip").write_bytes(buffer.getvalue())
    grafana = real / "dl.grafana.com/grafana/release/12.3.0"
    grafana.mkdir(parents=True)
    (grafana / "grafana_12.3.0_987654_linux_amd64.tar.gz").write_bytes(b"real grafana")
    jaeger = real / "github.com/jaegertracing/jaeger/releases/download/v2.21.0"
    jaeger.mkdir(parents=True)
    (jaeger / "jaeger-2.21.0-linux-amd64.tar.gz").write_bytes(b"real jaeger")
    (jaeger / "jaeger-2.21.0-linux-arm64.tar.gz").write_bytes(b"another arch")
    out = tmp_path / "mirror"
    manifest = {"loki": {"3.7.6": {"standin": True}}}
    mirror.overlay_real(str(out), str(real), "amd64", manifest)
    assert manifest["loki"]["3.7.6"] == {"real": True, "supplied": True}
    assert manifest["grafana"]["12.3.0"]["build_id"] == "987654"
    sums = (out / "github.com/grafana/loki/releases/download/v3.7.6/SHA256SUMS").read_text()
    assert sums.endswith("  loki-linux-amd64.zip\n"), "a missing checksum list is made from the archive"
    assert (out / "dl.grafana.com/grafana/release/12.3.0/grafana_12.3.0_987654_linux_amd64.tar.gz.sha256").exists()
    assert manifest["jaeger"] == {"2.21.0": {"real": True, "supplied": True}}, "only this machine's architecture counts"
    assert " *jaeger-2.21.0-linux-amd64.tar.gz\n" in (
        out / "github.com/jaegertracing/jaeger/releases/download/v2.21.0/jaeger-2.21.0.sha256sum.txt").read_text()
    assert mirror.recipe_hash(str(real)) != mirror.recipe_hash(None), "supplying archives rebuilds the mirror"


def test_the_vars_plugin_gives_group_all_the_source_and_fails_clearly_without_it(tmp_path, monkeypatch):
    pytest.importorskip("ansible")
    from ansible.inventory.group import Group  # pylint: disable=import-outside-toplevel
    plugin = load("tests/harness/vars_plugins/monstack_artifacts.py", "monstack_artifacts").VarsModule()
    monkeypatch.setenv("MONSTACK_STATE", str(tmp_path))
    (tmp_path / "artifact-source.yml").write_text("prometheus_version: '3.10'\n")
    assert plugin.get_vars(None, str(tmp_path), [Group("all")]) == {"prometheus_version": "3.10"}
    assert plugin.get_vars(None, str(tmp_path), [Group("loki")]) == {}
    (tmp_path / "artifact-source.yml").unlink()
    with pytest.raises(Exception, match="run scripts/setup first"):
        plugin.get_vars(None, str(tmp_path), [Group("all")])


def test_the_ssh_vars_plugin_connects_the_recorded_hosts_over_ssh_and_leaves_the_others(tmp_path, monkeypatch):
    pytest.importorskip("ansible")
    from ansible.inventory.group import Group  # pylint: disable=import-outside-toplevel
    from ansible.inventory.host import Host  # pylint: disable=import-outside-toplevel
    monkeypatch.setenv("MONSTACK_STATE", str(tmp_path))
    load("tests/harness/ssh_hosts.py", "ssh_hosts")
    plugin = load("tests/harness/vars_plugins/monstack_ssh.py", "monstack_ssh").VarsModule()
    monkeypatch.delenv("MOLECULE_EPHEMERAL_DIRECTORY", raising=False)
    assert plugin.get_vars(None, str(tmp_path), [Host("mon")]) == {}, "outside Molecule nothing changes"
    monkeypatch.setenv("MOLECULE_EPHEMERAL_DIRECTORY", str(tmp_path))
    assert plugin.get_vars(None, str(tmp_path), [Host("mon")]) == {}, "before prepare records the hosts"
    (tmp_path / "ssh" ).mkdir()
    (tmp_path / "ssh" / "id_ed25519").write_text("key")
    (tmp_path / "ssh-hosts.yml").write_text(yaml.safe_dump({"mon": {"address": "10.89.0.5", "id": "0123456789abcdef"}}))
    found = plugin.get_vars(None, str(tmp_path), [Host("mon")])
    assert {k: found[k] for k in ("ansible_connection", "ansible_host", "ansible_user")} == {
        "ansible_connection": "ssh", "ansible_host": "10.89.0.5", "ansible_user": "root"}
    assert found["ansible_ssh_private_key_file"] == str(tmp_path / "ssh" / "id_ed25519")
    # a container that takes a removed one's address gets a master connection of its own
    assert found["ansible_control_path"] == "%(directory)s/0123456789ab-%%r"
    # the stack still names the host as the scenario's network resolves it, not by its address
    assert found["stack_address"] == "mon"
    # prepare may write the file again (a rerun): the plugin reads it again
    (tmp_path / "ssh-hosts.yml").write_text(yaml.safe_dump({"mon": {"address": "10.89.0.9", "id": "0123456789abcdef"}}))
    os.utime(tmp_path / "ssh-hosts.yml", ns=(1, 1))
    assert plugin.get_vars(None, str(tmp_path), [Host("mon")])["ansible_host"] == "10.89.0.9"
    assert plugin.get_vars(None, str(tmp_path), [Host("fresh")]) == {}
    assert plugin.get_vars(None, str(tmp_path), [Group("all")]) == {}


def test_lanes_keep_scenarios_sharing_a_name_together_and_name_what_a_run_creates(capsys):
    lanes = load("tests/harness/lanes.py", "lanes")
    claimed = {"a": {"container:mon", "network:net1"}, "b": {"container:x", "network:net1"}, "c": {"container:y"}}
    assert lanes.lanes(2, ["a", "b", "c"], claimed, {"a": 100, "b": 50, "c": 120}) == [["a", "b"], ["c"]]
    # scripts/test's cleanup removes only what its own scenarios create
    assert lanes.main(["--names", "stack", "node_exporter_airgapped"]) == 0
    containers, networks = capsys.readouterr().out.splitlines()
    assert set(containers.split()) == {"mon", "logs", "traces", "app1", "app2", "mq", "ne-airgap"}
    assert networks.split() == ["monstack-stack"]


def test_the_scripts_wait_only_for_what_they_name():
    """A bare `wait` also waits for the mirror's HTTP server (a job of scripts/test's shell) and
    never returns: the CI run of 2026-12-07 hung there after its last scenario passed."""
    for path in sorted((ROOT / "scripts").iterdir()):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0].split()
            assert "wait" not in code or code.index("wait") < len(code) - 1, f"{path.name}:{number}: {line.strip()}"


@pytest.mark.parametrize("stamp, expected", [
    ("2026-11-24T16:20:01.123456789Z", 1795537201.123456),
    ("2026-11-24T17:20:01.5+01:00", 1795537201.5),
    ("2026-11-24T16:20:01Z", 1795537201.0),
    ("", 0.0),
])
def test_report_reads_prometheus_scrape_times(stamp, expected):
    assert report.parse_time(stamp) == pytest.approx(expected)


def test_report_ports_come_from_role_defaults_unless_the_inventory_sets_them():
    stack = report.Stack.__new__(report.Stack)
    stack.hostvars = {"a": {"stack_address": "10.0.0.1"}, "b": {"stack_address": "10.0.0.2", "loki_listen_address": "0.0.0.0:3200"}}
    stack._addresses = {}  # pylint: disable=protected-access
    assert stack.url("loki", "a") == "http://10.0.0.1:3100"
    assert stack.url("loki", "b") == "http://10.0.0.2:3200"
    assert stack.url("jaeger", "a", "jaeger_otlp_http_address") == "http://10.0.0.1:4318"


def test_the_lab_ships_every_hosts_logs_with_alloy_by_default():
    """The lab's hosts are in log_shipper without a stack_log_shipper of their own: the report
    (which says "logs shipped by Grafana Alloy on ...") counts them as Alloy's, as site.yml runs them."""
    pytest.importorskip("ansible")
    stack = report.Stack("inventories/lab")
    assert stack.hosts("alloy") == ["lab-app1", "lab-app2", "lab-logs", "lab-monitoring", "lab-traces"]
    assert stack.hosts("promtail") == []


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
