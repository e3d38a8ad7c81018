"""Prometheus with the real binary: inventory targets scraped, shipped rules loaded,
a rejected rule never replaces the live config, user rules reload without a restart."""
import json
import re

from conftest import exposure, get_host, host_names, run_playbook, unit_pid, wait_for

PROM = host_names("prometheus")[0] if host_names("prometheus") else None
testinfra_hosts = [f"podman://{PROM}"] if PROM else []


def api(host, path):
    out = host.check_output(f"curl -fsS --noproxy '*' 'http://127.0.0.1:9090{path}'")
    return json.loads(out)["data"]


def query(host, expr):
    return api(host, "/api/v1/query?query=" + expr.replace(" ", "%20").replace('"', "%22")
               .replace("{", "%7B").replace("}", "%7D").replace("=", "%3D"))["result"]


def test_every_inventory_exporter_is_scraped_and_up(host):
    expected = {("node", f"{name}:9100") for name in host_names()} \
        | {("alertmanager", f"{name}:9093") for name in host_names("alertmanager")} \
        | {("prometheus", f"{PROM}:9090")}

    def up():
        return {(r["metric"]["job"], r["metric"]["instance"]) for r in query(host, "up == 1")}
    assert wait_for(lambda: expected <= up()), f"up: {sorted(up())}, expected {sorted(expected)}"


def test_node_metrics_of_another_host_are_stored(host):
    other = next(n for n in host_names() if n != PROM)
    result = wait_for(lambda: query(host, f'node_memory_MemTotal_bytes{{instance="{other}:9100"}}'))
    assert result and float(result[0]["value"][1]) > 0


def test_shipped_rules_are_loaded_with_overrides_applied(host):
    groups = {g["name"]: g for g in api(host, "/api/v1/rules")["groups"]}
    assert {"targets", "node", "prometheus", "alertmanager", "services", "postgres", "redis"} <= set(groups)
    target_down = next(r for r in groups["targets"]["rules"] if r["name"] == "TargetDown")
    assert target_down["duration"] == 10, "the inventory's override (for: 10s) must reach the rule"
    assert target_down["labels"]["severity"] == "critical"


def test_every_configured_alertmanager_is_used(host):
    active = {a["url"] for a in api(host, "/api/v1/alertmanagers")["activeAlertmanagers"]}
    assert active == {f"http://{n}:9093/api/v2/alerts" for n in host_names("alertmanager")}


def test_files_and_modes(host):
    for path in ("/etc/prometheus/prometheus.yml", "/etc/prometheus/rules/stack-node.yml"):
        f = host.file(path)
        assert (f.user, f.group, f.mode) == ("root", "prometheus", 0o640), path
    # targets: one file per job and host, addresses only
    for name in host_names("node_exporter") or host_names("all"):
        f = host.file(f"/etc/prometheus/file_sd/node/{name}.yml")
        assert (f.user, f.group, f.mode) == ("root", "root", 0o644), f.path
    data = host.file("/var/lib/prometheus")
    assert (data.user, data.mode) == ("prometheus", 0o750)
    assert host.service("prometheus").is_enabled


def test_unit_is_sandboxed(host):
    unit = host.file("/etc/systemd/system/prometheus.service").content_string
    for line in ("ProtectSystem=strict", "NoNewPrivileges=yes", "ReadWritePaths=/var/lib/prometheus",
                 "User=prometheus", "WantedBy=multi-user.target"):
        assert line in unit
    score = exposure(host, "prometheus")
    print(f"prometheus exposure score: {score}")
    assert score <= 2.5


def test_broken_rule_is_rejected_and_the_live_config_keeps_serving(host):
    pid = unit_pid(host, "prometheus")
    config = host.file("/etc/prometheus/prometheus.yml").sha256sum
    run = run_playbook("converge.yml", limit=PROM, extra={"prometheus_rule_files": {
        "broken": {"groups": [{"name": "broken", "rules": [{"alert": "Broken", "expr": "up ==="}]}]}}})
    assert run.returncode != 0
    assert "the new configuration was rejected; the live one is unchanged" in run.output
    assert re.search(r"rules/broken\.yml.*parse error|parse error.*rules/broken\.yml|broken\.yml: .*unexpected",
                     run.output), run.output[-3000:]
    assert not host.file("/etc/prometheus/rules/broken.yml").exists
    assert host.file("/etc/prometheus/prometheus.yml").sha256sum == config
    assert unit_pid(host, "prometheus") == pid
    host.check_output("curl -fsS --noproxy '*' http://127.0.0.1:9090/-/ready")
    assert "broken" not in {g["name"] for g in api(host, "/api/v1/rules")["groups"]}


def test_user_rule_file_is_loaded_by_reload_and_pruned_when_dropped(host):
    pid = unit_pid(host, "prometheus")
    mine = {"myapp": {"groups": [{"name": "myapp", "rules": [
        {"record": "myapp:up:sum", "expr": "sum(up)"}]}]}}
    run = run_playbook("converge.yml", limit=PROM, extra={"prometheus_rule_files": mine})
    assert run.returncode == 0, run.output[-3000:]
    assert wait_for(lambda: "myapp" in {g["name"] for g in api(host, "/api/v1/rules")["groups"]}, timeout=20)
    assert unit_pid(host, "prometheus") == pid, "a rule change reloads, it does not restart"

    run = run_playbook("converge.yml", limit=PROM)
    assert run.returncode == 0, run.output[-3000:]
    assert not host.file("/etc/prometheus/rules/myapp.yml").exists
    assert wait_for(lambda: "myapp" not in {g["name"] for g in api(host, "/api/v1/rules")["groups"]}, timeout=20)
    assert unit_pid(host, "prometheus") == pid
