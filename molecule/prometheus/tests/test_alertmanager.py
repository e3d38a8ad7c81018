"""Every Alertmanager of the inventory group: one gossip cluster, secrets kept out of the config."""
import json
import re
import subprocess
import threading
import time
import uuid

import pytest

from conftest import (RESULTS_AS_JSON, component_results, delivered_alerts, expected_version, exposure, get_host,
                      host_names, previous_version, run_playbook, start_alert_sink, stop_alert_sink, wait_for)

MEMBERS = host_names("alertmanager")
testinfra_hosts = [f"podman://{n}" for n in MEMBERS]


def status(host):
    return json.loads(host.check_output("curl -fsS --noproxy '*' http://127.0.0.1:9093/api/v2/status"))


def test_all_members_form_one_cluster(host):
    deadline = time.time() + 60
    while True:
        cluster = status(host)["cluster"]
        if len(cluster.get("peers") or []) == len(MEMBERS) or time.time() > deadline:
            break
        time.sleep(2)
    assert cluster["status"] == "ready"
    assert len(cluster["peers"]) == len(MEMBERS) == 3


def test_secrets_live_in_0640_files_not_in_the_config(host):
    config = host.file("/etc/alertmanager/alertmanager.yml")
    assert "pd-routing-key-not-real" not in config.content_string
    assert "routing_key_file: /etc/alertmanager/secrets/pager-pagerduty-0-routing_key" in config.content_string
    secret = host.file("/etc/alertmanager/secrets/pager-pagerduty-0-routing_key")
    assert (secret.user, secret.group, secret.mode) == ("root", "alertmanager", 0o640)
    assert secret.content_string == "pd-routing-key-not-real"


def test_unit_is_sandboxed(host):
    score = exposure(host, "alertmanager")
    print(f"alertmanager exposure score on {host.backend.name}: {score}")
    assert score <= 2.5


def post_alert(member, labels):
    """POST one alert to a member the way Prometheus does; True when it was accepted."""
    body = json.dumps([{"labels": labels, "annotations": {"summary": "rolling upgrade check"}}])
    proc = subprocess.run(["podman", "exec", member, "curl", "-fsS", "--noproxy", "*", "--max-time", "3", "-o",
                           "/dev/null", "-H", "Content-Type: application/json", "-d", body,
                           "http://127.0.0.1:9093/api/v2/alerts"], capture_output=True)
    return proc.returncode == 0


SLOW_START = "/etc/systemd/system/alertmanager.service.d/slow-start.conf"


def prometheus_query(expr):
    out = get_host(host_names("prometheus")[0]).check_output(
        "curl -fsS --noproxy '*' http://127.0.0.1:9090/api/v1/query --data-urlencode %s", f"query={expr}")
    return json.loads(out)["data"]["result"]


def test_a_rolling_upgrade_keeps_accepting_alerts_and_notifies_once(host):
    """The cluster of three goes from the previous release to this one a member at a time: every
    round of alerts (sent to all members, as Prometheus sends them) is accepted by some member,
    and the webhook hears of the alert exactly once. Each member's restart is made slow enough for
    Prometheus to see it down (AlertmanagerDown fires at once in this scenario): the maintenance
    silence each restart makes keeps those alerts from the webhook, and has ended afterwards."""
    if host.backend.name != MEMBERS[0]:
        pytest.skip("runs once, from the first member")
    down = run_playbook("converge.yml", "--limit", "alertmanager",
                        extra={"alertmanager_version": previous_version("alertmanager")})
    assert down.returncode == 0, down.output[-3000:]
    sink = get_host(host_names("prometheus")[0])
    start_alert_sink(sink)
    labels = {"alertname": "RollingUpgradeCheck", "run": uuid.uuid4().hex}
    rounds, stop = [], threading.Event()

    def keep_sending():
        while not stop.is_set():
            rounds.append(sum(post_alert(m, labels) for m in MEMBERS))
            stop.wait(1)

    sender = threading.Thread(target=keep_sending)
    for member in MEMBERS:
        get_host(member).check_output(f"mkdir -p {SLOW_START.rsplit('/', 1)[0]} && printf '[Service]\\nExecStartPre=/bin/sleep 12\\n'"
                                      f" > {SLOW_START} && systemctl daemon-reload")
    sender.start()
    try:
        # site.yml's one pass: the members restart by stack_service's rolling slots, not by `serial`
        up = run_playbook("converge.yml", "-v", "--limit", "alertmanager", env=RESULTS_AS_JSON)
        time.sleep(10)  # group_wait 1s, group_interval 5s: a second notification would have come by now
    finally:
        stop.set()
        sender.join()
        for member in MEMBERS:
            get_host(member).run(f"rm -f {SLOW_START} && systemctl daemon-reload")
    try:
        assert up.returncode == 0, up.output[-3000:]
        restarts = {host: result["service"] for host, result in component_results(
            up.output, "alertmanager",
            "Install, configure and run Alertmanager, reloading it for a new config, and wait until it is ready").items()}
        assert sorted(restarts) == sorted(MEMBERS), up.output[-3000:]
        assert all("restart" in r["actions"] and r["cluster"].startswith("sees 3 of 3") for r in restarts.values()), restarts
        windows = sorted(r["window"] for r in restarts.values())
        # one member at a time: each went down only after the one before was back in the cluster
        assert all(later[0] >= earlier[1] for earlier, later in zip(windows, windows[1:])), windows
        assert rounds and min(rounds) >= 1, f"a round of alerts was refused by every member: {rounds}"
        notified = [a for _, a in delivered_alerts(sink) if a["labels"].get("run") == labels["run"]]
        assert len(notified) == 1, f"the webhook heard of the alert {len(notified)} times"
        assert status(host)["versionInfo"]["version"] == expected_version("alertmanager")
        # Prometheus saw each member down, and the webhook heard nothing of it
        seen_down = {r["metric"]["instance"] for r in prometheus_query(
            'max_over_time(ALERTS{alertname="AlertmanagerDown",alertstate="firing"}[5m])')}
        assert seen_down == {f"{m}:9093" for m in MEMBERS}, f"the slow restarts should have fired the alert: {seen_down}"
        paged = [a["labels"].get("instance") for _, a in delivered_alerts(sink) if a["labels"]["alertname"] == "AlertmanagerDown"]
        assert paged == [], f"the restarts paged: {paged}"
        silences = {r["silence"]["id"]: r["silence"] for r in restarts.values()}
        assert len(silences) == len(MEMBERS), restarts

        def ended():
            made = {s["id"]: s["status"]["state"] for s in json.loads(host.check_output(
                "curl -fsS --noproxy '*' http://127.0.0.1:9093/api/v2/silences")) if s["createdBy"] == "monstack (ansible)"}
            return set(silences) <= set(made) and all(state == "expired" for state in made.values()) and made
        assert wait_for(ended, timeout=60), "the maintenance silences should have ended"
    finally:
        stop_alert_sink(sink)
