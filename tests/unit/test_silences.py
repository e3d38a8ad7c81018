"""Maintenance silences (issue 37): while a clustered component restarts, the inventory's
Alertmanager silences the alerts about that service's own target on that host, and the silence
ends a grace period after the service is ready again or failed, also when Alertmanager is the
one restarting."""
import types

import pytest

from conftest import HostVars


@pytest.fixture(scope="module")
def silence():
    from ansible_collections.monstack.observability.plugins.module_utils import stack_silence
    return stack_silence


def test_the_silence_is_the_restarting_instance_on_the_other_members_first(filters, registry):
    groups = {"all": ["am1", "am2", "prom"], "alertmanager": ["am1", "am2"], "prometheus": ["prom"]}
    hostvars = HostVars(am1={}, am2={"alertmanager_web_tls_cert": "x"},
                        prom={"prometheus_scrape_interval": "5s", "prometheus_evaluation_interval": "10s"})
    spec = filters.maintenance_silence("alertmanager", "am1", groups, hostvars, registry, "/etc/alertmanager/ca.crt", "stack")
    assert spec["urls"] == ["https://am2:9093", "http://am1:9093"], "a restarting member never holds the only copy"
    assert spec["matchers"] == [{"name": "instance", "value": "am1:9093"}]
    assert spec["grace"] == 20 and spec["ca_file"] == "/etc/alertmanager/ca.crt" and spec["username"] == "stack"
    prom = filters.maintenance_silence("prometheus", "prom", groups, hostvars, registry)
    assert prom["matchers"] == [{"name": "instance", "value": "prom:9090"}] and prom["urls"][0] == "http://am1:9093"
    assert filters.maintenance_silence("prometheus", "prom", {"all": ["prom"], "prometheus": ["prom"]},
                                       HostVars(prom={}), registry) is None, "no Alertmanager, no silence"


def test_begin_silences_on_the_first_member_that_takes_it_and_end_keeps_its_start(silence):
    calls = []

    def call(url, body, spec, password):
        if "down" in url:
            raise OSError("connection refused")
        if body is None:  # Alertmanager keeps its own start for a silence starting now
            return {"id": "abc", "startsAt": "2026-12-07T07:00:00.123Z"}
        calls.append((url, body, password))
        return {"silenceID": "abc"}

    spec = {"urls": ["http://down:9093", "http://up:9093"], "matchers": [{"name": "instance", "value": "am1:9093"}],
            "comment": "alertmanager on am1 restarts", "username": "stack"}
    made, problem = silence.begin(spec, "pw", 150, call=call)
    assert made["id"] == "abc" and made["url"] == "http://up:9093" and problem is None
    url, body, password = calls[-1]
    assert url == "http://up:9093/api/v2/silences" and password == "pw"
    assert body["matchers"] == [{"name": "instance", "value": "am1:9093", "isRegex": False, "isEqual": True}]
    assert body["startsAt"] < body["endsAt"] and body["createdBy"].startswith("monstack")
    assert silence.end(spec, "pw", made, 20, "ready again", call=call) is None
    url, update, _ = calls[-1]
    # updated in place: same id, same start, an earlier end
    assert url == "http://up:9093/api/v2/silences" and update["id"] == "abc"
    assert update["startsAt"] == made["starts"] == "2026-12-07T07:00:00.123Z" and update["endsAt"] < body["endsAt"]
    assert "ready again" in update["comment"]
    nobody, problem = silence.begin(dict(spec, urls=["http://down:9093"]), None, 10, call=call)
    assert nobody is None and "connection refused" in problem


@pytest.fixture
def restarting(service, monkeypatch):
    """stack_service.run on a running unit whose restart is asked, systemd and readiness faked."""
    state = {"LoadState": "loaded", "ActiveState": "active", "SubState": "running", "MainPID": "0", "NRestarts": "0",
             "UnitFileState": "enabled", "NeedDaemonReload": "no", "ExecReload": "", "FragmentPath": "", "DropInPaths": ""}
    monkeypatch.setattr(service, "show", lambda name: dict(state))
    monkeypatch.setattr(service, "systemctl", lambda *args, check=True: types.SimpleNamespace(returncode=0, stdout="", stderr=""))
    monkeypatch.setattr(service, "journal", lambda unit, lines: "journal")
    events = []
    monkeypatch.setattr(service.stack_silence, "begin", lambda spec, pw, seconds: (
        events.append(("begin", seconds)) or ({"id": "s1", "url": spec["urls"][0], "starts": "t"}, None)))
    monkeypatch.setattr(service.stack_silence, "end", lambda spec, pw, made, grace, outcome: events.append(("end", grace, outcome)))
    params = {name: option.get("default") for name, option in service.ARGUMENT_SPEC.items()}
    params.update(name="alertmanager", restart=True, reason="new release",
                  silence={"urls": ["http://am2:9093"], "matchers": [{"name": "instance", "value": "am1:9093"}], "grace": 20})
    return params, events


def test_a_restart_runs_inside_the_silence_and_ends_it_when_ready(service, restarting, monkeypatch):
    params, events = restarting
    monkeypatch.setattr(service, "wait_ready", lambda p, unit, before, result: events.append(("ready",)) or (True, "HTTP 200"))
    result = service.run(params)
    assert events == [("begin", params["ready_timeout"] + 60), ("ready",), ("end", 20, "ready again")]
    assert result["silence"]["id"] == "s1"
    # nothing to restart, no silence
    events.clear()
    assert service.run(dict(params, restart=False))["actions"] == [] and events == []


def test_a_failed_restart_ends_its_silence_too(service, restarting, monkeypatch):
    params, events = restarting
    monkeypatch.setattr(service, "wait_ready", lambda p, unit, before, result: (False, "the unit is failed (failed)"))
    with pytest.raises(service.StepError):
        service.run(params)
    assert events[0][0] == "begin" and events[-1] == ("end", 20, "restart failed")


def test_without_an_alertmanager_the_restart_goes_on_with_a_warning(service, restarting, monkeypatch):
    params, _ = restarting
    monkeypatch.setattr(service.stack_silence, "begin", lambda spec, pw, seconds: (None, "http://am2:9093: refused"))
    monkeypatch.setattr(service, "wait_ready", lambda p, unit, before, result: (True, "HTTP 200"))
    warnings = []
    result = service.run(params, warn=warnings.append)
    assert "restart" in result["actions"] and "silence" not in result
    assert warnings == ["alertmanager restarts without a maintenance silence: no Alertmanager took it "
                        "(http://am2:9093: refused)"]


def test_the_clustered_roles_ask_for_it(registry):
    import pathlib

    roles = pathlib.Path(__file__).resolve().parents[2] / "roles"
    for name, entry in registry.items():
        if (entry or {}).get("rolling"):
            text = (roles / name / "vars/main.yml").read_text()
            assert "stack_maintenance_silence(" in text and "silence_password:" in text, name


def test_a_host_down_for_maintenance_silences_every_target_on_it_through_another_members_loopback(filters, registry):
    groups = {"all": ["am1", "am2", "db3"], "alertmanager": ["am1", "am2"], "prometheus": ["am1"]}
    hostvars = HostVars(am1={"alertmanager_web_tls_cert": "x"}, am2={"alertmanager_listen_address": ":9193"},
                        db3={"stack_address": "10.0.0.3"})
    spec = filters.host_silence("db3", groups, hostvars, registry)
    assert spec["on"] == "am1" and spec["url"] == "https://127.0.0.1:9093" and spec["ca_file"] == "/etc/alertmanager/ca.crt"
    assert spec["matchers"] == [{"name": "instance", "value": r"10\.0\.0\.3:[0-9]+", "isRegex": True, "isEqual": True}]
    assert spec["grace"] == 45
    mine = filters.host_silence("am1", groups, hostvars, registry)
    assert mine["on"] == "am2" and mine["url"] == "http://127.0.0.1:9193" and mine["ca_file"] is None
    assert filters.host_silence("db3", {"all": ["db3"]}, hostvars, registry) is None
    assert filters.utc_after(0) < filters.utc_after(60) and filters.utc_after(0).endswith("Z")
