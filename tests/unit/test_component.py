"""One task per component (plugins/action/stack_component.py): the install, config and service
steps in order, as their own tasks ran them, and the steps --tags and --skip-tags choose."""
import sys
import types

import pytest

from conftest import COMMON, load

REGISTRY = {"prometheus": {}, "grafana": {}, "node_exporter": {}}
NOOP = {"install": {"changed": False}, "configure": {"changed": False, "content_changed": [], "removed": []},
        "service": {"changed": False, "actions": []}}


@pytest.fixture(scope="module")
def component():
    # the action imports the collection's filters as Ansible does, through the repository's link
    sys.path.insert(0, str(COMMON.parent / ".collections"))
    return load("action/stack_component.py", "stack_component_action")


def run(component, monkeypatch, args, results):
    """Run the action with each step's action replaced by one that records its arguments and
    returns results[step]."""
    calls = []
    names = {name: step for step, name in component.ACTIONS.items()}
    monkeypatch.setattr(component.ActionBase, "run", lambda self, tmp=None, task_vars=None: {})
    plugin = component.ActionModule.__new__(component.ActionModule)
    plugin._task = types.SimpleNamespace(args=args, copy=lambda: types.SimpleNamespace(args=None))

    def get(name, task, **_):
        step = names[name]

        def step_run(task_vars=None):
            calls.append((step, dict(task.args)))
            return dict(results[step])
        return types.SimpleNamespace(run=step_run)

    plugin._shared_loader_obj = types.SimpleNamespace(action_loader=types.SimpleNamespace(get=get))
    for attr in ("_connection", "_play_context", "_loader", "_templar"):
        setattr(plugin, attr, None)
    return plugin.run(task_vars={}), calls


def args(**extra):
    out = {"steps": ["install", "configure", "service"], "install": {"component": "loki"},
           "config": {"files": []}, "service": {"name": "loki", "url_password": None,
                                                "changes": {"root": "/etc/loki", "rules": [["*.yml", "restart"]]}}}
    out.update(extra)
    return out


def test_a_no_op_runs_the_three_steps_in_one_task_and_changes_nothing(component, monkeypatch):
    result, calls = run(component, monkeypatch, args(), NOOP)
    assert [step for step, _ in calls] == ["install", "configure", "service"]
    assert result["changed"] is False and not result.get("failed") and result["switched"] is False
    # the service step gets neither the change rules nor arguments given as none
    assert calls[2][1] == {"name": "loki", "restart": False, "reload": False}
    assert result["config"] == NOOP["configure"]


def test_a_changed_file_restarts_or_reloads_as_the_change_rules_say(component, monkeypatch):
    changed = dict(NOOP, configure={"changed": True, "content_changed": ["/etc/loki/config.yml"], "removed": []})
    result, calls = run(component, monkeypatch, args(), changed)
    assert result["changed"] and calls[2][1]["restart"] is True and calls[2][1]["reload"] is False
    service = {"name": "prometheus", "changes": {"root": "/etc/p", "rules": [["prometheus.yml", "reload"]]}}
    changed = dict(NOOP, configure={"changed": True, "content_changed": ["/etc/p/prometheus.yml"]})
    _, calls = run(component, monkeypatch, args(service=service), changed)
    assert calls[2][1]["reload"] is True and calls[2][1]["restart"] is False
    # a restart the caller asks for (Grafana's new plugins) holds without any changed file
    _, calls = run(component, monkeypatch, args(service=dict(service, restart=True)), NOOP)
    assert calls[2][1]["restart"] is True


def test_a_failed_step_stops_the_task_and_names_the_step(component, monkeypatch):
    failing = dict(NOOP, configure={"failed": True, "msg": "amtool refused the config"})
    result, calls = run(component, monkeypatch, args(), failing)
    assert [step for step, _ in calls] == ["install", "configure"]
    assert result["failed"] and result["msg"] == "configure: amtool refused the config"


def test_a_switch_in_the_one_pass_stops_before_the_service_step(component, monkeypatch):
    """stack_tls turned on: an existing file changed. site.yml's one pass gets every Prometheus
    ready before the service serves HTTPS (roles/stack/tasks/switch.yml); elsewhere it restarts."""
    switched = dict(NOOP, configure={"changed": True, "content_changed": ["/etc/loki/config.yml"], "created": []})
    result, calls = run(component, monkeypatch, args(defer_switch=True), switched)
    assert [step for step, _ in calls] == ["install", "configure"] and result["switched"] is True
    # a first install (every file new) is no switch
    first = dict(NOOP, configure={"changed": True, "content_changed": ["/etc/loki/config.yml"],
                                  "created": ["/etc/loki/config.yml"]})
    result, calls = run(component, monkeypatch, args(defer_switch=True), first)
    assert [step for step, _ in calls] == ["install", "configure", "service"] and result["switched"] is False
    # the switch's own service step takes the config step's result from before
    result, calls = run(component, monkeypatch, {"steps": ["service"], "service": args()["service"],
                                                 "config_result": switched["configure"]}, NOOP)
    assert calls == [("service", {"name": "loki", "restart": True, "reload": False})]


def test_a_gossip_switch_skips_the_peer_check_after_the_restart(component, monkeypatch):
    service = {"name": "alertmanager", "cluster_status_url": "http://127.0.0.1:9093/api/v2/status",
               "cluster_switch_files": ["/etc/am/cluster-tls.yml"]}
    _, calls = run(component, monkeypatch, args(service=service), NOOP)
    assert calls[2][1]["cluster_status_url"] and "cluster_switch_files" not in calls[2][1]
    removed = dict(NOOP, configure={"changed": True, "removed": ["/etc/am/cluster-tls.yml"]})
    _, calls = run(component, monkeypatch, args(service=service), removed)
    assert "cluster_status_url" not in calls[2][1]


def test_only_the_steps_asked_run_and_a_step_needs_its_arguments(component, monkeypatch):
    _, calls = run(component, monkeypatch, args(steps=["configure", "service"]), NOOP)
    assert [step for step, _ in calls] == ["configure", "service"]
    _, calls = run(component, monkeypatch, args(steps=[]), NOOP)
    assert calls == []
    with pytest.raises(component.AnsibleActionFail, match="step install needs its arguments"):
        run(component, monkeypatch, {"steps": ["install"]}, NOOP)
    with pytest.raises(component.AnsibleActionFail, match="upgrade is not one of"):
        run(component, monkeypatch, args(steps=["upgrade"]), NOOP)


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
