"""Helpers shared by the Molecule scenarios' testinfra tests."""
from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import testinfra
from testinfra.utils.ansible_runner import AnsibleRunner

INVENTORY = os.environ.get("MOLECULE_INVENTORY_FILE", "")
SCENARIO_DIR = os.environ.get("MOLECULE_SCENARIO_DIRECTORY", "")


ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "harness"))
import artifact_source as _source  # noqa: E402  pylint: disable=wrong-import-position
import ssh_hosts  # noqa: E402  pylint: disable=wrong-import-position


def artifact_source() -> dict:
    """What scripts/setup chose (tests/harness/artifact_source.py): source, versions, stand-ins."""
    return _source.load_source()


def expected_version(component: str) -> str:
    """The version a converge installs: the mirror's (offline) or the role's pinned default."""
    return artifact_source().get(f"{component}_version") or _source.role_default(component)


def previous_version(component: str) -> str:
    """An older release of component that the artifact source carries, for upgrade tests."""
    return artifact_source()["monstack_previous_versions"][component]


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


def new_host(name: str, network: str, tmp_path, groups=(), variables: dict | None = None) -> str:
    """A new Debian 13 systemd container on the scenario's network, booted (systemd's first-boot
    jobs done), and an extra inventory file naming it in these groups: its path, to pass with -i
    after the scenario's, with variables as its host vars. Remove it with podman rm -f <name>."""
    subprocess.run(["podman", "rm", "-f", name], capture_output=True)
    subprocess.run(["podman", "run", "-d", "--name", name, "--hostname", name, "--network", network,
                    "--cap-add", "SYS_ADMIN", "--systemd", "always", "localhost/monstack-debian13:latest", "/sbin/init"],
                   check=True, capture_output=True)
    assert wait_for(lambda: subprocess.run(["podman", "exec", name, "systemctl", "is-system-running"],
                                           capture_output=True, text=True).stdout.strip() in ("running", "degraded"),
                    60, 1), f"the new container {name} did not boot"
    import yaml  # pylint: disable=import-outside-toplevel

    extra = tmp_path / f"{name}-{'-'.join(groups) or 'all'}.yml"
    # reached over SSH like the scenario's own hosts (tests/harness/ssh_hosts.py)
    reach = ssh_hosts.enable(name)
    host = {name: {**ssh_hosts.connection_vars(name, reach["address"], reach["id"]),
                   "ansible_python_interpreter": "/usr/bin/python3", **(variables or {})}}
    extra.write_text(yaml.safe_dump({"all": {"hosts": host, "children": {g: {"hosts": {name: {}}} for g in groups}}}))
    return str(extra)


def run_playbook(playbook: str, *args: str, limit: str | None = None, extra: dict | None = None,
                 env: dict | None = None):
    """Run a playbook against the scenario's inventory the way molecule converges it."""
    cmd = ["ansible-playbook", "-i", INVENTORY, os.path.join(SCENARIO_DIR, playbook)]
    if limit:
        cmd += ["--limit", limit]
    if extra:
        cmd += ["-e", json.dumps(extra)]
    cmd += list(args)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})
    proc.output = proc.stdout + proc.stderr
    return proc


def _results(output: str, task: str, line: str):
    """(match of line, result) for each result line of one task in a run with -v and JSON results."""
    decoder = json.JSONDecoder()
    for block in output.split("TASK [")[1:]:
        if block.split("]", 1)[0].endswith(task):
            for match in re.finditer(line, block, re.M):
                yield match, decoder.raw_decode(block, match.end())[0]


def task_results(output: str, task: str):
    """{host: result} of one task in the output of a run with -v and JSON results (RESULTS_AS_JSON)."""
    # a looped task's items are item_results'
    return {match.group(1): result for match, result in _results(
        output, task, r"^(?:ok|changed|failed|fatal): \[(\S+)\](?![^\n]*\(item=)[^\n]*?=> ")}


def item_results(output: str, task: str):
    """{(host, item label): result} of a looped task's items, as task_results."""
    return {(match.group(1), match.group(2)): result for match, result in _results(
        output, task, r"^(?:ok|changed|skipping|failed|fatal): \[(\S+)\](?: =>)? \(item=([^\n]*?)\)\s+=> ")}


# site.yml's one pass runs every component whose role has nothing but its component task as an
# item of this task (playbooks/site.yml)
ONE_PASS_LOOP = "Install, configure and run every other component of this host, in stack_deploy_order, and wait until each is ready"


def component_results(output: str, component: str, task: str):
    """{host: result} of one component's task in a run with -v and JSON results: its role's own
    task (named task), or its item in site.yml's one-pass loop."""
    results = task_results(output, task)
    results.update({host: result for (host, _), result in item_results(output, ONE_PASS_LOOP).items()
                    if result.get("component") == component})
    return results


# with "-v": every task's result as JSON, for task_results
RESULTS_AS_JSON = {"ANSIBLE_CALLBACK_RESULT_FORMAT": "json"}


def wait_for(predicate, timeout=60, step=2):
    """predicate's first truthy value, polled every step seconds; its last value at the timeout."""
    import time  # pylint: disable=import-outside-toplevel

    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value or time.time() > deadline:
            return value
        time.sleep(step)


def http_json(host, url: str, **params):
    """GET url from inside host (curl, no proxy) with params as its query string, parsed as JSON."""
    import urllib.parse  # pylint: disable=import-outside-toplevel

    return json.loads(host.check_output(f"curl -fsS --noproxy '*' '{url}?{urllib.parse.urlencode(params)}'"))


def unit_pid(host, unit: str) -> int:
    return int(host.run(f"systemctl show -p MainPID --value {unit}").stdout.strip() or 0)


def exposure(host, unit: str) -> float:
    out = host.run(f"systemd-analyze security {unit} --no-pager").stdout
    return float(out.strip().splitlines()[-1].split("level for")[1].split(":")[1].split()[0])


ALERT_SINK = r'''
import http.server
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open("/var/tmp/alert-sink.jsonl", "ab") as out:
            out.write(body.replace(b"\n", b" ") + b"\n")
        self.send_response(200)
        self.end_headers()
http.server.HTTPServer(("0.0.0.0", 5001), Sink).serve_forever()
'''


def start_alert_sink(host):
    """A webhook receiver on port 5001 of host that records every POST (Alertmanager's
    payloads) in /var/tmp/alert-sink.jsonl; stop it with stop_alert_sink."""
    host.run("systemctl stop alert-sink; rm -f /var/tmp/alert-sink.jsonl")
    host.check_output("systemd-run --unit alert-sink python3 -c %s", ALERT_SINK)


def stop_alert_sink(host):
    host.run("systemctl stop alert-sink")


def delivered_alerts(host):
    """(payload, alert) pairs the sink on host has received so far."""
    lines = host.run("cat /var/tmp/alert-sink.jsonl").stdout.splitlines()
    return [(payload, alert) for payload in map(json.loads, lines) for alert in payload["alerts"]]


def is_standin(host, binary, version_flag="-version"):
    """Is the installed binary the offline stand-in rather than the real program?"""
    out = host.run(f"/usr/local/bin/{binary} {version_flag}")
    return "STAND-IN" in out.stdout + out.stderr


def require_real(host, binary, version_flag="-version"):
    """Skip, saying why, when the installed binary is the offline stand-in."""
    import pytest  # pylint: disable=import-outside-toplevel

    if is_standin(host, binary, version_flag):
        pytest.skip(f"{binary} on {host.backend.name} is the offline STAND-IN; this checks real behaviour and "
                    f"runs when the real upstream archive is in the artifact mirror (README, 'Offline')")
