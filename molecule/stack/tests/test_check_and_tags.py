"""site.yml behaves like the Ansible operators know: --check --diff previews a change without
making it (diff of each changed file, nothing written, no service touched) and predicts what the
real run then does, on a fresh host and on a deployed one; an unchanged stack reports changed=0
in check mode, a config the validator rejects fails in check mode too, --tags component,phase
runs only that phase of that component and reports the others skipped, a reload skipped with
--skip-tags service is done by the next run, and every entry point writes the same files."""
import re
import subprocess

import yaml
from conftest import (ONE_PASS_LOOP, RESULTS_AS_JSON, ROOT, get_host, host_names, item_results, new_host,
                      previous_version, run_playbook, task_results, unit_pid, wait_for)

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
    # on the host whose files the change touches (the whole stack in check mode is the test above)
    run = run_playbook("converge.yml", "--check", "--diff", limit=MON, extra={"prometheus_scrape_interval": "30s"})
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
        # and say so: skipped, not ok
        for component in ("node_exporter", "alertmanager"):
            assert re.search(rf"^skipping: \[{MON}\] => \(item={MON}: {component}\)", run.output, re.M), run.output[-3000:]
        assert all(result.get("skip_reason", "").startswith("no step of this component selected") for result in items)
        mon = get_host(MON)
        assert "scrape_interval: 20s" in mon.file("/etc/prometheus/prometheus.yml").content_string
        assert "default_theme" not in mon.file("/etc/grafana/grafana.ini").content_string, "grafana was configured"
        assert unit_pid(mon, "prometheus") == before[1]["prometheus"], "a config change reloads, never restarts"
    finally:
        run_playbook("converge.yml", "--limit", MON)


# --- check mode leaves a host as it was and predicts the real run ---------------------------------

FRESH = "stack-fresh"
# what a deploy may touch on a host, every file with its owner, mode, size and time; of /var/lib
# only what is there (the running services write their data below it); Ansible's own files
# (/root/.ansible, its temporary files) and what the system itself keeps changing are left out
SNAPSHOT = ("find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp -o -path /var/tmp "
            "-o -path /var/log -o -path /var/cache -o -path /var/backups -o -path /var/lib -o -path /root \\) -prune "
            "-o -printf '%p %u %g %m %s %T@\\n' | sort; find /var/lib -maxdepth 1 -printf '%p %u %g %m\\n' | sort; "
            "systemctl list-units --all --type=service --no-legend --plain | awk '{print $1, $3, $4}'")
# "<host> <component>: <what it did>" at default verbosity, " (check mode: ...)" after it in check mode
SUMMARY = re.compile(r"^(\S+) (\w+): (.+?)(?: \(check mode: what a real run would do\))?$", re.M)


def snapshot_of(name):
    return get_host(name).check_output(SNAPSHOT)


def summaries(output):
    return {(host, component): said for host, component, said in SUMMARY.findall(output)}


def fresh_host(groups, tmp_path):
    """A new container in these inventory groups (an extra inventory file: pass it with -i after
    the scenario's)."""
    return new_host(FRESH, "monstack-stack", tmp_path, groups)


def test_check_mode_on_a_fresh_and_on_a_changed_host_writes_nothing_and_predicts_the_real_run(host, tmp_path):
    """A host added to the groups whose components restart or reload in different ways
    (Prometheus reloads through its API, Grafana through its provisioning API, VictoriaMetrics
    restarts for a new unit, the exporters for a new release; every host runs node_exporter):
    --check leaves every file, user, group and unit as it was and says per component what the
    real run that follows then does. Again on the deployed host with changed settings and another
    node_exporter release (the VictoriaMetrics restart and the release's restart used to be
    missing from check mode). Not Alertmanager: it would join the scenario's running cluster;
    postgres_exporter below. The other components take the same steps (one suite-time budget)."""
    groups = ["prometheus", "grafana", "victoriametrics", "redis_exporter"]
    extra = fresh_host(groups, tmp_path)
    try:
        for settings in ({}, {"node_exporter_version": previous_version("node_exporter"),
                              "prometheus_scrape_interval": "20s"}):
            before = snapshot_of(FRESH)
            check = run_playbook("converge.yml", "-i", extra, "--check", limit=FRESH, extra=settings)
            assert check.returncode == 0, check.output[-3000:]
            assert snapshot_of(FRESH) == before, "check mode changed the host"
            real = run_playbook("converge.yml", "-i", extra, limit=FRESH, extra=settings)
            assert real.returncode == 0, real.output[-3000:]
            predicted, done = summaries(check.output), summaries(real.output)
            assert done and predicted == done, (predicted, done)
        # what the second pair had to predict
        assert done[(FRESH, "victoriametrics")].endswith("restarted (unit changed)"), done
        assert "restarted (new release)" in done[(FRESH, "node_exporter")], done
        assert "reloaded" in done[(FRESH, "prometheus")], done
    finally:
        subprocess.run(["podman", "rm", "-f", FRESH], capture_output=True)


def test_check_mode_asks_postgresql_for_the_login_as_the_real_run_does(host, tmp_path):
    """A host without PostgreSQL in postgres_exporter (its login created by default): --check
    fails as the real run does, saying why, and changes nothing (it used to pass)."""
    extra = fresh_host(["postgres_exporter"], tmp_path)
    try:
        before = snapshot_of(FRESH)
        runs = [run_playbook("converge.yml", "-i", extra, *mode, limit=FRESH) for mode in (["--check"], [])]
        for run in runs:
            assert run.returncode != 0
            assert "PostgreSQL is not installed on this host" in run.output, run.output[-3000:]
        assert snapshot_of(FRESH) == before
    finally:
        subprocess.run(["podman", "rm", "-f", FRESH], capture_output=True)


# --- a reload is never lost; entry points agree -----------------------------------------------------

def running_scrape_interval(mon):
    config = mon.check_output("curl -fsS --noproxy '*' http://127.0.0.1:9090/api/v1/status/config")
    return re.search(r"scrape_interval: (\S+)", yaml.safe_load(config)["data"]["yaml"]).group(1)


def test_a_reload_skipped_with_skip_tags_service_is_done_by_the_next_run(host):
    mon = get_host(MON)
    before = running_scrape_interval(mon)
    try:
        run = run_playbook("converge.yml", "--skip-tags", "service", limit=MON, extra={"prometheus_scrape_interval": "20s"})
        assert run.returncode == 0, run.output[-3000:]
        assert "scrape_interval: 20s" in mon.file("/etc/prometheus/prometheus.yml").content_string
        assert running_scrape_interval(mon) == before, "--skip-tags service reloaded"
        run = run_playbook("converge.yml", limit=MON, extra={"prometheus_scrape_interval": "20s"})
        assert run.returncode == 0, run.output[-3000:]
        assert "reloaded (pending since an earlier run: config changed: prometheus.yml)" in run.output, run.output[-3000:]
        assert running_scrape_interval(mon) == "20s"
    finally:
        run_playbook("converge.yml", limit=MON)
    assert wait_for(lambda: running_scrape_interval(mon) == before, 30)


def test_site_yml_then_the_component_playbook_then_the_collection_role_change_nothing(host, tmp_path):
    role_play = tmp_path / "collection_role.yml"
    role_play.write_text(yaml.safe_dump([{"name": "node_exporter through the collection role", "hosts": "all",
                                          "become": True, "gather_facts": False,
                                          "roles": ["monstack.observability.node_exporter"]}]))
    for playbook in (f"{ROOT}/playbooks/node_exporter.yml", str(role_play)):
        run = run_playbook(playbook, limit=f"{MON},{host_names('app')[0]}")
        assert run.returncode == 0, run.output[-3000:]
        recap = re.findall(r"^\S+\s+: ok=\d+\s+changed=(\d+)", run.output, re.M)
        assert recap and set(recap) == {"0"}, (playbook, run.output[-3000:])
