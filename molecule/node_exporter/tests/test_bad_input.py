"""Bad input fails before any change, with a message that names the problem."""
import re

import pytest

from conftest import get_host, host_names, hosts, previous_version, run_playbook, unit_pid

TARGET = next(n for n in host_names() if n not in host_names("web_auth")) if host_names() else None
testinfra_hosts = [f"podman://{TARGET}"] if TARGET else []


def state(host):
    return (unit_pid(host, "node_exporter"),
            host.run("ls /opt/monitoring/node_exporter").stdout.split(),
            host.file("/etc/systemd/system/node_exporter.service").sha256sum)


@pytest.mark.parametrize("extra, names", [
    ({"node_exporter_log_level": "verbose"}, "node_exporter_log_level"),
    ({"node_exporter_web_basic_auth_users": ["prometheus"]}, "node_exporter_web_basic_auth_users"),
    ({"node_exporter_collectors_enabled": ["systemd", "Bad-Name"]}, "collector names"),
    ({"node_exporter_listen_address": "9100"}, "node_exporter_listen_address"),
])
def test_invalid_variables_fail_before_any_change(host, extra, names):
    before = state(host)
    run = run_playbook("converge.yml", limit=TARGET, extra=extra)
    assert run.returncode != 0
    assert names in run.output, run.output[-2000:]
    assert not re.search(r"^changed:", run.output, re.M), run.output[-2000:]
    assert state(host) == before


def test_checksum_mismatch_shows_both_hashes_and_installs_nothing(host, tmp_path):
    before = state(host)
    wrong = "0" * 64
    version = previous_version("node_exporter")
    run = run_playbook("converge.yml", limit=TARGET, extra={
        "node_exporter_version": version,
        "node_exporter_checksums": {version: {"amd64": wrong}},
        "stack_artifact_cache": str(tmp_path)})
    assert run.returncode != 0
    match = re.search(rf"checksum mismatch for node_exporter-{re.escape(version)}\.linux-amd64\.tar\.gz "
                      r".*expected sha256 (\w+), got (\w+)", run.output)
    assert match, run.output[-2000:]
    assert match.group(1) == wrong and re.fullmatch(r"[0-9a-f]{64}", match.group(2)) and match.group(2) != wrong
    assert state(host) == before
    assert not list(tmp_path.rglob("*.tar.gz")), "a rejected archive must not stay in the cache"


def test_unreachable_source_names_url_and_offline_options(host, tmp_path):
    before = state(host)
    run = run_playbook("converge.yml", limit=TARGET, extra={
        "node_exporter_version": "1.9.99",
        "stack_artifact_mirror": "http://127.0.0.1:9",
        "stack_artifact_cache": str(tmp_path)})
    assert run.returncode != 0
    assert "http://127.0.0.1:9/github.com/prometheus/node_exporter/releases/download/v1.9.99/" in run.output
    assert "stack_artifact_dir" in run.output and "stack_artifact_mirror" in run.output
    assert state(host) == before


def test_second_host_untouched_by_first_hosts_failures():
    other = [n for n in host_names() if n != TARGET]
    for name in other:
        assert get_host(name).service("node_exporter").is_running
