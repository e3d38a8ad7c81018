"""Helpers shared by the Molecule scenarios' testinfra tests."""
from __future__ import annotations

import json
import os
import subprocess

import testinfra
from testinfra.utils.ansible_runner import AnsibleRunner

INVENTORY = os.environ.get("MOLECULE_INVENTORY_FILE", "")
SCENARIO_DIR = os.environ.get("MOLECULE_SCENARIO_DIRECTORY", "")


def hosts(pattern: str = "all") -> list[str]:
    """Molecule's hosts as podman:// testinfra specs: `podman exec` is ~20x faster than
    testinfra's ansible backend, which has no native mapping for the podman connection."""
    if not INVENTORY:
        return []
    return [f"podman://{name}" for name in AnsibleRunner(INVENTORY).get_hosts(pattern)]


def host_names(pattern: str = "all") -> list[str]:
    return AnsibleRunner(INVENTORY).get_hosts(pattern) if INVENTORY else []


def get_host(name: str):
    return testinfra.get_host(f"podman://{name}")


def hostvars(name: str) -> dict:
    return AnsibleRunner(INVENTORY).get_variables(name)


def run_playbook(playbook: str, *args: str, limit: str | None = None, extra: dict | None = None):
    """Run a playbook against the scenario's inventory the way molecule converges it."""
    cmd = ["ansible-playbook", "-i", INVENTORY, os.path.join(SCENARIO_DIR, playbook)]
    if limit:
        cmd += ["--limit", limit]
    if extra:
        cmd += ["-e", json.dumps(extra)]
    cmd += list(args)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    proc.output = proc.stdout + proc.stderr
    return proc


def unit_pid(host, unit: str) -> int:
    return int(host.run(f"systemctl show -p MainPID --value {unit}").stdout.strip() or 0)


def exposure(host, unit: str) -> float:
    out = host.run(f"systemd-analyze security {unit} --no-pager").stdout
    return float(out.strip().splitlines()[-1].split("level for")[1].split(":")[1].split()[0])
