"""The alloy role: its config in Alloy's syntax, checked against upstream's component definitions
(tests/mirror/contracts/alloy.yml, from grafana/alloy's structs at the pinned tag) by the stand-in's
`alloy validate`; the labels Promtail gives; the move from Promtail (the handover config, the
positions Alloy takes over); the log_shipper switch."""
import os
import pathlib
import re
import subprocess
import sys

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from conftest import load
from test_rendered_configs import render
from test_standin_contract import get, free_port, run, server, standin, tls_pki, wait_answer  # noqa: F401

ROOT = pathlib.Path(__file__).resolve().parents[2]
alloy_filters = load("filter/alloy.py", "alloy_filters")
stack_filters = load("filter/stack.py", "stack_filters_for_alloy")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    # the journal, two file paths and a label of the inventory's
    return render(tmp_path_factory, alloy_log_paths=["/var/log/*.log", "/srv/shop/*.log"],
                  alloy_labels={"env": "prod"})


def validate(tmp_path, text):
    path = tmp_path / "config.alloy"
    path.write_text(text)
    return run(tmp_path, "alloy", "validate", str(path))


def test_the_rendered_config_holds_upstreams_contract(tmp_path, rendered):
    proc = validate(tmp_path, rendered["alloy"])
    assert proc.returncode == 0, proc.stderr + rendered["alloy"]


def test_it_ships_the_journal_and_each_path_with_promtails_labels(rendered):
    config = rendered["alloy_config"]
    assert config["loki.write.default"]["endpoint"] == [{"url": "http://10.0.0.2:3100/loki/api/v1/push"}]
    journal = config["loki.source.journal.journal"]
    assert journal["labels"] == {"host": "app1", "env": "prod", "job": "systemd-journal"}
    assert journal["relabel_rules"] == "${loki.relabel.journal.rules}"
    assert journal["forward_to"] == ["${loki.write.default.receiver}"]
    assert journal["max_age"] == "12h"
    # Promtail's journal relabelling, rule for rule (roles/promtail/vars/main.yml)
    assert config["loki.relabel.journal"]["rule"] == [
        {"source_labels": ["__journal__systemd_unit"], "target_label": "unit"},
        {"source_labels": ["__journal__systemd_unit"], "target_label": "service_name", "regex": "(.+?)(?:[.]service)?"},
        {"source_labels": ["__journal_priority_keyword"], "target_label": "level"}]
    assert config["local.file_match.varlogs"]["path_targets"] == [
        {"__path__": "/var/log/*.log", "host": "app1", "env": "prod", "job": "varlogs"},
        {"__path__": "/srv/shop/*.log", "host": "app1", "env": "prod", "job": "varlogs"}]
    source = config["loki.source.file.varlogs"]
    assert source["targets"] == "${local.file_match.varlogs.targets}"
    assert source["legacy_positions_file"] == "/var/lib/alloy/promtail-positions.yaml"
    assert journal["legacy_position"] == {"file": "/var/lib/alloy/promtail-positions.yaml", "name": "journal"}
    assert rendered["alloy_preflight_problems"] == []


def test_the_text_is_alloy_syntax_with_references_bare(rendered):
    text = rendered["alloy"]
    assert 'loki.source.file "varlogs" {' in text
    assert "  targets = local.file_match.varlogs.targets\n" in text
    assert "  forward_to = [loki.write.default.receiver]\n" in text
    assert '  legacy_position {\n    file = "/var/lib/alloy/promtail-positions.yaml"\n' in text


def test_it_runs_unprivileged_with_log_read_groups_and_no_usage_report(rendered):
    unit = rendered["alloy_unit"]
    assert unit["user"] == "alloy" and set(unit["supplementary_groups"]) == {"systemd-journal", "adm"}
    assert unit["read_write_paths"] == ["/var/lib/alloy"]
    assert unit["exec_start"][1:3] == ["run", "/etc/alloy/config.alloy"]
    assert "--storage.path=/var/lib/alloy/data" in unit["exec_start"] and "--disable-reporting" in unit["exec_start"]


@pytest.mark.parametrize("change, message", [
    (lambda t: t.replace('loki.source.file "varlogs"', 'loki.source.files "varlogs"'),
     "cannot find the definition of component name 'loki.source.files'"),
    (lambda t: t.replace("  max_age = ", "  max_ages = "), "unrecognized attribute name 'max_ages'"),
    (lambda t: t.replace("  legacy_position {", "  legacy_positions {"), "unrecognized block name 'legacy_positions'"),
    (lambda t: t.replace("    name = \"journal\"\n", ""), "missing required attribute 'name'"),
    (lambda t: t.replace("  forward_to = [loki.write.default.receiver]\n  legacy_positions_file", "  legacy_positions_file"),
     "missing required attribute 'forward_to'"),
    (lambda t: t.replace("loki.relabel.journal.rules", "loki.relabel.journals.rules"),
     "component 'loki.relabel.journals' does not exist"),
    (lambda t: t.replace("local.file_match.varlogs.targets", "local.file_match.varlogs.paths"),
     "local.file_match.varlogs does not export 'paths'"),
    (lambda t: t.replace('loki.write "default" {', 'loki.write {'), "component 'loki.write' must have a label"),
    (lambda t: t + 'loki.write "default" {\n}\n', "block loki.write.default already declared"),
    (lambda t: t.replace("  targets = local", "  targets = = local"), "expected an expression"),
    (lambda t: t + 'http {\n  tls {\n    client_auth_type = "RequireClientCert"\n  }\n}\n',
     "unknown client auth type 'RequireClientCert'"),
])
def test_an_unknown_component_argument_or_reference_is_refused(tmp_path, rendered, change, message):
    proc = validate(tmp_path, change(rendered["alloy"]))
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


def test_run_refuses_a_flag_upstream_does_not_have(tmp_path, rendered):
    path = tmp_path / "config.alloy"
    path.write_text(rendered["alloy"])
    proc = run(tmp_path, "alloy", "run", str(path), "--storage.paths=/tmp/x")
    assert proc.returncode != 0 and "unknown flag: --storage.paths" in proc.stderr


def test_while_moving_from_promtail_alloy_runs_without_sources(tmp_path_factory, tmp_path):
    handover = render(tmp_path_factory, _alloy_handover=True)
    assert set(handover["alloy_config"]) == {"logging", "loki.write.default", "loki.relabel.journal"}
    assert validate(tmp_path, handover["alloy"]).returncode == 0


def test_alloy_takes_promtails_positions_as_upstream_converts_them(tmp_path, rendered, server):
    """loki.source.file gets every entry as {path, "{}"}, loki.source.journal the journal job's
    cursor under its own id (grafana/alloy@v1.18.1 .../positions/positions.go); a source that has
    positions of its own keeps them."""
    legacy = tmp_path / "promtail-positions.yaml"
    legacy.write_text(yaml.safe_dump({"positions": {"/var/log/syslog.log": "1234", "cursor-journal": "s=ab;i=7"}}))
    text = rendered["alloy"].replace("/var/lib/alloy/promtail-positions.yaml", str(legacy))
    config = tmp_path / "config.alloy"
    config.write_text(text)
    storage = tmp_path / "data"
    kept = storage / "loki.source.file.varlogs" / "positions.yml"
    port = free_port()
    server("alloy", "run", str(config), f"--storage.path={storage}", f"--server.http.listen-addr=127.0.0.1:{port}")
    assert wait_answer(f"http://127.0.0.1:{port}/-/ready") == (200, "Alloy is ready.\n")
    files = kept.read_text()
    assert re.search(r'\? path: "/var/log/syslog.log"\n    labels: "\{\}"\n  : "1234"', files)
    journal = (storage / "loki.source.journal.journal" / "positions.yml").read_text()
    assert re.search(r'\? path: "cursor-loki.source.journal.journal"\n    labels: "\{\}"\n  : "s=ab;i=7"', journal)
    # a reload with a newer legacy file changes nothing: Alloy has positions of its own
    legacy.write_text(yaml.safe_dump({"positions": {"/var/log/syslog.log": "9999"}}))
    assert get(f"http://127.0.0.1:{port}/-/reload", method="POST") == (200, "config reloaded\n")
    assert kept.read_text() == files


def test_a_bad_config_on_reload_keeps_the_running_one(tmp_path, rendered, server):
    config = tmp_path / "config.alloy"
    config.write_text(rendered["alloy"])
    port = free_port()
    server("alloy", "run", str(config), f"--storage.path={tmp_path / 'data'}", f"--server.http.listen-addr=127.0.0.1:{port}")
    wait_answer(f"http://127.0.0.1:{port}/-/ready")
    config.write_text(rendered["alloy"].replace("max_age", "max_agez"))
    status, body = get(f"http://127.0.0.1:{port}/-/reload")
    assert status == 400 and "max_agez" in body
    assert get(f"http://127.0.0.1:{port}/-/ready") == (200, "Alloy is ready.\n")


def test_the_renderer_writes_labels_blocks_and_refuses_what_alloy_cannot_name():
    text = alloy_filters.render({"logging": {"level": "info"}, "loki.write.x": {"endpoint": [{"url": "u"}, {"url": "v"}]},
                                 "loki.source.file.y": None})
    assert text == ('logging {\n  level = "info"\n}\n\nloki.write "x" {\n  endpoint {\n    url = "u"\n  }\n'
                    '  endpoint {\n    url = "v"\n  }\n}\n')
    with pytest.raises(AnsibleFilterError, match="is not a block name"):
        alloy_filters.render({"loki.write.my-label": {}})
    with pytest.raises(AnsibleFilterError, match="must be a map"):
        alloy_filters.render({"logging": "info"})


def test_alloy_needs_a_loki_at_an_http_url():
    assert "put a host in the loki group" in alloy_filters.problems({"loki.write.default": {"endpoint": []}}, "loki")[0]
    assert alloy_filters.problems({"loki.write.default": {"endpoint": [{"url": "loki:3100"}]}}, "loki") == [
        "Alloy endpoint url loki:3100 must be http(s):// (alloy_loki_urls or alloy_config)"]


# --- the switch: stack_log_shipper -------------------------------------------------------------

def test_hosts_of_log_shipper_run_alloy_unless_their_stack_log_shipper_says_promtail():
    groups = {"log_shipper": ["a", "b"]}
    hostvars = {"a": {}, "b": {"stack_log_shipper": "promtail"}}
    assert stack_filters.log_shippers(groups, hostvars) == [{"name": "a", "groups": ["alloy"]},
                                                            {"name": "b", "groups": ["promtail"]}]
    with pytest.raises(AnsibleFilterError, match="host b: stack_log_shipper is 'fluentd'; it must be one of alloy, promtail"):
        stack_filters.log_shippers(groups, {"a": {}, "b": {"stack_log_shipper": "fluentd"}})


def test_the_switchs_default_is_the_stack_roles():
    defaults = yaml.safe_load((ROOT / "roles/stack/defaults/main.yml").read_text())
    assert stack_filters.LOG_SHIPPERS[0] == defaults["stack_log_shipper"] == "alloy"


def test_a_host_in_both_shipper_groups_is_refused():
    assert stack_filters.log_shipper_problems({"promtail": ["a", "b"], "alloy": ["b"]}) == [
        "host b is in both the promtail and the alloy group and would ship every line twice: keep it in one "
        "(for a host of log_shipper, stack_log_shipper picks it)"]


def test_the_contract_is_what_upstreams_structs_say():
    """Regenerated from a clone of grafana/alloy when there is one (tools/alloy_contract.py)."""
    clone = pathlib.Path(os.environ.get("MONSTACK_ALLOY_SOURCE", "/work/.mirror/grafana+alloy/repo"))
    contract = yaml.safe_load((ROOT / "tests/mirror/contracts/alloy.yml").read_text())
    assert contract["version"] == yaml.safe_load((ROOT / "roles/alloy/defaults/main.yml").read_text())["alloy_version"]
    if not clone.is_dir():
        pytest.skip("no clone of grafana/alloy here to regenerate the contract from")
    out = subprocess.run([sys.executable, str(ROOT / "tools/alloy_contract.py"), str(clone), f"v{contract['version']}"],
                         capture_output=True, text=True, check=True).stdout
    assert yaml.safe_load(out) == contract


def test_a_reload_turns_its_servers_tls_on_as_upstream_does(tmp_path, rendered, server, tls_pki):
    """The http block's tls applies on reload, no restart (grafana/alloy@v1.18.1
    internal/service/http/http.go Update): stack_tls switched on for a running Alloy."""
    import ssl
    import urllib.request
    config = tmp_path / "config.alloy"
    config.write_text(rendered["alloy"])
    port = free_port()
    server("alloy", "run", str(config), f"--storage.path={tmp_path / 'data'}", f"--server.http.listen-addr=127.0.0.1:{port}")
    assert wait_answer(f"http://127.0.0.1:{port}/-/ready")[0] == 200
    config.write_text(rendered["alloy"] + (
        f'http {{\n  tls {{\n    cert_file = "{tls_pki["cert"]}"\n    key_file = "{tls_pki["key"]}"\n'
        f'    client_ca_file = "{tls_pki["ca"]}"\n    client_auth_type = "RequireAndVerifyClientCert"\n  }}\n}}\n'))
    assert get(f"http://127.0.0.1:{port}/-/reload") == (200, "config reloaded\n")
    with pytest.raises(OSError):
        get(f"http://127.0.0.1:{port}/-/ready")
    context = ssl.create_default_context(cafile=tls_pki["ca"])
    context.load_cert_chain(tls_pki["cert"], tls_pki["key"])
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/-/ready", context=context, timeout=5) as answer:
        assert answer.read() == b"Alloy is ready.\n"
    anonymous = ssl.create_default_context(cafile=tls_pki["ca"])
    with pytest.raises(OSError):
        urllib.request.urlopen(f"https://127.0.0.1:{port}/-/ready", context=anonymous, timeout=5).read()
