#!/usr/bin/env python3
"""Prove that the container network works the way the lab and the tests use it.

Two throwaway containers on a fresh user-defined podman network must reach each other by
name and by IP, the controller must reach them by IP (the health report, testinfra and the
printed URLs do), they must reach the controller (through the network's gateway) and
Debian's package mirror (the lab installs PostgreSQL and Redis in them). Every failure is
named with what is missing and how to fix it; the network and containers are always removed.
"""
from __future__ import annotations

import argparse
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

DEBIAN = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")


class CheckFailed(Exception):
    pass


def podman(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=120)
    if check and proc.returncode:
        raise CheckFailed(f"podman {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def fetch_in(container: str, url: str) -> tuple[bool, str]:
    """GET url from inside container with its python3; (ok, error text)."""
    code = ("import sys, urllib.request\n"
            "try:\n urllib.request.urlopen(sys.argv[1], timeout=10).read(64)\n"
            "except Exception as e:\n print(e); sys.exit(1)\n")
    proc = subprocess.run(["podman", "exec", container, "python3", "-c", code, url],
                          capture_output=True, text=True, timeout=60)
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


def run_checks(image: str, tag: str) -> list[str]:
    """Run every check; returns what passed (raises CheckFailed on the first failure)."""
    net, a, b = f"monstack-netcheck-{tag}", f"monstack-netcheck-{tag}-a", f"monstack-netcheck-{tag}-b"
    passed = []
    try:
        podman("network", "create", net)
        info = json.loads(podman("network", "inspect", net))[0]
        if not info.get("dns_enabled"):
            raise CheckFailed(
                f"podman network {net} has no DNS (dns_enabled: false, driver {info.get('driver')}): containers "
                "cannot find each other by name. Install podman's network backend and its DNS server: "
                "apt-get install netavark aardvark-dns (scripts/setup does), set network_backend = \"netavark\" "
                "in /etc/containers/containers.conf, and remove networks made with CNI.")
        passed.append(f"network {net} has DNS (backend {podman('info', '--format', '{{.Host.NetworkBackend}}')})")
        gateway = info["subnets"][0]["gateway"]
        for name, cmd in ((b, ["python3", "-m", "http.server", "8080"]), (a, ["sleep", "600"])):
            podman("run", "-d", "--rm", "--name", name, "--hostname", name, "--network", net,
                   "--label", "monstack=netcheck", image, *cmd)
        ip_b = podman("inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{net}").IPAddress}}}}', b)
        deadline = time.time() + 20
        while True:  # b's server needs a moment to bind
            ok, err = fetch_in(a, f"http://{ip_b}:8080/")
            if ok or time.time() > deadline:
                break
            time.sleep(0.3)
        if not ok:
            raise CheckFailed(f"container {a} cannot reach {b} by IP ({ip_b}:8080): {err}. Bridge traffic is blocked: "
                              "check that iptables is installed and the FORWARD chain accepts podman's bridge.")
        passed.append(f"container to container by IP ({ip_b})")
        lookup = subprocess.run(["podman", "exec", a, "getent", "hosts", b], capture_output=True, text=True)
        if lookup.returncode or ip_b not in lookup.stdout.split():
            raise CheckFailed(f"container {a} cannot resolve {b} (getent: {lookup.stdout.strip() or 'no answer'}): "
                              "the network's DNS server is not answering. Is aardvark-dns installed "
                              "(apt-get install aardvark-dns)?")
        ok, err = fetch_in(a, f"http://{b}:8080/")
        if not ok:
            raise CheckFailed(f"container {a} resolves {b} but cannot reach it by name: {err}")
        passed.append(f"container to container by name ({b} -> {ip_b})")
        try:
            urllib.request.urlopen(f"http://{ip_b}:8080/", timeout=10).read(64)
        except OSError as exc:
            raise CheckFailed(f"this machine cannot reach container {b} at {ip_b}:8080 ({exc}): the lab's URLs, "
                              "the health report and the tests need it. Check the routes and iptables.") from exc
        passed.append(f"controller to container ({ip_b})")
        server = http.server.ThreadingHTTPServer((gateway, 0), http.server.SimpleHTTPRequestHandler)
        server.RequestHandlerClass.log_message = lambda *args: None
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            ok, err = fetch_in(a, f"http://{gateway}:{server.server_address[1]}/")
        finally:
            server.shutdown()
        if not ok:
            raise CheckFailed(f"container {a} cannot reach the controller at {gateway} (the network's gateway): {err}. "
                              "An INPUT firewall rule on this machine blocks the podman bridge.")
        passed.append(f"container to controller ({gateway})")
        ok, err = fetch_in(a, f"{DEBIAN}/dists/bookworm/Release")
        if not ok:
            raise CheckFailed(f"container {a} cannot reach Debian's mirror {DEBIAN}: {err}. Containers need NAT to "
                              "install PostgreSQL and Redis: check net.ipv4.ip_forward and iptables (netavark's rules).")
        passed.append(f"container to Debian's mirror ({DEBIAN})")
        return passed
    finally:
        podman("rm", "-f", "-t", "0", a, b, check=False)
        podman("network", "rm", "-f", net, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True)
    args = parser.parse_args()
    try:
        for line in run_checks(args.image, str(os.getpid())):
            print(f"  ok  {line}")
    except CheckFailed as exc:
        print(f"  FAILED  {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
