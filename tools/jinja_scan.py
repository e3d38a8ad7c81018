#!/usr/bin/env python3
"""List Jinja expressions in the roles' YAML longer than a few lines: logic that belongs in
a tested Python filter. Usage: tools/jinja_scan.py [min_lines] (default 6); prints
<lines> <file>:<key> and a total; exit 0."""
import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]


def walk(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}[{index}]")
    elif isinstance(node, str) and "{{" in node:
        yield path, node


def scan(min_lines=6):
    found = []
    for path in sorted(ROOT.glob("roles/*/vars/*.yml")) + sorted(ROOT.glob("roles/*/tasks/*.yml")):
        for key, text in walk(yaml.safe_load(path.read_text(encoding="utf-8"))):
            # folded scalars (>-) lose their line breaks: count the source lines instead
            lines = max(text.count("\n") + 1, len(text) // 100 + 1)
            if lines >= min_lines:
                found.append((lines, f"{path.relative_to(ROOT)}:{key}"))
    return found


if __name__ == "__main__":
    found = scan(int(sys.argv[1]) if len(sys.argv) > 1 else 6)
    for lines, where in sorted(found, reverse=True):
        print(f"{lines:4d} {where}")
    print(f"{len(found)} expressions, {sum(n for n, _ in found)} lines (approx.)")
