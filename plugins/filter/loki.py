# -*- coding: utf-8 -*-
"""Filters of the loki role."""
from __future__ import annotations

import re


def problems(config):
    """What Loki 3 would refuse, or silently do wrong, in the merged config (loki_config over
    the role's base): retention without its delete-request store and the schema periods."""
    out = []
    compactor = config.get("compactor") or {}
    if compactor.get("retention_enabled") and not compactor.get("delete_request_store"):
        out.append("retention is on (loki_config compactor.retention_enabled) without compactor.delete_request_store, "
                   "which Loki 3 requires")
    periods = (config.get("schema_config") or {}).get("configs") or []
    if not periods:
        out.append("loki_config schema_config.configs needs at least one period")
        return out
    starts = [str(period.get("from", "")) for period in periods]
    out += [f"loki_config schema period from {start or '(none)'} must start on a YYYY-MM-DD date"
            for start in starts if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", start)]
    if starts != sorted(starts):
        out.append("loki_config schema periods must be in ascending order of from")
    newest = periods[-1]
    if newest.get("store") != "tsdb" or newest.get("schema") != "v13":
        out.append("the newest schema period must use store tsdb and schema v13 "
                   "(Loki 3 needs them for structured metadata)")
    return out


def group_problems(hosts, group):
    """The role runs Loki as one single binary with its index and chunks on local disk and an
    in-memory ring: two such hosts share nothing, each would get every line from every Promtail
    and Grafana would read only the first. One host per inventory is the supported layout."""
    hosts = list(hosts or [])
    if len(hosts) <= 1:
        return []
    return [f"the {group} group has {len(hosts)} hosts ({', '.join(hosts)}): this role runs Loki as a single "
            "binary with local storage, so they would be unrelated copies that each store every line "
            "and Grafana would read only the first; keep one host in the group (a Loki cluster needs "
            "object storage and a memberlist ring, which this role does not set up)"]


class FilterModule:
    def filters(self):
        return {"loki_problems": problems, "loki_group_problems": group_problems}
