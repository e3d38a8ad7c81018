"""Applications declared in the inventory (stack_app_metrics): their KPI and HTTP rules checked
and unit-tested by the real promtool, their generated dashboards, and bad declarations refused
with the host, application and KPI named."""
import json
import pathlib
import re
import subprocess

import pytest
import yaml

from conftest import role_filters as load_role_filters

ROOT = pathlib.Path(__file__).resolve().parents[2]
apps_filters = load_role_filters("applications")
prometheus = load_role_filters("prometheus")
grafana = load_role_filters("grafana")

SHOP = {
    "name": "shop", "port": 8000, "labels": {"team": "shop"}, "red": True,
    "kpis": [
        {"title": "Conversion rate", "unit": "percentunit",
         "expr": "sum(rate(shop_orders_total[5m])) / sum(rate(shop_checkouts_total[5m]))",
         "thresholds": {"good": 0.1, "warn": 0.07, "bad": 0.05},
         "alert": {"for": "10m", "severity": "critical"}},
        {"title": "Cost per order", "unit": "currencyUSD", "name": "cost_per_order",
         "expr": "sum(rate(shop_llm_cost_dollars_total[5m])) / sum(rate(shop_orders_total[5m]))",
         "thresholds": {"good": 0.005, "bad": 0.01}, "alert": {"above": 0.01, "for": "5m"}},
        {"title": "Orders per hour", "expr": "sum(rate(shop_orders_total[1h])) * 3600"},
    ],
}
WORKER = {"name": "worker", "port": 9808, "folder": "Shop backend",
          "kpis": [{"title": "Tasks failed per minute", "expr": 'sum(rate(celery_task_failed_total{job="worker"}[5m])) * 60',
                    "alert": {"above": 1}}]}
PLAIN = {"name": "plain", "port": 9000}


def inventory(**hosts):
    return {"all": sorted(hosts)}, {name: {"stack_app_metrics": apps} for name, apps in hosts.items()}


@pytest.fixture(scope="module")
def apps():
    groups, hostvars = inventory(app1=[SHOP, WORKER], app2=[SHOP, PLAIN], mon=[])
    return apps_filters.applications(groups, hostvars)


def test_a_sample_inventory_has_no_problems_and_one_model_per_application(apps):
    groups, hostvars = inventory(app1=[SHOP, WORKER], app2=[SHOP, PLAIN])
    assert apps_filters.app_problems(groups, hostvars) == []
    assert sorted(apps) == ["plain", "shop", "worker"]
    assert apps["shop"]["hosts"] == ["app1", "app2"]
    conversion, cost, orders = apps["shop"]["kpis"]
    assert (conversion["direction"], conversion["alert"]["op"], conversion["alert"]["value"]) == ("higher_is_better", "below", 0.05)
    assert conversion["alert"]["name"] == "ConversionRateLow" and conversion["record"] == "kpi:shop:conversion_rate"
    assert (cost["direction"], cost["alert"]["op"], cost["alert"]["name"]) == ("lower_is_better", "above", "CostPerOrderHigh")
    assert orders["alert"] is None and orders["thresholds"] == {}
    assert apps["shop"]["red"]["requests_metric"] == "http_requests_total" and apps["worker"]["red"] is None


@pytest.mark.parametrize("entry, expected", [
    ({"name": "shop", "port": 1, "fallback_scrape_protocol": "text"}, "has fallback_scrape_protocol 'text'"),
    ({"name": "shop", "port": 1, "kpis": [{"title": "Rate"}]}, "entry 'shop', KPI 'Rate' needs expr"),
    ({"name": "shop", "port": 1, "kpis": [{"title": "Rate", "expr": "x", "thresholds": {"good": 1, "warn": 3, "bad": 2}}]},
     "KPI 'Rate': thresholds must run one way"),
    ({"name": "shop", "port": 1, "kpis": [{"title": "Rate", "expr": "x", "alert": {"above": 1, "below": 2}}]},
     "KPI 'Rate': alert takes above or below, not both"),
    ({"name": "shop", "port": 1, "kpis": [{"title": "Rate", "expr": "x", "alert": True}]},
     "KPI 'Rate': alert needs above or below, or a bad threshold to fire at"),
    ({"name": "shop", "port": 1, "kpis": [{"title": "Rate", "expr": "x", "thresholds": {"bad": 2}, "alert": True}]},
     "KPI 'Rate': say which way is better"),
    ({"name": "shop", "port": 1, "kpis": [{"title": "Rate", "expr": "x", "alert": {"above": "high"}}]},
     "KPI 'Rate': alert above must be a number"),
    ({"name": "shop", "port": 1, "kpis": [{"title": "Rate", "expr": "x", "treshold": 1}]}, "has unknown keys treshold"),
    ({"name": "shop", "port": 1, "kpis": [{"title": "A b", "expr": "x"}, {"title": "A-b", "expr": "y"}]},
     "record the same series (a_b): give one a name"),
    ({"name": "shop", "port": 1, "red": {"route_label": "the route"}}, "red: route_label 'the route' is not a label name"),
    ({"name": "shop", "port": 1, "red": {"latency_quantile": 95}}, "red: latency_quantile must be between 0 and 1"),
    ({"name": "shop"}, "entry 'shop' needs a port"),
])
def test_a_declaration_that_cannot_work_is_refused_naming_host_application_and_kpi(entry, expected):
    groups, hostvars = inventory(app1=[entry])
    problems = apps_filters.app_problems(groups, hostvars)
    assert any(expected in p and p.startswith("host app1: stack_app_metrics") for p in problems), problems
    with pytest.raises(Exception, match=re.escape(expected)):
        apps_filters.applications(groups, hostvars)


def test_an_application_declared_differently_on_two_hosts_is_refused():
    groups, hostvars = inventory(a=[{"name": "shop", "port": 1, "fallback_scrape_protocol": "PrometheusText1.0.0"}],
                                 b=[{"name": "shop", "port": 1, "red": True}])
    problems = apps_filters.app_problems(groups, hostvars)
    assert problems == ["stack_app_metrics entry 'shop' declares different fallback_scrape_protocol, red on a and b: "
                        "an application has one job, one rule file and one dashboard; declare them once (group_vars) "
                        "or the same on every host"]


def test_application_jobs_get_the_fallback_protocol_on_prometheus_3_only(apps):
    groups, hostvars = inventory(c=[{"name": "x", "port": 1}, {"name": "y", "port": 2, "fallback_scrape_protocol": ""},
                                    {"name": "z", "port": 3, "fallback_scrape_protocol": "OpenMetricsText1.0.0"}])
    model = apps_filters.applications(groups, hostvars)
    assert prometheus.app_job_settings(model, "PrometheusText0.0.4", "v3.5.3") == {
        "x": {"fallback_scrape_protocol": "PrometheusText0.0.4"}, "z": {"fallback_scrape_protocol": "OpenMetricsText1.0.0"}}
    assert prometheus.app_job_settings(model, "PrometheusText0.0.4", "2.53.3") == {}


def test_the_spec_offers_exactly_the_protocols_prometheus_accepts():
    spec = yaml.safe_load((ROOT / "roles/prometheus/meta/argument_specs.yml").read_text())
    choices = spec["argument_specs"]["main"]["options"]["prometheus_app_fallback_scrape_protocol"]["choices"]
    assert set(choices) == {""} | set(apps_filters.SCRAPE_PROTOCOLS)


def test_generated_rules_pass_promtool_and_only_applications_with_kpis_or_red_get_a_file(apps, promtool, tmp_path):
    rules = prometheus.app_rules(apps)
    assert sorted(rules) == ["stack-app-shop", "stack-app-worker"]
    shop = rules["stack-app-shop"]["groups"][0]["rules"]
    assert [r.get("record") or r["alert"] for r in shop] == [
        "kpi:shop:conversion_rate", "kpi:shop:cost_per_order", "kpi:shop:orders_per_hour",
        "ConversionRateLow", "CostPerOrderHigh", "HttpErrorRatioHigh", "HttpLatencyHigh"]
    assert shop[3]["labels"] == {"application": "shop", "kpi": "conversion_rate", "severity": "critical"}
    for stem, doc in rules.items():
        (tmp_path / f"{stem}.yml").write_text(yaml.safe_dump(doc))
    proc = subprocess.run([promtool, "check", "rules", *sorted(tmp_path.glob("*.yml"))], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_broken_kpi_expression_is_refused_by_promtool_naming_the_application_and_kpi(promtool, tmp_path):
    groups, hostvars = inventory(app1=[{"name": "shop", "port": 1, "kpis": [
        {"title": "Engagement rate", "expr": "sum(rate(shop_likes_total[5m]) / ", "alert": {"below": 0.05}}]}])
    rules = prometheus.app_rules(apps_filters.applications(groups, hostvars))
    path = tmp_path / "stack-app-shop.yml"
    path.write_text(yaml.safe_dump(rules["stack-app-shop"]))
    proc = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "kpi:shop:engagement_rate" in proc.stdout + proc.stderr and "stack-app-shop.yml" in proc.stdout + proc.stderr


def _unit_test(promtool, tmp_path, rules, series, alerts, eval_time="20m"):
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    (tmp_path / "test.yml").write_text(yaml.safe_dump({
        "rule_files": ["rules.yml"], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series,
                   "alert_rule_test": [{"eval_time": eval_time, "alertname": name, "exp_alerts": exp}
                                       for name, exp in alerts]}]}))
    proc = subprocess.run([promtool, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("orders_per_min, fires", [(3, True), (20, False)])
def test_a_kpi_alert_below_its_threshold_fires_only_below_it(apps, promtool, tmp_path, orders_per_min, fires):
    # 100 checkouts a minute: 3 orders is a 3 % conversion rate (below the bad mark, 5 %), 20 is 20 %
    series = [{"series": 'shop_checkouts_total{job="shop"}', "values": "0+100x30"},
              {"series": 'shop_orders_total{job="shop"}', "values": f"0+{orders_per_min}x30"},
              {"series": 'shop_llm_cost_dollars_total{job="shop"}', "values": "0+0x30"}]
    expected = [{"exp_labels": {"application": "shop", "kpi": "conversion_rate", "severity": "critical"},
                 "exp_annotations": {"summary": "shop: Conversion rate below 0.05",
                                     "description": "Conversion rate of shop is 3%, below 0.05 for 10m."}}]
    _unit_test(promtool, tmp_path, prometheus.app_rules(apps)["stack-app-shop"], series,
               [("ConversionRateLow", expected if fires else []), ("CostPerOrderHigh", [])])


@pytest.mark.parametrize("cost_per_min, fires", [(0.5, True), (0.05, False)])
def test_a_kpi_alert_above_its_threshold_fires_only_above_it(apps, promtool, tmp_path, cost_per_min, fires):
    # 10 orders a minute: 0.5 $/min is 0.05 $ an order (above 0.01), 0.05 $/min is 0.005 $
    series = [{"series": 'shop_checkouts_total{job="shop"}', "values": "0+10x30"},
              {"series": 'shop_orders_total{job="shop"}', "values": "0+10x30"},
              {"series": 'shop_llm_cost_dollars_total{job="shop"}', "values": f"0+{cost_per_min}x30"}]
    expected = [{"exp_labels": {"application": "shop", "kpi": "cost_per_order", "severity": "warning"}}]
    rules = prometheus.app_rules(apps)["stack-app-shop"]
    for rule in rules["groups"][0]["rules"]:
        rule.pop("annotations", None)
    _unit_test(promtool, tmp_path, rules, series, [("CostPerOrderHigh", expected if fires else []), ("ConversionRateLow", [])])


def test_the_http_error_ratio_and_latency_alerts_follow_their_thresholds(apps, promtool, tmp_path):
    series = [{"series": 'http_requests_total{job="shop",path="/checkout",status="200"}', "values": "0+90x30"},
              {"series": 'http_requests_total{job="shop",path="/checkout",status="500"}', "values": "0+10x30"},
              {"series": 'http_request_duration_seconds_bucket{job="shop",le="0.1"}', "values": "0+100x30"},
              {"series": 'http_request_duration_seconds_bucket{job="shop",le="+Inf"}', "values": "0+100x30"}]
    rules = prometheus.app_rules(apps)["stack-app-shop"]
    _unit_test(promtool, tmp_path, {"groups": [dict(rules["groups"][0], rules=[
        r for r in rules["groups"][0]["rules"] if r.get("alert", "").startswith("Http")])]}, series,
        [("HttpErrorRatioHigh", [{"exp_labels": {"application": "shop", "severity": "warning"},
                                  "exp_annotations": {"summary": "shop: more than 5% of requests fail",
                                                      "description": "10% of the requests to shop answered 5.. "
                                                                     "over the last 5m."}}]),
         ("HttpLatencyHigh", [])])


def test_dashboards_are_generated_per_application_in_its_folder(apps):
    boards = grafana.app_dashboards(apps)
    assert {folder: sorted(files) for folder, files in boards.items()} == {
        "shop": ["app-shop-http", "app-shop-kpis"], "Shop backend": ["app-worker-kpis"]}
    kpis = json.loads(boards["shop"]["app-shop-kpis"])
    stat, history = kpis["panels"][0], kpis["panels"][1]
    assert (stat["type"], stat["title"], stat["fieldConfig"]["defaults"]["unit"]) == ("stat", "Conversion rate", "percentunit")
    assert stat["fieldConfig"]["defaults"]["thresholds"]["steps"] == [
        {"color": "red", "value": None}, {"color": "orange", "value": 0.05}, {"color": "yellow", "value": 0.07},
        {"color": "green", "value": 0.1}]
    assert history["fieldConfig"]["defaults"]["custom"] == {"thresholdsStyle": {"mode": "line"}}
    cost = kpis["panels"][2]
    assert cost["fieldConfig"]["defaults"]["thresholds"]["steps"] == [
        {"color": "green", "value": None}, {"color": "yellow", "value": 0.005}, {"color": "red", "value": 0.01}]
    http = json.loads(boards["shop"]["app-shop-http"])
    assert [p["title"] for p in http["panels"]][:4] == ["Requests/s", "Error ratio", "p95 latency", "Instances up"]
    assert http["templating"]["list"][1]["query"]["query"] == 'label_values(http_requests_total{job="shop"}, path)'
    assert len(grafana._uid("a-very-long-application-name-for-the-checkout", "kpis")) <= 40


def test_every_generated_dashboard_query_parses_with_promtool(apps, promtool, tmp_path):
    rules = []
    for files in grafana.app_dashboards(apps).values():
        for stem, text in files.items():
            board = json.loads(text)
            assert board["templating"]["list"][0]["name"] == "datasource"
            for panel in board["panels"]:
                for target in panel["targets"]:
                    expr = re.sub(r"\$\{?(\w+)\}?", ".*", target["expr"].replace("$__rate_interval", "5m"))
                    rules.append({"record": f"dashboard:{stem.replace('-', '_')}:{panel['id']}", "expr": expr})
    assert len(rules) > 10
    path = tmp_path / "dashboards.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    proc = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
