"""Loki: mechanics on the stand-in (user, files, unit, health wait, validation hook, schema
guard), and logs travelling journal -> Promtail -> Loki when the real binaries are present."""
import json
import re
import time
import urllib.parse
import uuid

import pytest

from conftest import get_host, host_names, require_real, run_playbook, unit_pid

LOKI = host_names("loki")[0] if host_names("loki") else None
testinfra_hosts = [f"podman://{LOKI}"] if LOKI else []


def state(host):
    return unit_pid(host, "loki"), host.file("/etc/loki/config.yml").sha256sum


@pytest.mark.standin
def test_standin_loki_runs_as_its_own_user_and_answers_ready(host):
    assert host.service("loki").is_running and host.service("loki").is_enabled
    assert host.socket("tcp://0.0.0.0:3100").is_listening
    host.check_output("curl -fsS --noproxy '*' http://127.0.0.1:3100/ready")
    config, data = host.file("/etc/loki/config.yml"), host.file("/var/lib/loki")
    assert (config.user, config.group, config.mode) == ("root", "loki", 0o640)
    assert (data.user, data.group, data.mode) == ("loki", "loki", 0o750)
    unit = host.file("/etc/systemd/system/loki.service").content_string
    assert "User=loki" in unit and "ReadWritePaths=/var/lib/loki" in unit and "ProtectSystem=strict" in unit


@pytest.mark.standin
def test_standin_config_rejected_by_the_validator_changes_nothing(host):
    before = state(host)
    run = run_playbook("converge.yml", limit=LOKI, extra={"loki_config": {"server": "not-a-mapping"}})
    assert run.returncode != 0
    assert "the new configuration was rejected; the live one is unchanged" in run.output
    assert "server must be a mapping" in run.output, run.output[-2000:]
    assert state(host) == before


@pytest.mark.standin
def test_standin_an_edited_schema_period_is_refused_before_any_change(host):
    before = state(host)
    edited = [{"from": "2024-04-01", "store": "tsdb", "object_store": "filesystem", "schema": "v13",
               "index": {"prefix": "index_", "period": "48h"}}]
    run = run_playbook("converge.yml", limit=LOKI, extra={"loki_schema_configs": edited})
    assert run.returncode != 0
    assert "schema period from 2024-04-01 was edited" in run.output, run.output[-2000:]
    assert state(host) == before


@pytest.mark.standin
def test_standin_retention_without_a_delete_request_store_fails_in_preflight(host):
    before = state(host)
    run = run_playbook("converge.yml", limit=LOKI, extra={"loki_config": {"compactor": {"delete_request_store": ""}}})
    assert run.returncode != 0
    assert "without compactor.delete_request_store" in run.output, run.output[-2000:]
    assert not re.search(r"^changed:", run.output, re.M)
    assert state(host) == before


@pytest.mark.real
def test_real_a_journal_line_reaches_loki_through_promtail(host):
    require_real(host, "loki")
    app = get_host(host_names("promtail")[0])
    marker = f"monstack-{uuid.uuid4()}"
    app.check_output(f"logger -t monstack-test {marker}")
    query = urllib.parse.urlencode({"query": f'{{host="{app.backend.name}"}} |= "{marker}"', "limit": 5})
    deadline = time.time() + 60
    while True:
        out = json.loads(host.check_output(f"curl -fsS --noproxy '*' 'http://127.0.0.1:3100/loki/api/v1/query_range?{query}'"))
        lines = [v[1] for stream in out["data"]["result"] for v in stream["values"]]
        if any(marker in line for line in lines) or time.time() > deadline:
            break
        time.sleep(2)
    assert any(marker in line for line in lines), "the journal line never arrived in Loki"
