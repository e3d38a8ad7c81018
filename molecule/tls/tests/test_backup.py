"""Backup and restore (issue 37) on the TLS stack, every call through the services' own APIs with
the stack's CA and logins: Prometheus (a TSDB snapshot), Alertmanager (a silence, on a two-member
cluster), VictoriaMetrics (vmbackup/vmrestore, real from Debian), Grafana (its database and
secret key) and Loki (its data directory) are backed up while they run; their data is wiped as
on a new host (data directories emptied, Grafana's database gone and a secret key of its own);
restore.yml brings back the same series, the silence, the samples, the dashboard, the key and
the files.

Grafana and Loki are STAND-INS offline: for them the test shows their files come back (Grafana's
database is a real sqlite file in the stand-in too); with real archives Grafana's dashboard goes
through its API and a log line pushed to Loki is read back. Runs before test_tls.py, on the
freshly converged stack."""
import json
import os
import pathlib
import re
import time
import urllib.parse

from conftest import expected_version, get_host, hostvars, is_standin, run_playbook, wait_for

MON, AM2, SCAN = "tls-mon", "tls-am2", "tls-scan"
PKI = pathlib.Path(hostvars(MON)["stack_tls_dir"]) if os.environ.get("MOLECULE_INVENTORY_FILE") else None
BACKUPS = pathlib.Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp")) / "backups"
USER = "monstack"
COMMENT = "kept across a restore (test_backup.py)"
# what each host keeps, and where: wiped between the backup and the restore
DATA = {MON: {"prometheus": "/var/lib/prometheus", "alertmanager": "/var/lib/alertmanager"},
        AM2: {"alertmanager": "/var/lib/alertmanager"},
        SCAN: {"victoriametrics": "/var/lib/victoriametrics", "loki": "/var/lib/loki", "grafana": "/var/lib/grafana"}}


def password(component):
    return (PKI / "passwords" / component).read_text().strip()


def https(name, port, path, login, method="GET", data=None, **params):
    """An API on its own host over verified TLS, with login (curl's options: a password or a
    client certificate); JSON in and out."""
    query = ("?" + urllib.parse.urlencode(params)) if params else ""
    body = f"--data-binary {json.dumps(data)!r} -H 'Content-Type: application/json'" if data is not None else ""
    out = get_host(name).check_output(f"curl -fsS -X {method} {login} {body} 'https://{name}:{port}{path}{query}'")
    return json.loads(out) if out.strip() else None


def call(name, component, port, path, method="GET", data=None, **params):
    """The service's API with the stack's CA and login."""
    return https(name, port, path, f"--cacert /etc/{component}/ca.crt -u {USER}:{password(component)}", method, data, **params)


def query(name, component, port, expr, at):
    """A PromQL query's result at a moment, comparable across runs."""
    return sorted((json.dumps(r["metric"], sort_keys=True), r["value"][1])
                  for r in call(name, component, port, "/api/v1/query", query=expr, time=at)["data"]["result"])


def prometheus(expr, at):
    return query(MON, "prometheus", 9090, expr, at)


def victoriametrics(expr, at):
    return query(SCAN, "victoriametrics", 8428, expr, at)


def silences(name):
    return [s for s in call(name, "alertmanager", 9093, "/api/v2/silences")
            if s["comment"] == COMMENT and s["status"]["state"] == "active"]


def grafana_dashboards(standin):
    scan = get_host(SCAN)
    if standin:
        return scan.check_output("runuser -u grafana -- python3 -c \"import sqlite3; print([r[0] for r in "
                                 "sqlite3.connect('/var/lib/grafana/grafana.db').execute('SELECT uid FROM dashboard')])\"")
    found = scan.run(f"curl -fsS --cacert /etc/grafana/secrets/ca.crt -u admin:molecule-admin "
                     f"https://{SCAN}:3000/api/dashboards/uid/kept-by-backup")
    return "['kept-by-backup']" if found.rc == 0 else "[]"


def loki(path, method="GET", data=None, **params):
    """Loki's API on tls-scan with the host's client certificate (Loki takes no password)."""
    return https(SCAN, 3100, path, "--cacert /etc/loki/ca.crt --cert /etc/loki/tls.crt --key /etc/loki/tls.key",
                 method, data, **params)


def log_lines(since_ns):
    found = loki("/loki/api/v1/query_range", query='{job="backup-test"}', start=since_ns, limit=10)
    return [v[1] for stream in found["data"]["result"] for v in stream["values"]]


def work_left(host):
    """What backup.yml left in its working directory on host."""
    work = host.file("/var/lib/monstack/backup")
    return work.listdir() if work.exists else []


def answered(predicate):
    """predicate(), or False while the service does not answer yet (it is starting)."""
    try:
        return predicate()
    except AssertionError:
        return False


def wipe():
    """Every component's data gone, as on a new host (both Alertmanagers at once: a member that
    kept its silences would gossip them back)."""
    for name, components in DATA.items():
        get_host(name).check_output(f"systemctl stop {' '.join(components)}")
    for name, components in DATA.items():
        for component, path in components.items():
            target = f"{path}/grafana.db" if component == "grafana" else f"{path}/*"
            get_host(name).check_output(f"rm -rf {target}")
    # a new host's Grafana makes a secret key of its own
    get_host(SCAN).check_output("head -c 32 /dev/urandom | base64 > /etc/grafana/secrets/secret_key")
    for name, components in DATA.items():
        get_host(name).check_output(f"systemctl start {' '.join(components)}")


def test_a_backup_made_while_the_stack_runs_brings_its_data_back_after_a_wipe():
    mon, scan = get_host(MON), get_host(SCAN)
    grafana_standin = is_standin(scan, "grafana", "-v")
    # what must come back: series up to a moment every scrape before it has been written
    at = time.time() - 15
    series_expr, vm_expr = 'count_over_time(up{job="prometheus"}[2m])', 'count_over_time(up{job="node"}[2m])'
    assert wait_for(lambda: prometheus(series_expr, at), timeout=60), "Prometheus should hold samples to back up"
    series = prometheus(series_expr, at)
    now_ms = int(time.time() * 1000)
    scan.check_output(f"curl -fsS --cacert /etc/victoriametrics/ca.crt -u {USER}:{password('victoriametrics')} "
                      f"--data-binary 'backup_marker{{case=\"restore\"}} 42 {now_ms}' "
                      f"https://{SCAN}:8428/api/v1/import/prometheus")
    assert wait_for(lambda: victoriametrics("backup_marker", now_ms / 1000), timeout=30), "the marker sample should be stored"
    stored = victoriametrics(vm_expr, at)
    call(MON, "alertmanager", 9093, "/api/v2/silences", method="POST", data={
        "matchers": [{"name": "alertname", "value": "KeptAcrossRestore", "isRegex": False, "isEqual": True}],
        "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600)),
        "createdBy": "test", "comment": COMMENT})
    assert wait_for(lambda: silences(AM2), timeout=30), "the silence should have reached the other member"
    if grafana_standin:
        scan.check_output("runuser -u grafana -- python3 -c \"import sqlite3; db = sqlite3.connect('/var/lib/grafana/grafana.db'); "
                          "db.execute(\\\"INSERT OR REPLACE INTO dashboard (uid, title, data) VALUES ('kept-by-backup', 'Kept', '{}')\\\"); "
                          "db.commit()\"")
    else:
        scan.check_output(f"curl -fsS --cacert /etc/grafana/secrets/ca.crt -u admin:molecule-admin -H 'Content-Type: application/json' "
                          f"--data '{{\"dashboard\": {{\"uid\": \"kept-by-backup\", \"title\": \"Kept\"}}}}' "
                          f"https://{SCAN}:3000/api/dashboards/db")
    scan.check_output("runuser -u loki -- sh -c 'echo kept > /var/lib/loki/kept-by-backup'")
    secret_key = scan.file("/etc/grafana/secrets/secret_key").content_string
    loki_standin = is_standin(scan, "loki")
    if not loki_standin:
        since = time.time_ns() - 10**9
        loki("/loki/api/v1/push", method="POST", data={"streams": [{"stream": {"job": "backup-test"},
                                                                     "values": [[str(time.time_ns()), "kept by the backup"]]}]})
        assert wait_for(lambda: log_lines(since), timeout=30), "Loki should hold the line to back up"

    # check mode: what it would back up, nothing written anywhere
    checked = run_playbook("../../playbooks/backup.yml", "--check", limit=MON, extra={"backup_dir": str(BACKUPS)})
    assert checked.returncode == 0, checked.output[-3000:]
    said = checked.output.split("TASK [Say what this host backs up and where to]")[-1].split("TASK [")[0]
    assert re.search(r"prometheus, alertmanager\s+->\s+the controller", said), said
    assert not BACKUPS.exists() and not work_left(mon)

    first = run_playbook("../../playbooks/backup.yml", extra={"backup_dir": str(BACKUPS)})
    assert first.returncode == 0, first.output[-3000:]
    stamps = {host.name: next(host.iterdir()).name for host in BACKUPS.iterdir()}
    made = {host.name: sorted(p.name for p in next(host.iterdir()).iterdir()) for host in BACKUPS.iterdir()}
    assert made == {MON: ["alertmanager.tar.gz", "manifest.json", "prometheus.tar.gz"],
                    AM2: ["alertmanager.tar.gz", "manifest.json"],
                    SCAN: ["grafana.tar.gz", "loki.tar.gz", "manifest.json", "victoriametrics.tar.gz"]}
    assert all(oct((BACKUPS / name).stat().st_mode & 0o777) == "0o700" for name in made), "Grafana's archive holds its secrets"
    assert not work_left(mon), "the archives are removed from the host once fetched"
    # the snapshot is gone from Prometheus's data directory once packed
    assert not mon.file("/var/lib/prometheus/snapshots").exists or not mon.file("/var/lib/prometheus/snapshots").listdir()

    wipe()
    assert wait_for(lambda: answered(lambda: prometheus(series_expr, at) == []), timeout=60), "the wipe should have emptied Prometheus"
    assert wait_for(lambda: answered(lambda: silences(MON) == [] and silences(AM2) == []), timeout=60)
    assert "kept-by-backup" not in grafana_dashboards(grafana_standin)
    assert not scan.file("/var/lib/loki/kept-by-backup").exists

    restored = run_playbook("../../playbooks/restore.yml", extra={"backup_dir": str(BACKUPS)})
    assert restored.returncode == 0, restored.output[-3000:]
    assert prometheus(series_expr, at) == series, "the same series should answer the same query"
    assert wait_for(lambda: victoriametrics("backup_marker", now_ms / 1000), timeout=30), "VictoriaMetrics lost the sample"
    assert victoriametrics("backup_marker", now_ms / 1000)[0][1] == "42"
    assert victoriametrics(vm_expr, at) == stored
    # one silence, restored on one member and gossiped to the other
    assert wait_for(lambda: len(silences(MON)) == 1 and len(silences(AM2)) == 1, timeout=30), \
        (silences(MON), silences(AM2))
    assert "kept-by-backup" in grafana_dashboards(grafana_standin)
    assert scan.file("/var/lib/loki/kept-by-backup").user == "loki"
    assert scan.file("/etc/grafana/secrets/secret_key").content_string == secret_key, \
        "the key that decrypts the datasource secrets in the database comes back with it"
    if not loki_standin:
        assert wait_for(lambda: answered(lambda: log_lines(since) == ["kept by the backup"]), timeout=60), "Loki lost the line"
    # what the restore replaced stays beside it
    assert mon.file("/var/lib/prometheus.before-restore").is_directory
    assert scan.file("/var/lib/grafana/grafana.db.before-restore").exists

    # kept on the host instead, with a retention of one: an older complete backup there goes
    am2 = get_host(AM2)
    older = "/var/backups/monstack/tls-am2/20200101T000000Z"
    am2.check_output(f"mkdir -p {older} && echo {{}} > {older}/manifest.json")
    on_host = run_playbook("../../playbooks/backup.yml", limit=AM2,
                           extra={"backup_to": "host", "backup_keep": 1, "backup_components": ["alertmanager"]})
    assert on_host.returncode == 0, on_host.output[-3000:]
    kept = am2.file("/var/backups/monstack/tls-am2").listdir()
    assert len(kept) == 1 and kept[0] > stamps[AM2], kept
    assert sorted(am2.file(f"/var/backups/monstack/tls-am2/{kept[0]}").listdir()) == ["alertmanager.tar.gz", "manifest.json"]
    assert oct(am2.file("/var/backups/monstack/tls-am2").mode) == "0o700"
    # and restore finds it there (check mode: it says what it would restore), naming a release
    # other than the host's (the manifest edited as if an older Alertmanager had made it)
    manifest = f"/var/backups/monstack/tls-am2/{kept[0]}/manifest.json"
    am2.check_output(f"sed -i 's/\"alertmanager\": \"[^\"]*\"/\"alertmanager\": \"0.27.0\"/' {manifest}")
    checked = run_playbook("../../playbooks/restore.yml", "--check", limit=AM2, extra={"backup_to": "host"})
    assert checked.returncode == 0, checked.output[-3000:]
    running = expected_version("alertmanager")
    said = f"alertmanager (backed up on 0.27.0; this host runs {running}) from this host: /var/backups/monstack/tls-am2/{kept[0]}"
    assert said in checked.output, checked.output[-2000:]
