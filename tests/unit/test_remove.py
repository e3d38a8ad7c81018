"""Taking a component off a host (stack_remove): from the record every full run of the component
leaves, the unit, links, releases, config, user and group go, the data stays unless purged,
nothing outside what was installed is touched; a component left installed outside its groups is
named; and the inventory refuses a removal of what the host still runs."""
import json
import os

import pytest

from conftest import load  # noqa: E402


@pytest.fixture(scope="module")
def remove():
    from ansible_collections.monstack.observability.plugins.module_utils import stack_remove
    return stack_remove


@pytest.fixture
def box(tmp_path, monkeypatch, remove):
    """A host's layout below tmp_path, with systemctl, userdel and groupdel recorded instead of run."""
    calls = []

    def systemctl(*args):
        calls.append(("systemctl",) + args)
        state = "ActiveState=active\nUnitFileState=enabled\n" if args[0] == "show" else ""
        return type("Proc", (), {"returncode": 0, "stdout": state, "stderr": ""})()

    def run(cmd, **kwargs):
        calls.append(tuple(cmd))
        return type("Proc", (), {"returncode": 0, "stdout": "", "stderr": ""})()

    monkeypatch.setattr(remove, "_systemctl", systemctl)
    monkeypatch.setattr(remove.subprocess, "run", run)
    monkeypatch.setattr(remove, "_user_exists", lambda name: name == "postgres_exporter")
    monkeypatch.setattr(remove, "_group_removable", lambda name, leaving="": name == "postgres_exporter")
    root = tmp_path
    for path in ("etc/systemd/system", "opt/monitoring/postgres_exporter/0.20.1-linux-amd64", "usr/local/bin",
                 "etc/postgres_exporter", "var/lib/postgres_exporter/data", "var/lib/monstack/pending",
                 "var/lib/monstack/components"):
        (root / path).mkdir(parents=True)
    (root / "etc/systemd/system/postgres_exporter.service").write_text("[Service]\n")
    release = root / "opt/monitoring/postgres_exporter/0.20.1-linux-amd64"
    (release / "postgres_exporter").write_text("binary")
    (root / "opt/monitoring/postgres_exporter/current").symlink_to("0.20.1-linux-amd64")
    (root / "usr/local/bin/postgres_exporter").symlink_to(root / "opt/monitoring/postgres_exporter/current/postgres_exporter")
    (root / "usr/local/bin/psql").write_text("someone else's")
    (root / "etc/postgres_exporter/postgres_exporter.yml").write_text("auth_modules: {}\n")
    (root / "var/lib/postgres_exporter/data/kept").write_text("data")
    (root / "var/lib/monstack/pending/postgres_exporter.json").write_text('{"action": "reload"}')
    params = {
        "install": {"component": "postgres_exporter", "root": str(root / "opt/monitoring"), "bin_dir": str(root / "usr/local/bin"),
                    "links": {"postgres_exporter": "postgres_exporter"}, "user": "postgres_exporter",
                    "directories": [{"path": str(root / "etc/postgres_exporter"), "owner": "root"},
                                    {"path": str(root / "var/lib/postgres_exporter"), "owner": "postgres_exporter"}]},
        "config": {"files": [{"dest": str(root / "etc/systemd/system/postgres_exporter.service")},
                             {"dest": str(root / "etc/postgres_exporter/postgres_exporter.yml")}],
                   "prune": [str(root / "etc/postgres_exporter")]},
        "service": {"name": "postgres_exporter"},
    }
    record_dir = str(root / "var/lib/monstack/components")
    remove.write_record(remove.record(params), record_dir)
    dirs = {"unit_dir": str(root / "etc/systemd/system"), "pending_dir": str(root / "var/lib/monstack/pending")}
    return root, record_dir, dirs, calls


def test_a_run_records_what_it_installed_and_merges_the_parts_of_split_runs(remove, tmp_path):
    install = {"component": "grafana", "root": "/opt/monitoring", "bin_dir": "/usr/local/bin",
               "links": {"grafana": "bin/grafana"}, "user": "grafana",
               "directories": [{"path": "/etc/grafana", "owner": "root"}, {"path": "/var/lib/grafana/", "owner": "grafana"},
                               {"path": "/etc/grafana/secrets", "owner": "grafana"}]}
    config = {"files": [{"dest": "/etc/grafana/grafana.ini"}, {"dest": "/etc/systemd/system/grafana.service"}],
              "prune": ["/etc/grafana"]}
    directory = str(tmp_path / "records")
    # Grafana's role installs in a task of its own, then configures and runs
    assert remove.write_record(remove.record({"install": install}), directory)
    assert remove.write_record(remove.record({"config": config, "service": {"name": "grafana"}}), directory)
    assert not remove.write_record(remove.record({"install": install}), directory), "an unchanged record is not rewritten"
    data = remove.read_records(directory)["grafana"]
    assert data["links"] == ["/usr/local/bin/grafana"] and data["release_dir"] == "/opt/monitoring/grafana"
    assert data["unit"] == "grafana" and data["files"] == ["/etc/grafana/grafana.ini", "/etc/systemd/system/grafana.service"]
    # the service's data: made for its user, outside its config
    assert remove.data_dirs(data) == ["/var/lib/grafana"]
    assert remove.record({"service": {"name": "x"}}) is None


def test_removal_takes_everything_installed_and_keeps_the_data(remove, box):
    root, record_dir, dirs, calls = box
    result = remove.run({"remove": ["postgres_exporter"], "runs": ["node_exporter"], "record_dir": record_dir}, **dirs)
    assert result["changed"] and result["removed"] == ["postgres_exporter"] and not result["warnings"]
    for gone in ("etc/systemd/system/postgres_exporter.service", "opt/monitoring/postgres_exporter",
                 "usr/local/bin/postgres_exporter", "etc/postgres_exporter", "var/lib/monstack/pending/postgres_exporter.json",
                 "var/lib/monstack/components/postgres_exporter.json"):
        assert not os.path.lexists(root / gone), gone
    assert (root / "var/lib/postgres_exporter/data/kept").read_text() == "data"
    assert (root / "usr/local/bin/psql").exists(), "a file it did not install stays"
    assert result["components"]["postgres_exporter"]["kept"] == [str(root / "var/lib/postgres_exporter")]
    assert calls.index(("systemctl", "disable", "--now", "postgres_exporter.service")) < calls.index(("systemctl", "daemon-reload"))
    assert ("userdel", "postgres_exporter") in calls and ("groupdel", "postgres_exporter") in calls
    # the second run finds nothing to do
    again = remove.run({"remove": ["postgres_exporter"], "record_dir": record_dir}, **dirs)
    assert again["changed"] is False and again["removed"] == []


def test_purge_takes_the_data_too(remove, box):
    root, record_dir, dirs, _ = box
    remove.run({"remove": ["postgres_exporter"], "purge": True, "record_dir": record_dir}, **dirs)
    assert not (root / "var/lib/postgres_exporter").exists()


def test_check_mode_says_what_would_go_and_touches_nothing(remove, box):
    root, record_dir, dirs, calls = box
    before = sorted(str(p) for p in root.rglob("*"))
    result = remove.run({"remove": ["postgres_exporter"], "record_dir": record_dir}, check_mode=True, **dirs)
    assert result["changed"] and result["removed"] == ["postgres_exporter"]
    assert str(root / "etc/systemd/system/postgres_exporter.service") in result["components"]["postgres_exporter"]["paths"]
    assert sorted(str(p) for p in root.rglob("*")) == before
    assert [c for c in calls if c[:2] != ("systemctl", "show")] == []


def test_a_component_left_outside_its_groups_is_named_and_left_alone(remove, box):
    root, record_dir, dirs, calls = box
    (root / "etc/systemd/system/redis_exporter.service").write_text("[Service]\n")
    result = remove.run({"remove": [], "runs": ["node_exporter"], "known": ["node_exporter", "redis_exporter"],
                         "record_dir": record_dir}, **dirs)
    assert result["changed"] is False and result["left_over"] == ["postgres_exporter", "redis_exporter"]
    assert "Add postgres_exporter to stack_remove" in result["warnings"][0]
    assert (root / "etc/systemd/system/postgres_exporter.service").exists() and calls == []
    # a host that runs it is not warned
    assert remove.run({"runs": ["postgres_exporter"], "record_dir": record_dir}, **dirs)["left_over"] == []


def test_removal_refuses_what_it_cannot_do(remove, box):
    root, record_dir, dirs, _ = box
    with pytest.raises(remove.StepError, match="stack_remove names postgres_exporter, which this host also runs"):
        remove.run({"remove": ["postgres_exporter"], "runs": ["postgres_exporter"], "record_dir": record_dir}, **dirs)
    (root / "etc/systemd/system/redis_exporter.service").write_text("[Service]\n")
    with pytest.raises(remove.StepError, match="redis_exporter runs on this host .* but has no record"):
        remove.run({"remove": ["redis_exporter"], "record_dir": record_dir}, **dirs)


def test_a_record_never_takes_a_system_directory(remove, tmp_path, monkeypatch):
    data = {"component": "x", "unit": "x", "release_dir": "/opt", "config_dirs": ["/etc"], "user_dirs": ["/var/lib"],
            "user": "x", "files": []}
    paths, kept = remove.plan(data, purge=True, unit_dir=str(tmp_path), pending_dir=str(tmp_path))
    assert paths == [] and kept == ["/var/lib"], "a system directory is at most reported as kept"


def test_the_inventory_refuses_a_removal_of_what_the_host_still_runs(filters):
    registry = {"node_exporter": {"group": "node_exporter", "all_hosts": True}, "redis_exporter": {"group": "redis_exporter"},
                "external": {"external": True}}
    groups = {"all": ["a", "b", "c"], "redis_exporter": ["a"]}
    hostvars = {"a": {"stack_remove": ["redis_exporter"]}, "b": {"stack_remove": ["node_exporter", "nginx"]},
                "c": {"stack_remove": "redis_exporter"}}
    problems = filters.remove_problems(groups, hostvars, registry)
    assert problems[0].startswith("host a: stack_remove names redis_exporter, but the host still runs it through the "
                                  "redis_exporter group")
    assert "host b: stack_remove names nginx, not a component of the stack" in problems[1]
    assert "node_exporter runs on all while its group node_exporter is empty" in problems[2]
    assert problems[3].startswith("host c: stack_remove must be a list")
    assert filters.remove_problems({"all": ["a"], "redis_exporter": []}, {"a": {"stack_remove": ["redis_exporter"]}},
                                   registry) == []


def test_the_spec_offers_every_component_for_removal():
    import pathlib

    import yaml
    roles = pathlib.Path(__file__).resolve().parents[2] / "roles/stack"
    spec = yaml.safe_load((roles / "meta/argument_specs.yml").read_text())
    choices = spec["argument_specs"]["settings"]["options"]["stack_remove"]["choices"]
    assert choices == yaml.safe_load((roles / "vars/main.yml").read_text())["stack_deploy_order"]


def test_a_full_component_run_leaves_its_record(remove, tmp_path):
    from ansible_collections.monstack.observability.plugins.module_utils import stack_component
    done = {"install": {"changed": False, "needs_archive": False}, "configure": {"changed": False},
            "service": {"changed": False, "actions": []}}
    runners = {step: (lambda s: lambda args, check, diff, warn: dict(done[s]))(step) for step in stack_component.STEPS}
    p = {"steps": list(stack_component.STEPS), "install": {"component": "loki", "user": "loki", "links": {"loki": "loki"}},
         "config": {"files": [{"dest": "/etc/loki/config.yml"}], "prune": ["/etc/loki"]}, "service": {"name": "loki"},
         "record_dir": str(tmp_path)}
    stack_component.run(dict(p), check_mode=True, runners=runners)
    assert not (tmp_path / "loki.json").exists(), "check mode writes nothing"
    stack_component.run(dict(p), runners=runners)
    assert json.loads((tmp_path / "loki.json").read_text())["links"] == ["/usr/local/bin/loki"]
