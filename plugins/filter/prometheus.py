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


class FilterModule:
    def filters(self):
        return {"prometheus_problems": problems, "prometheus_rule_file_names": rule_file_names, "prometheus_alert_rules": alert_rules}
