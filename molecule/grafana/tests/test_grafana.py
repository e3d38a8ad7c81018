"""Grafana: mechanics on the stand-in (user, files and modes, secrets, unit, health wait,
provisioning files, idempotent secret key, bad input), real behaviour when the real archive
is supplied (API health, Prometheus datasource health, dashboards found by search)."""
import base64
import json
import pathlib
import re

import pytest

from conftest import host_names, require_real, run_playbook, unit_pid

REPO = pathlib.Path(__file__).resolve().parents[3]

GRAF = host_names("grafana")[0] if host_names("grafana") else None
testinfra_hosts = [f"podman://{GRAF}"] if GRAF else []
PASSWORD = "molecule#admin;pass"


def api(host, path):
    token = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    return json.loads(host.check_output(
        f"curl -fsS --noproxy '*' -H 'Authorization: Basic {token}' http://127.0.0.1:3000{path}"))


def state(host):
    return unit_pid(host, "grafana"), host.file("/etc/grafana/grafana.ini").sha256sum


@pytest.mark.standin
def test_standin_grafana_runs_as_its_own_user_and_answers_health(host):
    assert host.service("grafana").is_running and host.service("grafana").is_enabled
    assert host.socket("tcp://0.0.0.0:3000").is_listening
    health = json.loads(host.check_output("curl -fsS --noproxy '*' http://127.0.0.1:3000/api/health"))
    assert health["database"] == "ok"
    unit = host.file("/etc/systemd/system/grafana.service").content_string
    for line in ("User=grafana", "ProtectSystem=strict", "--homepath=/opt/monitoring/grafana/current",
                 "cfg:default.paths.provisioning=/etc/grafana/provisioning", "WantedBy=multi-user.target"):
        assert line in unit


@pytest.mark.standin
def test_standin_secrets_are_in_0640_files_and_not_in_grafana_ini(host):
    ini = host.file("/etc/grafana/grafana.ini")
    assert (ini.user, ini.group, ini.mode) == ("root", "grafana", 0o640)
    assert PASSWORD not in ini.content_string
    assert "admin_password = $__file{/etc/grafana/secrets/admin_password}" in ini.content_string
    for name in ("admin_password", "secret_key"):
        f = host.file(f"/etc/grafana/secrets/{name}")
        assert (f.user, f.group, f.mode) == ("root", "grafana", 0o640), name
    assert host.file("/etc/grafana/secrets/admin_password").content_string == PASSWORD
    assert len(host.file("/etc/grafana/secrets/secret_key").content_string) >= 32


@pytest.mark.standin
def test_standin_secure_defaults(host):
    ini = host.file("/etc/grafana/grafana.ini").content_string
    assert re.search(r"\[auth\.anonymous\]\nenabled = false", ini)
    assert "allow_sign_up = false" in ini and "type = sqlite3" in ini and "reporting_enabled = false" in ini


@pytest.mark.standin
def test_standin_datasources_and_dashboards_are_provisioned(host):
    import yaml
    sources = yaml.safe_load(host.file("/etc/grafana/provisioning/datasources/monitoring-stack.yaml").content_string)
    by_uid = {d["uid"]: d for d in sources["datasources"]}
    assert by_uid["prometheus"]["url"] == f"http://{GRAF}:9090" and by_uid["prometheus"]["isDefault"]
    assert by_uid["testdata"]["type"] == "grafana-testdata-datasource"
    assert sources["prune"] is True
    boards = host.run("ls /var/lib/grafana/dashboards/monitoring-stack").stdout.split()
    shipped = sorted(p.name for p in (REPO / "roles/grafana/files/dashboards").glob("*.json"))
    assert "stack-overview.json" in boards and sorted(boards) == shipped, "every shipped dashboard, nothing else"
    providers = yaml.safe_load(host.file("/etc/grafana/provisioning/dashboards/monitoring-stack.yaml").content_string)
    assert providers["providers"][0]["folder"] == "Monitoring stack"


@pytest.mark.standin
def test_standin_the_generated_secret_key_survives_reruns(host):
    key = host.file("/etc/grafana/secrets/secret_key").sha256sum
    run = run_playbook("converge.yml", limit=GRAF)
    assert run.returncode == 0, run.output[-2000:]
    assert host.file("/etc/grafana/secrets/secret_key").sha256sum == key


@pytest.mark.standin
@pytest.mark.parametrize("extra, names", [
    ({"grafana_admin_password": ""}, "grafana_admin_password is not set"),
    ({"grafana_admin_password": "admin"}, "grafana_admin_password is weak"),
    ({"grafana_datasources": [{"name": "X", "type": "influx-typo"}]}, "datasource X: unknown type 'influx-typo'"),
])
def test_standin_bad_input_fails_before_any_change(host, extra, names):
    before = state(host)
    run = run_playbook("converge.yml", limit=GRAF, extra=extra)
    assert run.returncode != 0
    assert names in run.output, run.output[-2000:]
    assert not re.search(r"^changed:", run.output, re.M)
    assert state(host) == before


@pytest.mark.standin
def test_standin_a_dashboard_that_is_not_json_fails_before_any_change(host, tmp_path):
    folder = tmp_path / "Team"
    folder.mkdir()
    (folder / "broken.json").write_text('{"title": "x", ')
    before = state(host)
    run = run_playbook("converge.yml", limit=GRAF, extra={"grafana_dashboard_globs": [f"{tmp_path}/*/*.json"]})
    assert run.returncode != 0
    assert "dashboard broken.json (folder Team) is not valid JSON" in run.output, run.output[-2000:]
    assert state(host) == before


@pytest.mark.real
def test_real_api_health_and_prometheus_datasource_health(host):
    require_real(host, "grafana", "--version")
    assert api(host, "/api/health")["database"] == "ok"
    assert api(host, "/api/datasources/uid/prometheus/health")["status"] == "OK"


@pytest.mark.real
def test_real_shipped_dashboards_are_found_by_search(host):
    require_real(host, "grafana", "--version")
    titles = {d["title"] for d in api(host, "/api/search?type=dash-db")}
    assert {"Stack overview", "Node overview", "Prometheus", "Jaeger"} <= titles


@pytest.mark.real
def test_real_a_datasource_change_applies_without_restart(host):
    require_real(host, "grafana", "--version")
    pid = unit_pid(host, "grafana")
    run = run_playbook("converge.yml", limit=GRAF, extra={"grafana_datasources": [
        {"name": "TestData", "type": "grafana-testdata-datasource", "uid": "testdata"},
        {"name": "TestData 2", "type": "grafana-testdata-datasource", "uid": "testdata2"}]})
    assert run.returncode == 0, run.output[-2000:]
    assert api(host, "/api/datasources/uid/testdata2")["name"] == "TestData 2"
    assert unit_pid(host, "grafana") == pid


@pytest.mark.standin
def test_standin_a_plugin_archive_from_the_controller_is_installed(host, tmp_path):
    import zipfile
    archive = tmp_path / "monstack-test-panel.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("monstack-test-panel/plugin.json", json.dumps({"type": "panel", "id": "monstack-test-panel"}))
    pid = unit_pid(host, "grafana")
    run = run_playbook("converge.yml", limit=GRAF, extra={
        "grafana_plugins": [{"name": "monstack-test-panel", "src": str(archive)}]})
    assert run.returncode == 0, run.output[-2000:]
    plugin = host.file("/var/lib/grafana/plugins/monstack-test-panel/plugin.json")
    assert plugin.exists and plugin.user == "grafana"
    assert unit_pid(host, "grafana") != pid, "a new plugin restarts Grafana so it is loaded"


def reload_status(host, password):
    token = base64.b64encode(f"admin:{password}".encode()).decode()
    return host.check_output(
        f"curl -sS -o /dev/null -w '%{{http_code}}' --noproxy '*' -X POST -H 'Authorization: Basic {token}' "
        "http://127.0.0.1:3000/api/admin/provisioning/datasources/reload")


def test_a_new_admin_password_is_written_into_the_servers_database(host):
    """Issue 36 item 1: Grafana reads admin_password only when it creates its database, so the
    role rotates it with `grafana cli admin reset-admin-password`, which must open the server's
    database (the stand-in keeps Grafana's CLI path rules and its admin API's login)."""
    assert reload_status(host, PASSWORD) == "200"
    try:
        run = run_playbook("converge.yml", limit=GRAF, extra={"grafana_admin_password": "rotated-Passw0rd!"})
        assert run.returncode == 0, run.output[-3000:]
        assert reload_status(host, "rotated-Passw0rd!") == "200"
        assert reload_status(host, PASSWORD) == "401"
        assert not host.file("/opt/monitoring/grafana/current/data/grafana.db").exists
    finally:
        run = run_playbook("converge.yml", limit=GRAF)
        assert run.returncode == 0, run.output[-3000:]
    assert reload_status(host, PASSWORD) == "200"
