"""The role-specific checks that used to be long Jinja expressions in tasks/preflight.yml,
now Python in each role's filter plugin: each reports its problem with the variable named."""
from conftest import role_filters as role


def test_prometheus_unknown_alerts_agent_rules_and_jobs():
    shipped = {"hosts": {"groups": [{"name": "h", "rules": [{"alert": "HostDown"}, {"record": "r"}]}]}}
    settings = {"prometheus_alert_rules_disabled": ["HostDown", "Typo"], "prometheus_alert_rules_overrides": {},
                "prometheus_agent_mode": True, "prometheus_rule_files": {"x": {}},
                "prometheus_inventory_jobs_disabled": ["node", "nodes"]}
    assert role("prometheus").problems(settings, shipped, {"node": {}}) == [
        "prometheus_alert_rules_disabled/_overrides name alerts that are not shipped: Typo",
        "prometheus_rule_files cannot be used in agent mode (agents evaluate no rules)",
        "prometheus_inventory_jobs_disabled names an unknown job: nodes"]


def test_loki_retention_and_schema_periods():
    good = {"compactor": {"retention_enabled": True, "delete_request_store": "filesystem"},
            "schema_config": {"configs": [{"from": "2024-04-01", "store": "tsdb", "schema": "v13"}]}}
    loki = role("loki")
    assert loki.problems(good) == []
    bad = {"compactor": {"retention_enabled": True},
           "schema_config": {"configs": [{"from": "2025-01-01", "store": "tsdb", "schema": "v13"},
                                         {"from": "2024", "store": "boltdb-shipper", "schema": "v12"}]}}
    problems = loki.problems(bad)
    assert any("delete_request_store" in p for p in problems)
    assert "loki_config schema period from 2024 must start on a YYYY-MM-DD date" in problems
    assert "loki_config schema periods must be in ascending order of from" in problems
    assert any("newest schema period must use store tsdb and schema v13" in p for p in problems)
    assert loki.problems({}) == ["loki_config schema_config.configs needs at least one period"]


def test_promtail_needs_a_loki_at_an_http_url():
    promtail = role("promtail")
    assert "put a host in the loki group" in promtail.problems({"clients": []}, "loki")[0]
    assert promtail.problems({"clients": [{"url": "loki:3100"}]}, "loki") == [
        "Promtail client url loki:3100 must be http(s):// (promtail_loki_urls or promtail_config clients)"]
    assert promtail.problems({"clients": [{"url": "https://loki:3100/loki/api/v1/push"}]}, "loki") == []


def test_grafana_password_release_database_and_plugins():
    settings = {"grafana_admin_password": "admin", "grafana_admin_user": "admin", "grafana_version": "13.0.0",
                "grafana_artifact_url": "", "grafana_database": {"type": "oracle"},
                "grafana_plugins": [{"name": "p"}, {"url": "x"}]}
    problems = role("grafana").problems(settings, {})
    assert problems[0].startswith("grafana_admin_password is weak")
    assert problems[1].startswith("grafana_build_ids has no build id for 13.0.0")
    assert problems[2] == "grafana_database.type must be sqlite3, postgres or mysql"
    assert problems[3] == "grafana_plugins p needs url or src"
    assert problems[4].startswith("a plugin in grafana_plugins has no name")
    settings.update(grafana_admin_password="", grafana_database={"type": "sqlite3"}, grafana_plugins=[])
    assert role("grafana").problems(settings, {"13.0.0": "1"})[0].startswith("grafana_admin_password is not set")


def test_watched_servers_need_names_targets_and_unique_names(filters):
    problems = filters.instance_problems(
        [{"name": "a b", "target": "redis://x"}, {"name": "c", "target": "x:6379"}, {"target": "redis://y"},
         {"name": "c", "target": "redis://z"}, {"name": "d"}],
        "redis_exporter_instances", ["target"], "^redis://", "redis://host:port")
    assert problems == [
        "redis_exporter_instances name a b may use only A-Z a-z 0-9 _ . -",
        "redis_exporter_instances c: target x:6379 must be redis://host:port",
        "an entry of redis_exporter_instances has no name: {'target': 'redis://y'}",
        "redis_exporter_instances d needs target (redis://host:port)",
        "redis_exporter_instances names must be unique"]


def test_loki_runs_on_one_host_of_its_group(tmp_path):
    """Issue 36 item 7: the role's Loki is a single binary with local storage; several hosts in
    the group would be unrelated copies, so preflight refuses them before any change."""
    import json
    import os
    import pathlib
    import subprocess

    import yaml

    assert role("loki").group_problems(["logs1"], "loki") == []
    assert "the loki group has 2 hosts (logs1, logs2)" in role("loki").group_problems(["logs1", "logs2"], "loki")[0]
    root = pathlib.Path(__file__).resolve().parents[2]
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"vars": {"ansible_connection": "local"},
                                                 "children": {"loki": {"hosts": {"logs1": {}, "logs2": {}}}}}}))
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{"hosts": "logs1", "gather_facts": False, "roles": ["loki"]}]))
    env = {k: v for k, v in os.environ.items() if k not in ("ANSIBLE_VARS_PLUGINS", "ANSIBLE_VARS_ENABLED")}
    env.update(ANSIBLE_ROLES_PATH=str(root / "roles"), ANSIBLE_CONFIG=str(root / "ansible.cfg"))
    proc = subprocess.run(["ansible-playbook", "--check", "-i", str(inventory), str(play), "-e", json.dumps({})],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "the loki group has 2 hosts (logs1, logs2)" in out, out[-3000:]
    assert "changed=0" in out
