"""Host-side modules: unpacking, config staging/validation, restart detection."""
import io
import os
import shutil
import subprocess
import tarfile
import time
import types
import zipfile

import pytest


def tar_with(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))


def test_unpack_strips_top_dir_and_refuses_escapes(installer, tmp_path):
    archive = tmp_path / "a.tar.gz"
    tar_with(archive, {"top/bin": b"x", "top/../../evil": b"x", "/abs": b"x", "other/skip": b"x"})
    dest = tmp_path / "dest"
    dest.mkdir()
    installer.unpack(str(archive), "tar.gz", "top", {}, str(dest))
    assert sorted(os.listdir(dest)) == ["bin"]
    assert not (tmp_path / "evil").exists()


def test_unpack_zip_renames_flat_member(installer, tmp_path):
    archive = tmp_path / "loki.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("loki-linux-amd64")
        info.external_attr = 0o755 << 16
        zf.writestr(info, b"#!/bin/sh\n")
    dest = tmp_path / "dest"
    dest.mkdir()
    installer.unpack(str(archive), "zip", "", {"loki-linux-amd64": "loki"}, str(dest))
    assert os.access(dest / "loki", os.X_OK)


def test_release_counts_as_installed_only_with_matching_marker(installer, tmp_path):
    release = tmp_path / "1.0-linux-amd64"
    release.mkdir()
    (release / "bin").write_text("x")
    assert not installer.release_installed(str(release), None, {"bin": "bin"})
    (release / installer.MARKER).write_text('{"sha256": "aa"}')
    assert installer.release_installed(str(release), None, {"bin": "bin"})
    assert installer.release_installed(str(release), "aa", {"bin": "bin"})
    assert not installer.release_installed(str(release), "bb", {"bin": "bin"})
    assert not installer.release_installed(str(release), "aa", {"bin": "bin", "tool": "tool"})


def files(root, **contents):
    return [{"dest": str(root / name), "content": text, "owner": "root", "group": "root", "mode": "0644"}
            for name, text in contents.items()]


def test_rejected_config_leaves_live_files_untouched(config_writer, tmp_path):
    root = tmp_path / "etc"
    root.mkdir()
    (root / "main.conf").write_text("good\n")
    (root / "stale.rules").write_text("old\n")
    writes, removals = config_writer.plan(files(root, **{"main.conf": "bad\n"}), {}, [str(root)])
    assert [w["dest"] for w in writes] == [str(root / "main.conf")] and removals == [str(root / "stale.rules")]
    rc, output = config_writer.validate(str(root), "sh -c 'grep -q good {root}/main.conf || { echo rejected: {root}; exit 1; }'",
                                        writes, removals)
    assert rc == 1 and output == f"rejected: {root}", "validator output names the live path, not the staging copy"
    assert (root / "main.conf").read_text() == "good\n" and (root / "stale.rules").exists()
    assert not any(p.name.endswith(".staging") for p in tmp_path.iterdir())


def test_validator_sees_the_whole_new_tree(config_writer, tmp_path):
    root = tmp_path / "etc"
    (root / "rules").mkdir(parents=True)
    (root / "rules" / "gone.yml").write_text("x")
    writes, removals = config_writer.plan(files(root, **{"main.conf": "good\n", "rules/new.yml": "y"}), {},
                                          [str(root / "rules")])
    rc, output = config_writer.validate(str(root), "sh -c 'ls {root}/rules'", writes, removals)
    assert rc == 0 and output == "new.yml"


def test_unchanged_files_plan_nothing(config_writer, tmp_path):
    spec = files(tmp_path, **{"a.conf": "same\n"})
    (tmp_path / "a.conf").write_text("same\n")
    os.chmod(tmp_path / "a.conf", 0o644)
    assert config_writer.plan(spec, {}, []) == ([], [])


def test_diff_shows_before_and_after_but_never_a_secret(config_writer, tmp_path):
    (tmp_path / "main.conf").write_text("interval: 15s\n")
    (tmp_path / "password").write_text("old-secret")
    (tmp_path / "stale.yml").write_text("x")
    spec = files(tmp_path, **{"main.conf": "interval: 30s\n", "password": "ignored", "new.conf": "n\n"})
    writes, removals = config_writer.plan(spec, {str(tmp_path / "password"): "new-secret"}, [str(tmp_path)])
    diff = {d["before_header"]: d for d in config_writer.diffs(writes, removals)}
    assert diff[str(tmp_path / "main.conf")]["before"] == "interval: 15s\n"
    assert diff[str(tmp_path / "main.conf")]["after"] == "interval: 30s\n"
    assert diff[str(tmp_path / "new.conf")]["before"] == "" and diff[str(tmp_path / "new.conf")]["after"] == "n\n"
    assert "secret" not in repr(diff[str(tmp_path / "password")]).replace("(secret", "")
    assert diff[str(tmp_path / "stale.yml")]["after_header"].endswith("(removed)")


def test_binary_replaced_reads_the_running_executable(service, tmp_path):
    sleep = shutil.which("sleep")
    proc = subprocess.Popen([sleep, "30"])
    try:
        link = tmp_path / "sleep"
        link.symlink_to(os.path.realpath(sleep))
        assert not service.binary_replaced(proc.pid, str(link))
        other = tmp_path / "other"
        other.write_text("x")
        link.unlink()
        link.symlink_to(other)
        assert service.binary_replaced(proc.pid, str(link))
    finally:
        proc.kill()
        proc.wait()


def test_binary_replaced_falls_back_to_link_times_without_ptrace(service, tmp_path, monkeypatch):
    """Where /proc/<pid>/exe is unreadable, a link on the way to the binary that changed
    after the process started means a new release."""
    release = tmp_path / "1.0"
    release.mkdir()
    (release / "tool").write_text("x")
    (tmp_path / "current").symlink_to("1.0")
    link = tmp_path / "tool"
    link.symlink_to(tmp_path / "current" / "tool")
    assert len(service.symlink_mtimes(str(link))) == 2
    real_readlink = os.readlink

    def denied(path, *args, **kwargs):
        if str(path).startswith("/proc/"):
            raise PermissionError(path)
        return real_readlink(path, *args, **kwargs)
    monkeypatch.setattr(service.os, "readlink", denied)
    proc = subprocess.Popen(["sleep", "30"])
    try:
        assert abs(service.process_start(proc.pid) - time.time()) < 5
        past = time.time() - 3600
        for path in (link, tmp_path / "current"):
            os.utime(path, (past, past), follow_symlinks=False)
        assert not service.binary_replaced(proc.pid, str(link))
        future = time.time() + 60
        os.utime(tmp_path / "current", (future, future), follow_symlinks=False)
        assert service.binary_replaced(proc.pid, str(link))
    finally:
        proc.kill()
        proc.wait()


def test_a_changed_unit_restarts_even_after_another_services_daemon_reload(service, tmp_path, monkeypatch):
    """systemd's NeedDaemonReload is cleared by anyone's daemon-reload: site.yml's one pass
    configures all of a host's components before it switches them, so one service's
    daemon-reload hid the next one's new unit (the tls scenario: node_exporter kept serving
    HTTPS after stack_tls went off). A unit file or drop-in newer than the process restarts it."""
    unit, dropin = tmp_path / "node_exporter.service", tmp_path / "override.conf"
    unit.write_text("[Service]\n")
    dropin.write_text("[Service]\n")
    past, future = time.time() - 3600, time.time() + 60
    proc = subprocess.Popen(["sleep", "30"])
    state = {"LoadState": "loaded", "ActiveState": "active", "SubState": "running", "MainPID": str(proc.pid),
             "NRestarts": "0", "UnitFileState": "enabled", "NeedDaemonReload": "no", "ExecReload": "",
             "FragmentPath": str(unit), "DropInPaths": str(dropin)}
    monkeypatch.setattr(service, "show", lambda name: dict(state))
    params = {name: option.get("default") for name, option in service.ARGUMENT_SPEC.items()}
    params["name"] = "node_exporter"
    try:
        for path in (unit, dropin):
            os.utime(path, (past, past))
        assert service.run(params, check_mode=True)["actions"] == []
        os.utime(unit, (future, future))
        result = service.run(params, check_mode=True)
        assert result["actions"] == ["restart"] and result["restart_reason"] == "unit changed"
        os.utime(unit, (past, past))
        os.utime(dropin, (future, future))
        assert service.run(params, check_mode=True)["actions"] == ["restart"]
        # a unit that is not running starts, whatever its file's age
        state.update(ActiveState="inactive", MainPID="0")
        assert service.run(params, check_mode=True)["actions"] == ["start"]
    finally:
        proc.kill()
        proc.wait()


def test_readiness_probe_reports_refused_port(service):
    ok, detail, _ = service.probe("http://127.0.0.1:9/", None, None, None)
    assert not ok and detail


def test_metric_value_reads_the_exact_metric(service):
    text = "# HELP redis_up x\nredis_uptime_in_seconds 5\nredis_up 1\npg_up{server=\"a\"} 0\n"
    assert service.metric_value(text, "redis_up") == 1
    assert service.metric_value(text, "pg_up") == 0
    assert service.metric_value(text, "missing") is None


def test_check_mode_creates_no_user_group_or_directory(installer, tmp_path, monkeypatch):
    """--check on a host that lacks the service's user and directories reports the change and
    makes none of it (it used to run useradd and mkdir)."""
    ran = []
    monkeypatch.setattr(installer.subprocess, "run", lambda cmd, **kw: ran.append(cmd))
    assert installer.ensure_user("monstack-no-such-user", "monstack-no-such-group", "/nonexistent", [],
                                 check_mode=True) is True
    assert ran == []
    spec = {"path": str(tmp_path / "etc" / "thing"), "owner": "root", "group": "root", "mode": "0750"}
    assert installer.ensure_directory(spec, check_mode=True) is True
    assert not (tmp_path / "etc").exists()
    # an existing directory with the wanted owner and mode is no change
    (tmp_path / "etc" / "thing").mkdir(parents=True)
    os.chmod(tmp_path / "etc" / "thing", 0o750)
    assert installer.ensure_directory(spec, check_mode=True) is False
    # and one owned by a user the run would create is
    assert installer.ensure_directory(dict(spec, owner="monstack-no-such-user"), check_mode=True) is True


def test_check_mode_plans_files_of_a_user_not_created_yet_and_validates_nowhere_near_them(config_writer, tmp_path):
    """A fresh host in check mode: the files' owner does not exist yet (the install step would
    create it), the validator is not installed: the plan reports every file, writes nothing."""
    root = tmp_path / "etc" / "svc"
    p = {"files": [{"dest": str(root / "svc.yml"), "content": "a: 1\n", "owner": "root", "group": "monstack-no-such-group"}],
         "secrets": {}, "root": str(root), "validate": "/nonexistent/bin/svc --check {root}/svc.yml", "prune": [],
         "when_serving": None}
    result = config_writer.run(p, check_mode=True)
    assert result["changed"] and result["created"] == [str(root / "svc.yml")]
    assert "not validated" in result["validation"]
    assert not (tmp_path / "etc").exists()
    # a real run with a missing owner still fails, naming it
    with pytest.raises(config_writer.StepError):
        config_writer.run(p)


def test_a_pending_reload_is_done_by_the_next_service_step_and_then_cleared(service, tmp_path, monkeypatch):
    """The config changed in a run that stopped before its service step: the next run's service
    step sees no change of its own, reloads all the same, and clears what was pending."""
    monkeypatch.setattr(service, "PENDING_DIR", str(tmp_path / "pending"))
    state = {"LoadState": "loaded", "ActiveState": "active", "SubState": "running", "MainPID": "0",
             "NRestarts": "0", "UnitFileState": "enabled", "NeedDaemonReload": "no", "ExecReload": "/bin/kill -HUP",
             "FragmentPath": "", "DropInPaths": ""}
    monkeypatch.setattr(service, "show", lambda name: dict(state))
    calls = []
    monkeypatch.setattr(service, "systemctl", lambda *args, check=True: calls.append(args) or
                        types.SimpleNamespace(returncode=0, stdout="", stderr=""))
    monkeypatch.setattr(service, "wait_ready", lambda p, unit, before, result: (True, "HTTP 200"))
    params = {name: option.get("default") for name, option in service.ARGUMENT_SPEC.items()}
    params["name"] = "prometheus"
    assert service.run(params)["actions"] == []
    service.write_pending("prometheus", "reload", "config changed: prometheus.yml")
    predicted = service.run(params, check_mode=True)
    assert predicted["actions"] == ["reload"] and "prometheus.yml" in predicted["reload_reason"]
    assert service.read_pending("prometheus"), "check mode clears nothing"
    done = service.run(params)
    assert done["actions"] == ["reload"] and calls == [("reload", "prometheus.service")]
    assert service.read_pending("prometheus") is None
    assert service.run(params)["actions"] == []


def test_a_build_this_hosts_glibc_cannot_load_never_replaces_the_running_release(installer, tmp_path, monkeypatch):
    """Issue 36 item 8: Promtail 3.6.11 is a cgo build made on a newer glibc than Debian 12's
    2.36. The installer reads the GLIBC_x.y versions a binary requires (its .gnu.version_r) and
    refuses one the host's glibc lacks, before the swap, naming both versions."""
    import json
    needed = installer.glibc_needed(shutil.which("ls"))
    assert needed and needed >= (2, 2) and installer.glibc_needed(__file__) is None
    archive = tmp_path / "svc.tar.gz"
    with open(shutil.which("ls"), "rb") as handle:
        tar_with(archive, {"svc-2.0/svc": handle.read()})
    p = dict(component="svc", version="2.0", sha256={}, archive=str(archive), archive_sha256=installer.sha256_file(str(archive)),
             source="mirror", format="tar.gz", strip="svc-2.0", rename={}, links={"svc": "svc"}, requires={}, root=str(tmp_path / "opt"),
             bin_dir=str(tmp_path / "bin"), keep=2, user=None, group=None, home="/nonexistent", groups=[], directories=[])
    installed = tmp_path / "opt" / "svc" / f"1.0-linux-{installer.host_arch()}"
    installed.mkdir(parents=True)
    (installed / "svc").write_text("old")
    (installed / installer.MARKER).write_text(json.dumps({"sha256": "x"}))
    (tmp_path / "opt" / "svc" / "current").symlink_to(installed.name)
    monkeypatch.setattr(installer, "host_glibc", lambda: (needed[0], needed[1] - 1))
    with pytest.raises(installer.StepError) as failure:
        installer.run(p)
    assert f"svc 2.0 cannot run here: svc needs glibc {needed[0]}.{needed[1]}" in str(failure.value)
    assert os.readlink(tmp_path / "opt" / "svc" / "current") == installed.name
    assert sorted(os.listdir(tmp_path / "opt" / "svc")) == ["1.0-linux-" + installer.host_arch(), "current"]
    # on a host with that glibc it installs
    monkeypatch.setattr(installer, "host_glibc", lambda: needed)
    assert installer.run(p)["switched_release"] is True


def test_a_release_lacking_a_required_file_is_not_switched_to(installer, tmp_path, artifacts):
    """Issue 36 item 10: Grafana 13.2 loads its Prometheus, Loki and Jaeger datasources from
    data/plugins-bundled, which 13.2.0/13.2.1 broke; the catalog's `requires` (from 13.2.0 on)
    makes the installer refuse a release without them before the swap."""
    import yaml
    from pathlib import Path
    catalog = yaml.safe_load((Path(__file__).resolve().parents[2] / "roles/stack/vars/main.yml").read_text())["stack_catalog"]
    requires = artifacts.required_files(catalog["grafana"]["requires"], "13.2.3")
    assert sorted(requires) == [f"data/plugins-bundled/{p}/plugin.json" for p in ("jaeger", "loki", "prometheus")]
    assert artifacts.required_files(catalog["grafana"]["requires"], "12.4.3") == {}
    archive = tmp_path / "g.tar.gz"
    tar_with(archive, {"grafana-13.2.3/bin/grafana": b"#!/bin/sh\n",
                       "grafana-13.2.3/data/plugins-bundled/prometheus/plugin.json": b"{}"})
    p = dict(component="grafana", version="13.2.3", sha256={}, archive=str(archive), archive_sha256=installer.sha256_file(str(archive)),
             source="mirror", format="tar.gz", strip="grafana-13.2.3", rename={}, links={"grafana": "bin/grafana"},
             requires=requires, root=str(tmp_path / "opt"), bin_dir=str(tmp_path / "bin"), keep=2, user=None, group=None,
             home="/nonexistent", groups=[], directories=[])
    with pytest.raises(installer.StepError) as failure:
        installer.run(p)
    assert "lacks data/plugins-bundled/jaeger/plugin.json (the Jaeger datasource plugin" in str(failure.value)
    assert "the installed release stays" in str(failure.value)
    assert not (tmp_path / "opt" / "grafana" / "current").exists()
