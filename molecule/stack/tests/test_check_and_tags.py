"""site.yml behaves like the Ansible operators know: --check --diff previews a change without
making it (diff of each changed file, nothing written, no service touched), an unchanged stack
reports changed=0 in check mode, a config the validator rejects fails in check mode too, and
--tags component,phase runs only that phase of that component."""
import re

from conftest import (ONE_PASS_LOOP, RESULTS_AS_JSON, get_host, host_names, item_results, run_playbook, task_results,
                      unit_pid)

MON = host_names("prometheus")[0] if host_names("prometheus") else None
testinfra_hosts = [f"podman://{MON}"] if MON else []
CONFIGS = "/etc/prometheus/prometheus.yml /etc/grafana/provisioning/datasources/monitoring-stack.yaml " \
          "/etc/alertmanager/alertmanager.yml"


def snapshot():
    mon = get_host(MON)
    sums = mon.check_output(f"sha256sum {CONFIGS}")
    return sums, {u: unit_pid(mon, u) for u in ("prometheus", "alertmanager", "grafana")}, \
        mon.check_output("find /etc -maxdepth 1 -name '.*.staging'; "
                         "find /etc/prometheus /etc/grafana /etc/alertmanager -name '*.stack-tmp'")


def changed_tasks(output):
    return re.findall(r"^changed: \[([^\]]+)\]", output, re.M)


def test_check_mode_on_an_unchanged_stack_changes_nothing(host):
    run = run_playbook("converge.yml", "--check", "--diff")
    assert run.returncode == 0, run.output[-3000:]
    recap = re.findall(r"^\S+\s+: ok=\d+\s+changed=(\d+)", run.output, re.M)
    assert recap and set(recap) == {"0"}, run.output[-3000:]


def test_check_diff_shows_the_change_and_leaves_files_and_services_alone(host):
    before = snapshot()
    run = run_playbook("converge.yml", "--check", "--diff", extra={"prometheus_scrape_interval": "30s"})
    assert run.returncode == 0, run.output[-3000:]
    assert "--- before: /etc/prometheus/prometheus.yml" in run.output, run.output[-3000:]
    assert re.search(r"^-\s+scrape_interval: (?!30s)\S+$", run.output, re.M), run.output[-3000:]
    assert re.search(r"^\+\s+scrape_interval: 30s$", run.output, re.M), run.output[-3000:]
    # Grafana's datasource carries the interval too; the reload that would follow is reported
    assert re.search(r"^-\s+timeInterval: (?!30s)\S+$", run.output, re.M), run.output[-3000:]
    assert re.search(r"^\+\s+timeInterval: 30s$", run.output, re.M), run.output[-3000:]
    assert snapshot() == before, "check mode changed a file, left a staging file or touched a service"


def test_a_rejected_config_fails_in_check_mode_with_the_validators_message(host):
    before = snapshot()
    run = run_playbook("converge.yml", "--check", "--limit", MON,
                       extra={"prometheus_config": {"scrape_configs": [{"job_name": "x", "scrape_interval": "ten"}]}})
    assert run.returncode != 0
    assert "the new configuration was rejected; the live one is unchanged" in run.output, run.output[-3000:]
    assert "not a valid duration string" in run.output, run.output[-3000:]
    assert snapshot() == before


def test_tags_run_one_phase_of_one_component(host):
    before = snapshot()
    run = run_playbook("converge.yml", "-v", "--tags", "prometheus,configure", "--limit", MON, env=RESULTS_AS_JSON,
                       extra={"prometheus_scrape_interval": "20s", "grafana_ini": {"users": {"default_theme": "light"}}})
    try:
        assert run.returncode == 0, run.output[-3000:]
        # the steps Ansible's tags alone would pick (every configure, every Prometheus step) are not run:
        # each component's task reports the steps it ran
        # (the roles' own tasks, and the items of site.yml's one-pass loop for the others)
        tasks = set(re.findall(r"^TASK \[(\S+ : (?:Install, configure|Configure) and run [^\]]+)\]", run.output, re.M))
        items = item_results(run.output, ONE_PASS_LOOP).values()
        assert {result["component"] for result in items} >= {"node_exporter", "alertmanager"}, run.output[-3000:]
        results = [(task.split(" : ")[0], result) for task in tasks for result in task_results(run.output, task).values()]
        ran = {name: [step for step in ("install", "config", "service") if step in result]
               for name, result in results + [(result["component"], result) for result in items]}
        # a changed config of a running service takes its service step in site.yml's switch
        # (roles/stack/tasks/switch.yml: every Prometheus ready first), here a reload
        switch = task_results(run.output, "Reload or restart into the new config and wait until it is ready, prometheus")
        assert ran.pop("prometheus") == ["config"], ran
        assert MON in switch and switch[MON]["service"]["actions"] == ["reload"], switch
        assert ran and all(steps == [] for steps in ran.values()), ran
        mon = get_host(MON)
        assert "scrape_interval: 20s" in mon.file("/etc/prometheus/prometheus.yml").content_string
        assert "default_theme" not in mon.file("/etc/grafana/grafana.ini").content_string, "grafana was configured"
        assert unit_pid(mon, "prometheus") == before[1]["prometheus"], "a config change reloads, never restarts"
    finally:
        run_playbook("converge.yml", "--limit", MON)
