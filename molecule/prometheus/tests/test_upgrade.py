"""An older Prometheus (offline: Debian trixie's 2.53 build) deployed and ingesting, then upgraded
by the role (offline: to sid's 3.5): the samples written by the old one are still there to query."""
import json
import time
import urllib.parse

from conftest import expected_version, host_names, previous_version, run_playbook

TARGET = host_names("upgrade")[0] if host_names("upgrade") else None
testinfra_hosts = [f"podman://{TARGET}"] if TARGET else []
# offline: Debian trixie's 2.53 and sid's 3.5, whatever the mirror build produced
OLD, NEW = previous_version("prometheus"), expected_version("prometheus")


def api(host, path, **params):
    out = host.check_output(f"curl -fsS --noproxy '*' 'http://127.0.0.1:9090{path}?{urllib.parse.urlencode(params)}'")
    return json.loads(out)["data"]


def test_upgrade_keeps_the_samples(host):
    run = run_playbook("upgrade.yml", extra={"prometheus_version": OLD})
    assert run.returncode == 0, run.output[-3000:]
    assert api(host, "/api/v1/status/buildinfo")["version"].startswith(OLD)

    # wait until 2.53 has stored a few self-scrapes, then remember one moment of them
    deadline = time.time() + 60
    while True:
        result = api(host, "/api/v1/query", query=f'prometheus_build_info{{version=~"{OLD}.*"}}')["result"]
        if result or time.time() > deadline:
            break
        time.sleep(2)
    assert result, "2.53 never scraped itself"
    moment = float(result[0]["value"][0])

    run = run_playbook("upgrade.yml", extra={"prometheus_version": NEW})
    assert run.returncode == 0, run.output[-3000:]
    assert api(host, "/api/v1/status/buildinfo")["version"].startswith(NEW)
    assert host.file("/var/lib/prometheus/wal").is_directory
    before = api(host, "/api/v1/query", query=f'prometheus_build_info{{version=~"{OLD}.*"}}', time=moment)["result"]
    assert before and before[0]["value"][1] == "1", "samples written by 2.53 are gone after the upgrade"
    # and the new release is ingesting into the same TSDB
    deadline = time.time() + 60
    while not api(host, "/api/v1/query", query=f'prometheus_build_info{{version=~"{NEW}.*"}}')["result"]:
        assert time.time() < deadline, "3.5 does not ingest after the upgrade"
        time.sleep(2)
