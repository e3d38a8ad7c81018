"""Alerting across hosts: a silence gossiped through the cluster, and an alert that travels
from Prometheus through the Alertmanager cluster to a webhook receiver run by the test."""
import json
import time

from conftest import delivered_alerts, get_host, host_names, start_alert_sink, stop_alert_sink

MEMBERS = host_names("alertmanager")
PROM = host_names("prometheus")[0] if host_names("prometheus") else None
testinfra_hosts = [f"podman://{MEMBERS[0]}"] if MEMBERS else []




def test_a_silence_made_on_one_member_reaches_the_others(host):
    silence = {"matchers": [{"name": "alertname", "value": "TestSilence", "isRegex": False}],
               "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z",
               "createdBy": "molecule", "comment": "gossip test"}
    created = json.loads(host.check_output(
        "curl -fsS --noproxy '*' -H 'Content-Type: application/json' -d %s http://127.0.0.1:9093/api/v2/silences",
        json.dumps(silence)))["silenceID"]
    for name in MEMBERS[1:]:
        other = get_host(name)
        deadline = time.time() + 30
        while True:
            ids = {s["id"] for s in json.loads(other.check_output(
                "curl -fsS --noproxy '*' http://127.0.0.1:9093/api/v2/silences"))}
            if created in ids or time.time() > deadline:
                break
            time.sleep(1)
        assert created in ids, f"silence {created} not seen on {name}"


def test_a_stopped_exporter_fires_an_alert_delivered_to_the_webhook(host):
    sink_host = get_host(PROM)
    victim = get_host(MEMBERS[-1])
    start_alert_sink(sink_host)
    victim.check_output("systemctl stop node_exporter")
    try:
        deadline = time.time() + 120
        delivered = None
        while not delivered and time.time() < deadline:
            time.sleep(3)
            for payload, alert in delivered_alerts(sink_host):
                if alert["labels"].get("alertname") == "TargetDown" \
                        and alert["labels"].get("instance") == f"{MEMBERS[-1]}:9100":
                    delivered = (payload, alert)
        assert delivered, "no TargetDown alert for the stopped exporter reached the webhook"
        payload, alert = delivered
        assert payload["receiver"] == "sink" and alert["status"] == "firing"
        assert alert["labels"]["severity"] == "critical" and alert["labels"]["job"] == "node"
        assert alert["labels"]["stack"] == "molecule", "external labels travel with the alert"
        assert alert["annotations"]["summary"] == f"Target {MEMBERS[-1]}:9100 of job node is down"
    finally:
        victim.run("systemctl start node_exporter")
        stop_alert_sink(sink_host)
