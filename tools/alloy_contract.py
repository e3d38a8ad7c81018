#!/usr/bin/env python3
"""Write the Alloy stand-in's contract (tests/mirror/contracts/alloy.yml) from upstream's source.

Alloy's config blocks and components take their arguments from Go structs whose fields carry
`alloy:"name,attr|block[,optional]"` tags (",squash" inlines a struct). This reads those structs
at a release tag in a clone of grafana/alloy, following block fields into their own structs,
and writes, per block or component, which attributes and blocks it takes and which of them are
required. The stand-in refuses anything else, as `alloy run` and `alloy validate` do.

    tools/alloy_contract.py <clone of grafana/alloy> v1.18.1 > tests/mirror/contracts/alloy.yml
"""
from __future__ import annotations

import re
import subprocess
import sys

import yaml

MODULE = "github.com/grafana/alloy/"
# the config blocks and components the alloy role writes, and the struct of their arguments
ROOTS = {
    "logging": ("internal/runtime/logging/options.go", "Options"),
    "http": ("internal/service/http/http.go", "Arguments"),
    "local.file_match": ("internal/component/local/file_match/file.go", "Arguments"),
    "loki.source.file": ("internal/component/loki/source/file/file.go", "Arguments"),
    "loki.source.journal": ("internal/component/loki/source/journal/types.go", "Arguments"),
    "loki.relabel": ("internal/component/loki/relabel/relabel.go", "Arguments"),
    "loki.write": ("internal/component/loki/write/write.go", "Arguments"),
}
FIELD = re.compile(r'^\s*(\w+)?\s*([\w.*\[\]]+(?:\[[\w.*]+\][\w.*]+)?)\s+`[^`]*alloy:"([^"]*)"')


class Source:
    def __init__(self, repo: str, tag: str):
        self.repo, self.tag, self.files = repo, tag, {}

    def read(self, path: str) -> str:
        if path not in self.files:
            self.files[path] = subprocess.run(["git", "-C", self.repo, "show", f"{self.tag}:{path}"],
                                              check=True, capture_output=True, text=True).stdout
        return self.files[path]

    def package_files(self, directory: str) -> list[str]:
        out = subprocess.run(["git", "-C", self.repo, "ls-tree", "--name-only", f"{self.tag}:{directory}"],
                             check=True, capture_output=True, text=True).stdout.split()
        return [f"{directory}/{name}" for name in out if name.endswith(".go") and not name.endswith("_test.go")]

    def find(self, directory: str, name: str) -> tuple[str, str]:
        """The file of a package directory that declares struct `name`, and the struct's body."""
        for path in self.package_files(directory):
            match = re.search(rf"^type {name} struct {{\n(.*?)^}}", self.read(path), re.M | re.S)
            if match:
                return path, match.group(1)
        raise LookupError(f"no struct {name} in {directory} at {self.tag}")

    def resolve(self, path: str, gotype: str) -> tuple[str, str] | None:
        """The (file, body) of the struct a field's Go type names, or None for a non-struct."""
        bare = re.sub(r"^(\[\]|\*)+", "", gotype)
        if "." in bare:
            alias, name = bare.split(".", 1)
            imports = dict((m.group(1) or m.group(2).rsplit("/", 1)[-1], m.group(2))
                           for m in re.finditer(r'^\s*(?:import\s+)?(\w+\s+)?"([^"]+)"', self.read(path), re.M))
            imports = {k.strip(): v for k, v in imports.items()}
            target = imports.get(alias, "")
            if not target.startswith(MODULE):
                return None
            directory = target[len(MODULE):]
        else:
            directory, name = path.rsplit("/", 1)[0], bare
        try:
            return self.find(directory, name)
        except LookupError:
            return None


def arguments(source: Source, path: str, body: str) -> dict:
    """{attrs: {name: required}, blocks: {name: {required, ...its own arguments}}}."""
    out = {"attrs": {}, "blocks": {}}
    for line in body.splitlines():
        match = FIELD.match(line)
        if not match:
            continue
        gotype, tag = match.group(2), match.group(3).split(",")
        name, kinds = tag[0], tag[1:]
        if "squash" in kinds:
            inner = source.resolve(path, gotype)
            if inner:
                nested = arguments(source, *inner)
                out["attrs"].update(nested["attrs"])
                out["blocks"].update(nested["blocks"])
            continue
        required = "optional" not in kinds
        if "attr" in kinds:
            out["attrs"][name] = required
        elif "block" in kinds:
            inner = source.resolve(path, gotype)
            block = arguments(source, *inner) if inner else {"attrs": {}, "blocks": {}}
            block["required"] = required
            out["blocks"][name] = block
    return out


class Indented(yaml.SafeDumper):
    """Lists indented under their key (yamllint's default)."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


def main(argv: list[str]) -> int:
    repo, tag = argv
    source = Source(repo, tag)
    contract = {}
    for name, (path, struct) in ROOTS.items():
        found_path, body = source.find(path.rsplit("/", 1)[0], struct)
        contract[name] = dict(arguments(source, found_path, body), source=f"grafana/alloy@{tag} {found_path} {struct}")
        # what other components may reference (loki.write.<label>.receiver): its Exports struct
        registered = re.search(r"Exports:\s+([\w.]+)\{\}", source.read(path))
        if registered:
            inner = source.resolve(path, registered.group(1))
            contract[name]["exports"] = sorted(arguments(source, *inner)["attrs"]) if inner else []
    header = (f"# Generated by tools/alloy_contract.py from grafana/alloy {tag}: the arguments (attrs) and\n"
              "# blocks each config block or component takes, true where required. Do not edit.\n---\n")
    sys.stdout.write(header + yaml.dump({"version": tag.lstrip("v"), "blocks": contract}, Dumper=Indented,
                                        sort_keys=True, width=120))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
