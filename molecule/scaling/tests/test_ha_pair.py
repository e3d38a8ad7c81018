"""A Prometheus HA pair writing to one VictoriaMetrics (real binaries): both replicas scrape
the same targets under their own replica label, the store keeps one deduplicated series,
Alertmanager gets one alert from the pair, and a replica going down loses no samples."""
import json
import time
import urllib.parse

from conftest import get_host, host_names, http_json, wait_for

PROMS = host_names("prometheus")
STORE = host_names("victoriametrics")[0] if host_names("victoriametrics") else None
testinfra_hosts = [f"podman://{STORE}"] if STORE else []
INTERVAL = 5  # prometheus_scrape_interval of the scenario
SERIES = 'up{job="node",instance="vm1:9100"}'


def vm(host, path, **params):
    return http_json(host, f"http://127.0.0.1:8428{path}", **params)


def export(host, selector, start, end):
    """Raw samples of every series matching selector between start and end: [(labels, [ts])]."""
    out = host.check_output(f"curl -fsS --noproxy '*' 'http://127.0.0.1:8428/api/v1/export?"
                            f"{urllib.parse.urlencode({'match[]': selector, 'start': int(start), 'end': int(end)})}'")
    return [(line["metric"], [t / 1000 for t in line["timestamps"]]) for line in map(json.loads, out.splitlines())]


def test_both_replicas_scrape_every_target_under_their_own_replica_label():
    assert len(PROMS) == 2
    seen = {}
    for name in PROMS:
        prom = get_host(name)
        config = http_json(prom, "http://127.0.0.1:9090/api/v1/status/config")["data"]["yaml"]
        assert f"replica: {name}" in config
        targets = http_json(prom, "http://127.0.0.1:9090/api/v1/targets", state="active")["data"]["activeTargets"]
        seen[name] = {(t["labels"]["job"], t["labels"]["instance"]) for t in targets}
    assert seen[PROMS[0]] == seen[PROMS[1]] and len(seen[PROMS[0]]) >= 10


def test_a_series_both_replicas_scrape_is_one_deduplicated_series_in_victoriametrics(host):
    found = wait_for(lambda: vm(host, "/api/v1/query", query=SERIES)["data"]["result"], timeout=90)
    assert found, f"{SERIES} never reached VictoriaMetrics"
    assert len(found) == 1 and "replica" not in found[0]["metric"], found
    # both replicas write: each remote-write queue has sent samples
    for name in PROMS:
        sent = http_json(get_host(name), "http://127.0.0.1:9090/api/v1/query",
                   query="sum(prometheus_remote_storage_samples_total) or sum(prometheus_remote_storage_succeeded_samples_total)")
        assert float(sent["data"]["result"][0]["value"][1]) > 0, f"{name} has sent nothing"
    # two writers, but one sample per scrape interval once deduplicated at query time
    time.sleep(4 * INTERVAL)
    count = vm(host, "/api/v1/query", query=f"count_over_time({SERIES}[60s])")["data"]["result"]
    assert count and float(count[0]["value"][1]) <= 60 / INTERVAL + 2, count


def test_the_alertmanager_gets_one_watchdog_from_the_pair():
    alertmanager = get_host(host_names("alertmanager")[0])

    def watchdogs():
        alerts = http_json(alertmanager, "http://127.0.0.1:9093/api/v2/alerts", filter='alertname="Watchdog"')
        return alerts if alerts else None

    alerts = wait_for(watchdogs, timeout=90)
    assert alerts, "no Watchdog reached Alertmanager"
    time.sleep(3 * INTERVAL)  # both replicas have sent theirs by now
    alerts = watchdogs()
    assert len(alerts) == 1 and "replica" not in alerts[0]["labels"], alerts


def test_one_replica_stopping_loses_no_samples_in_victoriametrics(host):
    second = get_host(PROMS[1])
    start = time.time()
    second.check_output("systemctl stop prometheus")
    try:
        time.sleep(8 * INTERVAL)
    finally:
        second.check_output("systemctl start prometheus")
    end = time.time()
    time.sleep(3 * INTERVAL)
    series = export(host, SERIES, start - 2 * INTERVAL, end)
    assert len(series) == 1, series
    stamps = sorted(series[0][1])
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert stamps and stamps[0] <= start and stamps[-1] >= end - 2 * INTERVAL, (start, end, stamps)
    assert max(gaps) <= 2 * INTERVAL + 1, f"samples missing while {PROMS[1]} was down: largest gap {max(gaps):.1f}s"
