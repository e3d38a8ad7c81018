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


class FilterModule:
    def filters(self):
        return {"prometheus_rule_file_names": rule_file_names, "prometheus_alert_rules": alert_rules}
