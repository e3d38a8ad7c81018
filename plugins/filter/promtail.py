# -*- coding: utf-8 -*-
"""Filters of the promtail role."""
from __future__ import annotations

import re


def problems(config, loki_group):
    """Promtail needs at least one Loki to push to, at an http(s) URL."""
    clients = config.get("clients") or []
    if not clients:
        return [f"no Loki to push to: put a host in the {loki_group} group (promtail_loki_group) or set promtail_loki_urls"]
    return [f"Promtail client url {client.get('url', '')} must be http(s):// (promtail_loki_urls or promtail_config clients)"
            for client in clients if not re.match(r"https?://", str(client.get("url", "")))]


def file_target(path, labels):
    """A static target group that tails the files of one pattern. Promtail takes __path__ as one
    doublestar pattern (grafana/loki@v3.6.11 clients/pkg/promtail/targets/file/filetarget.go): a
    comma is a literal character there, so several patterns need a group each."""
    return {"targets": ["localhost"], "labels": dict(labels, __path__=path)}


class FilterModule:
    def filters(self):
        return {"promtail_problems": problems, "promtail_file_target": file_target}
