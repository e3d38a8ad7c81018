"""Backup and restore (issue 37): an online copy of Grafana's sqlite database, the silences a
restore posts again, the backups a retention count drops, and the playbooks' wiring."""
import pathlib
import sqlite3
import threading

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def backup():
    from ansible_collections.monstack.observability.plugins.module_utils import stack_backup
    return stack_backup


@pytest.fixture(scope="module")
def sqlite_backup():
    from ansible_collections.monstack.observability.plugins.module_utils import stack_sqlite_backup
    return stack_sqlite_backup


def test_the_database_copy_holds_every_committed_row_while_another_connection_writes(sqlite_backup, tmp_path):
    live = tmp_path / "grafana.db"
    with sqlite3.connect(live) as db:
        db.execute("CREATE TABLE dashboard (uid TEXT)")
        db.executemany("INSERT INTO dashboard VALUES (?)", [(f"d{i}",) for i in range(500)])
    stop = threading.Event()

    def write():
        writer = sqlite3.connect(live, timeout=30)
        n = 0
        while not stop.is_set():
            writer.execute("INSERT INTO dashboard VALUES (?)", (f"w{n}",))
            writer.commit()
            n += 1
        writer.close()
    thread = threading.Thread(target=write)
    thread.start()
    try:
        size = sqlite_backup.sqlite_copy(str(live), str(tmp_path / "copy.db"))
    finally:
        stop.set()
        thread.join()
    assert size > 0 and oct((tmp_path / "copy.db").stat().st_mode & 0o777) == "0o600"
    with sqlite3.connect(tmp_path / "copy.db") as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        uids = {row[0] for row in copy.execute("SELECT uid FROM dashboard")}
    assert {f"d{i}" for i in range(500)} <= uids
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".backup-")], "no partial copy left"


def test_a_missing_database_is_named(sqlite_backup, tmp_path):
    with pytest.raises(sqlite_backup.BackupError, match="no such database file"):
        sqlite_backup.sqlite_copy(str(tmp_path / "absent.db"), str(tmp_path / "copy.db"))


def silence(comment, ends, state="active", starts="2026-12-07T09:00:00.000Z", **extra):
    return dict({"id": f"id-{comment}", "matchers": [{"name": "alertname", "value": "X", "isRegex": False, "isEqual": True}],
                 "startsAt": starts, "endsAt": ends, "createdBy": "ops", "comment": comment,
                 "status": {"state": state}}, **extra)


def test_the_silences_restored_are_those_not_expired_without_id_starting_now_at_the_earliest(backup):
    now = "2026-12-07T10:00:00.123456789Z"
    saved = [silence("running", "2026-12-07T12:00:00Z"),
             silence("over", "2026-12-07T09:30:00Z", state="expired"),
             silence("ended meanwhile", "2026-12-07T09:59:59.999Z"),
             silence("later", "2026-12-08T00:00:00Z", state="pending", starts="2026-12-07T20:00:00Z")]
    out = backup.silences_to_restore(saved, [], now)
    assert [s["comment"] for s in out] == ["running", "later"]
    assert all("id" not in s and "status" not in s for s in out), "an id Alertmanager does not know is refused"
    assert out[0]["startsAt"] == "2026-12-07T10:00:00.123456Z", "a silence cannot start in the past"
    assert out[1]["startsAt"] == "2026-12-07T20:00:00.000000Z", "a future start is kept"


def test_a_silence_the_cluster_holds_already_is_not_posted_twice(backup):
    saved = [silence("running", "2026-12-07T12:00:00Z")]
    # the cluster gossiped it back with another id, its end in another precision
    live = [silence("running", "2026-12-07T12:00:00.000Z", id="other")]
    assert backup.silences_to_restore(saved, live, "2026-12-07T10:00:00Z") == []
    expired = [silence("running", "2026-12-07T12:00:00Z", state="expired")]
    assert len(backup.silences_to_restore(saved, expired, "2026-12-07T10:00:00Z")) == 1


def test_the_retention_drops_the_oldest_beyond_the_count(backup):
    paths = ["/b/mon/20261207T101500Z", "/b/mon/20261205T000000Z", "/b/mon/20261206T235959Z"]
    assert backup.backups_to_drop(paths, 2) == ["/b/mon/20261205T000000Z"]
    assert backup.backups_to_drop(paths, 7) == []
    with pytest.raises(backup.BackupError, match="backup_keep must be at least 1"):
        backup.backups_to_drop(paths, 0)


def test_every_component_the_playbooks_back_up_has_its_task_files():
    shared = yaml.safe_load((ROOT / "playbooks/vars/backup.yml").read_text())
    for playbook in ("backup.yml", "restore.yml"):
        play = yaml.safe_load((ROOT / "playbooks" / playbook).read_text())[1]
        assert "vars/backup.yml" in play["vars_files"], f"{playbook} derives its paths and components as the other does"
    supported = shared["_backup_supported"]
    assert set(shared["_backup_versions"]) == set(supported)
    for component in supported:
        assert (ROOT / "playbooks/tasks/backup" / f"{component}.yml").is_file(), component
        assert (ROOT / "playbooks/tasks/restore" / f"{component}.yml").is_file(), component


def test_vmutils_is_pinned_like_a_release_of_its_own():
    catalog = yaml.safe_load((ROOT / "roles/stack/vars/main.yml").read_text())["stack_catalog"]
    tools = catalog["vmutils"]
    assert tools["url"].endswith("/vmutils-linux-{arch}-v{version}.tar.gz")
    assert tools["checksums_url"].endswith("/vmutils-linux-{arch}-v{version}_checksums.txt")
    assert tools["links"] == {"vmbackup": "vmbackup-prod", "vmrestore": "vmrestore-prod"}
