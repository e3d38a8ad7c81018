#!/usr/bin/env python3
"""Split Molecule scenarios into lanes that scripts/test runs side by side.

Two scenarios that name the same container (platform) or podman network never share a moment:
they go to the same lane, one after the other. Lanes are balanced by each scenario's last
measured wall time (scenario-seconds.yml beside this file, or the state directory's record of
the last run), the longest first.

    lanes.py N SCENARIO...     prints N lines, each the scenarios of one lane in run order
    lanes.py --record RESULTS  keeps the seconds of RESULTS' lines (scenario rc seconds)
    lanes.py --names SCENARIO...   prints the containers, then the networks, they create (one
                                   line each), for scripts/test's cleanup to remove only its own
"""
from __future__ import annotations

import os
import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
MEASURED = pathlib.Path(__file__).with_name("scenario-seconds.yml")
DEFAULT_SECONDS = 300


def names(scenario: str) -> set[str]:
    """The container and network names a scenario creates."""
    spec = yaml.safe_load((ROOT / "molecule" / scenario / "molecule.yml").read_text()) or {}
    found = set()
    for platform in spec.get("platforms") or []:
        found.add("container:" + platform["name"])
        if platform.get("network"):
            found.add("network:" + platform["network"])
    return found


def groups(scenarios: list[str], claimed: dict[str, set[str]]) -> list[list[str]]:
    """Scenarios joined when they claim a common name (transitively), in the given order."""
    result: list[tuple[set[str], list[str]]] = []
    for scenario in scenarios:
        mine, members = set(claimed[scenario]), [scenario]
        for group in [g for g in result if g[0] & mine]:
            result.remove(group)
            mine |= group[0]
            members = group[1] + members
        result.append((mine, members))
    return [members for _, members in result]


def lanes(count: int, scenarios: list[str], claimed: dict[str, set[str]], seconds: dict[str, float]) -> list[list[str]]:
    """Whole groups to the least loaded lane, longest group first; empty lanes dropped."""
    weight = lambda group: sum(seconds.get(s, DEFAULT_SECONDS) for s in group)  # noqa: E731
    load = [[0.0, []] for _ in range(max(count, 1))]
    for group in sorted(groups(scenarios, claimed), key=weight, reverse=True):
        lane = min(load, key=lambda entry: entry[0])
        lane[0] += weight(group)
        lane[1].extend(sorted(group, key=lambda s: seconds.get(s, DEFAULT_SECONDS), reverse=True))
    return [lane[1] for lane in load if lane[1]]


def measured(*paths: pathlib.Path) -> dict[str, float]:
    seconds: dict[str, float] = {}
    for path in paths:
        if path.is_file():
            seconds.update(yaml.safe_load(path.read_text()) or {})
    return seconds


def record(results: pathlib.Path, kept: pathlib.Path) -> None:
    seconds = measured(kept)
    for line in results.read_text().splitlines():
        scenario, _, took = line.split()
        seconds[scenario] = int(took)
    kept.write_text(yaml.safe_dump(seconds, sort_keys=True))


def main(argv: list[str]) -> int:
    state = pathlib.Path(os.environ.get("MONSTACK_STATE", "/nonexistent"))
    if argv[0] == "--record":
        record(pathlib.Path(argv[1]), state / "scenario-seconds.yml")
        return 0
    if argv[0] == "--names":
        claimed = set().union(*(names(s) for s in argv[1:]))
        for kind in ("container", "network"):
            print(" ".join(sorted(name.split(":", 1)[1] for name in claimed if name.startswith(kind + ":"))))
        return 0
    count, scenarios = int(argv[0]), argv[1:]
    seconds = measured(MEASURED, state / "scenario-seconds.yml")
    for lane in lanes(count, scenarios, {s: names(s) for s in scenarios}, seconds):
        print(" ".join(lane))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
