"""The whole stack from site.yml: every exporter and application target scraped, an alert
delivered end to end, Alertmanager clustered, Grafana wired to the inventory; a host added to
the inventory gets scraped without restarting anything else; a broken inventory stops before
any change."""
import json
import re
import subprocess
import urllib.parse

import pytest
import yaml

from conftest import (INVENTORY, SCENARIO_DIR, delivered_alerts, expected_version, exposure, get_host, host_names,
                      is_standin, new_host, require_real, run_playbook, start_alert_sink, stop_alert_sink, unit_pid,
                      wait_for)

MON = host_names("prometheus")[0] if host_names("prometheus") else None
testinfra_hosts = [f"podman://{MON}"] if MON else []
STANDIN_JOBS = {"grafana": "grafana", "loki": "loki", "promtail": "promtail", "alloy": "alloy", "jaeger": "jaeger"}


def query(host, expr):
    out = host.check_output(
        f"curl -fsS --noproxy '*' 'http://127.0.0.1:9090/api/v1/query?{urllib.parse.urlencode({'query': expr})}'")
    return {(r["metric"].get("job"), r["metric"].get("instance")): float(r["value"][1])
            for r in json.loads(out)["data"]["result"]}


def test_every_exporter_and_application_target_is_up(host):
    expected = {("node", f"{n}:9100") for n in host_names()} \
        | {("postgres", f"{n}:9187") for n in host_names("postgres_exporter")} \
        | {("redis", f"{n}:9121") for n in host_names("redis_exporter")} \
        | {("alertmanager", f"{n}:9093") for n in host_names("alertmanager")} \
        | {("prometheus", f"{MON}:9090"), ("blackbox", f"{MON}:9115")} \
        | {("shop", f"{n}:8000") for n in host_names("app")}
    up = wait_for(lambda: (lambda seen: seen if expected <= seen else None)(
        {k for k, v in query(host, "up").items() if v == 1}), timeout=90)
    assert up, f"not up: {sorted(expected - {k for k, v in query(host, 'up').items() if v == 1})}"
    assert query(host, 'pg_up{job="postgres"}') and all(v == 1 for v in query(host, 'pg_up{job="postgres"}').values())
    labels = json.loads(host.check_output(
        "curl -fsS --noproxy '*' 'http://127.0.0.1:9090/api/v1/series?match[]=http_requests_total%7Bjob%3D%22shop%22%7D'"))["data"]
    assert labels and all(s["team"] == "shop" for s in labels), "the application's labels from the inventory"


def test_an_endpoint_sending_an_unknown_content_type_is_scraped_through_the_fallback_protocol(host):
    """The real Prometheus 3 refuses the demo app's application/octet-stream endpoint where the
    inventory turned the fallback off (shop-strict), and scrapes it as before by default (shop-legacy)."""
    if not expected_version("prometheus").startswith("3."):
        pytest.skip("Prometheus 2 parses any Content-Type as text")

    def health():
        targets = json.loads(host.check_output("curl -fsS --noproxy '*' http://127.0.0.1:9090/api/v1/targets"))
        seen = {t["labels"]["job"]: t for t in targets["data"]["activeTargets"]
                if t["labels"]["job"] in ("shop-legacy", "shop-strict") and t["lastScrape"] > "0001-01-01T00:00:00Z"}
        return seen if len(seen) == 2 else None

    seen = wait_for(health, timeout=90)
    assert seen, "both endpoint jobs were scraped"
    assert seen["shop-legacy"]["health"] == "up", seen["shop-legacy"]
    assert seen["shop-strict"]["health"] == "down"
    error = seen["shop-strict"]["lastError"]
    assert "unsupported Content-Type" in error and "application/octet-stream" in error, error
    assert query(host, 'http_requests_total{job="shop-legacy"}'), "the legacy endpoint's samples are stored"


@pytest.mark.standin
def test_standin_logs_traces_and_grafana_are_scraped_targets(host):
    """Their jobs exist with the right addresses; a stand-in serves no /metrics, so up is 0 there
    and 1 with the real binaries."""
    targets = json.loads(host.check_output("curl -fsS --noproxy '*' http://127.0.0.1:9090/api/v1/targets"))
    active = {(t["labels"]["job"], t["labels"]["instance"]): t["health"] for t in targets["data"]["activeTargets"]}
    expected = {("grafana", f"{MON}:3000"), ("loki", f"{host_names('loki')[0]}:3100"),
                ("jaeger", f"{host_names('jaeger')[0]}:8888")} | {("alloy", f"{n}:12345") for n in host_names("log_shipper")}
    assert expected <= set(active)
    if not is_standin(get_host(host_names("loki")[0]), "loki"):
        assert active[("loki", f"{host_names('loki')[0]}:3100")] == "up"


def test_alertmanager_members_form_one_cluster(host):
    for name in host_names("alertmanager"):
        status = wait_for(lambda: (lambda s: s if len(s["cluster"]["peers"]) == len(host_names("alertmanager")) else None)(
            json.loads(get_host(name).check_output("curl -fsS --noproxy '*' http://127.0.0.1:9093/api/v2/status"))), 60)
        assert status and status["cluster"]["status"] == "ready", name


def test_every_probe_of_stack_probes_is_a_target_labelled_with_what_it_probes(host):
    def probes():
        out = query(host, 'probe_success{job="blackbox"}')
        return out if len(out) == 3 else None
    seen = wait_for(probes, 90)
    apps = host_names("app")
    assert seen == {("blackbox", f"http://{apps[0]}:8000/metrics"): 1.0, ("blackbox", f"http://{apps[1]}:8000/metrics"): 1.0,
                    ("blackbox", f"{apps[0]}:9187"): 1.0}, seen
    status = query(host, 'probe_http_status_code{job="blackbox"}')
    assert set(status.values()) == {200.0}
    score = exposure(host, "blackbox_exporter")
    print(f"blackbox_exporter exposure score: {score}")
    assert score <= 2.0


def test_a_stopped_application_fires_target_down_and_its_probe_fails_both_delivered_to_the_webhook(host):
    victim = get_host(host_names("app")[-1])
    start_alert_sink(host)
    victim.check_output("systemctl stop demo-shop")
    try:
        def delivered(name, **labels):
            return next((alert for _, alert in delivered_alerts(host) if alert["labels"].get("alertname") == name
                         and all(alert["labels"].get(k) == v for k, v in labels.items())), None)
        alert = wait_for(lambda: delivered("TargetDown", job="shop"), 120)
        assert alert, "no TargetDown alert for the stopped application reached the webhook"
        assert alert["labels"]["instance"] == f"{victim.backend.name}:8000" and alert["labels"]["team"] == "shop"
        url = f"http://{victim.backend.name}:8000/metrics"
        probe = wait_for(lambda: delivered("ProbeFailing", instance=url), 120)
        assert probe, f"no ProbeFailing alert for {url} reached the webhook"
        assert probe["labels"]["prober"] == MON and probe["labels"]["job"] == "blackbox"
    finally:
        victim.run("systemctl start demo-shop")
        stop_alert_sink(host)


def test_a_kpi_crossing_its_threshold_fires_its_alert_delivered_to_the_webhook(host):
    """The inventory declares the shop's conversion rate as a KPI with an alert below 10 %; the
    demo app is told to stop converting checkouts into orders, and the generated alert
    reaches the webhook with the application and KPI as labels."""
    apps = [get_host(name) for name in host_names("app")]
    assert wait_for(lambda: query(host, 'kpi:shop:conversion_rate'), 90), "the KPI is recorded"
    assert not query(host, 'ALERTS{alertname="ConversionRateLow", alertstate="firing"}'), "fires before the change"
    start_alert_sink(host)
    try:
        for app in apps:
            app.check_output("curl -fsS --noproxy '*' 'http://127.0.0.1:8000/control?conversion=0'")

        def delivered():
            return next((alert for _, alert in delivered_alerts(host)
                         if alert["labels"].get("alertname") == "ConversionRateLow"), None)
        alert = wait_for(delivered, 180)
        assert alert, "no ConversionRateLow alert reached the webhook"
        assert {k: alert["labels"].get(k) for k in ("application", "kpi", "severity")} == {
            "application": "shop", "kpi": "conversion_rate", "severity": "warning"}
        assert alert["annotations"]["summary"] == "shop: Conversion rate below 0.1"
    finally:
        for app in apps:
            app.run("curl -fsS --noproxy '*' 'http://127.0.0.1:8000/control?conversion=0.35'")
        stop_alert_sink(host)


def test_the_applications_rules_and_dashboards_are_generated_from_the_inventory(host):
    """Prometheus loaded the shop's KPI and HTTP rules; Grafana provisions its KPI and HTTP
    service dashboards in a folder of the application's own (files on the Grafana host, since
    the offline Grafana is a stand-in: the real one is checked below)."""
    groups = json.loads(host.check_output("curl -fsS --noproxy '*' http://127.0.0.1:9090/api/v1/rules"))["data"]["groups"]
    names = {r["name"] for g in groups if g["name"] == "app-shop" for r in g["rules"]}
    assert {"kpi:shop:conversion_rate", "kpi:shop:llm_cost_per_order", "ConversionRateLow", "LLMCostPerOrderHigh",
            "HttpErrorRatioHigh", "HttpLatencyHigh"} <= names, names
    assert not [g for g in groups if g["name"] in ("app-shop-legacy", "app-shop-strict")], "plain jobs get no rules"
    grafana = get_host(host_names("grafana")[0])
    providers = yaml.safe_load(grafana.file("/etc/grafana/provisioning/dashboards/monitoring-stack.yaml").content_string)
    folder = next(p for p in providers["providers"] if p["folder"] == "shop")
    for uid in ("app-shop-kpis", "app-shop-http"):
        board = json.loads(grafana.file(f"{folder['options']['path']}/{uid}.json").content_string)
        assert board["uid"] == uid and board["panels"]
    if not is_standin(grafana, "grafana", "-v"):
        found = json.loads(grafana.check_output(
            "curl -fsS --noproxy '*' -u admin:stack-admin-password-1 'http://127.0.0.1:3000/api/search?tag=application'"))
        assert {(b["uid"], b.get("folderTitle")) for b in found} >= {("app-shop-kpis", "shop"), ("app-shop-http", "shop")}


def test_a_real_rabbitmq_is_scraped_and_a_queue_piling_up_fires_its_alert(host):
    """RabbitMQ from Debian, in the rabbitmq group with no scrape config of its own: its
    built-in endpoint is a target, and 1100 unconsumed messages fire RabbitMQQueueBacklog."""
    name = host_names("rabbitmq")[0]
    mq = get_host(name)
    assert wait_for(lambda: query(host, 'up{job="rabbitmq"}').get(("rabbitmq", f"{name}:15692")) == 1, 90), \
        "RabbitMQ's Prometheus endpoint is not scraped"
    api = "curl -fsS --noproxy '*' -u guest:guest -H 'content-type: application/json'"
    start_alert_sink(host)
    try:
        mq.check_output(f"{api} -X PUT -d '{{\"durable\": true}}' http://127.0.0.1:15672/api/queues/%2f/orders")
        message = '{"properties": {}, "routing_key": "orders", "payload": "order", "payload_encoding": "string"}'
        mq.check_output(f"for i in $(seq 1100); do {api} -o /dev/null -d '{message}' "
                        "http://127.0.0.1:15672/api/exchanges/%2f/amq.default/publish || exit 1; done")
        assert wait_for(lambda: query(host, 'rabbitmq_queue_messages_ready').get(("rabbitmq", f"{name}:15692")) == 1100, 60)

        def delivered():
            return next((alert for _, alert in delivered_alerts(host)
                         if alert["labels"].get("alertname") == "RabbitMQQueueBacklog"), None)
        alert = wait_for(delivered, 120)
        assert alert, "no RabbitMQQueueBacklog alert reached the webhook"
        assert alert["labels"]["instance"] == f"{name}:15692"
        assert alert["annotations"]["summary"] == f"1.1k messages wait in RabbitMQ {name}:15692"
    finally:
        mq.run(f"{api} -X DELETE http://127.0.0.1:15672/api/queues/%2f/orders")
        stop_alert_sink(host)


@pytest.mark.standin
def test_standin_grafana_is_wired_to_the_inventory_services(host):
    sources = yaml.safe_load(host.file("/etc/grafana/provisioning/datasources/monitoring-stack.yaml").content_string)
    urls = {d["uid"]: d["url"] for d in sources["datasources"]}
    assert urls == {"prometheus": f"http://{MON}:9090", "alertmanager": f"http://{host_names('alertmanager')[0]}:9093",
                    "loki": f"http://{host_names('loki')[0]}:3100", "jaeger": f"http://{host_names('jaeger')[0]}:16686"}
    host.check_output("curl -fsS --noproxy '*' http://127.0.0.1:3000/api/health")
    for name, port, path in ((host_names("loki")[0], 3100, "/ready"), (host_names("jaeger")[0], 13133, "/status")):
        get_host(name).check_output(f"curl -fsS --noproxy '*' http://127.0.0.1:{port}{path}")


def pids():
    return {(name, unit): unit_pid(get_host(name), unit)
            for name, unit in ((MON, "prometheus"), (MON, "alertmanager"), (MON, "grafana"),
                               (host_names("loki")[0], "loki"), (host_names("app")[0], "postgres_exporter"))}


def test_a_host_added_to_the_inventory_is_scraped_without_restarting_anything(host, tmp_path):
    name = "stack-newhost"
    try:
        extra = new_host(name, "monstack-stack", tmp_path)
        before = pids()
        proc = subprocess.run(["ansible-playbook", "-i", INVENTORY, "-i", extra, f"{SCENARIO_DIR}/converge.yml"],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        assert wait_for(lambda: query(host, f'up{{job="node", instance="{name}:9100"}}').get(("node", f"{name}:9100")) == 1, 60)
        assert pids() == before, "adding a host restarted a service"
    finally:
        subprocess.run(["podman", "rm", "-f", name], capture_output=True)
        # back to the scenario's inventory: the target disappears again, still without restarts
        run_playbook("converge.yml", limit=MON)


def test_an_inventory_without_prometheus_stops_before_any_change(host, tmp_path):
    app = host_names("app")[0]
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {app: {
        "ansible_connection": "containers.podman.podman", "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_become": False}}}}))
    before = pids()
    proc = subprocess.run(["ansible-playbook", "-i", str(inventory), f"{SCENARIO_DIR}/converge.yml"],
                          capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "group prometheus is missing or empty" in output, output[-2000:]
    assert not re.search(r"^changed:", output, re.M)
    assert pids() == before


def test_two_components_on_one_port_stop_before_any_change(host):
    before = pids()
    run = run_playbook("converge.yml", extra={"grafana_listen_address": "0.0.0.0:9093"})
    assert run.returncode != 0
    assert f"host {MON}: port 9093 is wanted by alertmanager and grafana" in run.output, run.output[-2000:]
    assert not re.search(r"^changed:", run.output, re.M)
    assert pids() == before


@pytest.mark.real
def test_real_application_logs_reach_loki_with_trace_ids(host):
    loki = host_names("loki")[0]
    require_real(get_host(loki), "loki")
    q = urllib.parse.urlencode({"query": '{unit="demo-shop.service"} |= "trace_id="', "limit": 5})
    out = wait_for(lambda: json.loads(get_host(loki).check_output(
        f"curl -fsS --noproxy '*' 'http://127.0.0.1:3100/loki/api/v1/query_range?{q}'"))["data"]["result"], 90)
    assert out, "no application log line arrived in Loki"
