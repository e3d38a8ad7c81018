"""Filters of the prometheus role (its own logic, not shared plumbing)."""
from __future__ import annotations

import re


def rule_file_names(rule_files):
    """{name: rules} as a user writes prometheus_rule_files -> {stem: rules}: the role adds
    `.yml` itself, so `hidden.yml` and `hidden` both become rules/hidden.yml."""
    return {re.sub(r"\.ya?ml$", "", name): rules for name, rules in (rule_files or {}).items()}


class FilterModule:
    def filters(self):
        return {"prometheus_rule_file_names": rule_file_names}
