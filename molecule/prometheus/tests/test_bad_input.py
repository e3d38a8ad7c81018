"""Bad input fails before any change, naming the problem."""
import re

import pytest

from conftest import get_host, host_names, run_playbook, unit_pid

PROM = host_names("prometheus")[0] if host_names("prometheus") else None
testinfra_hosts = [f"podman://{PROM}"] if PROM else []


def state(host):
    return (unit_pid(host, "prometheus"), unit_pid(host, "alertmanager"),
            host.file("/etc/prometheus/prometheus.yml").sha256sum,
            host.file("/etc/alertmanager/alertmanager.yml").sha256sum)


@pytest.mark.parametrize("extra, names", [
    ({"prometheus_retention_time": "15 days"}, "prometheus_retention_time"),
    ({"prometheus_scrape_configs": "job: x"}, "prometheus_scrape_configs"),
    ({"prometheus_alert_rules_disabled": ["NoSuchAlert"]}, "not shipped: NoSuchAlert"),
    ({"prometheus_inventory_jobs_disabled": ["nodes"]}, "unknown job: nodes"),
    ({"alertmanager_receivers": [{"name": "chat", "slack_configs": [{"channel": "#ops"}]}]},
     "receiver chat: Slack needs api_url"),
    ({"alertmanager_receivers": [{"name": "oncall", "pagerduty_configs": [{"severity": "critical"}]}]},
     "receiver oncall: PagerDuty needs exactly one of routing_key"),
    ({"alertmanager_receivers": [{"name": "mail", "email_configs": [{"to": "ops@example.org"}]}]},
     "receiver mail: email needs smarthost"),
    ({"alertmanager_log_level": "loud"}, "alertmanager_log_level"),
])
def test_invalid_variables_fail_before_any_change(host, extra, names):
    before = state(host)
    run = run_playbook("converge.yml", limit=f"{PROM},{host_names('alertmanager')[0]}", extra=extra)
    assert run.returncode != 0
    assert names in run.output, run.output[-2500:]
    assert not re.search(r"^changed:", run.output, re.M), run.output[-2500:]
    assert state(host) == before
