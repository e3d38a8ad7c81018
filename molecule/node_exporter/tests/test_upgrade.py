"""Changing the version swaps the release and restarts onto the new binary; going back
reuses the kept release without downloading."""
import re

from conftest import expected_version, host_names, hosts, previous_version, run_playbook, unit_pid

OLD, NEW = previous_version("node_exporter"), expected_version("node_exporter")

TARGET = next(n for n in host_names() if n not in host_names("web_auth")) if host_names() else None
testinfra_hosts = [f"podman://{TARGET}"] if TARGET else []


def build_version(host):
    out = host.run("curl -fsS http://127.0.0.1:9100/metrics").stdout
    return re.search(r'^node_exporter_build_info\{[^}]*version="([^"]+)"', out, re.M).group(1)


def test_version_change_restarts_onto_new_binary_and_back(host, tmp_path):
    pid = unit_pid(host, "node_exporter")
    run = run_playbook("converge.yml", limit=TARGET, extra={"node_exporter_version": OLD})
    assert run.returncode == 0, run.output[-3000:]
    assert build_version(host).startswith(OLD)
    assert unit_pid(host, "node_exporter") != pid
    assert host.file(f"/opt/monitoring/node_exporter/{NEW}-linux-amd64").is_directory, "previous release kept"

    # back to the default: the kept release is relinked, nothing is fetched
    # (an empty cache and a closed mirror prove it)
    run = run_playbook("converge.yml", limit=TARGET, extra={
        "stack_artifact_mirror": "http://127.0.0.1:9", "stack_artifact_cache": str(tmp_path)})
    assert run.returncode == 0, run.output[-3000:]
    assert build_version(host).startswith(NEW)
    assert host.run("readlink -f /usr/local/bin/node_exporter").stdout.strip().endswith(f"/{NEW}-linux-amd64/node_exporter")
