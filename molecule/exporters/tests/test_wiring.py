"""Prometheus scrapes every exporter through the inventory groups; a wrong password marks
only its own target down, the play says which; stopping a server fires its alert."""
import json
import urllib.parse

from conftest import get_host, host_names, run_playbook, wait_for

MON = host_names("prometheus")[0] if host_names("prometheus") else None
testinfra_hosts = [f"podman://{MON}"] if MON else []


def query(host, expr):
    out = host.check_output(
        f"curl -fsS --noproxy '*' 'http://127.0.0.1:9090/api/v1/query?{urllib.parse.urlencode({'query': expr})}'")
    return {r["metric"].get("instance"): float(r["value"][1]) for r in json.loads(out)["data"]["result"]}


def test_both_exporters_of_every_database_host_are_scraped(host):
    def seen():
        pg, redis = query(host, 'pg_up{job="postgres"}'), query(host, 'redis_up{job="redis"}')
        return all(pg.get(f"{n}:9187") == 1 and redis.get(f"{n}:9121") == 1 for n in host_names("databases")) and (pg, redis)
    assert wait_for(seen), (query(host, "pg_up"), query(host, "redis_up"))


def test_probed_targets_are_their_own_instances(host):
    assert wait_for(lambda: query(host, 'pg_up{job="postgres"}').get("db12:5432/postgres") == 0), \
        "the probe with the wrong password should be a target of its own, down"
    assert wait_for(lambda: query(host, 'redis_up{job="redis"}').get("redis://monitor@localhost:6379") == 1)


def test_a_wrong_password_fires_the_alert_for_that_server_only(host):
    def firing():
        out = json.loads(host.check_output("curl -fsS --noproxy '*' http://127.0.0.1:9090/api/v1/alerts"))
        return {a["labels"].get("instance") for a in out["data"]["alerts"]
                if a["labels"]["alertname"] == "PostgresqlDown" and a["state"] == "firing"}
    assert wait_for(lambda: "db12:5432/postgres" in firing(), timeout=60), firing()
    assert not {f"{n}:9187" for n in host_names("databases")} & firing(), "the servers it can log in to stay quiet"


def test_the_play_names_the_server_it_cannot_log_in_to(host):
    run = run_playbook("converge.yml", limit=host_names("secured")[0])
    assert run.returncode == 0, run.output[-3000:]
    assert f"postgres_exporter on {host_names('secured')[0]} runs, but db12-wrong-password (db12:5432/postgres): pg_up is 0, expected 1" \
        in " ".join(run.output.split()), run.output[-3000:]


def test_stopping_the_servers_fires_their_alerts(host):
    victim = get_host(host_names("databases")[0])
    victim.check_output("systemctl stop postgresql redis-server")
    try:
        def firing():
            out = json.loads(host.check_output("curl -fsS --noproxy '*' http://127.0.0.1:9090/api/v1/alerts"))
            return {(a["labels"]["alertname"], a["labels"].get("instance")) for a in out["data"]["alerts"]
                    if a["state"] == "firing"}
        expected = {("PostgresqlDown", f"{victim.backend.name}:9187"), ("RedisDown", f"{victim.backend.name}:9121")}
        assert wait_for(lambda: expected <= firing(), timeout=90), firing()
    finally:
        victim.run("systemctl start postgresql redis-server")
