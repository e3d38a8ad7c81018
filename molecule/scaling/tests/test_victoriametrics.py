"""The VictoriaMetrics service itself: hardened, relabeling rules checked by VictoriaMetrics
before they replace the live ones, and applied by a reload rather than a restart."""
import re

from conftest import exposure, host_names, run_playbook, unit_pid

STORE = host_names("victoriametrics")[0] if host_names("victoriametrics") else None
testinfra_hosts = [f"podman://{STORE}"] if STORE else []


def test_it_runs_unprivileged_under_a_hardened_unit(host):
    assert host.service("victoriametrics").is_running and host.service("victoriametrics").is_enabled
    assert [p.user for p in host.process.filter(comm="victoria-metric")] == ["victoriametrics"]
    assert exposure(host, "victoriametrics") <= 2.0
    assert host.file("/var/lib/victoriametrics").user == "victoriametrics"


def test_bad_relabeling_is_refused_by_victoriametrics_before_any_change(host):
    pid, unit = unit_pid(host, "victoriametrics"), host.file("/etc/systemd/system/victoriametrics.service").sha256sum
    run = run_playbook("converge.yml", limit=STORE,
                       extra={"victoriametrics_relabel_configs": [{"action": "dropx", "source_labels": ["x"]}]})
    assert run.returncode != 0
    assert 'unknown `action` "dropx"' in run.output, run.output[-2500:]
    assert not host.file("/etc/victoriametrics/relabel.yml").exists
    assert unit_pid(host, "victoriametrics") == pid
    assert host.file("/etc/systemd/system/victoriametrics.service").sha256sum == unit


def test_new_relabeling_rules_are_reloaded_not_restarted(host):
    rules = [{"action": "drop", "source_labels": ["__name__"], "regex": "never_written_metric"}]
    run_playbook("converge.yml", limit=STORE, extra={"victoriametrics_relabel_configs": rules})
    pid = unit_pid(host, "victoriametrics")
    rules[0]["regex"] = "another_metric"
    run = run_playbook("converge.yml", limit=STORE, extra={"victoriametrics_relabel_configs": rules})
    assert run.returncode == 0, run.output[-2500:]
    assert "another_metric" in host.file("/etc/victoriametrics/relabel.yml").content_string
    assert unit_pid(host, "victoriametrics") == pid, "a rule change restarted VictoriaMetrics"
    metrics = host.check_output("curl -fsS --noproxy '*' http://127.0.0.1:8428/metrics")
    assert re.search(r"^vm_relabel_config_reloads_total [1-9]", metrics, re.M), "the SIGHUP did not reload the rules"
    assert re.search(r"^vm_relabel_config_last_reload_successful 1", metrics, re.M)
