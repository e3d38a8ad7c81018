"""One task per component: the install, config and service steps in order on the host, as their
own modules run them, in one module call (module_utils/stack_component.py); the controller
(plugins/action/stack_component.py) steps in only to push a release or take a rolling slot; and
the steps --tags and --skip-tags choose."""
import types

import pytest

from conftest import load  # noqa: E402

REGISTRY = {"prometheus": {}, "grafana": {}, "node_exporter": {}}
NOOP = {"install": {"changed": False, "arch": "amd64", "needs_archive": False},
        "configure": {"changed": False, "content_changed": [], "removed": []},
        "service": {"changed": False, "actions": []}}


@pytest.fixture(scope="module")
def host():
    from ansible_collections.monstack.observability.plugins.module_utils import stack_component
    return stack_component


def run(host, p, results, check_mode=False):
    """Run the module's steps with each step's host-side job replaced by one that records its
    parameters and returns results[step] (or raises it, when it is an exception)."""
    calls = []

    def runner(step):
        def job(args, check, diff, warn):
            calls.append((step, dict(args)))
            if isinstance(results[step], Exception):
                raise results[step]
            return dict(results[step])
        return job

    params = {"steps": ["install", "configure", "service"], "defer_switch": False, "config_result": None}
    params.update(p)
    return host.run(params, check_mode, runners={s: runner(s) for s in host.STEPS}), calls


def params(**extra):
    out = {"install": {"component": "loki"}, "config": {"files": []},
           "service": {"name": "loki", "url_password": None,
                       "changes": {"root": "/etc/loki", "rules": [["*.yml", "restart"]]}}}
    out.update(extra)
    return out


def test_a_no_op_runs_the_three_steps_in_one_call_and_changes_nothing(host):
    result, calls = run(host, params(), NOOP)
    assert [step for step, _ in calls] == ["install", "configure", "service"]
    assert result["changed"] is False and result["switched"] is False and "pending" not in result
    # the service step gets neither the change rules nor arguments given as none, and the
    # module's defaults for the rest, as the stack_service module's own call would
    assert calls[2][1]["name"] == "loki" and calls[2][1]["restart"] is False and calls[2][1]["reload"] is False
    assert calls[2][1]["enabled"] is True and calls[2][1]["ready_timeout"] == 60 and "changes" not in calls[2][1]
    assert result["config"] == NOOP["configure"]


def test_a_changed_file_restarts_or_reloads_as_the_change_rules_say(host):
    changed = dict(NOOP, configure={"changed": True, "content_changed": ["/etc/loki/config.yml"], "removed": []})
    result, calls = run(host, params(), changed)
    assert result["changed"] and calls[2][1]["restart"] is True and calls[2][1]["reload"] is False
    service = {"name": "prometheus", "changes": {"root": "/etc/p", "rules": [["prometheus.yml", "reload"]]}}
    changed = dict(NOOP, configure={"changed": True, "content_changed": ["/etc/p/prometheus.yml"]})
    _, calls = run(host, params(service=service), changed)
    assert calls[2][1]["reload"] is True and calls[2][1]["restart"] is False
    # a restart the caller asks for (Grafana's new plugins) holds without any changed file
    _, calls = run(host, params(service=dict(service, restart=True)), NOOP)
    assert calls[2][1]["restart"] is True


def test_a_failed_step_stops_the_call_and_names_the_step(host):
    failing = dict(NOOP, configure=host.StepError("amtool refused the config", {"validation": "line 3"}))
    with pytest.raises(host.StepError) as caught:
        run(host, params(), failing)
    assert caught.value.msg == "configure: amtool refused the config"
    assert caught.value.result["config"] == {"validation": "line 3"} and caught.value.result["install"] == NOOP["install"]


def test_a_release_not_installed_yet_comes_back_for_its_archive_first(host):
    """The controller pushes the archive and calls again: nothing is configured against a binary
    that is not there. In check mode the other steps still say what they would do."""
    missing = dict(NOOP, install={"changed": False, "arch": "arm64", "needs_archive": True})
    result, calls = run(host, params(), missing)
    assert [step for step, _ in calls] == ["install"] and result["pending"] == "install"
    result, calls = run(host, params(), missing, check_mode=True)
    assert [step for step, _ in calls] == ["install", "configure", "service"] and "pending" not in result


def test_a_restart_waiting_for_a_rolling_slot_comes_back_to_the_controller(host):
    deferred = dict(NOOP, service={"changed": False, "actions": [], "deferred": "binary changed"})
    result, calls = run(host, params(service={"name": "alertmanager", "defer_restart": True}), deferred)
    assert result["pending"] == "service" and calls[2][1]["defer_restart"] is True


def test_a_switch_in_the_one_pass_stops_before_the_service_step(host):
    """stack_tls turned on: an existing file changed. site.yml's one pass gets every Prometheus
    ready before the service serves HTTPS (roles/stack/tasks/switch.yml); elsewhere it restarts."""
    switched = dict(NOOP, configure={"changed": True, "content_changed": ["/etc/loki/config.yml"], "created": []})
    result, calls = run(host, params(defer_switch=True), switched)
    assert [step for step, _ in calls] == ["install", "configure"] and result["switched"] is True
    # a first install (every file new) is no switch
    first = dict(NOOP, configure={"changed": True, "content_changed": ["/etc/loki/config.yml"],
                                  "created": ["/etc/loki/config.yml"]})
    result, calls = run(host, params(defer_switch=True), first)
    assert [step for step, _ in calls] == ["install", "configure", "service"] and result["switched"] is False
    # the switch's own service step takes the config step's result from before
    result, calls = run(host, {"steps": ["service"], "service": params()["service"],
                               "config_result": switched["configure"]}, NOOP)
    assert [step for step, _ in calls] == ["service"] and calls[0][1]["restart"] is True


def test_a_gossip_switch_skips_the_peer_check_after_the_restart(host):
    service = {"name": "alertmanager", "cluster_status_url": "http://127.0.0.1:9093/api/v2/status",
               "cluster_switch_files": ["/etc/am/cluster-tls.yml"]}
    _, calls = run(host, params(service=service), NOOP)
    assert calls[2][1]["cluster_status_url"] and "cluster_switch_files" not in calls[2][1]
    removed = dict(NOOP, configure={"changed": True, "removed": ["/etc/am/cluster-tls.yml"]})
    _, calls = run(host, params(service=service), removed)
    assert calls[2][1]["cluster_status_url"] is None


def test_only_the_steps_asked_run_and_a_step_needs_its_arguments(host):
    _, calls = run(host, params(steps=["configure", "service"]), NOOP)
    assert [step for step, _ in calls] == ["configure", "service"]
    _, calls = run(host, params(steps=[]), NOOP)
    assert calls == []
    with pytest.raises(host.StepError, match="step install needs its arguments"):
        run(host, {"steps": ["install"]}, NOOP)


def test_the_module_takes_each_steps_own_options(host):
    """The module's options for each step are that step's module's: one spec each, shared."""
    from ansible_collections.monstack.observability.plugins.module_utils import stack_config, stack_install, stack_service
    spec = host.ARGUMENT_SPEC
    assert spec["install"]["options"] is stack_install.ARGUMENT_SPEC
    assert spec["config"]["options"] is stack_config.ARGUMENT_SPEC
    assert {k: v for k, v in spec["service"]["options"].items() if k in stack_service.ARGUMENT_SPEC} == stack_service.ARGUMENT_SPEC
    # the secrets never show in a result or log
    assert stack_config.ARGUMENT_SPEC["secrets"]["no_log"] and stack_service.ARGUMENT_SPEC["url_password"]["no_log"]


# --- the controller's part --------------------------------------------------------------------

@pytest.fixture(scope="module")
def action():
    return load("action/stack_component.py", "stack_component_action")


def controller(action, monkeypatch, args, answers, check_mode=False):
    """Run the action with the module's calls answered from answers (in order) and the archive
    push and the rolling restart recorded."""
    calls = []
    monkeypatch.setattr(action.ActionBase, "run", lambda self, tmp=None, task_vars=None: {})
    plugin = action.ActionModule.__new__(action.ActionModule)
    plugin._task = types.SimpleNamespace(args=args, check_mode=check_mode,
                                         copy=lambda: types.SimpleNamespace(args=None))
    pending = list(answers)

    def execute(name, module_args=None, task_vars=None):
        calls.append(("module", dict(module_args)))
        return dict(pending.pop(0))

    plugin._execute_module = execute
    plugin._remove_tmp_path = lambda tmpdir: calls.append(("cleanup", tmpdir))
    monkeypatch.setattr(action.stack_install, "push_archive", lambda act, spec, target, settings, arch: (
        calls.append(("push", arch)) or dict(target, archive="/tmp/x/a.tar.gz", source="mirror"), "/tmp/x"))
    monkeypatch.setattr(action.stack_install, "cached_archive", lambda spec, settings, arch: (
        calls.append(("cache", arch)) or ("/c/a.tar.gz", "ab" * 32, "mirror")))
    monkeypatch.setattr(action.stack_config, "module_args", lambda act, cfg, task_vars, templates=None: dict(cfg))

    def get(name, task, **_):
        def step_run(task_vars=None):
            calls.append(("rolling", dict(task.args)))
            return {"changed": True, "actions": ["restart"]}
        return types.SimpleNamespace(run=step_run)

    plugin._shared_loader_obj = types.SimpleNamespace(action_loader=types.SimpleNamespace(get=get))
    for attr in ("_connection", "_play_context", "_loader", "_templar"):
        setattr(plugin, attr, None)
    return plugin.run(task_vars={}), calls


CATALOG = {"url": "https://example.org/loki-{version}.zip"}
SETTINGS = {"install_root": "/opt/monitoring", "bin_dir": "/usr/local/bin", "keep_releases": 2,
            "artifact_cache": "", "artifact_mirror": "", "artifact_dir": ""}


def task_args(**extra):
    out = {"steps": ["install", "configure", "service"],
           "install": {"component": "loki", "version": "3.0.0", "catalog": CATALOG, "settings": SETTINGS},
           "config": {"files": []}, "service": {"name": "loki", "rolling_batch": 0, "url_password": None}}
    out.update(extra)
    return out


def test_a_no_op_is_one_module_call(action, monkeypatch):
    result, calls = controller(action, monkeypatch, task_args(), [dict(NOOP, changed=False, switched=False)])
    assert [kind for kind, _ in calls] == ["module"]
    sent = calls[0][1]
    assert sent["install"]["component"] == "loki" and sent["install"]["format"] == "zip"
    # a service without rolling restarts and arguments given as none: left out
    assert sent["service"] == {"name": "loki"}
    assert result["changed"] is False


def test_a_first_install_pushes_the_archive_and_calls_again_with_it(action, monkeypatch):
    first = dict(NOOP, install={"changed": True, "arch": "arm64", "needs_archive": True}, pending="install")
    done = dict(NOOP, install={"changed": True, "installed": True}, changed=True)
    result, calls = controller(action, monkeypatch, task_args(), [first, done])
    assert [kind for kind, _ in calls] == ["module", "push", "module", "cleanup"]
    assert calls[1][1] == "arm64" and calls[2][1]["install"]["archive"] == "/tmp/x/a.tar.gz"
    assert result["changed"] and result["install"]["source"] == "mirror"
    # in check mode nothing is pushed: the archive is verified in the cache and the install reported
    first = dict(NOOP, install={"changed": False, "arch": "amd64", "needs_archive": True}, changed=False)
    result, calls = controller(action, monkeypatch, task_args(), [first], check_mode=True)
    assert [kind for kind, _ in calls] == ["module", "cache"] and result["changed"] and result["install"]["changed"]


def test_a_rolling_restart_takes_its_slot_through_the_service_action(action, monkeypatch):
    changed = {"changed": True, "content_changed": ["/etc/am/alertmanager.yml"], "removed": []}
    deferred = dict(NOOP, configure=None, config=changed, changed=True, pending="service",
                    service={"changed": False, "actions": [], "deferred": "requested"})
    service = {"name": "alertmanager", "rolling_batch": 1,
               "changes": {"root": "/etc/am", "rules": [["alertmanager.yml", "restart"]]}}
    result, calls = controller(action, monkeypatch, task_args(service=service), [deferred])
    assert calls[0][1]["service"]["defer_restart"] is True and "rolling_batch" not in calls[0][1]["service"]
    assert [kind for kind, _ in calls] == ["module", "rolling"]
    assert calls[1][1]["rolling_batch"] == 1 and calls[1][1]["restart"] is True
    assert result["service"]["actions"] == ["restart"] and "pending" not in result


def test_the_controller_refuses_unknown_steps_and_steps_without_arguments(action, monkeypatch):
    with pytest.raises(action.AnsibleActionFail, match="step install needs its arguments"):
        controller(action, monkeypatch, {"steps": ["install"]}, [])
    with pytest.raises(action.AnsibleActionFail, match="upgrade is not one of"):
        controller(action, monkeypatch, task_args(steps=["upgrade"]), [])
    result, calls = controller(action, monkeypatch, task_args(steps=[]), [])
    assert calls == [] and result["changed"] is False


@pytest.mark.parametrize("run_tags, skip_tags, prometheus, grafana", [
    (["all"], [], ["install", "configure", "service"], ["install", "configure", "service"]),
    (["prometheus"], [], ["install", "configure", "service"], []),
    (["configure"], [], ["configure", "service"], ["configure", "service"]),
    (["prometheus", "configure"], [], ["configure", "service"], []),
    # a tag that names no component and no step ran only the always-tagged service task
    (["mytag"], [], ["service"], ["service"]),
    (["all"], ["install"], ["configure", "service"], ["configure", "service"]),
    (["all"], ["grafana"], ["install", "configure", "service"], []),
    (["all"], ["service"], ["install", "configure"], ["install", "configure"]),
])
def test_tags_and_skip_tags_choose_the_steps_as_they_chose_the_tasks(filters, run_tags, skip_tags, prometheus, grafana):
    assert filters.steps("prometheus", run_tags, skip_tags, REGISTRY) == prometheus
    assert filters.steps("grafana", run_tags, skip_tags, REGISTRY) == grafana


def role_action():
    """stack_component's action plugin with a real templar and no connection."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    plugin_module = load("action/stack_component.py", "stack_component_action_roles")
    plugin = plugin_module.ActionModule.__new__(plugin_module.ActionModule)
    plugin._loader = DataLoader()
    plugin._templar = Templar(loader=plugin._loader)
    return plugin_module, plugin


def test_a_task_naming_its_role_runs_the_roles_component_arguments_for_its_steps_only():
    """site.yml's one pass runs each component as `stack_component: {role: <role>}`, as the
    role's own deploy.yml does: the arguments are the role's _<role>_component, evaluated with
    its role_path, its templates found in its own templates/, and only the steps that run are
    evaluated (Grafana's install task does not render its files)."""
    from ansible.template import trust_as_template as trusted  # as Ansible reads the role's vars file
    plugin_module, plugin = role_action()
    task_vars = {"node_exporter_port": 9100, "_node_exporter_component": {
        "steps": trusted("{{ ['configure', 'service'] }}"),
        "install": trusted("{{ undefined_in_this_test }}"),
        "config": {"files": [{"dest": "/etc/x", "content": trusted("{{ role_path | basename }}:{{ node_exporter_port }}")}]},
        "service": {"name": "node_exporter"},
        "defer_switch": trusted("{{ true }}")}}
    args, variables, templates = plugin._role_args({"role": "node_exporter"}, task_vars)
    assert args["steps"] == ["configure", "service"] and "install" not in args
    assert args["config"]["files"][0]["content"] == "node_exporter:9100" and args["defer_switch"] is True
    assert variables["role_path"].endswith("/roles/node_exporter") and "role_path" not in task_vars
    # a lookup of a shipped file finds it in the role, as in the role's own task (Loki's schema check)
    assert variables["ansible_search_path"][0] == variables["role_path"]
    assert templates.endswith("/roles/node_exporter/templates")
    # arguments given with the role replace its own: Grafana's two tasks choose their steps
    args, _, _ = plugin._role_args({"role": "node_exporter", "steps": ["install"]},
                                   dict(task_vars, undefined_in_this_test={"component": "node_exporter"}))
    assert args["steps"] == ["install"] and args["install"] == {"component": "node_exporter"} and "config" not in args
    # a task without a role is taken as written
    assert plugin._role_args({"steps": []}, task_vars) == ({"steps": []}, task_vars, None)


def test_a_role_whose_component_is_not_in_the_play_is_named():
    plugin_module, plugin = role_action()
    with pytest.raises(plugin_module.AnsibleActionFail, match="_loki_component is not in this play"):
        plugin._role_args({"role": "loki"}, {})
    with pytest.raises(plugin_module.AnsibleActionFail, match="role: nosuch is not a role of this collection"):
        plugin._role_args({"role": "nosuch"}, {})


# --- check mode predicts the real run; a reload or restart is never lost -----------------------

def test_a_changed_unit_or_a_new_release_asks_the_service_step_for_a_restart_in_check_mode_too(host):
    """The real run restarts for a new unit (NeedDaemonReload) or a new release (the binary):
    check mode writes neither, so the steps say it themselves, and check mode reports the restart."""
    unit = dict(NOOP, configure={"changed": True, "content_changed": ["/etc/systemd/system/loki.service"]})
    for check_mode in (True, False):
        _, calls = run(host, params(), unit, check_mode=check_mode)
        assert calls[2][1]["restart"] is True and calls[2][1]["reason"] == "unit changed"
    release = dict(NOOP, install={"changed": True, "arch": "amd64", "needs_archive": True, "switched_release": True})
    _, calls = run(host, params(), release, check_mode=True)
    assert calls[2][1]["restart"] is True and calls[2][1]["reason"] == "new release"
    # another service's unit is not this one's
    other = dict(NOOP, configure={"changed": True, "content_changed": ["/etc/systemd/system/loki-canary.service"]})
    _, calls = run(host, params(service={"name": "loki"}), other)
    assert calls[2][1]["restart"] is False


def test_a_config_change_leaves_its_reload_pending_until_a_service_step_does_it(host, pending_dir):
    """--skip-tags service (or a failure, or a lost connection) between the config step and the
    service step: the host keeps what the change needs, and the next service step does it."""
    from ansible_collections.monstack.observability.plugins.module_utils import stack_service
    service = {"name": "prometheus", "changes": {"root": "/etc/p", "rules": [["prometheus.yml", "reload"]]}}
    changed = dict(NOOP, configure={"changed": True, "content_changed": ["/etc/p/prometheus.yml"], "removed": []})
    run(host, params(steps=["install", "configure"], service=service), changed)
    assert stack_service.read_pending("prometheus") == {"action": "reload", "reason": "config changed: prometheus.yml"}
    # check mode leaves nothing
    run(host, params(steps=["configure"], service=dict(service, name="alertmanager")), changed, check_mode=True)
    assert stack_service.read_pending("alertmanager") is None
    # a pending restart is not weakened by a later reload
    stack_service.write_pending("prometheus", "restart", "unit changed")
    stack_service.write_pending("prometheus", "reload", "config changed: x")
    assert stack_service.read_pending("prometheus")["action"] == "restart"
    stack_service.clear_pending("prometheus")
    assert not list(pending_dir.iterdir())


def test_a_summary_line_says_what_was_installed_changed_reloaded_or_restarted(host):
    assert host.summary({"changed": False, "install": {}, "config": {}, "service": {"actions": []}}) == ""
    said = host.summary({"install": {"installed": True, "path": "/opt/monitoring/loki/3.7.6-linux-amd64"},
                         "config": {"content_changed": ["/etc/loki/loki.yml"], "removed": ["/etc/loki/old.yml"]},
                         "service": {"actions": ["daemon-reload", "restart"], "restart_reason": "new release"}})
    assert said == "installed 3.7.6; config changed: loki.yml, old.yml (removed); restarted (new release)"
    said = host.summary({"config": {"content_changed": ["/etc/p/prometheus.yml"]},
                         "service": {"actions": ["reload"], "reload_reason": "config changed: prometheus.yml"}})
    assert said == "config changed: prometheus.yml; reloaded (config changed: prometheus.yml)"


def test_check_mode_does_not_validate_with_a_release_it_would_replace(host):
    """Check mode on a host that lacks the release (or has another one): the validator there is
    not the one the real run would use, so the config is planned but not validated, and said so."""
    release = dict(NOOP, install={"changed": True, "arch": "amd64", "needs_archive": True, "switched_release": True},
                   configure={"changed": True, "content_changed": ["/etc/loki/loki.yml"]})
    p = params(config={"files": [], "validate": "/usr/local/bin/loki -verify-config"})
    result, calls = run(host, p, release, check_mode=True)
    assert calls[1][1]["validate"] is None and "not validated in check mode" in result["config"]["validation"]
    _, calls = run(host, p, dict(release, install=NOOP["install"]), check_mode=True)
    assert calls[1][1]["validate"] == "/usr/local/bin/loki -verify-config"
