"""A host taken down through playbooks/maintenance.yml pages nobody (issue 37): its Alertmanager
goes down long enough for Prometheus to fire AlertmanagerDown (at once in this scenario), the
silence the playbook makes on another member keeps it from the webhook, and the silence has ended
once the playbook is done."""
import json

from conftest import (delivered_alerts, get_host, host_names, run_playbook, start_alert_sink, stop_alert_sink,
                      wait_for)

MEMBERS = host_names("alertmanager")
VICTIM = MEMBERS[-1] if MEMBERS else None
testinfra_hosts = [f"podman://{host_names('prometheus')[0]}"] if MEMBERS else []


def query(host, expr):
    out = host.check_output("curl -fsS --noproxy '*' http://127.0.0.1:9090/api/v1/query --data-urlencode %s", f"query={expr}")
    return json.loads(out)["data"]["result"]


def test_a_host_down_for_maintenance_pages_nobody(host):
    start_alert_sink(host)
    try:
        run = run_playbook("../../playbooks/maintenance.yml", limit=VICTIM, extra={
            "maintenance_reboot": False,
            "maintenance_command": "systemctl stop alertmanager && sleep 15 && systemctl start alertmanager"})
        assert run.returncode == 0, run.output[-3000:]
        seen = {r["metric"]["instance"] for r in query(
            host, 'max_over_time(ALERTS{alertname="AlertmanagerDown",alertstate="firing"}[2m])')}
        assert f"{VICTIM}:9093" in seen, f"Prometheus should have seen {VICTIM} down: {seen}"
        paged = [a["labels"] for _, a in delivered_alerts(host) if a["labels"].get("instance", "").startswith(f"{VICTIM}:")]
        assert paged == [], f"the maintenance paged: {paged}"

        def ended():
            mine = [s for s in json.loads(host.check_output("curl -fsS --noproxy '*' http://127.0.0.1:9093/api/v2/silences"))
                    if s["comment"].startswith(f"maintenance of {VICTIM}")]
            return mine and all(s["status"]["state"] == "expired" for s in mine) and mine
        assert wait_for(ended, timeout=60), "the host's silence should have ended"
        assert get_host(VICTIM).service("alertmanager").is_running
    finally:
        stop_alert_sink(host)
