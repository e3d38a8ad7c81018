"""Filters of the prometheus role (its own logic, not shared plumbing)."""
from __future__ import annotations

import re

from ansible.plugins.filter.core import combine


def rule_file_names(rule_files):
    """{name: rules} as a user writes prometheus_rule_files -> {stem: rules}: the role adds
    `.yml` itself, so `hidden.yml` and `hidden` both become rules/hidden.yml."""
    return {re.sub(r"\.ya?ml$", "", name): rules for name, rules in (rule_files or {}).items()}


def alert_rules(files, disabled=(), overrides=None):
    """Rule files {name: {groups: [...]}} with the named alerts/records dropped or deep-merged
    with overrides {name: {for: 10m, labels: {...}}}; groups left empty are removed."""
    disabled, overrides = set(disabled or ()), overrides or {}
    out = {}
    for filename, doc in (files or {}).items():
        groups = []
        for group in (doc or {}).get("groups") or []:
            rules = []
            for rule in group.get("rules") or []:
                name = rule.get("alert") or rule.get("record")
                if name in disabled:
                    continue
                rules.append(combine(rule, overrides[name], recursive=True) if name in overrides else rule)
            if rules:
                groups.append(dict(group, rules=rules))
        if groups:
            out[filename] = {"groups": groups}
    return out


def problems(settings, shipped_rules, jobs):
    """What the argument specs cannot express. settings: the prometheus_* variables named
    below; shipped_rules: {file: {groups}} of files/rules; jobs: the inventory jobs in effect."""
    out = []
    shipped = {rule.get("alert") for doc in (shipped_rules or {}).values() for group in (doc or {}).get("groups") or []
               for rule in group.get("rules") or []} - {None}
    unknown = [name for name in list(settings["prometheus_alert_rules_disabled"])
               + list(settings["prometheus_alert_rules_overrides"]) if name not in shipped]
    if unknown:
        out.append("prometheus_alert_rules_disabled/_overrides name alerts that are not shipped: " + ", ".join(unknown))
    if settings["prometheus_agent_mode"] and settings["prometheus_rule_files"]:
        out.append("prometheus_rule_files cannot be used in agent mode (agents evaluate no rules)")
    out += [f"prometheus_inventory_jobs_disabled names an unknown job: {job}"
            for job in settings["prometheus_inventory_jobs_disabled"] if job not in (jobs or {})]
    return out


def _int(value, default=None):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def shards(members, hostvars, count):
    """{host: shard} for the Prometheus group: a host's prometheus_shard when set, else its
    position in the group modulo count (with 4 hosts and 2 shards: 0, 1, 0, 1 - each shard
    has a pair of replicas)."""
    out = {}
    for index, name in enumerate(members or []):
        explicit = hostvars[name].get("prometheus_shard") if hasattr(hostvars[name], "get") else None
        out[name] = _int(explicit, explicit) if explicit not in (None, "") else index % max(_int(count, 1) or 1, 1)
    return out


def shard_problems(members, hostvars, count):
    """Why this sharding cannot scrape every target exactly once (named, with the hosts)."""
    count = _int(count)
    if count is None or count < 1:
        return [f"prometheus_shards must be a whole number of 1 or more, got {count!r}"]
    out = []
    counts = {name: _int((hostvars[name].get("prometheus_shards") if hasattr(hostvars[name], "get") else None), count)
              for name in members or []}
    if len(set(counts.values()) | {count}) > 1:
        out.append("prometheus_shards differs between the hosts of the prometheus group ("
                   + ", ".join(f"{name}: {value}" for name, value in sorted(counts.items())) + "): set it for the group")
    assigned = shards(members, hostvars, count)
    for name, shard in sorted(assigned.items()):
        if not isinstance(shard, int) or not 0 <= shard < count:
            out.append(f"host {name}: prometheus_shard is {shard!r}, not a number from 0 to {count - 1}")
    empty = [str(k) for k in range(count) if k not in assigned.values()]
    if members and empty:
        out.append(f"prometheus_shards is {count} but shard {', '.join(empty)} has no host in the prometheus group "
                   f"({len(members)} hosts): its share of the targets would never be scraped")
    return out


def tls_stores(stores, client_settings):
    """The inventory's long-term stores with stack_tls: a store of a protected component reached
    over https gets its CA and login (stack_tls_client_settings) merged under its own settings."""
    out = []
    for store in stores or []:
        settings = (client_settings or {}).get(store.get("component"))
        if settings and str(store.get("url", "")).startswith("https://"):
            store = dict(store, remote_write=combine(settings, store.get("remote_write") or {}, recursive=True))
        out.append(store)
    return out


def scaled_config(config, stores=(), queue=None, replica_label="", replica="", shard_count=1, shard=0, extra_writes=()):
    """prometheus.yml (as data) with what scale-out adds:
    - external label replica_label=replica on every Prometheus, dropped again from the alerts
      it sends (the Alertmanager cluster sees one alert from a pair) and from remote writes
      (the long-term store deduplicates identical series), unless a store keeps it
      (keep_replica_label: Mimir's HA tracker, Thanos' query-time deduplication);
    - a remote write to each store [{name, url or write_url, keep_replica_label, remote_write:
      {settings}}] (inventory stores and stack_remote_storage) with the queue settings, the
      store's own settings merged over them; extra_writes (the user's own entries) follow as
      written, over the queue settings only;
    - with shard_count > 1, a hashmod over each target's address in every scrape job that keeps
      the targets of this host's shard only."""
    config = _plain(config)
    drop = [{"action": "labeldrop", "regex": re.escape(replica_label)}] if replica_label else []
    if replica_label:
        config.setdefault("global", {}).setdefault("external_labels", {}).setdefault(replica_label, replica)
        if "alerting" in config:
            config["alerting"]["alert_relabel_configs"] = drop + list(config["alerting"].get("alert_relabel_configs") or [])
    writes = []
    for store in stores or []:
        entry = combine({"name": store["name"], "url": store.get("url") or store["write_url"],
                         "queue_config": dict(queue or {})}, store.get("remote_write") or {}, recursive=True)
        if drop and not store.get("keep_replica_label"):
            entry["write_relabel_configs"] = drop + list(entry.get("write_relabel_configs") or [])
        writes.append(entry)
    writes += [combine({"queue_config": dict(queue or {})}, entry, recursive=True) for entry in extra_writes or []]
    if writes:
        config["remote_write"] = writes
    count = _int(shard_count, 1)
    if count > 1:
        for job in config.get("scrape_configs") or []:
            job["relabel_configs"] = list(job.get("relabel_configs") or []) + [
                {"source_labels": ["__address__"], "modulus": count, "target_label": "__tmp_shard", "action": "hashmod"},
                {"source_labels": ["__tmp_shard"], "regex": str(shard), "action": "keep"}]
    return config


def _plain(value):
    """A deep copy of YAML-like data as plain dicts and lists. copy.deepcopy of Ansible's lazy
    templated containers also copies the variables they were templated with: seconds a run."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _version_at_least(version, major):
    head = str(version or "").lstrip("v").split(".", 1)[0]
    return head.isdigit() and int(head) >= major


def app_job_settings(apps, default_protocol, version):
    """{job: settings} for the application jobs (apps: stack_applications). Prometheus 3 refuses
    a scrape whose Content-Type it does not know (homegrown endpoints often send
    application/octet-stream), which Prometheus 2 parsed as text: from 3.0 on every application
    job gets fallback_scrape_protocol, the application's own ("" for none) or default_protocol.
    Prometheus 2 does not know the setting, so it gets none."""
    if not _version_at_least(version, 3):
        return {}
    out = {}
    for name, app in sorted((apps or {}).items()):
        protocol = app.get("fallback_scrape_protocol")
        protocol = default_protocol if protocol is None else protocol
        if protocol:
            out[name] = {"fallback_scrape_protocol": protocol}
    return out


# how an alert's description shows a KPI's value, by its Grafana unit (plain number otherwise)
VALUE_FORMATS = {"percentunit": "humanizePercentage", "s": "humanizeDuration", "bytes": "humanize1024"}


def _number_text(value):
    return repr(value) if isinstance(value, float) else str(value)


def app_rules(apps, window="5m"):
    """{file stem: rule file} for the applications (apps: stack_applications): per application a
    group that records each KPI as kpi:<application>:<kpi> (its history, in long-term storage
    too), alerts on the KPIs that ask for it, and, for applications following the HTTP
    conventions (red), alerts on the error ratio and the latency quantile. Every expression
    reaches promtool with the rest of the config before the swap; rule names carry the
    application and KPI, so promtool's complaint names them."""
    out = {}
    for name, app in sorted((apps or {}).items()):
        labels = {"application": name}
        rules = []
        for kpi in app["kpis"]:
            rules.append({"record": kpi["record"], "expr": kpi["expr"], "labels": dict(labels, kpi=kpi["name"])})
        for kpi in app["kpis"]:
            alert = kpi["alert"]
            if not alert:
                continue
            op = "<" if alert["op"] == "below" else ">"
            shown = VALUE_FORMATS.get(kpi["unit"], 'printf "%.4g"')
            description = alert["description"] or (
                f"{kpi['title']} of {name} is {{{{ $value | {shown} }}}}, {alert['op']} {_number_text(alert['value'])} "
                f"for {alert['for']}.")
            rules.append({"alert": alert["name"], "expr": f"({kpi['expr']}) {op} {_number_text(alert['value'])}",
                          "for": alert["for"], "labels": dict(labels, kpi=kpi["name"], severity=alert["severity"]),
                          "annotations": {"summary": alert["summary"], "description": description}})
        red = app["red"]
        if red:
            job = f'job="{name}"'
            requests = red["requests_metric"]
            errors = f'{job}, {red["status_label"]}=~"{red["error_status"]}"'
            if red["error_ratio_above"] not in (None, False):
                rules.append({
                    "alert": "HttpErrorRatioHigh",
                    "expr": f"sum(rate({requests}{{{errors}}}[{window}])) / sum(rate({requests}{{{job}}}[{window}])) "
                            f"> {_number_text(red['error_ratio_above'])}",
                    "for": red["for"], "labels": dict(labels, severity=red["severity"]),
                    "annotations": {
                        "summary": f"{name}: more than {red['error_ratio_above'] * 100:g}% of requests fail",
                        "description": f"{{{{ $value | humanizePercentage }}}} of the requests to {name} answered "
                                       f"{red['error_status']} over the last {window}."}})
            if red["latency_above"] not in (None, False):
                quantile = red["latency_quantile"]
                rules.append({
                    "alert": "HttpLatencyHigh",
                    "expr": f"histogram_quantile({_number_text(quantile)}, sum by (le) "
                            f"(rate({red['duration_metric']}_bucket{{{job}}}[{window}]))) > {_number_text(red['latency_above'])}",
                    "for": red["for"], "labels": dict(labels, severity=red["severity"]),
                    "annotations": {
                        "summary": f"{name}: p{quantile * 100:g} latency above {_number_text(red['latency_above'])}s",
                        "description": f"The p{quantile * 100:g} latency of {name} is {{{{ $value | humanizeDuration }}}} "
                                       f"over the last {window}."}})
        if rules:
            out[f"stack-app-{name}"] = {"groups": [{"name": f"app-{name}", "rules": rules}]}
    return out


class FilterModule:
    def filters(self):
        return {"prometheus_problems": problems, "prometheus_rule_file_names": rule_file_names,
                "prometheus_alert_rules": alert_rules, "prometheus_shards": shards,
                "prometheus_shard_problems": shard_problems, "prometheus_scaled_config": scaled_config,
            "prometheus_tls_stores": tls_stores,
                "prometheus_app_job_settings": app_job_settings, "prometheus_app_rules": app_rules}
