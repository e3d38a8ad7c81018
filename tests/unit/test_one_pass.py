"""site.yml's one pass: which components a host runs, in which order, and the rolling restarts
that replace `serial` for clustered components (plugins/action/stack_service.py)."""
import http.server
import json
import os
import pathlib
import subprocess
import sys
import threading
import time
import types

import pytest
import yaml

from conftest import COMMON, load

ORDER = yaml.safe_load((COMMON.parent / "roles/stack/vars/main.yml").read_text())["stack_deploy_order"]


@pytest.fixture(scope="module")
def rolling():
    return load("action/stack_service.py", "stack_service_action")


def test_a_host_runs_the_components_of_its_groups_in_deployment_order(filters, registry):
    groups = {"all": ["mon", "app"], "prometheus": ["mon"], "grafana": ["mon"], "alertmanager": ["mon"],
              "promtail": ["mon", "app"], "postgres_exporter": ["app"], "node_exporter": []}
    # node_exporter's group is empty: it runs on every host, first
    assert filters.host_components("mon", groups, registry, ORDER) == [
        "prometheus", "node_exporter", "promtail", "alertmanager", "grafana"]
    assert filters.host_components("app", groups, registry, ORDER) == ["node_exporter", "postgres_exporter", "promtail"]
    assert filters.host_components("app", dict(groups, node_exporter=["mon"]), registry, ORDER) == [
        "postgres_exporter", "promtail"]


def test_every_client_comes_after_what_it_points_at_and_prometheus_before_its_targets():
    before = {"promtail": ["loki"], "grafana": ["prometheus", "loki", "jaeger", "alertmanager", "victoriametrics"]}
    for client, servers in before.items():
        assert all(ORDER.index(s) < ORDER.index(client) for s in servers), (client, ORDER)
    # a service switching to HTTPS waits for the CA in its host's Prometheus config (await_scrapers):
    # Prometheus after it on the same host would never come
    assert ORDER[0] == "prometheus"


def test_the_deployment_order_and_the_registry_must_name_the_same_components(filters, registry):
    with pytest.raises(Exception, match="disagree on: tempo"):
        filters.host_components("a", {"all": ["a"]}, registry, ORDER + ["tempo"])
    deployed = sorted(name for name, entry in registry.items() if not entry.get("external"))
    assert sorted(ORDER) == deployed
    # the roles are named after the registry's components; external ones (scraped, not installed) have none
    assert all((COMMON.parent / "roles" / name / "tasks/main.yml").is_file() for name in ORDER)
    assert not any((COMMON.parent / "roles" / name).exists() for name in set(registry) - set(ORDER))
    # a host in an external component's group gets nothing deployed for it
    assert filters.host_components("mq", {"all": ["mq"], "rabbitmq": ["mq"], "node_exporter": []}, registry, ORDER) == [
        "node_exporter"]


def test_rolling_slots_let_batch_holders_in_at_once(rolling, tmp_path):
    def hold(batch, spans):
        with rolling.RollingSlot(str(tmp_path), f"svc{batch}", batch, poll=0.01):
            start = time.monotonic()
            time.sleep(0.3)
            spans.append((start, time.monotonic()))

    for batch, overlapping in ((1, False), (3, True)):
        spans = []
        threads = [threading.Thread(target=hold, args=(batch, spans)) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        spans.sort()
        overlaps = any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))
        assert overlaps is overlapping, (batch, spans)


def test_run_directories_are_private_and_those_of_finished_runs_go(rolling, tmp_path):
    (tmp_path / "999999999-1").mkdir()
    here = rolling.run_directory(str(tmp_path), rolling.run_id())
    assert pathlib.Path(here).stat().st_mode & 0o777 == 0o700
    assert not (tmp_path / "999999999-1").exists()
    # the same in one process, another for another process (this one, rather than PID 1: the
    # parent is PID 1 itself when pytest's starter has exited, as under setsid)
    assert rolling.run_id() == rolling.run_id() != rolling.run_id(os.getpid())


def action(rolling, module_results, args, host="h1"):
    """The action plugin with the module replaced by module_results (consumed in order)."""
    calls = []
    plugin = rolling.ActionModule.__new__(rolling.ActionModule)
    plugin._task = types.SimpleNamespace(args=args)

    def execute(name, module_args, task_vars):
        calls.append(module_args)
        return module_results.pop(0)

    plugin._execute_module = execute
    return plugin, calls, {"inventory_hostname": host}


@pytest.fixture
def no_base_run(rolling, monkeypatch, tmp_path):
    monkeypatch.setattr(rolling.ActionBase, "run", lambda self, tmp=None, task_vars=None: {})
    monkeypatch.setattr(rolling, "run_directory", lambda: str(tmp_path))


def test_without_rolling_the_module_runs_once_as_asked(rolling, no_base_run):
    plugin, calls, task_vars = action(rolling, [{"changed": True, "actions": ["restart"]}],
                                      {"name": "node_exporter", "rolling_batch": 0})
    assert plugin.run(task_vars=task_vars)["actions"] == ["restart"]
    assert calls == [{"name": "node_exporter"}]


def test_a_rolling_no_op_is_one_round_trip_without_a_slot(rolling, no_base_run, tmp_path):
    plugin, calls, task_vars = action(rolling, [{"changed": False, "actions": []}],
                                      {"name": "prometheus", "rolling_batch": 1})
    assert plugin.run(task_vars=task_vars)["changed"] is False
    assert calls == [{"name": "prometheus", "defer_restart": True}]
    assert not list(tmp_path.iterdir())


def test_a_failed_rolling_restart_stops_the_hosts_after_it(rolling, no_base_run):
    deferred = {"changed": False, "actions": [], "deferred": "binary changed"}
    plugin, calls, task_vars = action(rolling, [deferred, {"failed": True, "msg": "not ready"}],
                                      {"name": "prometheus", "rolling_batch": 1}, host="p1")
    assert plugin.run(task_vars=task_vars)["failed"]
    assert calls[1] == {"name": "prometheus"}
    plugin, calls, task_vars = action(rolling, [dict(deferred)], {"name": "prometheus", "rolling_batch": 1}, host="p2")
    refused = plugin.run(task_vars=task_vars)
    assert refused["failed"] and "its restart on p1 failed" in refused["msg"]
    assert len(calls) == 1, "p2 was asked only whether it needs a restart"
    # another service of the same run is not held back
    plugin, calls, task_vars = action(rolling, [dict(deferred), {"changed": True, "actions": ["restart"]}],
                                      {"name": "loki", "rolling_batch": 1}, host="p2")
    assert plugin.run(task_vars=task_vars)["changed"]


def test_a_restarted_cluster_member_is_awaited_until_it_sees_its_peers_again(service):
    answers = iter([1, 2, 3])

    class Status(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            body = json.dumps({"cluster": {"peers": [{}] * next(answers, 3)}}).encode()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Status)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        params = {"cluster_status_url": f"http://127.0.0.1:{server.server_port}/api/v2/status",
                  "url_username": None, "url_password": None, "ready_timeout": 10}
        ok, detail = service.wait_peers(params, 3)
        assert ok and detail == "sees 3 of 3 cluster peers again"
        ok, detail = service.wait_peers(dict(params, ready_timeout=0), 4)
        assert not ok and "sees 3 of the 4 cluster peers" in detail
        assert service.cluster_peers(dict(params, cluster_status_url="http://127.0.0.1:9/")) is None
    finally:
        server.shutdown()


def run_site_include(tmp_path, play, lists, strategy):
    """Run the include_role task of site.yml's play number `play` as written (its loop_control),
    with its role replaced by stand-ins: each role appends its name to a file per host. `lists`
    maps each local host to its components. Returns the run and a function reading what each
    host ran."""
    site = yaml.safe_load((COMMON.parent / "playbooks/site.yml").read_text())
    include = next(task for task in site[play]["tasks"] if "ansible.builtin.include_role" in task)
    for role in {r for roles in lists.values() for r in roles}:
        (tmp_path / "roles" / role / "tasks").mkdir(parents=True, exist_ok=True)
        (tmp_path / "roles" / role / "tasks/main.yml").write_text(yaml.safe_dump([
            {"name": "Note the role", "ansible.builtin.shell": f"echo {role} >> {tmp_path}/{{{{ inventory_hostname }}}}",
             "changed_when": False}]))
    task = dict(include, loop="{{ components }}")
    task["ansible.builtin.include_role"] = {"name": "{{ _stack_component }}"}
    (tmp_path / "play.yml").write_text(yaml.safe_dump(
        [{"hosts": "all", "gather_facts": False, "strategy": strategy, "tasks": [task]}]))
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {
        host: {"components": roles, "ansible_connection": "local",
               "ansible_python_interpreter": sys.executable} for host, roles in lists.items()}}}))
    for host in lists:
        (tmp_path / host).unlink(missing_ok=True)
    proc = subprocess.run(["ansible-playbook", "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml")],
                          cwd=tmp_path, env=dict(os.environ, ANSIBLE_ROLES_PATH=str(tmp_path / "roles"), ANSIBLE_FORKS="10"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return proc, {host: (tmp_path / host).read_text().split() for host in lists}


def test_each_host_runs_its_components_in_its_own_order_whatever_the_other_hosts_run(tmp_path):
    """site.yml's one pass (strategy free) on hosts whose lists share components in different
    places. Ansible merges equal includes of different hosts into one (ansible/ansible#36978),
    which once let a host run node_exporter before its own Prometheus: node_exporter then waited
    for that Prometheus's CA until stack_tls_switch_timeout. Each include must stay its host's own."""
    lists = {"mon": ["p", "n", "a"], "am2": ["n", "b", "r", "a"], "scan": ["v", "n", "l", "t", "j", "g"],
             "app1": ["n", "pg", "t"], "app2": ["n", "r", "t"], "edge": ["n", "b", "t"]}
    for attempt in range(3):
        _, ran = run_site_include(tmp_path, 2, lists, "free")
        assert ran == lists, f"attempt {attempt}"


def check_play(tmp_path, hostvars):
    """site.yml's check play as written, on local hosts that are never contacted: the lab's
    layout (monitoring, logs, traces, applications). Returns (rc, output)."""
    site = yaml.safe_load((COMMON.parent / "playbooks/site.yml").read_text())
    play = dict(site[1], vars_files=[str(COMMON.parent / "roles/stack/vars/main.yml")])
    play["tasks"] = [dict(t, **{"ansible.builtin.import_tasks": str(COMMON.parent / "playbooks" / t["ansible.builtin.import_tasks"])})
                     if "ansible.builtin.import_tasks" in t else t for t in play["tasks"]]
    (tmp_path / "check.yml").write_text(yaml.safe_dump([play], sort_keys=False))
    names = ["mon", "logs", "traces", "app1", "app2", "app3"]
    groups = {"prometheus": ["mon"], "alertmanager": ["mon"], "grafana": ["mon"], "loki": ["logs"],
              "victoriametrics": ["logs"], "jaeger": ["traces"], "promtail": names,
              "postgres_exporter": names[3:], "redis_exporter": names[3:]}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                 "grafana_admin_password": "a-long-test-password", "alertmanager_receivers": [{"name": "blackhole"}]},
        "hosts": {n: {"ansible_host": f"10.0.0.{i + 1}", **hostvars.get(n, {})} for i, n in enumerate(names)},
        "children": {g: {"hosts": {h: None for h in hosts}} for g, hosts in groups.items()}}}))
    proc = subprocess.run(["ansible-playbook", "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "check.yml")],
                          cwd=COMMON.parent, env=dict(os.environ, ANSIBLE_FORKS="5"),
                          capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def test_both_plays_import_every_role_and_check_or_run_each_host_in_one_task():
    """Every role's defaults and vars come into the check play and the one pass by an import
    without tasks, in deployment order (playbooks/tasks/role_vars.yml): a new component left out
    would fail every run (its _<role>_preflight or _<role>_component missing). One task per host
    checks the host's components, one runs those whose role has nothing but its component task."""
    site = yaml.safe_load((COMMON.parent / "playbooks/site.yml").read_text())
    imports = yaml.safe_load((COMMON.parent / "playbooks/tasks/role_vars.yml").read_text())
    assert [t["ansible.builtin.import_role"]["name"] for t in imports] == ORDER
    assert all(t["ansible.builtin.import_role"]["tasks_from"] == "vars" for t in imports)
    assert all((COMMON.parent / "roles" / role / "tasks/vars.yml").read_text().rstrip().endswith("[]") for role in ORDER)
    for play in site[1:3]:
        assert play["tasks"][0]["ansible.builtin.import_tasks"] == "tasks/role_vars.yml"
    checks = [t for t in site[1]["tasks"] if "monstack.observability.stack_preflight" in t]
    assert len(checks) == 1 and "'stack'" in checks[0]["monstack.observability.stack_preflight"]["components"]
    runs = [t for t in site[2]["tasks"] if "monstack.observability.stack_component" in t]
    assert len(runs) == 1 and runs[0]["monstack.observability.stack_component"] == {"role": "{{ _stack_component }}"}
    assert runs[0]["loop_control"]["break_when"] == [f"{runs[0]['register']} is failed"]


def test_the_one_pass_includes_exactly_the_roles_with_more_than_their_component_task():
    """_stack_own_tasks: the roles whose deploy.yml is included, because it has more than the
    component task; every other role's deploy.yml is that task alone, with no other argument
    than its role, so the one pass's loop runs exactly what the role would."""
    site = yaml.safe_load((COMMON.parent / "playbooks/site.yml").read_text())
    own = site[2]["vars"]["_stack_own_tasks"]
    assert own[0] == "prometheus" and [r for r in ORDER if r in own] == own
    for role in ORDER:
        tasks = yaml.safe_load((COMMON.parent / "roles" / role / "tasks/deploy.yml").read_text())
        components = [t for t in tasks if "monstack.observability.stack_component" in t]
        assert components and all(t["monstack.observability.stack_component"]["role"] == role for t in components), role
        variables = yaml.safe_load((COMMON.parent / "roles" / role / "vars/main.yml").read_text())
        assert {"steps", "config", "service"} <= set(variables[f"_{role}_component"]), role
        if role in own:
            assert len(tasks) > 1, f"{role} has only its component task: leave it to the one pass's loop"
        else:
            assert len(tasks) == 1 and tasks[0]["monstack.observability.stack_component"] == {"role": role}, role
            assert tasks[0]["register"] == f"_{role}_result"


def test_a_switch_is_found_in_a_loops_results_and_in_a_single_tasks():
    filters = load("filter/stack.py", "stack_filters_switched").FilterModule().filters()
    switched = filters["stack_switched"]
    loop = {"results": [{"component": "node_exporter", "switched": False},
                        {"component": "loki", "switched": True, "config": {"changed": True}},
                        {"skipped": True}]}
    assert [r["component"] for r in switched([loop, {}, {"component": "grafana", "switched": True}])] == ["loki", "grafana"]
    assert switched([{"results": [], "skipped": True}, {}, {}]) == []
    # a result without its component (a task not run with role:) cannot be switched by name
    assert switched([{"switched": True}]) == []


def test_the_check_play_passes_a_good_inventory_and_names_each_hosts_bad_settings(tmp_path):
    """The real check play: the shared settings, each role's types and formats, and the role's
    own rules (some read the role's shipped files through role_path: a shipped alert's name is
    accepted, an unknown one is not), each failing host with its own message."""
    shipped = yaml.safe_load(next((COMMON.parent / "roles/prometheus/files/rules").glob("*.yml")).read_text())
    alert = next(rule["alert"] for group in shipped["groups"] for rule in group["rules"] if "alert" in rule)
    rc, out = check_play(tmp_path, {"mon": {"prometheus_alert_rules_disabled": [alert]}})
    assert rc == 0, out[-3000:]
    # one task, one result per host
    check = out.split("TASK [Check the shared settings and those of each component this host runs]")[1]
    assert check.split("TASK [")[0].count("ok: [") == 6, out[-3000:]
    rc, out = check_play(tmp_path, {
        "mon": {"prometheus_alert_rules_disabled": ["NoSuchAlert"]},
        "app2": {"node_exporter_collectors_enabled": ["systemd"], "node_exporter_collectors_disabled": ["systemd"]},
        "app3": {"stack_rolling_batch": "many", "redis_exporter_addr": "localhost:6379"}})
    assert rc != 0
    assert "fatal: [mon]" in out and "Prometheus settings: prometheus_alert_rules_disabled/_overrides name alerts " \
        "that are not shipped: NoSuchAlert" in out, out[-3000:]
    assert "fatal: [app2]" in out and "node_exporter settings: collectors systemd are in both" in out, out[-3000:]
    assert "stack settings: stack_rolling_batch must be a int, got str 'many'. redis_exporter settings: " \
        "redis_exporter_addr must start with redis://" in out, out[-3000:]
    assert "fatal: [app1]" not in out
