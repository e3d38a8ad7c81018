"""The stand-ins keep upstream's contract (tests/mirror/contracts: the keys each program accepts,
read from its source at the pinned tag), so offline tests fail for the reasons real hosts would;
and the configs the roles render hold that contract."""
import base64
import json
import pathlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import yaml

from test_rendered_configs import render

ROOT = pathlib.Path(__file__).resolve().parents[2]
STANDIN = ROOT / "tests" / "mirror" / "standin.py"


def standin(tmp_path, name):
    """The stand-in under a program's name, as the mirror installs it."""
    binary = tmp_path / name
    if not binary.exists():
        binary.symlink_to(STANDIN)
    return binary


def run(tmp_path, name, *args, stdin=None):
    return subprocess.run([sys.executable, str(standin(tmp_path, name)), *args], capture_output=True, text=True,
                          input=stdin, timeout=30)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url, headers=None, method="GET"):
    req = urllib.request.Request(url, data=b"" if method == "POST" else None, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=3) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_answer(url, seconds=10):
    deadline = time.monotonic() + seconds
    while True:
        try:
            return get(url)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def server(tmp_path):
    """Start a stand-in server; killed at the end of the test."""
    procs = []

    def start(name, *args):
        proc = subprocess.Popen([sys.executable, str(standin(tmp_path, name)), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def tls_pki(tmp_path_factory):
    """A CA and a certificate for 127.0.0.1 from the stack's own lookup, as files."""
    from conftest import load
    tls = load("lookup/stack_tls.py", "stack_tls_lookup_contract")
    out = tmp_path_factory.mktemp("pki")
    material = tls.host_material(out / "store", "localhost", sans=["127.0.0.1"])
    files = {}
    for name in ("cert", "key", "ca"):
        (out / name).write_text(material[name])
        files[name] = str(out / name)
    return files


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    return render(tmp_path_factory, promtail_log_paths=["/var/log/*.log", "/srv/app/*.log"])


def write(path, data):
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return str(path)


# --- the roles' configs hold the contract ---------------------------------------------------

@pytest.mark.parametrize("name", ["loki", "promtail"])
def test_the_rendered_config_passes_the_stand_in_check(tmp_path, rendered, name):
    flag = "-verify-config" if name == "loki" else "-check-syntax"
    proc = run(tmp_path, name, f"-config.file={write(tmp_path / 'config.yml', rendered[name])}", flag)
    assert proc.returncode == 0, proc.stderr


def test_the_rendered_jaeger_config_passes_validate(tmp_path, rendered):
    proc = run(tmp_path, "jaeger", "validate", f"--config=file:{write(tmp_path / 'config.yaml', rendered['jaeger'])}")
    assert proc.returncode == 0, proc.stderr


# --- unknown keys and wrong flags are refused as upstream refuses them -------------------------

@pytest.mark.parametrize("name, path", [
    ("loki", ["server", "http_listen_prot"]),
    ("loki", ["common", "storage", "filesystem", "chunk_directory"]),
    ("loki", ["limits_config", "retention_periode"]),
    ("promtail", ["positions", "file"]),
    ("promtail", ["scrape_configs", 0, "journal", "max_ages"]),
    ("promtail", ["clients", 0, "tls", ]),
])
def test_an_unknown_key_is_refused(tmp_path, rendered, name, path):
    config = json.loads(json.dumps(rendered[name]))
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = "x"
    flag = "-verify-config" if name == "loki" else "-check-syntax"
    proc = run(tmp_path, name, f"-config.file={write(tmp_path / 'config.yml', config)}", flag)
    assert proc.returncode != 0 and f"field {path[-1]} not found" in proc.stderr


@pytest.mark.parametrize("change, message", [
    (lambda c: c["receivers"]["otlp"]["protocols"]["grpc"].update(endpont="x"), "'protocols.grpc.endpont' has invalid keys"),
    (lambda c: c["extensions"]["jaeger_query"].update(storage={"trace": "main"}), "'storage.trace' has invalid keys"),
    (lambda c: c.update(extension={}), "'extension' has invalid keys"),
    (lambda c: c["processors"].update(batcher={}), 'unknown type: "batcher"'),
])
def test_jaeger_refuses_an_unknown_key_or_component_type(tmp_path, rendered, change, message):
    config = json.loads(json.dumps(rendered["jaeger"]))
    change(config)
    proc = run(tmp_path, "jaeger", "validate", f"--config=file:{write(tmp_path / 'config.yaml', config)}")
    assert proc.returncode != 0 and message in proc.stderr


def test_jaeger_takes_config_and_refuses_config_file(tmp_path, rendered):
    path = write(tmp_path / "config.yaml", rendered["jaeger"])
    assert run(tmp_path, "jaeger", "validate", f"--config={path}").returncode == 0
    proc = run(tmp_path, "jaeger", "validate", f"--config.file={path}")
    assert proc.returncode != 0 and "unknown flag: --config.file" in proc.stderr


# --- readiness as upstream answers it ------------------------------------------------------

def test_loki_answers_503_while_starting(tmp_path, rendered, server):
    config = json.loads(json.dumps(rendered["loki"]))
    port = free_port()
    config["server"].update(http_listen_address="127.0.0.1", http_listen_port=port, grpc_listen_port=free_port())
    server("loki", f"-config.file={write(tmp_path / 'config.yml', config)}")
    status, body = wait_answer(f"http://127.0.0.1:{port}/ready")
    assert status == 503 and "not ready" in body
    # what playbooks/backup.yml asks before it packs the data directory (GET or POST, 204)
    assert get(f"http://127.0.0.1:{port}/flush", method="POST") == (204, "")
    assert get(f"http://127.0.0.1:{port}/flush")[0] == 204


def test_jaeger_status_is_503_until_running(tmp_path, rendered, server):
    config = json.loads(json.dumps(rendered["jaeger"]))
    ports = [free_port() for _ in range(6)]
    config["extensions"]["healthcheckv2"]["http"]["endpoint"] = f"127.0.0.1:{ports[0]}"
    config["extensions"]["jaeger_query"]["http"]["endpoint"] = f"127.0.0.1:{ports[1]}"
    config["extensions"]["jaeger_query"]["grpc"]["endpoint"] = f"127.0.0.1:{ports[2]}"
    config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] = f"127.0.0.1:{ports[3]}"
    config["receivers"]["otlp"]["protocols"]["http"]["endpoint"] = f"127.0.0.1:{ports[4]}"
    config["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"].update(
        host="127.0.0.1", port=ports[5])
    server("jaeger", f"--config=file:{write(tmp_path / 'config.yaml', config)}")
    assert wait_answer(f"http://127.0.0.1:{ports[0]}/status")[0] == 503
    time.sleep(1.2)
    assert get(f"http://127.0.0.1:{ports[0]}/status")[0] == 200


def promtail_config(tmp_path, rendered, paths, journal):
    config = json.loads(json.dumps(rendered["promtail"]))
    port = free_port()
    config["server"].update(http_listen_address="127.0.0.1", http_listen_port=port)
    config["scrape_configs"] = [job for job in config["scrape_configs"] if journal or job["job_name"] != "journal"]
    for job in config["scrape_configs"]:
        for group in job.get("static_configs") or []:
            group["labels"]["__path__"] = str(tmp_path / paths.pop(0))
    return write(tmp_path / "promtail.yml", config), port


def test_promtail_is_not_ready_with_nothing_to_tail_and_the_stack_accepts_it_with_a_warning(tmp_path, rendered, server):
    """Issue 36 item 3: with the journal off and no file yet, real Promtail's /ready answers 500
    "Unable to find any logs to tail" for good; the service step takes that answer as running
    (the registry's ready.accept) and says so, instead of failing after the timeout."""
    from conftest import load
    service = load("module_utils/stack_service.py", "stack_service_utils_ready")
    registry = yaml.safe_load((ROOT / "roles/stack/vars/main.yml").read_text())["stack_components"]
    path, port = promtail_config(tmp_path, rendered, ["app-*.log", "other-*.log"], journal=False)
    server("promtail", f"-config.file={path}")
    url = f"http://127.0.0.1:{port}/ready"
    status, body = wait_answer(url)
    assert status == 500 and "Unable to find any logs to tail" in body
    ok, _, note = service.probe(url, None, None, None, registry["promtail"]["ready"]["accept"])
    assert ok and "tails nothing yet" in note
    assert service.probe(url, None, None, None, [])[0] is False
    # a file appears: Promtail tails it and is ready
    (tmp_path / "other-1.log").write_text("line\n")
    assert get(url) == (200, "Ready")


def test_promtail_with_the_journal_is_ready(tmp_path, rendered, server):
    path, port = promtail_config(tmp_path, rendered, ["a.log", "b.log"], journal=True)
    server("promtail", f"-config.file={path}")
    assert wait_answer(f"http://127.0.0.1:{port}/ready") == (200, "Ready")


def test_promtail_tails_nothing_through_comma_joined_paths(tmp_path, rendered, server):
    """Issue 36 item 2: a comma in __path__ is a literal character (doublestar), so the paths the
    role used to join matched no file; each path is now a target of its own."""
    (tmp_path / "a.log").write_text("line\n")
    config = json.loads(json.dumps(rendered["promtail"]))
    port = free_port()
    config["server"].update(http_listen_address="127.0.0.1", http_listen_port=port)
    config["scrape_configs"] = [{"job_name": "varlogs", "static_configs": [{"targets": ["localhost"], "labels": {
        "__path__": f"{tmp_path}/a.log,{tmp_path}/b.log"}}]}]
    server("promtail", f"-config.file={write(tmp_path / 'joined.yml', config)}")
    assert wait_answer(f"http://127.0.0.1:{port}/ready")[0] == 500


def test_every_log_path_is_a_target_of_its_own(rendered):
    groups = {job["job_name"]: job for job in rendered["promtail"]["scrape_configs"]}["varlogs"]["static_configs"]
    assert [group["labels"]["__path__"] for group in groups] == ["/var/log/*.log", "/srv/app/*.log"]
    assert all(group["labels"]["job"] == "varlogs" and group["labels"]["host"] == "app1" for group in groups)


# --- traces lead to the service's logs (issue 36 item 6) -----------------------------------

def test_journal_lines_carry_the_service_name_the_jaeger_datasource_filters_by(rendered):
    import re
    journal = {job["job_name"]: job for job in rendered["promtail"]["scrape_configs"]}["journal"]
    rule = next(r for r in journal["relabel_configs"] if r["target_label"] == "service_name")
    assert rule["source_labels"] == ["__journal__systemd_unit"]
    # Prometheus relabelling anchors the regex and writes $1 (the default replacement)
    assert re.fullmatch(rule["regex"], "demo-shop.service").group(1) == "demo-shop"
    assert re.fullmatch(rule["regex"], "cron.timer").group(1) == "cron.timer"
    jaeger = next(d for d in rendered["grafana_datasources"] if d["type"] == "jaeger")
    assert {"key": "service.name", "value": "service_name"} in jaeger["jsonData"]["tracesToLogsV2"]["tags"]


# --- Grafana: its CLI's path rules and its provisioning checks ------------------------------

def grafana_home(tmp_path):
    home = tmp_path / "home"
    (home / "conf").mkdir(parents=True)
    (home / "data").mkdir()
    sys.path.insert(0, str(ROOT / "tests" / "mirror"))
    import build_mirror  # pylint: disable=import-outside-toplevel
    (home / "conf" / "defaults.ini").write_bytes(build_mirror.GRAFANA_DEFAULTS_INI)
    return home


def test_the_grafana_cli_opens_the_database_its_paths_name(tmp_path, server):
    """Issue 36 item 1: grafana cli builds its settings from --homepath, --config and
    --configOverrides only (pkg/cmd/grafana-cli/commands/commands.go, initializeRunner);
    without the data path it works on <home>/data/grafana.db, not the server's database."""
    home, data, port = grafana_home(tmp_path), tmp_path / "data", free_port()
    data.mkdir()
    (tmp_path / "admin_password").write_text("first\n")
    ini = write(tmp_path / "grafana.ini", f"[server]\nhttp_addr = 127.0.0.1\nhttp_port = {port}\n[security]\n"
                                          f"admin_password = $__file{{{tmp_path / 'admin_password'}}}\n")
    server("grafana", "server", f"--homepath={home}", f"--config={ini}", f"cfg:default.paths.data={data}",
           f"cfg:default.paths.provisioning={tmp_path}/provisioning")
    wait_answer(f"http://127.0.0.1:{port}/api/health")
    reload = f"http://127.0.0.1:{port}/api/admin/provisioning/datasources/reload"

    def login(password):
        return get(reload, {"Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()}, "POST")[0]

    assert login("first") == 200
    # Grafana reads admin_password only when it creates its database
    (tmp_path / "admin_password").write_text("second\n")
    assert login("second") == 401
    # without the data path the CLI changes another database
    assert run(tmp_path, "grafana", "cli", f"--homepath={home}", f"--config={ini}", "admin", "reset-admin-password",
               "--password-from-stdin", stdin="second").returncode == 0
    assert (home / "data" / "grafana.db").exists() and login("second") == 401
    # with it (as the role runs it), the server's
    proc = run(tmp_path, "grafana", "cli", f"--homepath={home}", f"--config={ini}",
               f"--configOverrides=cfg:default.paths.data={data}", "admin", "reset-admin-password",
               "--password-from-stdin", stdin="second")
    assert proc.returncode == 0, proc.stderr
    assert login("second") == 200 and login("first") == 401


def test_grafana_refuses_two_default_datasources(tmp_path):
    home = grafana_home(tmp_path)
    (tmp_path / "provisioning" / "datasources").mkdir(parents=True)
    write(tmp_path / "provisioning" / "datasources" / "a.yaml", {"apiVersion": 1, "datasources": [
        {"name": "A", "type": "prometheus", "isDefault": True}, {"name": "B", "type": "prometheus", "isDefault": True}]})
    proc = run(tmp_path, "grafana", "server", f"--homepath={home}", f"--config={write(tmp_path / 'g.ini', '')}",
               f"cfg:default.paths.provisioning={tmp_path}/provisioning", f"cfg:default.paths.data={tmp_path}")
    assert proc.returncode != 0 and "Only one datasource per organization can be marked as default" in proc.stderr


def test_grafana_refuses_an_unknown_flag(tmp_path):
    proc = run(tmp_path, "grafana", "server", "--home=/x")
    assert proc.returncode != 0 and "flag provided but not defined: -home" in proc.stderr


def test_the_stand_in_the_mirror_ships_carries_its_contracts(tmp_path, rendered):
    """The mirror's archives hold standin.py with the contracts written in (no contracts
    directory next to it on a host)."""
    sys.path.insert(0, str(ROOT / "tests" / "mirror"))
    import build_mirror  # pylint: disable=import-outside-toplevel
    binary = tmp_path / "loki"
    binary.write_bytes(build_mirror.standin_bytes({"loki": "3.7.6"}))
    config = json.loads(json.dumps(rendered["loki"]))
    assert subprocess.run([sys.executable, str(binary), f"-config.file={write(tmp_path / 'ok.yml', config)}", "-verify-config"],
                          capture_output=True, text=True).returncode == 0
    config["server"]["typo"] = 1
    proc = subprocess.run([sys.executable, str(binary), f"-config.file={write(tmp_path / 'bad.yml', config)}", "-verify-config"],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "field typo not found" in proc.stderr


def bcrypt(password):
    sys.path.insert(0, str(ROOT / "tests" / "mirror"))
    import standin  # pylint: disable=import-outside-toplevel
    return standin.crypt(password, "$2b$10$abcdefghijklmnopqrstuv")


def test_jaeger_behind_basicauth_refuses_anonymous_requests(tmp_path, rendered, server):
    """Issue 36 item 4: Jaeger 2.20's basicauth extension guards its receivers and query service
    (auth.authenticator); the stand-in asks for the login as the real one does."""
    config = json.loads(json.dumps(rendered["jaeger"]))
    ports = [free_port() for _ in range(6)]
    (tmp_path / "htpasswd").write_text(f"monstack:{bcrypt('s3cret')}\n")
    config["extensions"]["basicauth/stack"] = {"htpasswd": {"file": str(tmp_path / "htpasswd")}}
    config["service"]["extensions"].append("basicauth/stack")
    config["extensions"]["healthcheckv2"]["http"]["endpoint"] = f"127.0.0.1:{ports[0]}"
    config["extensions"]["jaeger_query"]["http"] = {"endpoint": f"127.0.0.1:{ports[1]}", "auth": {"authenticator": "basicauth/stack"}}
    config["extensions"]["jaeger_query"]["grpc"]["endpoint"] = f"127.0.0.1:{ports[2]}"
    config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] = f"127.0.0.1:{ports[3]}"
    config["receivers"]["otlp"]["protocols"]["http"] = {"endpoint": f"127.0.0.1:{ports[4]}", "auth": {"authenticator": "basicauth/stack"}}
    config["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"].update(
        host="127.0.0.1", port=ports[5])
    server("jaeger", f"--config=file:{write(tmp_path / 'config.yaml', config)}")
    wait_answer(f"http://127.0.0.1:{ports[0]}/status")
    login = {"Authorization": "Basic " + base64.b64encode(b"monstack:s3cret").decode()}
    wrong = {"Authorization": "Basic " + base64.b64encode(b"monstack:guess").decode()}
    for port in (ports[1], ports[4]):
        assert wait_answer(f"http://127.0.0.1:{port}/")[0] == 401
        assert get(f"http://127.0.0.1:{port}/", wrong)[0] == 401
        assert get(f"http://127.0.0.1:{port}/", login)[0] in (200, 404)
    # an authenticator the service does not run is refused, as the collector refuses it
    config["service"]["extensions"].remove("basicauth/stack")
    proc = run(tmp_path, "jaeger", "validate", f"--config=file:{write(tmp_path / 'bad.yaml', config)}")
    assert proc.returncode != 0 and "authenticator not found" in proc.stderr


def test_loki_with_client_auth_refuses_a_client_without_a_certificate(tmp_path, tls_pki, server):
    """Issue 36 item 4: dskit's client_auth_type RequireAndVerifyClientCert: no certificate, no
    connection."""
    import ssl
    config = {"server": {"http_listen_address": "127.0.0.1", "http_listen_port": free_port(), "grpc_listen_port": free_port(),
                         "http_tls_config": {"cert_file": tls_pki["cert"], "key_file": tls_pki["key"],
                                             "client_auth_type": "RequireAndVerifyClientCert", "client_ca_file": tls_pki["ca"]}},
              "schema_config": {"configs": [{"from": "2024-04-01", "store": "tsdb", "object_store": "filesystem", "schema": "v13",
                                             "index": {"prefix": "index_", "period": "24h"}}]}}
    server("loki", f"-config.file={write(tmp_path / 'loki.yml', config)}")
    url = f"https://127.0.0.1:{config['server']['http_listen_port']}/ready"
    anonymous = ssl.create_default_context(cafile=tls_pki["ca"])
    anonymous.check_hostname = False
    deadline = time.monotonic() + 10
    while True:
        try:
            urllib.request.urlopen(url, context=anonymous, timeout=3)
            raise AssertionError("answered without a client certificate")
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"answered {exc.code} without a client certificate") from exc
        except (ssl.SSLError, ConnectionError, urllib.error.URLError) as exc:
            if "refused" not in str(exc).lower():
                break
            assert time.monotonic() < deadline
            time.sleep(0.2)
    client = ssl.create_default_context(cafile=tls_pki["ca"])
    client.check_hostname = False
    client.load_cert_chain(tls_pki["cert"], tls_pki["key"])
    try:
        urllib.request.urlopen(url, context=client, timeout=3)
    except urllib.error.HTTPError as exc:
        assert exc.code == 503  # in, and still starting


def test_grafana_metrics_ask_for_the_metrics_login(tmp_path, server):
    home, port = grafana_home(tmp_path), free_port()
    (tmp_path / "metrics_password").write_text("m3trics\n")
    ini = write(tmp_path / "grafana.ini", f"[server]\nhttp_addr = 127.0.0.1\nhttp_port = {port}\n[metrics]\n"
                                          f"basic_auth_username = monstack\n"
                                          f"basic_auth_password = $__file{{{tmp_path / 'metrics_password'}}}\n")
    server("grafana", "server", f"--homepath={home}", f"--config={ini}", f"cfg:default.paths.data={tmp_path}",
           f"cfg:default.paths.provisioning={tmp_path}/provisioning")
    url = f"http://127.0.0.1:{port}/metrics"
    assert wait_answer(url)[0] == 401
    assert get(url, {"Authorization": "Basic " + base64.b64encode(b"monstack:m3trics").decode()})[0] == 404
