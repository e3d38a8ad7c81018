# -*- coding: utf-8 -*-
"""Filters of the grafana role: inventory datasources, dashboards by folder, ini quoting."""
from __future__ import annotations

import json
import os
import re

from ansible.plugins.filter.core import combine

# core datasource types Grafana ships; plugin types are added from grafana_plugins
CORE_TYPES = {
    "prometheus", "loki", "jaeger", "alertmanager", "tempo", "zipkin", "elasticsearch", "graphite", "influxdb",
    "mysql", "postgres", "grafana-postgresql-datasource", "mssql", "cloudwatch", "stackdriver",
    "grafana-azure-monitor-datasource", "opentsdb", "grafana-testdata-datasource", "testdata", "parca",
    "grafana-pyroscope-datasource", "grafana", "dashboard", "mixed",
}


LINKED = ("prometheus", "alertmanager", "loki", "jaeger")


def inventory_datasources(sources, scrape_interval="15s"):
    """{component: {type, urls}} (stack_datasource_urls over the registry) -> provisioned
    datasources for the first URL of each component. The stack's own are linked together:
    Prometheus exemplars and Loki trace ids open Jaeger, Jaeger spans open their logs in Loki;
    any other registry component with a datasource gets a plain one named after it."""
    first = {component: source["urls"][0] for component, source in (sources or {}).items()
             if component in LINKED and source.get("urls")}
    # a long-term store (marked default) is where Grafana queries first: it holds every
    # shard's samples, deduplicated, for longer than any Prometheus
    store = next((name for name, source in sorted((sources or {}).items())
                  if name not in LINKED and source.get("default") and source.get("urls")), None)
    out = []
    if first.get("prometheus"):
        json_data = {"httpMethod": "POST", "timeInterval": scrape_interval}
        if first.get("jaeger"):
            json_data["exemplarTraceIdDestinations"] = [{"name": "trace_id", "datasourceUid": "jaeger"}]
        out.append({"name": "Prometheus", "type": "prometheus", "uid": "prometheus", "access": "proxy",
                    "url": first["prometheus"], "isDefault": store is None, "editable": False, "jsonData": json_data})
    if first.get("alertmanager"):
        out.append({"name": "Alertmanager", "type": "alertmanager", "uid": "alertmanager", "access": "proxy",
                    "url": first["alertmanager"], "editable": False,
                    "jsonData": {"implementation": "prometheus", "handleGrafanaManagedAlerts": False}})
    if first.get("loki"):
        json_data = {"maxLines": 1000}
        if first.get("jaeger"):
            # $$ is a literal $ in provisioning files (a single $ starts an environment variable)
            json_data["derivedFields"] = [{"name": "TraceID", "matcherRegex": r"(?:traceID|trace_id)=(\w+)",
                                           "datasourceUid": "jaeger", "url": "$${__value.raw}",
                                           "urlDisplayLabel": "View trace"}]
        out.append({"name": "Loki", "type": "loki", "uid": "loki", "access": "proxy", "url": first["loki"],
                    "editable": False, "jsonData": json_data})
    if first.get("jaeger"):
        json_data = {"nodeGraph": {"enabled": True}}
        if first.get("loki"):
            json_data["tracesToLogsV2"] = {"datasourceUid": "loki", "spanStartTimeShift": "-5m",
                                           "spanEndTimeShift": "5m", "filterByTraceID": True, "filterBySpanID": False,
                                           "tags": [{"key": "service.name", "value": "service_name"}]}
        out.append({"name": "Jaeger", "type": "jaeger", "uid": "jaeger", "access": "proxy", "url": first["jaeger"],
                    "editable": False, "jsonData": json_data})
    for component, source in sorted((sources or {}).items()):
        if source.get("urls") and component not in LINKED:
            entry = {"name": source.get("name") or component.replace("_", " ").title(), "type": source["type"],
                     "uid": component, "access": "proxy", "url": source["urls"][0], "editable": False}
            if component == store:
                entry["isDefault"] = True
                if source["type"] == "prometheus":
                    entry["jsonData"] = {"httpMethod": "POST", "timeInterval": scrape_interval}
            out.append(combine(entry, source.get("settings") or {}, recursive=True))
    return out


def tls_datasources(datasources, passwords, user, ca, components=None, client_certs=None, cert="", key=""):
    """stack_tls on the inventory's datasources: each one of a component stack_tls protects
    (its uid is the component, in components or passwords) and reached over https verifies the
    stack's CA, logs in as user where the component takes basic auth (passwords has it) and
    presents Grafana's host certificate (cert, key) where it asks for one (client_certs).
    Secrets go to secureJsonData, which Grafana stores encrypted; a $ is doubled since
    provisioning files expand environment variables."""
    protected = set(components or []) | set(passwords or {})
    out = []
    for source in datasources or []:
        uid = source.get("uid")
        if uid in protected and str(source.get("url", "")).startswith("https://"):
            settings = {"jsonData": {"tlsAuthWithCACert": True}, "secureJsonData": {"tlsCACert": str(ca)}}
            if uid in (passwords or {}):
                settings = combine(settings, {"basicAuth": True, "basicAuthUser": str(user), "secureJsonData": {
                    "basicAuthPassword": str(passwords[uid]).replace("$", "$$")}}, recursive=True)
            if uid in (client_certs or []):
                settings = combine(settings, {"jsonData": {"tlsAuth": True}, "secureJsonData": {
                    "tlsClientCert": str(cert), "tlsClientKey": str(key)}}, recursive=True)
            source = combine(source, settings, recursive=True)
        out.append(source)
    return out


def datasource_problems(datasources, plugins=()):
    known = CORE_TYPES | {str(p.get("name")) for p in plugins or [] if isinstance(p, dict)}
    problems, seen = [], set()
    for ds in datasources or []:
        name = ds.get("name") if isinstance(ds, dict) else None
        if not name:
            problems.append(f"a datasource has no name: {ds!r}")
            continue
        if ds.get("type") not in known:
            problems.append(f"datasource {name}: unknown type {ds.get('type')!r} (core types, or the name of a plugin "
                            f"in grafana_plugins)")
        if name in seen:
            problems.append(f"datasource {name} is defined twice")
        seen.add(name)
    defaults = [ds["name"] for ds in datasources or [] if isinstance(ds, dict) and ds.get("isDefault")]
    if len(defaults) > 1:
        # Grafana refuses to start with two; the inventory's default is a long-term store when
        # there is one, else Prometheus (grafana_datasources_inventory: false drops them)
        problems.append(f"datasources {', '.join(defaults)} are all marked isDefault: Grafana allows one")
    return problems


def group_by_parent(paths):
    """Controller files -> {parent directory name (the folder): {stem: text}}."""
    out = {}
    for path in sorted(paths or []):
        folder = os.path.basename(os.path.dirname(path))
        with open(path, encoding="utf-8") as handle:
            out.setdefault(folder, {})[os.path.splitext(os.path.basename(path))[0]] = handle.read()
    return out


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "general"


def dashboard_problems(folders):
    problems = []
    for folder, files in (folders or {}).items():
        for stem, text in files.items():
            try:
                data = json.loads(text)
            except ValueError as exc:
                problems.append(f"dashboard {stem}.json (folder {folder}) is not valid JSON: {exc}")
                continue
            if not isinstance(data, dict) or not data.get("title"):
                problems.append(f"dashboard {stem}.json (folder {folder}) has no title")
    return problems


def dashboard_entries(item, directory):
    """({folder: {stem: text}} item) -> stack_config file entries under <directory>/<folder slug>/."""
    folder, files = item["key"], item["value"]
    return [{"dest": f"{directory}/{slug(folder)}/{stem}.json", "content": text, "group": "grafana", "mode": "0640"}
            for stem, text in sorted(files.items())]


def ini_value(value):
    """grafana.ini value; strings with # or ; (comment starters) or edge spaces go in triple quotes."""
    if value is True or value is False:
        return "true" if value else "false"
    text = "" if value is None else str(value)
    if re.search(r"[#;]|^\s|\s$|^\"", text) and not text.startswith("$__"):
        return f'"""{text}"""'
    return text


# Dashboard building blocks, shared by the dashboards the role ships (tools/build_dashboards.py
# writes them) and those it generates for the inventory's applications, so every panel has
# the same shape. Metrics panels query the dashboard's `datasource` variable, which starts at
# Grafana's default datasource of type prometheus: the long-term store when the inventory has
# one (every shard and both replicas of a pair, deduplicated), the stack's Prometheus otherwise.
# Grafana offers its synthetic "default" option only when current is exactly
# {text: default, value: default}; with an empty current it would take the alphabetically first
# datasource of the type instead.
PROM = {"type": "prometheus", "uid": "${datasource}"}
METRICS_SOURCE = {"name": "datasource", "label": "Metrics", "type": "datasource", "query": "prometheus",
                  "current": {"text": "default", "value": "default"}, "hide": 0, "refresh": 1, "regex": "",
                  "includeAll": False, "multi": False}
LOKI = {"type": "loki", "uid": "loki"}
R = "$__rate_interval"


def ts(title, *queries, unit="short", w=12, h=8, kind="timeseries", ds=PROM, thresholds=None):
    """A panel (time series by default) of (expr, legend) queries; thresholds: Grafana steps,
    drawn as lines on a time series and as the background colour of a stat."""
    targets = [{"refId": chr(65 + i), "expr": q[0], "legendFormat": q[1] if len(q) > 1 else "", "datasource": ds}
               for i, q in enumerate(queries)]
    panel = {"type": kind, "title": title, "datasource": ds, "targets": targets,
             "fieldConfig": {"defaults": {"unit": unit}, "overrides": []}, "gridPos": {"w": w, "h": h}}
    if kind == "stat":
        panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"}
    if thresholds:
        panel["fieldConfig"]["defaults"]["thresholds"] = {"mode": "absolute", "steps": thresholds}
        if kind == "timeseries":
            panel["fieldConfig"]["defaults"]["custom"] = {"thresholdsStyle": {"mode": "line"}}
        else:
            panel["fieldConfig"]["defaults"]["color"] = {"mode": "thresholds"}
    return panel


def stat(title, expr, unit="short", w=6, legend="", h=4, thresholds=None):
    return ts(title, (expr, legend), unit=unit, w=w, h=h, kind="stat", thresholds=thresholds)


def logs(title, expr, w=24, h=10):
    return {"type": "logs", "title": title, "datasource": LOKI, "gridPos": {"w": w, "h": h},
            "targets": [{"refId": "A", "expr": expr, "datasource": LOKI}],
            "options": {"showTime": True, "wrapLogMessage": True, "sortOrder": "Descending"}}


def var(name, query, label=None, multi=True):
    return {"name": name, "label": label or name, "type": "query", "datasource": PROM, "query": {"query": query, "refId": name},
            "definition": query, "refresh": 2, "includeAll": True, "multi": multi, "allValue": ".*",
            "current": {"text": "All", "value": "$__all"}}


def dashboard(uid, title, panels, variables=(), tags=()):
    """A dashboard with its panels laid out left to right, top to bottom."""
    x = y = 0
    row_h = 0
    for i, p in enumerate(panels):
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if x + w > 24:
            x, y = 0, y + row_h
            row_h = 0
        p["gridPos"].update(x=x, y=y)
        p["id"] = i + 1
        x += w
        row_h = max(row_h, h)
    return {"uid": uid, "title": title, "tags": ["monitoring-stack", *tags], "timezone": "browser",
            "schemaVersion": 39, "version": 1, "editable": False, "refresh": "30s",
            "time": {"from": "now-6h", "to": "now"}, "templating": {"list": [METRICS_SOURCE, *variables]}, "panels": panels}


def kpi_steps(kpi):
    """Grafana threshold steps of a KPI (stack_applications): green on the good side, yellow
    between good and warn, orange from warn, red from bad; a missing mark drops its colour."""
    marks = kpi.get("thresholds") or {}
    if not marks:
        return None
    if kpi.get("direction") == "lower_is_better":
        steps = [{"color": "green", "value": None}]
        steps += [{"color": c, "value": marks[k]} for k, c in (("good", "yellow"), ("warn", "orange"), ("bad", "red"))
                  if k in marks]
    else:
        steps = [{"color": "red", "value": None}]
        steps += [{"color": c, "value": marks[k]} for k, c in (("bad", "orange"), ("warn", "yellow"), ("good", "green"))
                  if k in marks]
        if "good" not in marks:  # beyond the last mark is good
            steps[-1]["color"] = "green"
    return steps


def _uid(name, kind):
    # Grafana uids are at most 40 characters; a hash keeps long application names apart
    import hashlib  # pylint: disable=import-outside-toplevel

    uid = f"app-{slug(name)}-{kind}"
    return uid if len(uid) <= 40 else f"app-{slug(name)[:22]}-{hashlib.sha256(name.encode()).hexdigest()[:6]}-{kind}"


def app_dashboards(apps):
    """{folder: {file stem: JSON text}} for the applications (stack_applications): a KPI dashboard
    for each application with KPIs (a stat with its thresholds next to its history) and a
    service dashboard for each following the HTTP conventions (red): request rate, error ratio
    and latency quantiles by route."""
    out = {}
    for name, app in sorted((apps or {}).items()):
        boards = []
        job = f'job="{name}"'
        if app["kpis"]:
            panels = []
            for kpi in app["kpis"]:
                steps = kpi_steps(kpi)
                panels.append(stat(kpi["title"], kpi["expr"], unit=kpi["unit"], w=6, h=6, thresholds=steps))
                panels.append(ts(f"{kpi['title']} over time", (kpi["expr"], kpi["title"]), unit=kpi["unit"], w=18, h=6,
                                 thresholds=steps))
            panels.append(ts("Instances up", (f"up{{{job}}}", "{{instance}}"), w=24, h=6))
            boards.append(dashboard(_uid(name, "kpis"), f"{name}: KPIs", panels, tags=["application", slug(name)]))
        red = app["red"]
        if red:
            req, dur = red["requests_metric"], red["duration_metric"]
            route, status = red["route_label"], red["status_label"]
            sel = f'{job}, {route}=~"$route"'
            err = f'{sel}, {status}=~"{red["error_status"]}"'
            total = f"sum(rate({req}{{{sel}}}[{R}]))"
            ratio_steps = ([{"color": "green", "value": None}, {"color": "red", "value": red["error_ratio_above"]}]
                           if red["error_ratio_above"] not in (None, False) else None)
            latency_steps = ([{"color": "green", "value": None}, {"color": "red", "value": red["latency_above"]}]
                             if red["latency_above"] not in (None, False) else None)
            q = red["latency_quantile"]
            panels = [
                stat("Requests/s", total, unit="reqps"),
                stat("Error ratio", f"sum(rate({req}{{{err}}}[{R}])) / {total}", unit="percentunit", thresholds=ratio_steps),
                stat(f"p{q * 100:g} latency", f"histogram_quantile({q}, sum by (le) (rate({dur}_bucket{{{sel}}}[{R}])))",
                     unit="s", thresholds=latency_steps),
                stat("Instances up", f"sum(up{{{job}}})"),
                ts("Requests by route", (f"sum by ({route}) (rate({req}{{{sel}}}[{R}]))", f"{{{{{route}}}}}"), unit="reqps"),
                ts("Error ratio by route", (f"sum by ({route}) (rate({req}{{{err}}}[{R}])) / sum by ({route}) "
                                            f"(rate({req}{{{sel}}}[{R}]))", f"{{{{{route}}}}}"),
                   unit="percentunit", thresholds=ratio_steps),
                ts("Latency", *[(f"histogram_quantile({p}, sum by (le) (rate({dur}_bucket{{{sel}}}[{R}])))", f"p{p * 100:g}")
                                for p in (0.5, 0.95, 0.99)], unit="s", thresholds=latency_steps),
                ts(f"p{q * 100:g} latency by route", (f"histogram_quantile({q}, sum by (le, {route}) "
                                                       f"(rate({dur}_bucket{{{sel}}}[{R}])))", f"{{{{{route}}}}}"), unit="s"),
                ts("Requests by status", (f"sum by ({status}) (rate({req}{{{sel}}}[{R}]))", f"{{{{{status}}}}}"),
                   unit="reqps", w=24),
            ]
            boards.append(dashboard(_uid(name, "http"), f"{name}: HTTP service", panels,
                                    variables=[var("route", f"label_values({req}{{{job}}}, {route})")],
                                    tags=["application", slug(name), "http"]))
        for board in boards:
            out.setdefault(app["folder"], {})[board["uid"]] = json.dumps(board, indent=2, sort_keys=True) + "\n"
    return out


WEAK = {"admin", "password", "grafana", "changeme", "secret", "123456", "12345678", "123456789012"}


def problems(settings, build_ids):
    """What the argument specs cannot express, for the grafana_* variables named below."""
    out = []
    password, user = settings["grafana_admin_password"], settings["grafana_admin_user"]
    if not password:
        out.append("grafana_admin_password is not set: give a strong password (from a vault); "
                   "Grafana never runs with a default one")
    elif len(str(password)) < 12 or str(password).lower() in WEAK or password == user:
        out.append("grafana_admin_password is weak: use at least 12 characters that are not the user name or a common word")
    if settings["grafana_version"] not in (build_ids or {}) and not settings["grafana_artifact_url"]:
        out.append(f"grafana_build_ids has no build id for {settings['grafana_version']} "
                   "(the release archive name needs it; see grafana.com downloads)")
    if (settings["grafana_database"] or {}).get("type") not in ("sqlite3", "postgres", "mysql"):
        out.append("grafana_database.type must be sqlite3, postgres or mysql")
    for plugin in settings["grafana_plugins"] or []:
        if not isinstance(plugin, dict) or not plugin.get("name"):
            out.append(f"a plugin in grafana_plugins has no name: {plugin!r}"[:200])
        elif not (plugin.get("url") or plugin.get("src")):
            out.append(f"grafana_plugins {plugin['name']} needs url or src")
    return out


class FilterModule:
    def filters(self):
        return {
            "grafana_problems": problems,
            "grafana_inventory_datasources": inventory_datasources,
            "grafana_tls_datasources": tls_datasources,
            "grafana_datasource_problems": datasource_problems,
            "grafana_group_by_parent": group_by_parent,
            "grafana_dashboard_problems": dashboard_problems,
            "grafana_dashboard_entries": dashboard_entries,
            "grafana_slug": slug,
            "grafana_ini_value": ini_value,
            "grafana_app_dashboards": app_dashboards,
        }
