"""The dashboards the grafana role ships: generated files up to date, every PromQL expression
parsed by the real promtool, every datasource a panel uses provisioned by the role."""
import importlib.util
import json
import pathlib
import re
import subprocess

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
BOARDS = sorted((ROOT / "roles/grafana/files/dashboards").glob("*.json"))


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def queries(board):
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield panel, target


def test_committed_dashboards_match_the_generator():
    builder = load(ROOT / "tools/build_dashboards.py", "build_dashboards")
    expected = {f"{b['uid']}.json": json.dumps(b, indent=2, sort_keys=True) + "\n" for b in builder.DASHBOARDS}
    assert {p.name: p.read_text() for p in BOARDS} == expected, "run python3 tools/build_dashboards.py"


def test_the_promised_dashboards_are_shipped():
    titles = {json.loads(p.read_text())["title"] for p in BOARDS}
    assert titles == {"Stack overview", "Node overview", "Prometheus", "Alertmanager", "PostgreSQL", "Redis",
                      "Loki and Promtail", "Jaeger", "Probes", "RabbitMQ", "Celery"}


def test_every_promql_expression_parses_with_promtool(promtool, tmp_path):
    rules = []
    for path in BOARDS:
        board = json.loads(path.read_text())
        for panel, target in queries(board):
            if target["datasource"]["type"] != "prometheus":
                continue
            # Grafana fills these in before the query reaches Prometheus
            expr = target["expr"].replace("$__rate_interval", "5m").replace("$__interval", "1m")
            expr = re.sub(r"\$\{?(\w+)\}?", ".*", expr)
            rules.append({"record": f"dashboard:{board['uid'].replace('-', '_')}:{panel['id']}", "expr": expr})
        for variable in board["templating"]["list"]:
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            match = re.fullmatch(r"label_values\((.+), *\w+\)", query)
            if match and variable["datasource"]["type"] == "prometheus":
                rules.append({"record": f"dashboard:{board['uid'].replace('-', '_')}:var_{variable['name']}",
                              "expr": match.group(1)})
    assert len(rules) > 50
    path = tmp_path / "dashboards.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    proc = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_panel_datasource_is_provisioned():
    filters = load(ROOT / "plugins/filter/grafana.py", "grafana_filters")
    provisioned = {d["uid"]: d["type"] for d in filters.inventory_datasources(
        {kind: {"type": kind, "urls": [f"http://{kind}:1"]} for kind in ("prometheus", "alertmanager", "loki", "jaeger")})}
    used = set()
    for path in BOARDS:
        board = json.loads(path.read_text())
        variables = board["templating"]["list"]
        # metrics come through the board's datasource variable, which starts at Grafana's default
        # prometheus-type datasource (the long-term store when there is one)
        assert variables[0] == {"name": "datasource", "label": "Metrics", "type": "datasource", "query": "prometheus",
                                "current": {"text": "default", "value": "default"}, "hide": 0, "refresh": 1,
                                "regex": "", "includeAll": False, "multi": False}, path.name
        refs = [p["datasource"] for p in board["panels"]] + [t["datasource"] for _, t in queries(board)] + \
            [v["datasource"] for v in variables[1:]]
        assert not [r for r in refs if r["uid"] == "prometheus"], f"{path.name}: a panel names Prometheus directly"
        used |= {(r["uid"].replace("${datasource}", "prometheus"), r["type"]) for r in refs}
    assert used <= set(provisioned.items()), used - set(provisioned.items())


def test_dashboard_uids_are_unique_and_stable():
    uids = [json.loads(p.read_text())["uid"] for p in BOARDS]
    assert len(uids) == len(set(uids)) and all(p.stem == u for p, u in zip(BOARDS, uids))


@pytest.mark.parametrize("value, rendered", [
    ("plain", "plain"), ("s3cret#;x", '"""s3cret#;x"""'), (" lead", '""" lead"""'), (True, "true"),
    ("$__file{/etc/grafana/secrets/admin_password}", "$__file{/etc/grafana/secrets/admin_password}"),
])
def test_ini_values_survive_comment_characters(value, rendered):
    filters = load(ROOT / "plugins/filter/grafana.py", "grafana_filters")
    assert filters.ini_value(value) == rendered


# The Jaeger collector's own metrics, by how they reach Prometheus (issue 36 item 5): the internal
# pull reader of collector v0.155.0 forces without_units and without_type_suffix (service/telemetry,
# applyPrometheusDefaults); under stack_tls the relay's contrib prometheus exporter adds _total to
# counters and unit suffixes (_bytes). The names each dashboard query must find in both modes.
COLLECTOR_METRICS = {
    "plain": ["otelcol_receiver_accepted_spans", "otelcol_receiver_refused_spans", "otelcol_exporter_sent_spans",
              "otelcol_exporter_send_failed_spans", "otelcol_exporter_queue_size",
              "otelcol_processor_batch_batch_send_size_bucket", "otelcol_process_memory_rss"],
    "relay": ["otelcol_receiver_accepted_spans_total", "otelcol_receiver_refused_spans_total",
              "otelcol_exporter_sent_spans_total", "otelcol_exporter_send_failed_spans_total",
              "otelcol_exporter_queue_size", "otelcol_processor_batch_batch_send_size_bucket",
              "otelcol_process_memory_rss_bytes"],
}


def selected_names(expr):
    """The metric-name selectors of a PromQL expression: bare names and __name__=~ regexes."""
    names = [re.compile(re.escape(m)) for m in re.findall(r"\b(otelcol_[a-z_]+)\b(?![\"(])", expr)]
    names += [re.compile(m) for m in re.findall(r'__name__=~"([^"]+)"', expr) if "otelcol" in m]
    return names


@pytest.mark.parametrize("mode", sorted(COLLECTOR_METRICS))
def test_collector_panels_find_their_metrics_in_both_naming_modes(mode):
    emitted = COLLECTOR_METRICS[mode]
    checked = 0
    for path in BOARDS:
        for panel, target in queries(json.loads(path.read_text())):
            for selector in selected_names(target.get("expr", "")):
                checked += 1
                assert any(selector.fullmatch(name) for name in emitted), \
                    f"{path.name} '{panel['title']}': {selector.pattern} matches no metric the collector emits ({mode})"
    assert checked >= 8
