"""Ansible reaches the Molecule scenarios' containers over SSH, as it reaches real hosts.

`podman exec` has no pipelining: a module run there is several podman calls (measured here: 30
module runs on one container took 40-55 s over podman exec, 10-12 s over SSH with pipelining, at
a sixth of the controller's CPU), and it skips the path users' runs take. The test images carry
Debian's openssh-server (tests/harness/build-image.sh); this gives them the harness's key and
records how to reach each one:

    python tests/harness/ssh_hosts.py --out FILE NAME...   (molecule/_shared/prepare.yml)

FILE maps each container to its address and id; the monstack_ssh vars plugin
(tests/harness/vars_plugins) turns it into the hosts' connection variables, which win over the
podman connection Molecule's inventory names. Tests that start a container of their own call
enable() and connection_vars() (molecule/conftest.py's new_host).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import time

import yaml

STATE = pathlib.Path(os.environ.get("MONSTACK_STATE", pathlib.Path.home() / ".cache" / "monitoring-stack"))
KEY = STATE / "ssh" / "id_ed25519"
# throwaway containers that share their image's host key: nothing to verify or remember
SSH_OPTIONS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]


def key() -> pathlib.Path:
    """The harness's private key, made on first use."""
    if not KEY.exists():
        KEY.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "monstack-tests", "-f", str(KEY)],
                       check=True)
    return KEY


def connection_vars(name: str, address: str, container_id: str) -> dict:
    """A host's connection variables. The control socket is named after the container, so a
    container that reuses a removed one's address never meets that one's master connection;
    stack_address keeps the stack naming the host as the scenario's network resolves it (it
    would otherwise take ansible_host), so the configs stay those of the podman connection."""
    return {
        "ansible_connection": "ssh",
        "ansible_host": address,
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(key()),
        "ansible_ssh_common_args": " ".join(SSH_OPTIONS),
        "ansible_ssh_args": "-o ControlMaster=auto -o ControlPersist=120s -o ServerAliveInterval=15",
        "ansible_control_path": f"%(directory)s/{container_id[:12]}-%%r",
        "stack_address": name,
    }


def _podman(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], capture_output=True, text=True, **kw)


def enable(name: str, timeout: float = 30) -> dict:
    """Put the harness's key on a running container and wait until its sshd lets us in:
    {"address": ..., "id": ...}."""
    public = key().with_suffix(".pub").read_text()
    done = _podman("exec", "-i", name, "sh", "-c",
                   "mkdir -p -m 700 /root/.ssh && cat > /root/.ssh/authorized_keys && systemctl start ssh",
                   input=public)
    if done.returncode:
        raise RuntimeError(f"{name}: could not install the SSH key: {done.stderr.strip()}")
    inspect = _podman("inspect", "-f", "{{.Id}} {{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", name)
    fields = inspect.stdout.split()
    if inspect.returncode or len(fields) < 2:
        raise RuntimeError(f"{name}: no address to reach it at ({inspect.stderr.strip() or inspect.stdout.strip()})")
    container_id, address = fields[0], fields[1]
    deadline = time.monotonic() + timeout
    while True:
        probe = subprocess.run(["ssh", "-i", str(key()), "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
                                *SSH_OPTIONS, f"root@{address}", "true"],
                               capture_output=True, text=True, check=False)
        if probe.returncode == 0:
            return {"address": address, "id": container_id}
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: ssh root@{address} failed: {probe.stderr.strip()}")
        time.sleep(0.5)


def load(path: str | os.PathLike) -> dict:
    """{name: connection variables} of a file written by main(), or {} without one."""
    try:
        hosts = yaml.safe_load(pathlib.Path(path).read_text()) or {}
    except FileNotFoundError:
        return {}
    return {name: connection_vars(name, host["address"], host["id"]) for name, host in hosts.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", required=True, help="where to record how to reach each container")
    parser.add_argument("names", nargs="+")
    args = parser.parse_args(argv)
    hosts = {}
    for name in args.names:
        try:
            hosts[name] = enable(name)
        except RuntimeError as exc:
            print(exc, file=sys.stderr)
            return 1
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(hosts))
    reached = ", ".join(f"{name} ({host['address']})" for name, host in hosts.items())
    print(f"reachable over SSH: {reached}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
