"""A release, unit or config the service fails on comes back off (issue 37): the config step keeps
what it replaces, the install step the release current pointed at, and a service step that fails
puts both back, restarts, waits until ready and fails naming what it rolled back, the cause on
the first line. Nothing rolls back after a first deploy or a failed check of what it watches."""
import json
import os
import shutil
import tarfile

import pytest
from ansible_collections.monstack.observability.plugins.module_utils.stack_step import StepError


@pytest.fixture(scope="module")
def host():
    from ansible_collections.monstack.observability.plugins.module_utils import stack_component
    return stack_component


@pytest.fixture(scope="module")
def config():
    from ansible_collections.monstack.observability.plugins.module_utils import stack_config
    return stack_config


def test_a_config_change_keeps_what_it_replaced_and_restore_puts_it_back(config, tmp_path):
    live = tmp_path / "etc"
    live.mkdir()
    (live / "kept.yml").write_text("old\n")
    os.chmod(live / "kept.yml", 0o640)
    (live / "stray.yml").write_text("stray\n")
    files = [{"dest": str(live / "kept.yml"), "content": "new\n", "mode": "0600"},
             {"dest": str(live / "added.yml"), "content": "added\n"}]
    backup = tmp_path / "previous"
    p = {"files": files, "secrets": {}, "root": None, "validate": None, "prune": [str(live)], "when_serving": None,
         "backup_dir": str(backup)}
    result = config.run(p)
    assert result["backup"] == str(backup) and (live / "kept.yml").read_text() == "new\n"
    assert not (live / "stray.yml").exists() and oct(os.stat(backup).st_mode & 0o777) == "0o700"
    restored = config.restore(str(backup))
    assert sorted(os.path.basename(p) for p in restored) == ["added.yml", "kept.yml", "stray.yml"]
    assert (live / "kept.yml").read_text() == "old\n" and oct(os.stat(live / "kept.yml").st_mode & 0o777) == "0o640"
    assert (live / "stray.yml").read_text() == "stray\n" and not (live / "added.yml").exists()
    assert not backup.exists() and config.restore(str(backup)) == []
    # check mode keeps nothing
    assert "backup" not in config.run(dict(p), check_mode=True)


def test_the_release_switched_from_is_named_and_survives_pruning(tmp_path):
    from ansible_collections.monstack.observability.plugins.module_utils import stack_install as installer
    arch = installer.host_arch()
    root = tmp_path / "opt"
    old = root / "svc" / f"1.0-linux-{arch}"
    old.mkdir(parents=True)
    (old / "svc").write_text("old")
    (old / installer.MARKER).write_text(json.dumps({"sha256": "x", "installed_at": 1}))
    (root / "svc" / "current").symlink_to(old.name)
    archive = tmp_path / "svc.tar.gz"
    src = tmp_path / "src" / "svc-2.0"
    src.mkdir(parents=True)
    shutil.copy(shutil.which("true"), src / "svc")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src.parent / "svc-2.0", arcname="svc-2.0")
    p = dict(component="svc", version="2.0", sha256={}, archive=str(archive), archive_sha256=installer.sha256_file(str(archive)),
             source="mirror", format="tar.gz", strip="svc-2.0", rename={}, links={"svc": "svc"}, requires={}, root=str(root),
             bin_dir=str(tmp_path / "bin"), keep=1, user=None, group=None, home="/nonexistent", groups=[], directories=[])
    result = installer.run(p)
    assert result["switched_release"] and result["previous_release"] == old.name
    assert old.is_dir(), "keep: 1, yet the release to roll back to stays"
    installer.relink(str(root), "svc", old.name)
    assert os.readlink(root / "svc" / "current") == old.name


def service_that_fails_once(message, result=None):
    calls = []

    from ansible_collections.monstack.observability.plugins.module_utils import stack_service

    def job(args, check, diff, warn):
        calls.append(dict(args))
        # the real step reads every option of its spec
        assert set(stack_service.ARGUMENT_SPEC) <= set(args), set(stack_service.ARGUMENT_SPEC) - set(args)
        if len(calls) == 1:
            raise StepError(message, result or {"actions": ["restart"]})
        return {"changed": True, "actions": ["restart"]}
    return job, calls


def component(host, config, tmp_path, service_job, created=()):
    """stack_component's run with a real config backup and release directory below tmp_path."""
    live = tmp_path / "etc"
    live.mkdir(exist_ok=True)
    unit = tmp_path / "node_exporter.service"
    unit.write_text("ExecStart=node_exporter\n")
    (live / "web.yml").write_text("old\n")
    backup = tmp_path / "previous"
    config.backup([{"dest": str(unit)}, {"dest": str(live / "web.yml")}], [], str(backup))
    unit.write_text("ExecStart=node_exporter --no-such-flag\n")
    (live / "web.yml").write_text("new\n")
    root = tmp_path / "opt"
    for name in ("1.0-linux-amd64", "2.0-linux-amd64"):
        (root / "node_exporter" / name).mkdir(parents=True)
    (root / "node_exporter" / "current").symlink_to("2.0-linux-amd64")
    results = {"install": {"changed": True, "switched_release": True, "previous_release": "1.0-linux-amd64"},
               "configure": {"changed": True, "content_changed": [str(unit), str(live / "web.yml")], "created": list(created),
                             "backup": str(backup)}}
    runners = {"install": lambda a, c, d, w: dict(results["install"]), "configure": lambda a, c, d, w: dict(results["configure"]),
               "service": service_job}
    p = {"steps": list(host.STEPS), "defer_switch": False, "config_result": None,
         "install": {"component": "node_exporter", "root": str(root)}, "config": {"files": []},
         "service": {"name": "node_exporter", "changes": {"root": str(live), "rules": [["*", "restart"]]}},
         "record_dir": str(tmp_path / "records")}
    return p, runners, unit, live, root


def test_a_service_that_fails_on_a_new_release_and_unit_gets_the_old_ones_back(host, config, tmp_path):
    job, calls = service_that_fails_once("node_exporter.service is not ready after restart: the unit is failed (failed)\n"
                                         "last journal lines:\nnode_exporter: error: unknown long flag '--no-such-flag'")
    p, runners, unit, live, root = component(host, config, tmp_path, job)
    with pytest.raises(StepError) as failure:
        host.run(p, runners=runners)
    lines = failure.value.msg.splitlines()
    assert lines[0] == "service: node_exporter.service is not ready after restart: the unit is failed (failed)"
    assert lines[1].startswith("Rolled back to the previous release 1.0 and config (node_exporter.service, web.yml): "
                               "node_exporter is ready again on them")
    assert "unknown long flag '--no-such-flag'" in failure.value.msg
    assert failure.value.result["rolled_back"] == ["release 1.0", "config (node_exporter.service, web.yml)"]
    assert unit.read_text() == "ExecStart=node_exporter\n" and (live / "web.yml").read_text() == "old\n"
    assert os.readlink(root / "node_exporter" / "current") == "1.0-linux-amd64"
    assert len(calls) == 2 and calls[1]["restart"] is True and calls[1]["defer_restart"] is False


def test_a_rollback_that_does_not_help_says_so(host, config, tmp_path):
    def job(args, check, diff, warn):
        raise StepError("node_exporter.service is not ready after restart: port 9100 is taken", {"actions": ["restart"]})
    p, runners, *_ = component(host, config, tmp_path, job)
    with pytest.raises(StepError) as failure:
        host.run(p, runners=runners)
    assert failure.value.msg.splitlines()[0].endswith("port 9100 is taken")
    assert "but node_exporter did not come back on them either" in failure.value.msg


def test_nothing_rolls_back_after_a_first_deploy_or_a_failed_check(host, config, tmp_path):
    job, calls = service_that_fails_once("node_exporter.service is not ready after start: the unit is failed (failed)")
    p, runners, unit, live, root = component(host, config, tmp_path, job, created=[str(tmp_path / "node_exporter.service")])
    with pytest.raises(StepError) as failure:
        host.run(p, runners=runners)
    assert "Rolled back" not in failure.value.msg and len(calls) == 1
    assert os.readlink(root / "node_exporter" / "current") == "2.0-linux-amd64"

    job, calls = service_that_fails_once("node_exporter runs, but: pg_up is 0", {"actions": [], "checks_failed": ["pg_up is 0"]})
    (tmp_path / "again").mkdir()
    p, runners, unit, live, root = component(host, config, tmp_path / "again", job)
    with pytest.raises(StepError) as failure:
        host.run(p, runners=runners)
    assert "Rolled back" not in failure.value.msg and (live / "web.yml").read_text() == "new\n"


def test_a_service_ready_on_the_new_config_drops_the_backup(host, config, tmp_path):
    p, runners, unit, live, root = component(host, config, tmp_path, lambda a, c, d, w: {"changed": True, "actions": ["restart"]})
    host.run(p, runners=runners)
    assert not (tmp_path / "previous").exists() and unit.read_text().endswith("--no-such-flag\n")
