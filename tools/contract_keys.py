#!/usr/bin/env python3
"""Key tree of Loki's configuration, read from its generated reference.

Loki's `docs/sources/shared/configuration.md` is written by `tools/doc-generator` from the
config structs themselves, so its key tree is the one `yaml.UnmarshalStrict` checks. This
reads that file (at a tag: `git show v3.7.6:docs/sources/shared/configuration.md`) and prints
the tree the stand-in enforces (tests/mirror/contracts/loki.yml) as YAML:

    git -C <loki clone> show v3.7.6:docs/sources/shared/configuration.md | tools/contract_keys.py 3.7.6

Tree: a mapping lists every key accepted at that level; `null` takes any value; `[node]` is a
list of node; `"*"` is a map with keys of the user's choosing (labels, named stores).
"""
import re
import sys

import yaml

LINE = re.compile(r"^\[?(?P<key>[A-Za-z0-9_]+):\s*(?P<type><[^>|]*>)?")
EMBED = re.compile(r"^\[?<(?P<block>[a-z0-9_]+)>\]?$")


def blocks(text):
    """{block name: [yaml lines]} for the root ("loki") and every `### name` section."""
    found, name, inside, lines = {}, None, False, []
    for raw in text.splitlines():
        if raw.startswith("### "):
            name = raw[4:].strip().strip("`")
            if name.startswith("Supported contents"):
                name = "loki"
        elif raw.startswith("```yaml") and name:
            inside, lines = True, []
        elif raw.startswith("```") and inside:
            found[name], inside, name = lines, False, None
        elif inside:
            lines.append(raw)
    return found


def parse(lines, start, indent, sections):
    """Keys of the lines from start that are indented exactly `indent`; returns (tree, next)."""
    tree, i = {}, start
    while i < len(lines):
        raw = lines[i]
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        depth = len(raw) - len(raw.lstrip())
        if depth < indent:
            break
        embed = EMBED.match(stripped)
        if embed and embed.group("block") in sections:
            tree.update(resolve(embed.group("block"), sections))
            i += 1
            continue
        match = LINE.match(stripped)
        if not match:
            i += 1
            continue
        key, kind = match.group("key"), (match.group("type") or "").strip("<>")
        if kind:
            tree[key] = node(kind, sections)
            i += 1
            continue
        # `key:` with its keys on the deeper lines below
        nxt = i + 1
        while nxt < len(lines) and (not lines[nxt].strip() or lines[nxt].strip().startswith("#")):
            nxt += 1
        child_indent = len(lines[nxt]) - len(lines[nxt].lstrip()) if nxt < len(lines) else indent
        if child_indent > indent:
            tree[key], i = parse(lines, nxt, child_indent, sections)
            if not tree[key]:
                tree[key] = "*"
        else:
            tree[key], i = None, i + 1
    return tree, i


def node(kind, sections):
    if kind in sections:
        return resolve(kind, sections)
    if kind.startswith("list of "):
        element = kind[len("list of "):]
        for name in (element, element.rstrip("s"), element[:-1]):
            if name in sections:
                return [resolve(name, sections)]
        return None
    if kind.startswith("map of"):
        return "*"
    return None


CACHE = {}


def resolve(name, sections):
    if name not in CACHE:
        CACHE[name] = {}  # a block that refers to itself stays open below the first level
        CACHE[name] = parse(sections[name], 0, 0, sections)[0]
    return CACHE[name]


class Dumper(yaml.SafeDumper):
    """Lists indented under their key, as yamllint wants them."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)

    def ignore_aliases(self, data):
        return True


def dump(doc):
    return "---\n" + yaml.dump(doc, Dumper=Dumper, sort_keys=True, default_flow_style=False)


def main():
    sections = blocks(sys.stdin.read())
    version = sys.argv[1] if len(sys.argv) > 1 else "unknown"
    sys.stdout.write(dump({"component": "loki", "version": version, "keys": resolve("loki", sections)}))


if __name__ == "__main__":
    main()
