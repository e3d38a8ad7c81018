#!/usr/bin/env python3
"""Choose where the lab and the tests install releases from, and write it down once.

  --mode auto      the pinned upstream releases when the upstream download hosts answer,
                   the local mirror otherwise (the default)
  --mode upstream  the pinned upstream releases (fails when upstream does not answer)
  --mode mirror    the local mirror (real Prometheus-family binaries from Debian, stand-ins
                   or user-supplied real archives for Grafana, Loki, Promtail and Jaeger)

The result is one Ansible vars file (default $MONSTACK_STATE/artifact-source.yml) that the
lab, every Molecule scenario, the tests and the benchmark load through the
`monstack_artifacts` vars plugin (tests/harness/vars_plugins). In mirror mode it holds the
versions the mirror build actually produced (read from its manifest.json), so a move of
Debian's archive to newer releases needs no edit anywhere. In upstream mode it pins nothing:
the roles' own pinned defaults apply.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import functools
import json
import os
import sys
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
# Upgrade tests install an older release first. Offline they use the mirror's older Debian
# build; online these upstream releases (both exist upstream; not exercised offline).
UPSTREAM_PREVIOUS = {"prometheus": "2.53.5", "node_exporter": "1.9.1", "victoriametrics": "1.136.0"}


def source_file() -> Path:
    """Where scripts/setup writes the choice: $MONSTACK_STATE/artifact-source.yml."""
    state = os.environ.get("MONSTACK_STATE") or os.path.expanduser("~/.cache/monitoring-stack")
    return Path(state, "artifact-source.yml")


def load_source(path=None) -> dict:
    return yaml.safe_load(Path(path or source_file()).read_text(encoding="utf-8"))


def version_key(version: str) -> tuple:
    return tuple(int(part) if part.isdigit() else 0 for part in version.replace("-", ".").split("."))


@functools.lru_cache(maxsize=None)
def role_defaults(role: str) -> dict:
    """A role's defaults/main.yml, read once per process (the harness's one reader of them)."""
    return yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text(encoding="utf-8")) or {}


def role_default(component: str, key: str = "version"):
    return role_defaults(component)[f"{component}_{key}"]


@functools.lru_cache(maxsize=None)
def catalog() -> dict:
    """The installer's artifact catalog (release URL patterns per component)."""
    return yaml.safe_load((ROOT / "roles/stack/vars/main.yml").read_text(encoding="utf-8"))["stack_catalog"]


def probe_urls() -> list[str]:
    """A pinned release's checksum list on each upstream download host the roles use."""
    node = catalog()["node_exporter"]["checksums_url"].format(version=role_default("node_exporter"))
    version = role_default("grafana")
    build = role_default("grafana", "build_ids")[version]
    grafana = catalog()["grafana"]["url"].format(version=version, arch="amd64", build_id=build) + ".sha256"
    return [node, grafana]


def upstream_answers(urls: list[str], timeout: float = 6.0) -> tuple[bool, str]:
    """(True, '') when every URL answers 200, else (False, why)."""
    def one(url):
        try:
            request = urllib.request.Request(url, method="HEAD")
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return url, response.status, ""
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            return url, None, str(getattr(exc, "reason", exc))
    with concurrent.futures.ThreadPoolExecutor(len(urls)) as pool:
        results = list(pool.map(one, urls))
    for url, status, error in results:
        if status != 200:
            return False, f"{url.split('/')[2]} did not answer ({error or status})"
    return True, ""


def mirror_vars(manifest: dict, mirror_url: str, mirror_dir: str) -> dict:
    """Ansible vars that make the roles install what the mirror carries."""
    out: dict = {"stack_artifact_mirror": mirror_url, "monstack_standins": [], "monstack_previous_versions": {}}
    for component in sorted(manifest):
        releases = manifest[component]
        # a real release beats a stand-in of another version; newest first
        ordered = sorted(releases, key=lambda v: (not releases[v].get("standin"), version_key(v)), reverse=True)
        newest = ordered[0]
        out[f"{component}_version"] = newest
        if releases[newest].get("standin"):
            out["monstack_standins"].append(component)
        if releases[newest].get("build_id"):
            out.setdefault("grafana_build_ids", {})[newest] = releases[newest]["build_id"]
        older = [v for v in ordered[1:] if not releases[v].get("standin")]
        if older:
            out["monstack_previous_versions"][component] = older[0]
        if component == "alertmanager" and releases[newest].get("templates"):
            out["monstack_alertmanager_templates"] = os.path.join(mirror_dir, releases[newest]["templates"])
    return out


def upstream_vars() -> dict:
    return {"stack_artifact_mirror": "", "monstack_standins": [], "monstack_previous_versions": dict(UPSTREAM_PREVIOUS)}


def choose(mode: str, manifest: dict, mirror_url: str, mirror_dir: str, probe=upstream_answers) -> dict:
    if mode == "mirror":
        chosen, reason = "mirror", "MONSTACK_ARTIFACTS=mirror"
    else:
        ok, why = probe(probe_urls())
        if mode == "upstream":
            if not ok:
                raise SystemExit(f"MONSTACK_ARTIFACTS=upstream, but {why}. Use auto or mirror offline.")
            chosen, reason = "upstream", "MONSTACK_ARTIFACTS=upstream"
        elif ok:
            chosen, reason = "upstream", "auto: the upstream download hosts answer"
        else:
            chosen, reason = "mirror", f"auto: {why}"
    carried = mirror_vars(manifest, mirror_url, mirror_dir)
    data = carried if chosen == "mirror" else upstream_vars()
    # what the mirror carries, whichever source was chosen: the air-gapped scenario installs from it
    data["monstack_mirror_versions"] = {k[:-len("_version")]: v for k, v in carried.items() if k.endswith("_version")}
    return {"monstack_artifact_source": chosen, "monstack_artifact_reason": reason, **data}


def describe(data: dict) -> str:
    lines = [f"artifact source: {data['monstack_artifact_source']} ({data['monstack_artifact_reason']})"]
    if data["monstack_artifact_source"] == "mirror":
        versions = ", ".join(f"{k[:-8]} {v}" for k, v in sorted(data.items()) if k.endswith("_version"))
        lines.append(f"  versions from the mirror build: {versions}")
    standins = data["monstack_standins"]
    lines.append("  stand-ins (upstream's config contract and readiness, no data APIs): " + (", ".join(standins) if standins else "none"))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["auto", "upstream", "mirror"], default="auto")
    parser.add_argument("--mirror-dir")
    parser.add_argument("--mirror-url")
    parser.add_argument("--out", help="where to write the choice (default: $MONSTACK_STATE/artifact-source.yml)")
    parser.add_argument("--describe", action="store_true", help="print what the written choice says, and stop")
    parser.add_argument("--get", metavar="KEY", help="print one value of the written choice (a list comma-separated)")
    args = parser.parse_args()
    out = Path(args.out or source_file())
    if args.describe:
        print(describe(load_source(out)))
        return 0
    if args.get:
        value = load_source(out).get(args.get, "")
        print(", ".join(value) if isinstance(value, list) else value)
        return 0
    if not (args.mirror_dir and args.mirror_url):
        parser.error("--mirror-dir and --mirror-url are needed")
    manifest = json.loads(Path(args.mirror_dir, "manifest.json").read_text(encoding="utf-8"))
    data = choose(args.mode, manifest, args.mirror_url, args.mirror_dir)
    out.write_text("# written by scripts/setup (tests/harness/artifact_source.py); do not edit\n"
                   + yaml.safe_dump(data, sort_keys=True), encoding="utf-8")
    print(describe(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
