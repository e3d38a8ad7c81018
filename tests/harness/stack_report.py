#!/usr/bin/env python3
"""Health report of a deployed stack, built from the stack's own APIs.

For an inventory (the lab's by default) it asks each component, from this machine:
  * every component's health endpoint (a stand-in is recognised by its X-Monstack-Stand-In header);
  * every Prometheus's targets, freshly scraped after the report started (up/down and the error);
  * every Prometheus target's samples arriving in every long-term store (remote write);
  * every Alertmanager's cluster size against the size of its group;
  * the Watchdog alert arriving at every Alertmanager;
  * every Grafana datasource's health through Grafana's API;
  * a log line pushed to every Loki and read back with LogQL;
  * a span sent to every Jaeger over OTLP/HTTP and read back through its query API.
Checks that need a stand-in's data API are listed as NOT RUN, never as passed. Exit status 1
when any check of a real component failed.
"""
from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from artifact_source import role_defaults

ROOT = Path(__file__).resolve().parents[2]
STANDIN_HEADER = "X-Monstack-Stand-In"
# stack_log_shipper's default (roles/stack/defaults/main.yml)
LOG_SHIPPER_DEFAULT = role_defaults("stack")["stack_log_shipper"]
# component -> (listen variable, health path); listen defaults are read from the role's defaults
ENDPOINTS = {
    "prometheus": ("prometheus_listen_address", "/-/ready"),
    "alertmanager": ("alertmanager_listen_address", "/-/ready"),
    "grafana": ("grafana_listen_address", "/api/health"),
    "loki": ("loki_listen_address", "/ready"),
    "promtail": ("promtail_listen_address", "/ready"),
    "alloy": ("alloy_listen_address", "/-/ready"),
    "jaeger": ("jaeger_query_address", "/api/services"),
    "victoriametrics": ("victoriametrics_listen_address", "/health"),
    "blackbox_exporter": ("blackbox_exporter_listen_address", "/-/healthy"),
}
# Prometheus jobs and Grafana datasource types are named after the component that answers them,
# so a job or datasource of a stand-in component is found by its name.


@dataclass
class Report:
    rows: list = field(default_factory=list)

    def add(self, state: str, component: str, where: str, what: str):
        self.rows.append((state, component, where, what))
        print(f"  {state:<9} {component:<15} {where:<16} {what}", flush=True)

    def count(self, state: str) -> int:
        return sum(1 for row in self.rows if row[0] == state)


def http(url: str, data: bytes | None = None, headers: dict | None = None, timeout: float = 10):
    """(status, headers, body) of a request; status 0 and the error text when nothing answers."""
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()
    except (OSError, ValueError) as exc:
        return 0, {}, str(getattr(exc, "reason", exc)).encode()


def port_of(address: str) -> int:
    return int(str(address).rsplit(":", 1)[1])


class Stack:
    """Hosts, groups, addresses and ports of an inventory, as Ansible sees them."""

    def __init__(self, inventory: str):
        out = subprocess.run(["ansible-inventory", "-i", inventory, "--list"], capture_output=True, text=True,
                             check=True, cwd=ROOT).stdout
        data = json.loads(out)
        self.hostvars = data.get("_meta", {}).get("hostvars", {})
        self.groups: dict[str, list[str]] = {}

        def hosts_of(group, seen=()):
            entry = data.get(group, {})
            found = list(entry.get("hosts", []))
            for child in entry.get("children", []):
                if child not in seen:
                    found += hosts_of(child, (*seen, group))
            return found

        for group in data:
            if group != "_meta":
                self.groups[group] = sorted(set(hosts_of(group)))
        # hosts of log_shipper run what their stack_log_shipper names (site.yml's add_host)
        for host in self.groups.get("log_shipper", []):
            shipper = self.hostvars.get(host, {}).get("stack_log_shipper") or LOG_SHIPPER_DEFAULT
            self.groups[shipper] = sorted(set(self.groups.get(shipper, [])) | {host})
        self._addresses: dict[str, str] = {}

    def hosts(self, group: str) -> list[str]:
        return self.groups.get(group, [])

    def address(self, host: str) -> str:
        if host not in self._addresses:
            hv = self.hostvars.get(host, {})
            address = hv.get("stack_address") or hv.get("ansible_host")
            if not address and "podman" in str(hv.get("ansible_connection", "")):
                address = subprocess.run(
                    ["podman", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", host],
                    capture_output=True, text=True, check=False).stdout.split()[0:1]
                address = address[0] if address else None
            self._addresses[host] = address or host
        return self._addresses[host]

    def url(self, component: str, host: str, variable: str | None = None) -> str:
        variable = variable or ENDPOINTS[component][0]
        listen = self.hostvars.get(host, {}).get(variable, role_defaults(component)[variable])
        return f"http://{self.address(host)}:{port_of(listen)}"


def check_components(stack: Stack, report: Report) -> set[tuple[str, str]]:
    """Health of every component on every host of its group; returns the (component, host) stand-ins."""
    standins = set()
    for component, (_, path) in ENDPOINTS.items():
        for host in stack.hosts(component):
            url = stack.url(component, host) + path
            status, headers, body = http(url)
            if headers.get(STANDIN_HEADER):
                standins.add((component, host))
                report.add("STAND-IN", component, host, f"{url} answers; a stand-in: its data checks are not run")
            elif status == 200:
                report.add("PASS", component, host, f"{url} answers 200")
            else:
                report.add("FAIL", component, host, f"{url}: {status or body.decode(errors='replace')}")
    return standins


def check_targets(stack: Stack, report: Report, standins: set, started: float, deadline: float):
    standin_components = {component for component, _ in standins}
    for host in stack.hosts("prometheus"):
        base = stack.url("prometheus", host)
        while True:
            status, _, body = http(base + "/api/v1/targets?state=active")
            targets = json.loads(body)["data"]["activeTargets"] if status == 200 else []
            # a verdict about now: every target scraped after this report started
            stale = [t for t in targets if parse_time(t.get("lastScrape")) < started]
            if status == 200 and targets and not stale or time.time() > deadline:
                break
            time.sleep(2)
        if status != 200:
            report.add("FAIL", "prometheus", host, f"targets API: {status or body.decode(errors='replace')}")
            continue
        for target in sorted(targets, key=lambda t: (t["labels"].get("job", ""), t["labels"].get("instance", ""))):
            job, instance = target["labels"].get("job", "?"), target["labels"].get("instance", "?")
            name = f"target {job} {instance}"
            if job in standin_components:
                report.add("NOT RUN", job, host, f"{name}: {job} is a stand-in and serves no /metrics")
            elif target["health"] == "up":
                report.add("PASS", job, host, f"{name} up")
            else:
                report.add("FAIL", job, host, f"{name} {target['health']}: {target.get('lastError') or 'no scrape yet'}")


def check_store(stack: Stack, report: Report, deadline: float):
    """Every target some Prometheus scrapes has its `up` series in every VictoriaMetrics."""
    wanted = set()
    for host in stack.hosts("prometheus"):
        status, _, body = http(stack.url("prometheus", host) + "/api/v1/targets?state=active")
        if status == 200:
            wanted |= {(t["labels"].get("job"), t["labels"].get("instance")) for t in json.loads(body)["data"]["activeTargets"]}
    for host in stack.hosts("victoriametrics"):
        base = stack.url("victoriametrics", host)
        while True:
            status, _, body = http(base + "/api/v1/query?" + urllib.parse.urlencode({"query": "up"}))
            result = json.loads(body)["data"]["result"] if status == 200 else []
            missing = wanted - {(r["metric"].get("job"), r["metric"].get("instance")) for r in result}
            if status == 200 and not missing or time.time() > deadline:
                break
            time.sleep(2)
        if status != 200:
            report.add("FAIL", "victoriametrics", host, f"query API: {status or body.decode(errors='replace')}")
        elif missing:
            report.add("FAIL", "victoriametrics", host, "no samples by remote write of "
                       + ", ".join(f"{job} {instance}" for job, instance in sorted(missing)))
        else:
            report.add("PASS", "victoriametrics", host, f"all {len(wanted)} Prometheus targets' samples arrive by remote write")


def check_applications(stack: Stack, report: Report, deadline: float):
    """The rules generated from the inventory's applications (stack_app_metrics) evaluate without
    error, and every KPI has a recorded value."""
    for host in stack.hosts("prometheus"):
        base = stack.url("prometheus", host)
        while True:
            status, _, body = http(base + "/api/v1/rules")
            groups = [g for g in json.loads(body)["data"]["groups"] if g["name"].startswith("app-")] if status == 200 else []
            records = [r for g in groups for r in g["rules"] if r["type"] == "recording"]
            values = {}
            for rule in records:
                _, _, out = http(base + "/api/v1/query?" + urllib.parse.urlencode({"query": rule["name"]}))
                result = json.loads(out)["data"]["result"] if out[:1] == b"{" else []
                if result:
                    values[rule["name"]] = float(result[0]["value"][1])
            if status == 200 and len(values) == len(records) or time.time() > deadline:
                break
            time.sleep(3)
        if status != 200:
            report.add("FAIL", "prometheus", host, f"rules API: {status or body.decode(errors='replace')}")
            continue
        for group in groups:
            broken = [f"{r['name']}: {r.get('lastError')}" for r in group["rules"] if r.get("health") == "err"]
            if broken:
                report.add("FAIL", "application", host, f"{group['name']}: " + "; ".join(broken))
            else:
                report.add("PASS", "application", host, f"{group['name']}: {len(group['rules'])} rules evaluate")
        for rule in records:
            if rule["name"] in values:
                report.add("PASS", "application", host, f"KPI {rule['name']} = {values[rule['name']]:.4g}")
            else:
                report.add("FAIL", "application", host, f"KPI {rule['name']} has no value (does its expression match data?)")


def parse_time(stamp: str | None) -> float:
    """Seconds since the epoch of an RFC 3339 time as Prometheus writes it (nanoseconds, Z or offset)."""
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$", stamp or "")
    if not match:
        return 0.0
    zone = match.group(3) or "Z"
    text = f"{match.group(1)}.{(match.group(2) or '0')[:6]}{'+00:00' if zone == 'Z' else zone}"
    return datetime.datetime.fromisoformat(text).timestamp()


def check_alertmanagers(stack: Stack, report: Report, deadline: float):
    members = stack.hosts("alertmanager")
    for host in members:
        base = stack.url("alertmanager", host)
        status, _, body = http(base + "/api/v2/status")
        if status != 200:
            report.add("FAIL", "alertmanager", host, f"status API: {status or body.decode(errors='replace')}")
            continue
        cluster = json.loads(body).get("cluster", {})
        peers = len(cluster.get("peers") or []) or (1 if cluster.get("status") == "disabled" else 0)
        verdict = "PASS" if peers == len(members) else "FAIL"
        report.add(verdict, "alertmanager", host, f"cluster of {peers} (group has {len(members)}, status {cluster.get('status')})")
    for host in members:
        base = stack.url("alertmanager", host)
        query = urllib.parse.urlencode({"filter": 'alertname="Watchdog"'})
        while True:
            status, _, body = http(f"{base}/api/v2/alerts?{query}")
            alerts = json.loads(body) if status == 200 else []
            if alerts or time.time() > deadline:
                break
            time.sleep(3)
        if alerts:
            report.add("PASS", "alertmanager", host, "Watchdog alert received from Prometheus")
        else:
            report.add("FAIL", "alertmanager", host, "no Watchdog alert: Prometheus -> Alertmanager is broken")


def check_grafana(stack: Stack, report: Report, standins: set, password: str | None):
    standin_components = {component for component, _ in standins}
    for host in stack.hosts("grafana"):
        if ("grafana", host) in standins:
            report.add("NOT RUN", "grafana", host, "datasource health: Grafana is a stand-in (no API)")
            continue
        if not password:
            report.add("FAIL", "grafana", host, "datasource health: no admin password given (--grafana-password-file)")
            continue
        auth = {"Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()}
        base = stack.url("grafana", host)
        status, _, body = http(base + "/api/datasources", headers=auth)
        if status != 200:
            report.add("FAIL", "grafana", host, f"datasources API: {status or ''} {body[:200].decode(errors='replace')}")
            continue
        for source in json.loads(body):
            name = f"datasource {source['name']} ({source['type']})"
            if source["type"] in standin_components:
                report.add("NOT RUN", "grafana", host, f"{name}: its backend is a stand-in")
                continue
            status, _, body = http(f"{base}/api/datasources/uid/{source['uid']}/health", headers=auth, timeout=20)
            result = json.loads(body) if body[:1] == b"{" else {}
            if status == 200 and result.get("status", "OK").upper() == "OK":
                report.add("PASS", "grafana", host, f"{name} healthy")
            else:
                report.add("FAIL", "grafana", host, f"{name}: {status} {result.get('message') or body[:200].decode(errors='replace')}")


def read_back(url: str, token: str, tries: int = 15) -> bool:
    """Does url return token within tries x 2 s? (ingestion and indexing take a moment)"""
    for _ in range(tries):
        status, _, body = http(url)
        if status == 200 and token in body.decode(errors="replace"):
            return True
        time.sleep(2)
    return False


def check_loki(stack: Stack, report: Report, standins: set):
    for host in stack.hosts("loki"):
        if ("loki", host) in standins:
            report.add("NOT RUN", "loki", host, "log line push and read back: Loki is a stand-in")
            continue
        base = stack.url("loki", host)
        token = secrets.token_hex(8)
        line = f"monstack lab check {token}"
        push = {"streams": [{"stream": {"job": "monstack-check"}, "values": [[str(time.time_ns()), line]]}]}
        status, _, body = http(base + "/loki/api/v1/push", json.dumps(push).encode(), {"Content-Type": "application/json"})
        if status not in (200, 204):
            report.add("FAIL", "loki", host, f"push: {status} {body[:200].decode(errors='replace')}")
            continue
        query = urllib.parse.urlencode({"query": f'{{job="monstack-check"}} |= "{token}"', "limit": 5,
                                        "start": str(time.time_ns() - 300 * 10**9)})
        found = read_back(f"{base}/loki/api/v1/query_range?{query}", token)
        report.add("PASS" if found else "FAIL", "loki", host,
                   "log line pushed and read back with LogQL" if found else f"pushed line {token} not found by LogQL")


def check_jaeger(stack: Stack, report: Report, standins: set):
    for host in stack.hosts("jaeger"):
        if ("jaeger", host) in standins:
            report.add("NOT RUN", "jaeger", host, "span sent and read back: Jaeger is a stand-in")
            continue
        otlp = stack.url("jaeger", host, "jaeger_otlp_http_address")
        query = stack.url("jaeger", host)
        trace_id, span_id, now = secrets.token_hex(16), secrets.token_hex(8), time.time_ns()
        payload = {"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "monstack-check"}}]},
            "scopeSpans": [{"spans": [{"traceId": trace_id, "spanId": span_id, "name": "lab check", "kind": 1,
                                       "startTimeUnixNano": str(now - 10**6), "endTimeUnixNano": str(now)}]}]}]}
        status, _, body = http(otlp + "/v1/traces", json.dumps(payload).encode(), {"Content-Type": "application/json"})
        if status != 200:
            report.add("FAIL", "jaeger", host, f"OTLP/HTTP export: {status} {body[:200].decode(errors='replace')}")
            continue
        found = read_back(f"{query}/api/traces/{trace_id}", span_id)
        report.add("PASS" if found else "FAIL", "jaeger", host,
                   "span sent over OTLP and read back" if found else f"trace {trace_id} not returned by the query API")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", default="inventories/lab")
    parser.add_argument("--grafana-password-file")
    parser.add_argument("--wait", type=int, default=150, help="seconds to wait for fresh scrapes and the Watchdog alert")
    args = parser.parse_args()
    started = time.time()
    deadline = started + args.wait
    password = None
    if args.grafana_password_file and os.path.exists(args.grafana_password_file):
        password = Path(args.grafana_password_file).read_text(encoding="utf-8").split()[0]
    stack = Stack(args.inventory)
    report = Report()
    for shipper, name in (("alloy", "Grafana Alloy"), ("promtail", "Promtail (end of life)")):
        if stack.hosts(shipper):
            print(f"logs shipped by {name} on {', '.join(stack.hosts(shipper))}")
    print("components")
    standins = check_components(stack, report)
    print("prometheus targets (scraped after this report started)")
    check_targets(stack, report, standins, started, deadline)
    if stack.hosts("victoriametrics"):
        print("long-term store")
        check_store(stack, report, deadline)
    print("applications (KPIs and HTTP rules from the inventory)")
    check_applications(stack, report, deadline)
    print("alerting")
    check_alertmanagers(stack, report, deadline)
    print("grafana datasources")
    check_grafana(stack, report, standins, password)
    print("logs and traces")
    check_loki(stack, report, standins)
    check_jaeger(stack, report, standins)
    standin_names = sorted({component for component, _ in standins})
    failed = [row for row in report.rows if row[0] == "FAIL"]
    print(f"\nhealth: {report.count('PASS')} passed, {len(failed)} failed, {report.count('NOT RUN')} not run"
          + (f" (stand-ins: {', '.join(standin_names)})" if standin_names else ""))
    for state, component, where, what in failed:
        print(f"  failed: {component} on {where}: {what}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
