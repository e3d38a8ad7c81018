# -*- coding: utf-8 -*-
"""The applications the inventory declares (stack_app_metrics), as one model the roles share:
the prometheus role scrapes them and writes their KPI and HTTP (RED) rules, the grafana role
writes their dashboards, and the inventory check refuses a declaration that cannot work.

An entry of stack_app_metrics (host or group vars):
  {name, port, path, scheme, address, labels, fallback_scrape_protocol,   # the scrape job
   folder,                                                                # Grafana folder (default: name)
   kpis: [{title, expr, unit, name, description, thresholds: {good, warn, bad}, direction,
           alert: {above | below, for, severity, summary, description, name} or true}],
   red: true or {requests_metric, duration_metric, route_label, method_label, status_label,
                 error_status, error_ratio_above, latency_quantile, latency_above, for, severity}}
"""
from __future__ import annotations

import numbers
import re

from ansible.errors import AnsibleFilterError

APP_VAR = "stack_app_metrics"
# what Prometheus 3 accepts as fallback_scrape_protocol (scrape_config), "" for none
SCRAPE_PROTOCOLS = ("PrometheusText0.0.4", "PrometheusText1.0.0", "OpenMetricsText0.0.1", "OpenMetricsText1.0.0",
                    "PrometheusProto")
ENTRY_KEYS = {"name", "port", "path", "scheme", "address", "labels", "fallback_scrape_protocol", "folder", "kpis", "red"}
KPI_KEYS = {"title", "expr", "unit", "name", "description", "thresholds", "direction", "alert"}
ALERT_KEYS = {"above", "below", "for", "severity", "summary", "description", "name"}
SEVERITIES = ("critical", "warning", "info", "none")
DIRECTIONS = ("higher_is_better", "lower_is_better")
# the conventions of prometheus-client instrumentators and Express/FastAPI middlewares
RED_DEFAULTS = {
    "requests_metric": "http_requests_total",
    "duration_metric": "http_request_duration_seconds",
    "route_label": "path",
    "method_label": "method",
    "status_label": "status",
    # matches "500" and the "5xx" some instrumentators group statuses into
    "error_status": "5..",
    "error_ratio_above": 0.05,
    "latency_quantile": 0.95,
    "latency_above": 0.5,
    "for": "10m",
    "severity": "warning",
}
METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


def _entries(groups, hostvars, app_var=APP_VAR):
    """(host, entry) for every application endpoint the inventory's hosts declare."""
    for host in sorted((groups or {}).get("all", [])):
        hv = hostvars[host]
        apps = hv.get(app_var) if hasattr(hv, "get") else None
        if apps in (None, ""):
            continue
        if not isinstance(apps, list):
            yield host, apps
            continue
        for app in apps:
            yield host, app


def _number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _slug(text, sep="_"):
    return re.sub(r"[^a-z0-9]+", sep, str(text).lower()).strip(sep) or "x"


def _camel(text):
    return "".join(word[:1].upper() + word[1:] for word in re.split(r"[^A-Za-z0-9]+", str(text)) if word)


def _direction(kpi):
    """higher_is_better / lower_is_better: stated, else read from the thresholds (good beyond bad),
    else from the alert (an alert below a value means lower is worse); None when nothing says."""
    if kpi.get("direction"):
        return kpi["direction"]
    marks = kpi.get("thresholds") or {}
    order = [marks[k] for k in ("good", "warn", "bad") if _number(marks.get(k))]
    if len(order) >= 2 and order[0] != order[-1]:
        return "higher_is_better" if order[0] > order[-1] else "lower_is_better"
    alert = kpi.get("alert") if isinstance(kpi.get("alert"), dict) else {}
    if "below" in alert:
        return "higher_is_better"
    if "above" in alert:
        return "lower_is_better"
    return None


def _kpi_problems(where, kpi):
    if not isinstance(kpi, dict):
        return [f"{where} is not a mapping: {kpi!r}"]
    out = []
    unknown = sorted(set(kpi) - KPI_KEYS)
    if unknown:
        out.append(f"{where} has unknown keys {', '.join(unknown)} (known: {', '.join(sorted(KPI_KEYS))})")
    for key in ("title", "expr"):
        if not isinstance(kpi.get(key), str) or not kpi[key].strip():
            out.append(f"{where} needs {key} (text)")
    if kpi.get("name") is not None and not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", str(kpi["name"])):
        out.append(f"{where}: name {kpi['name']!r} must be letters, digits and _ (it names the recorded series)")
    marks = kpi.get("thresholds")
    if marks is not None:
        if not isinstance(marks, dict) or set(marks) - {"good", "warn", "bad"} or not marks:
            out.append(f"{where}: thresholds must be a mapping of good, warn and/or bad to numbers, got {marks!r}")
        else:
            bad = [k for k, v in marks.items() if not _number(v)]
            if bad:
                out.append(f"{where}: thresholds {', '.join(sorted(bad))} must be numbers")
            else:
                values = [marks[k] for k in ("good", "warn", "bad") if k in marks]
                if not (values == sorted(values) or values == sorted(values, reverse=True)) or len(set(values)) < len(values):
                    out.append(f"{where}: thresholds must run one way, good -> warn -> bad (all rising or all falling), "
                               f"got {marks!r}")
    if kpi.get("direction") is not None and kpi["direction"] not in DIRECTIONS:
        out.append(f"{where}: direction must be one of {', '.join(DIRECTIONS)}, got {kpi['direction']!r}")
    alert = kpi.get("alert")
    if alert not in (None, False, True) and not isinstance(alert, dict):
        out.append(f"{where}: alert must be true or a mapping, got {alert!r}")
    elif isinstance(alert, dict):
        unknown = sorted(set(alert) - ALERT_KEYS)
        if unknown:
            out.append(f"{where}: alert has unknown keys {', '.join(unknown)} (known: {', '.join(sorted(ALERT_KEYS))})")
        if "above" in alert and "below" in alert:
            out.append(f"{where}: alert takes above or below, not both")
        for key in ("above", "below"):
            if key in alert and not _number(alert[key]):
                out.append(f"{where}: alert {key} must be a number, got {alert[key]!r}")
        if "for" in alert and not DURATION.match(str(alert["for"])):
            out.append(f"{where}: alert for must be a duration like 10m, got {alert['for']!r}")
        if "severity" in alert and alert["severity"] not in SEVERITIES:
            out.append(f"{where}: alert severity must be one of {', '.join(SEVERITIES)}, got {alert['severity']!r}")
        if alert.get("name") is not None and not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", str(alert["name"])):
            out.append(f"{where}: alert name {alert['name']!r} must be letters, digits and _")
    if alert not in (None, False) and not out:
        alert = alert if isinstance(alert, dict) else {}
        if "above" not in alert and "below" not in alert and not _number((kpi.get("thresholds") or {}).get("bad")):
            out.append(f"{where}: alert needs above or below, or a bad threshold to fire at")
        elif _direction(kpi) is None:
            out.append(f"{where}: say which way is better (direction: higher_is_better or lower_is_better)")
    return out


def _red_problems(where, red):
    if red in (None, False, True):
        return []
    if not isinstance(red, dict):
        return [f"{where} must be true, false or a mapping, got {red!r}"]
    out = []
    unknown = sorted(set(red) - set(RED_DEFAULTS))
    if unknown:
        out.append(f"{where} has unknown keys {', '.join(unknown)} (known: {', '.join(sorted(RED_DEFAULTS))})")
    for key in ("requests_metric", "duration_metric"):
        if key in red and not METRIC_NAME.match(str(red[key])):
            out.append(f"{where}: {key} {red[key]!r} is not a metric name")
    for key in ("route_label", "method_label", "status_label"):
        if key in red and not LABEL_NAME.match(str(red[key])):
            out.append(f"{where}: {key} {red[key]!r} is not a label name")
    for key in ("error_ratio_above", "latency_above"):
        if red.get(key) not in (None, False) and not _number(red[key]):
            out.append(f"{where}: {key} must be a number (or null for no alert), got {red[key]!r}")
    if "latency_quantile" in red and not (_number(red["latency_quantile"]) and 0 < red["latency_quantile"] < 1):
        out.append(f"{where}: latency_quantile must be between 0 and 1, got {red['latency_quantile']!r}")
    if "for" in red and not DURATION.match(str(red["for"])):
        out.append(f"{where}: for must be a duration like 10m, got {red['for']!r}")
    if "severity" in red and red["severity"] not in SEVERITIES:
        out.append(f"{where}: severity must be one of {', '.join(SEVERITIES)}, got {red['severity']!r}")
    return out


def app_problems(groups, hostvars, app_var=APP_VAR):
    """Why the inventory's application declarations cannot work, naming host, application and
    KPI; an empty list when they can."""
    out, seen = [], {}
    for host, app in _entries(groups, hostvars, app_var):
        if not isinstance(app, dict):
            out.append(f"host {host}: {app_var} must be a list of mappings, got {app!r}")
            continue
        name = app.get("name")
        where = f"host {host}: {app_var} entry {name!r}"
        if not name or not re.fullmatch(r"[A-Za-z0-9_.-]+", str(name)):
            out.append(f"host {host}: every {app_var} entry needs a name (letters, digits, . _ -), got {app!r}")
            continue
        if not app.get("port"):
            out.append(f"{where} needs a port")
        unknown = sorted(set(app) - ENTRY_KEYS)
        if unknown:
            out.append(f"{where} has unknown keys {', '.join(unknown)} (known: {', '.join(sorted(ENTRY_KEYS))})")
        protocol = app.get("fallback_scrape_protocol") or ""
        if protocol and protocol not in SCRAPE_PROTOCOLS:
            out.append(f"{where} has fallback_scrape_protocol {protocol!r}; use one of {', '.join(SCRAPE_PROTOCOLS)}, "
                       "or \"\" for none")
        kpis = app.get("kpis") or []
        if not isinstance(kpis, list):
            out.append(f"{where}: kpis must be a list, got {kpis!r}")
            kpis = []
        titles = {}
        for index, kpi in enumerate(kpis):
            label = kpi.get("title") if isinstance(kpi, dict) else None
            out += _kpi_problems(f"{where}, KPI {label or index + 1!r}", kpi)
            if isinstance(kpi, dict) and kpi.get("title"):
                key = kpi.get("name") or _slug(kpi["title"])
                if key in titles:
                    out.append(f"{where}: KPIs {titles[key]!r} and {kpi['title']!r} record the same series "
                               f"({key}): give one a name")
                titles[key] = kpi["title"]
        out += _red_problems(f"{where}, red", app.get("red"))
        # one job, one dashboard and one rule file per application: every host must say the same
        shape = {k: app.get(k) for k in ("folder", "kpis", "red")}
        shape["fallback_scrape_protocol"] = app.get("fallback_scrape_protocol", None)
        seen.setdefault(str(name), []).append((host, shape))
    for name, declared in sorted(seen.items()):
        first_host, first = declared[0]
        for host, shape in declared[1:]:
            differ = sorted(k for k in first if first[k] != shape[k])
            if differ:
                out.append(f"{app_var} entry {name!r} declares different {', '.join(differ)} on {first_host} and {host}: "
                           "an application has one job, one rule file and one dashboard; declare them once "
                           "(group_vars) or the same on every host")
    return out


def _kpi(app_name, kpi):
    key = str(kpi.get("name") or _slug(kpi["title"]))
    marks = {k: v for k, v in (kpi.get("thresholds") or {}).items() if _number(v)}
    direction = _direction(kpi) or "higher_is_better"
    out = {"title": str(kpi["title"]), "name": key, "expr": str(kpi["expr"]).strip(), "unit": str(kpi.get("unit") or "short"),
           "description": str(kpi.get("description") or ""), "thresholds": marks, "direction": direction,
           "record": f"kpi:{_slug(app_name)}:{key}", "alert": None}
    alert = kpi.get("alert")
    if alert not in (None, False):
        alert = alert if isinstance(alert, dict) else {}
        if "above" in alert or "below" in alert:
            op = "above" if "above" in alert else "below"
            value = alert[op]
        else:  # at the bad threshold, on the bad side
            op = "below" if direction == "higher_is_better" else "above"
            value = marks["bad"]
        out["alert"] = {
            "name": str(alert.get("name") or _camel(kpi["title"]) + ("Low" if op == "below" else "High")),
            "op": op, "value": value, "for": str(alert.get("for", "10m")), "severity": alert.get("severity", "warning"),
            "summary": alert.get("summary") or f"{app_name}: {kpi['title']} {op} {value}",
            "description": alert.get("description") or "",
        }
    return out


def applications(groups, hostvars, app_var=APP_VAR):
    """{name: {name, job, folder, hosts, kpis: [...], red: {...} or None}} from every host's
    stack_app_metrics, with defaults filled in. Declarations that cannot work stop here with
    every problem named (the roles' preflight reports the same list before any change)."""
    problems = app_problems(groups, hostvars, app_var)
    if problems:
        raise AnsibleFilterError(f"{app_var}: " + "; ".join(problems))
    out = {}
    for host, app in _entries(groups, hostvars, app_var):
        name = str(app["name"])
        if name in out:
            out[name]["hosts"].append(host)
            continue
        red = app.get("red")
        out[name] = {
            "name": name, "job": name, "folder": str(app.get("folder") or name), "hosts": [host],
            # None: the prometheus role's default; "": none
            "fallback_scrape_protocol": app.get("fallback_scrape_protocol"),
            "kpis": [_kpi(name, kpi) for kpi in app.get("kpis") or []],
            "red": (dict(RED_DEFAULTS, **(red if isinstance(red, dict) else {})) if red not in (None, False) else None),
        }
    return out


class FilterModule:
    def filters(self):
        return {"stack_applications": applications, "stack_app_problems": app_problems}
