"""The same two Prometheus split into two shards (prometheus_shards: 2): each of six targets is
scraped by exactly one of them, and all six keep arriving in VictoriaMetrics. Runs after the
HA tests (file order); the scenario ends sharded."""
import json
import time
import urllib.parse

from conftest import get_host, host_names, http_json, run_playbook, wait_for

PROMS = host_names("prometheus")
STORE = host_names("victoriametrics")[0] if host_names("victoriametrics") else None
testinfra_hosts = [f"podman://{STORE}"] if STORE else []


def six(name):
    targets = http_json(get_host(name), "http://127.0.0.1:9090/api/v1/targets", state="active")["data"]["activeTargets"]
    return {t["labels"]["instance"] for t in targets if t["labels"]["job"] == "six"}


def test_a_shard_without_a_host_is_refused_before_any_change():
    before = [get_host(n).file("/etc/prometheus/prometheus.yml").sha256sum for n in PROMS]
    run = run_playbook("converge.yml", limit=",".join(PROMS), extra={"prometheus_shards": 3})
    assert run.returncode != 0
    assert "prometheus_shards is 3 but shard 2 has no host" in run.output, run.output[-2500:]
    assert [get_host(n).file("/etc/prometheus/prometheus.yml").sha256sum for n in PROMS] == before


def test_two_shards_scrape_each_of_six_targets_exactly_once(host):
    assert all(len(six(name)) == 6 for name in PROMS), "before sharding both replicas scrape all six"
    run = run_playbook("converge.yml", limit=",".join(PROMS), extra={"prometheus_shards": 2})
    assert run.returncode == 0, run.output[-3000:]
    switched = time.time()
    # the scrape manager applies a reloaded config within a few seconds
    def split():
        pair = six(PROMS[0]), six(PROMS[1])
        return pair if pair[0] and pair[1] and not pair[0] & pair[1] else None

    first, second = wait_for(split) or (six(PROMS[0]), six(PROMS[1]))
    assert first and second, (first, second)
    assert not first & second, f"scraped by both shards: {first & second}"
    assert len(first | second) == 6

    # every one of the six keeps arriving in the store, whichever shard scrapes it
    time.sleep(20)
    query = urllib.parse.urlencode({"match[]": 'up{job="six"}', "start": int(switched + 5)})
    lines = host.check_output(f"curl -fsS --noproxy '*' 'http://127.0.0.1:8428/api/v1/export?{query}'").splitlines()
    fresh = {json.loads(line)["metric"]["instance"] for line in lines if json.loads(line)["timestamps"]}
    assert fresh == first | second, fresh
