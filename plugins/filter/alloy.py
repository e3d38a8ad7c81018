# -*- coding: utf-8 -*-
"""Filters of the alloy role: its config as data, written in Alloy's own syntax.

The role keeps the config as one dict (deep-merged like every other role's config): each key is a
block, `name` or `name.label` (the label is the last dot-separated part: `loki.write.default` is
`loki.write "default" { ... }`, `logging` has none), each value its body. In a body, a key whose
name is a block of the components the role writes (BLOCKS) is written as a block (a list as
repeated blocks), any other key as an attribute; a string `${component.label.export}` is a
reference to another component's export, written bare.
"""
from __future__ import annotations

import json
import re

from ansible.errors import AnsibleFilterError

# Names that are blocks, not attributes, in the blocks and components the role writes (Alloy
# v1.18.1: tests/mirror/contracts/alloy.yml, generated from upstream's structs)
BLOCKS = frozenset({
    "auth", "basic", "filter", "tls", "endpoint", "tls_config", "basic_auth", "authorization", "oauth2",
    "queue_config", "wal", "rule", "legacy_position", "decompression", "file_match", "file_watch",
})
REFERENCE = re.compile(r"^\$\{([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)+)\}$")
IDENTIFIER = re.compile(r"^[A-Za-z_]\w*$")
# Unlabelled top-level blocks (a key with one part)
INDENT = "  "


def _value(value, depth):
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        match = REFERENCE.match(value)
        return match.group(1) if match else json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(item, depth) for item in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        pad = INDENT * (depth + 1)
        items = [f"{pad}{json.dumps(str(key))} = {_value(item, depth + 1)},"
                 for key, item in value.items()]
        return "{\n" + "\n".join(items) + "\n" + INDENT * depth + "}"
    raise AnsibleFilterError(f"Alloy config: {value!r} is neither a string, number, bool, list nor map")


def _body(body, depth, where):
    if not isinstance(body, dict):
        raise AnsibleFilterError(f"Alloy config: {where} must be a map of its arguments, not {body!r}")
    lines, pad = [], INDENT * depth
    for key, value in body.items():
        if not IDENTIFIER.match(str(key)):
            raise AnsibleFilterError(f"Alloy config: {where}: {key!r} is not an argument or block name")
        if key in BLOCKS:
            for block in value if isinstance(value, list) else [value]:
                lines.append(f"{pad}{key} {{")
                lines.extend(_body(block or {}, depth + 1, f"{where} {key}"))
                lines.append(f"{pad}}}")
        elif value is not None:
            lines.append(f"{pad}{key} = {_value(value, depth)}")
    return lines


def render(config):
    """The config dict -> the text of config.alloy."""
    out = []
    for key, body in (config or {}).items():
        if body is None:
            continue  # a block of the defaults turned off with null
        parts = str(key).split(".")
        if not all(IDENTIFIER.match(p) for p in parts):
            raise AnsibleFilterError(f"Alloy config: {key!r} is not a block name (name or name.label)")
        head = parts[0] if len(parts) == 1 else f'{".".join(parts[:-1])} {json.dumps(parts[-1])}'
        out.append(f"{head} {{")
        out.extend(_body(body, 1, key))
        out.append("}")
        out.append("")
    return "\n".join(out)


def problems(config, loki_group):
    """Alloy needs a loki.write with an http(s) endpoint."""
    writers = {key: body for key, body in (config or {}).items() if str(key).startswith("loki.write.") and body}
    endpoints = [e for body in writers.values() for e in (body.get("endpoint") or [])]
    if not endpoints:
        return [f"no Loki to push to: put a host in the {loki_group} group (alloy_loki_group) or set alloy_loki_urls"]
    return [f"Alloy endpoint url {e.get('url', '')} must be http(s):// (alloy_loki_urls or alloy_config)"
            for e in endpoints if not re.match(r"https?://", str((e or {}).get("url", "")))]


def file_targets(paths, labels):
    """One local.file_match target per path pattern, each with the shared labels: a path is one
    doublestar pattern (a comma in it is a literal character), as Promtail's __path__ is."""
    return [dict(labels, __path__=path) for path in paths]


class FilterModule:
    def filters(self):
        return {"alloy_render": render, "alloy_problems": problems, "alloy_file_targets": file_targets}
