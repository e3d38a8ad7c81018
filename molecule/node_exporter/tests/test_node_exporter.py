"""node_exporter installed from the mirror (real binaries) on Debian 12 and 13."""
import re

import pytest

from conftest import expected_version, exposure, hostvars, hosts, unit_pid

testinfra_hosts = hosts()
WANTED_VERSION = expected_version("node_exporter")


def scrape(host, path="/metrics"):
    """Fetch metrics the way Prometheus would, with the TLS/auth the host is set up for."""
    users = hostvars(host.backend.name).get("node_exporter_web_basic_auth_users") or {}
    if users:
        user, password = next(iter(users.items()))
        cmd = host.run(f"curl -fsS -k --max-time 10 -u '{user}:{password}' https://127.0.0.1:9100{path}")
    else:
        cmd = host.run(f"curl -fsS --max-time 10 http://127.0.0.1:9100{path}")
    assert cmd.rc == 0, cmd.stderr
    return cmd.stdout


def test_service_enabled_running_as_its_own_user(host):
    service = host.service("node_exporter")
    assert service.is_enabled and service.is_running
    pid = unit_pid(host, "node_exporter")
    assert host.run(f"ps -o user= -p {pid}").stdout.strip() == "node_exporter"
    assert host.user("node_exporter").shell in ("/usr/sbin/nologin", "/sbin/nologin")
    # enabled at boot through multi-user.target
    assert host.file("/etc/systemd/system/multi-user.target.wants/node_exporter.service").is_symlink


def test_serves_real_node_metrics(host):
    metrics = scrape(host)
    build = re.search(r'^node_exporter_build_info\{[^}]*version="([^"]+)"', metrics, re.M)
    assert build and build.group(1).startswith(WANTED_VERSION), build
    assert re.search(r"^node_cpu_seconds_total\{", metrics, re.M)
    assert re.search(r"^node_memory_MemAvailable_bytes ", metrics, re.M)
    # the systemd collector is switched on by default and sees real units
    assert re.search(r'^node_systemd_unit_state\{name="node_exporter.service",state="active"[^}]*\} 1', metrics, re.M)


def test_release_lives_in_versioned_directory_behind_links(host):
    release = f"/opt/monitoring/node_exporter/{WANTED_VERSION}-linux-amd64"
    assert host.file("/usr/local/bin/node_exporter").is_symlink
    assert host.run("readlink -f /usr/local/bin/node_exporter").stdout.strip() == f"{release}/node_exporter"
    marker = host.file(f"{release}/.stack-release.json")
    assert marker.exists and "/github.com/prometheus/node_exporter/releases/download/" in marker.content_string
    version = host.run("/usr/local/bin/node_exporter --version 2>&1").stdout
    assert f"version {WANTED_VERSION}" in version


def test_textfile_collector_exports_dropped_metrics(host):
    path = "/var/lib/node_exporter/textfile_collector/molecule.prom"
    host.run(f"printf 'monstack_textfile_probe 42\\n' > {path}.tmp && mv {path}.tmp {path}")
    try:
        assert re.search(r"^monstack_textfile_probe 42$", scrape(host), re.M)
    finally:
        host.run(f"rm -f {path}")


def test_sandbox_is_enforced_not_just_declared(host):
    pid = unit_pid(host, "node_exporter")
    assert "NoNewPrivs:\t1" in host.file(f"/proc/{pid}/status").content_string
    root_mount = next(line for line in host.file(f"/proc/{pid}/mountinfo").content_string.splitlines()
                      if line.split()[4] == "/")
    assert "ro" in root_mount.split()[5].split(","), root_mount
    assert host.run(f"grep -E '^CapEff' /proc/{pid}/status").stdout.split()[1] == "0000000000000000"
    assert exposure(host, "node_exporter") <= 2.0


@pytest.mark.parametrize("path", ["/metrics"])
def test_web_auth_refuses_strangers(host, path):
    if not hostvars(host.backend.name).get("node_exporter_web_basic_auth_users"):
        pytest.skip("TLS and basic auth are configured on the web_auth group only")
    anonymous = host.run(f"curl -s -k -o /dev/null -w '%{{http_code}}' https://127.0.0.1:9100{path}")
    assert anonymous.stdout == "401"
    wrong = host.run(f"curl -s -k -o /dev/null -w '%{{http_code}}' -u prometheus:wrong https://127.0.0.1:9100{path}")
    assert wrong.stdout == "401"
    assert host.run(f"curl -fsS --max-time 5 http://127.0.0.1:9100{path}").rc != 0, "plain HTTP must not be served"
    web = host.file("/etc/node_exporter/web.yml")
    assert (web.user, web.group, web.mode) == ("root", "node_exporter", 0o640)
    assert "$2b$" in web.content_string and "s3cret" not in web.content_string
    key = host.file("/etc/node_exporter/tls.key")
    assert (key.user, key.group, key.mode) == ("root", "node_exporter", 0o640)


def test_ansible_reaches_the_hosts_over_ssh_with_pipelining(host):
    """The scenario's runs take the path users' runs take (SSH, pipelining), not podman exec
    (tests/harness/ssh_hosts.py): a module runs in a session of sshd."""
    import json
    import os
    import subprocess

    name = host.backend.name
    env = {**os.environ, "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "json"}
    proc = subprocess.run(["ansible", "-i", os.environ["MOLECULE_INVENTORY_FILE"], name, "-m", "ansible.builtin.command",
                           "-a", "sh -c 'echo $SSH_CONNECTION'"], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"][name]
    # sshd sets SSH_CONNECTION (client address and port, server address and port); podman exec does not
    assert len(result["stdout"].split()) == 4, result
