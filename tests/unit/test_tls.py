"""stack_tls: the controller's CA, host certificates and passwords (plugins/lookup/stack_tls.py),
and how the registry turns them into HTTPS servers and verifying clients."""
import datetime
import json
import os
import pathlib
import re
import stat
import subprocess
import sys

import pytest
from ansible.errors import AnsibleLookupError
from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from conftest import load
from test_rendered_configs import render

tls = load("lookup/stack_tls.py", "stack_tls_lookup")
grafana = load("filter/grafana.py", "grafana_filters_tls")
alertmanager = load("filter/alertmanager.py", "alertmanager_filters_tls")
jaeger_filters = load("filter/jaeger.py", "jaeger_filters_tls")


def names(pem):
    cert = x509.load_pem_x509_certificate(pem.encode())
    san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    return {str(v) for v in san.get_values_for_type(x509.DNSName)} | {str(v) for v in san.get_values_for_type(x509.IPAddress)}


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_ca_is_made_once_and_its_key_stays_private(tmp_path):
    first = tls.host_material(tmp_path / "pki", "mon1", ["10.0.0.1"], names=["prometheus"])
    again = tls.host_material(tmp_path / "pki", "mon1", ["10.0.0.1"], names=["prometheus"])
    assert first == again, "a second run reads back the same CA, certificate, key and password"
    assert mode(tmp_path / "pki") == 0o700
    assert mode(tmp_path / "pki/ca.key") == 0o600 and mode(tmp_path / "pki/hosts/mon1.key") == 0o600
    assert mode(tmp_path / "pki/passwords/prometheus") == 0o600
    assert "PRIVATE KEY" not in first["ca"] and "ca.key" not in json.dumps(first)


def test_a_host_certificate_names_the_host_its_addresses_and_is_issued_by_the_ca(tmp_path):
    out = tls.host_material(tmp_path, "mon1", ["10.0.0.1", "mon1.example.org", "", "localhost", "127.0.0.1"])
    assert names(out["cert"]) == {"mon1", "10.0.0.1", "mon1.example.org", "localhost", "127.0.0.1"}
    cert, ca = (x509.load_pem_x509_certificate(out[k].encode()) for k in ("cert", "ca"))
    cert.verify_directly_issued_by(ca)
    usages = cert.extensions.get_extension_for_oid(ExtensionOID.EXTENDED_KEY_USAGE).value
    assert {u.dotted_string for u in usages} == {"1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"}, "server and client"


def test_a_certificate_near_expiry_or_missing_a_name_is_issued_again(tmp_path):
    first = tls.host_material(tmp_path, "app1", ["10.0.0.4"], days=365, renew_days=30)
    assert tls.host_material(tmp_path, "app1", ["10.0.0.4"], days=365, renew_days=30)["cert"] == first["cert"]
    # a new address of the host: the certificate must name it
    moved = tls.host_material(tmp_path, "app1", ["10.0.0.9"], days=365, renew_days=30)
    assert moved["cert"] != first["cert"] and "10.0.0.9" in names(moved["cert"])
    # an old certificate: issued 400 days ago for 365 days (expired), renewed on the next call
    ca_cert = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    from cryptography.hazmat.primitives import serialization
    ca_key = serialization.load_pem_private_key((tmp_path / "ca.key").read_bytes(), None)
    old, key = tls.issue(ca_cert, ca_key, "app1", ["10.0.0.9"], 365,
                         not_before=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=400))
    (tmp_path / "hosts/app1.crt").write_bytes(tls._cert_pem(old))
    (tmp_path / "hosts/app1.key").write_bytes(tls._key_pem(key))
    assert "expires" in tls.renewal_reason(old, ca_cert, "app1", ["10.0.0.9"], 30)
    renewed = tls.host_material(tmp_path, "app1", ["10.0.0.9"], days=365, renew_days=30)
    not_after = datetime.datetime.strptime(renewed["not_after"], "%Y-%m-%dT%H:%M:%SZ")
    assert not_after > datetime.datetime.utcnow() + datetime.timedelta(days=360)


def test_a_renew_window_as_long_as_the_validity_is_refused(tmp_path):
    with pytest.raises(AnsibleLookupError, match="stack_tls_renew_days"):
        tls.host_material(tmp_path, "app1", days=30, renew_days=30)


def test_your_own_ca_issues_the_host_certificates(tmp_path):
    own = tls.host_material(tmp_path / "theirs", "x")
    ca_pem = own["ca"]
    ca_key = (tmp_path / "theirs/ca.key").read_text()
    out = tls.host_material(tmp_path / "ours", "app1", ca_cert_pem=ca_pem, ca_key_pem=ca_key)
    assert out["ca"] == ca_pem and not (tmp_path / "ours/ca.key").exists()
    x509.load_pem_x509_certificate(out["cert"].encode()).verify_directly_issued_by(
        x509.load_pem_x509_certificate(ca_pem.encode()))


def test_your_own_ca_without_its_key_needs_every_host_to_bring_a_certificate(tmp_path):
    own = tls.host_material(tmp_path / "theirs", "app1")
    with pytest.raises(AnsibleLookupError, match="host app2 has no stack_tls_cert"):
        tls.host_material(tmp_path / "ours", "app2", ca_cert_pem=own["ca"])
    brought = tls.host_material(tmp_path / "ours", "app1", ca_cert_pem=own["ca"], cert_pem=own["cert"], key_pem=own["key"])
    assert (brought["cert"], brought["key"]) == (own["cert"], own["key"])


def test_passwords_are_generated_once_and_yours_win(tmp_path):
    out = tls.host_material(tmp_path, "a", names=["prometheus", "node_exporter"], given={"node_exporter": "from-vault"})
    assert out["passwords"]["node_exporter"] == "from-vault"
    assert len(out["passwords"]["prometheus"]) >= 32
    assert not (tmp_path / "passwords/node_exporter").exists(), "a password you supply is not written"
    assert tls.host_material(tmp_path, "b", names=["prometheus"])["passwords"] == {"prometheus": out["passwords"]["prometheus"]}


def test_every_component_that_supports_it_is_protected(registry, filters):
    assert filters.tls_components(registry) == [
        "alertmanager", "alloy", "blackbox_exporter", "grafana", "jaeger", "loki", "node_exporter", "postgres_exporter",
        "prometheus", "promtail", "redis_exporter", "victoriametrics"]
    # passwords where upstream takes basic auth (Jaeger through its basicauth extension); client
    # certificates where it takes none (Loki, Promtail) or the stack asks for them instead (Alloy)
    assert filters.tls_components(registry, auth_only=True) == [
        "alertmanager", "blackbox_exporter", "grafana", "jaeger", "node_exporter", "postgres_exporter", "prometheus",
        "redis_exporter", "victoriametrics"]
    assert filters.client_cert_components(registry) == ["alloy", "loki", "promtail"]
    jobs = filters.tls_job_settings(registry, "monstack")
    assert jobs["node"] == {"tls_config": {"ca_file": "ca.crt"},
                            "basic_auth": {"username": "monstack", "password_file": "secrets/stack-node_exporter"}}
    assert jobs["grafana"]["basic_auth"]["password_file"] == "secrets/stack-grafana"
    # Loki and Promtail take no login upstream, Alloy is set up like Promtail: Prometheus presents
    # its host certificate instead
    assert jobs["loki"] == jobs["promtail"] == jobs["alloy"] == {"tls_config": {"ca_file": "ca.crt", "cert_file": "tls.crt",
                                                                "key_file": "tls.key"}}
    # Jaeger's metrics come through its TLS relay, behind its basicauth login
    assert jobs["jaeger"] == {"tls_config": {"ca_file": "ca.crt"},
                              "basic_auth": {"username": "monstack", "password_file": "secrets/stack-jaeger"}}
    assert set(jobs) == {"alertmanager", "alloy", "blackbox", "grafana", "jaeger", "loki", "node", "postgres", "prometheus",
                         "promtail", "redis", "victoriametrics"}


def test_hosts_with_stack_tls_are_scraped_over_https_and_others_as_before(registry, filters):
    hostvars = {"a": {"stack_tls": True}, "b": {"stack_tls": "false"}, "c": {"stack_tls": "true"}}
    groups = {"all": ["a", "b", "c"], "node_exporter": ["a", "b", "c"]}
    targets = filters.scrape_targets(filters.scrape_jobs(registry), groups, hostvars)["node"]
    assert [t.get("labels", {}).get("__scheme__", "http") for t in targets] == ["https", "http", "https"]
    # the URLs other components are given follow the same rule
    urls = filters.component_urls(["a", "b"], hostvars, registry["alertmanager"])
    assert urls == ["https://a:9093", "http://b:9093"]
    # Loki and Jaeger's query and metrics (through its relay) serve https; a port upstream cannot
    # encrypt stays http (the relay's own receiver, on loopback)
    assert filters.component_urls(["a", "b"], hostvars, registry["loki"]) == ["https://a:3100", "http://b:3100"]
    assert filters.component_urls(["a"], hostvars, registry["jaeger"]) == ["https://a:16686"]
    assert filters.component_urls(["a", "b"], hostvars, registry["jaeger"], "metrics") == ["https://a:8888", "http://b:8888"]
    assert filters.component_urls(["a"], hostvars, registry["jaeger"], "metrics_relay") == ["http://a:4319"]
    groups["jaeger"] = ["a", "b"]
    assert [t.get("labels", {}).get("__scheme__", "http") for t in
            filters.scrape_targets(filters.scrape_jobs(registry), groups, hostvars)["jaeger"]] == ["https", "http"]


def test_grafana_verifies_the_ca_and_logs_in_to_protected_datasources():
    sources = [{"uid": "prometheus", "url": "https://mon1:9090", "jsonData": {"httpMethod": "POST"}},
               {"uid": "loki", "url": "http://logs1:3100"}]
    out = grafana.tls_datasources(sources, {"prometheus": "pa$$word"}, "monstack", "CA PEM")
    assert out[0]["basicAuth"] is True and out[0]["basicAuthUser"] == "monstack"
    assert out[0]["jsonData"] == {"httpMethod": "POST", "tlsAuthWithCACert": True}
    assert out[0]["secureJsonData"] == {"tlsCACert": "CA PEM", "basicAuthPassword": "pa$$$$word"}
    assert out[1] == sources[1]
    # a component without basic auth upstream (Loki) over https: the CA only
    sources = [{"uid": "loki", "url": "https://logs1:3100"}, {"uid": "mine", "url": "https://elsewhere"}]
    out = grafana.tls_datasources(sources, {"prometheus": "x"}, "monstack", "CA PEM", ["loki", "prometheus"])
    assert out[0] == {"uid": "loki", "url": "https://logs1:3100", "jsonData": {"tlsAuthWithCACert": True},
                      "secureJsonData": {"tlsCACert": "CA PEM"}}
    assert out[1] == sources[1], "a datasource of your own is left as it is"


def test_alertmanager_gossips_over_mutual_tls():
    conf = alertmanager.cluster_tls("/etc/alertmanager")
    assert conf["tls_server_config"]["client_auth_type"] == "RequireAndVerifyClientCert"
    assert conf["tls_server_config"]["client_ca_file"] == conf["tls_client_config"]["ca_file"] == "/etc/alertmanager/ca.crt"
    assert conf["tls_client_config"]["server_name"] == "alertmanager-cluster"


@pytest.fixture(scope="module")
def tls_rendered(tmp_path_factory, promtool):
    pki = tmp_path_factory.mktemp("pki")
    # the config of the Prometheus whose promtool checks it (the mirror's)
    version = re.search(r"version (\d+\.\d+\.\d+)", subprocess.run([str(promtool), "--version"], capture_output=True,
                                                                   text=True).stdout).group(1)
    return render(tmp_path_factory, stack_tls=True, stack_tls_dir=str(pki), render_host="mon1",
                  prometheus_version=version), pki


@pytest.fixture(scope="module")
def rendered_plain(tmp_path_factory):
    return render(tmp_path_factory, render_host="mon1")


def test_stack_tls_renders_verifying_scrapes_and_alerting(tls_rendered, promtool, tmp_path_factory):
    out, pki = tls_rendered
    jobs = {job["job_name"]: job for job in out["prometheus"]["scrape_configs"]}
    assert jobs["node"]["tls_config"] == {"ca_file": "ca.crt"}
    assert jobs["node"]["basic_auth"]["password_file"] == "secrets/stack-node_exporter"
    # Loki asks for a client certificate: Prometheus presents its own
    assert jobs["loki"]["tls_config"] == {"ca_file": "ca.crt", "cert_file": "tls.crt", "key_file": "tls.key"}
    assert "basic_auth" not in jobs["loki"]
    assert jobs["jaeger"]["basic_auth"]["password_file"] == "secrets/stack-jaeger"
    assert {t["labels"]["__scheme__"] for entries in out["prometheus_targets"]["node"].values() for t in entries} == {"https"}
    assert out["prometheus"]["alerting"]["alertmanagers"][0]["basic_auth"]["password_file"] == "secrets/stack-alertmanager"
    assert out["prometheus_flags"]["web.config.file"] == "/etc/prometheus/web.yml"
    assert out["alertmanager_flags"]["web.config.file"] == "/etc/alertmanager/web.yml"
    # the Loki ruler verifies and logs in to the Alertmanager it alerts
    client = out["loki"]["ruler"]["alertmanager_client"]
    assert out["loki"]["ruler"]["alertmanager_url"] == "https://10.0.0.1:9093"
    assert client["tls_ca_path"] == "/etc/loki/ca.crt" and client["basic_auth_username"] == "monstack"
    assert client["basic_auth_password"] == (pki / "passwords/alertmanager").read_text().strip()
    config = tmp_path_factory.mktemp("promcheck") / "prometheus.yml"
    config.write_text(json.dumps(out["prometheus"]))
    check = subprocess.run([str(promtool), "check", "config", "--syntax-only", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert re.search(r"mon1\.crt", " ".join(os.listdir(pki / "hosts")))


def test_remote_writes_to_a_protected_store_verify_and_log_in(tls_rendered):
    out, pki = tls_rendered
    writes = out["prometheus"]["remote_write"]
    assert [w["url"] for w in writes] == ["https://10.0.0.5:8428/api/v1/write"]
    assert writes[0]["tls_config"] == {"ca_file": "ca.crt"}
    assert writes[0]["basic_auth"] == {"username": "monstack", "password_file": "secrets/stack-victoriametrics"}
    assert writes[0]["queue_config"]["max_samples_per_send"] == 10000, "the queue settings stay"
    unit = " ".join(out["victoriametrics_unit"]["exec_start"])
    assert "-tls" in unit.split() and "-httpAuth.password=file:///etc/victoriametrics/http-password" in unit
    assert (pki / "passwords/victoriametrics").read_text().strip() not in unit, "no password in the unit"


def test_an_environment_file_keeps_values_literal(filters):
    assert filters.env_file({"B": 'p#q "x" \\y', "A": "1"}) == 'A="1"\nB="p#q \\"x\\" \\\\y"\n'
    with pytest.raises(Exception, match="not an environment variable name"):
        filters.env_file({"A-B": "x"})


def test_stores_outside_the_stack_or_over_http_are_left_as_they_are():
    prom = load("filter/prometheus.py", "prometheus_filters_tls")
    settings = {"victoriametrics": {"tls_config": {"ca_file": "ca.crt"}}}
    stores = [{"name": "a", "url": "http://v:8428/api/v1/write", "component": "victoriametrics"},
              {"name": "mimir", "write_url": "https://m/api/v1/push"}]
    assert prom.tls_stores(stores, settings) == stores


def test_the_ca_is_written_for_its_clients_only_with_stack_tls(filters):
    assert filters.ca_files({}, "/etc/x", "x") == []
    assert filters.ca_files({"ca": "PEM"}, "/etc/x", "x") == [
        {"dest": "/etc/x/ca.crt", "content": "PEM", "group": "x", "mode": "0644"}]


def test_grafana_loki_promtail_and_jaeger_serve_the_host_certificate(tls_rendered):
    out, pki = tls_rendered
    ini = out["grafana_ini"]
    assert ini["server"]["protocol"] == "https"
    assert ini["server"]["cert_file"] == "/etc/grafana/secrets/tls.crt" and ini["server"]["cert_key"] == "/etc/grafana/secrets/tls.key"
    # its /metrics takes the stack's login; the password is read from a file, never the ini
    assert ini["metrics"]["basic_auth_username"] == "monstack"
    assert ini["metrics"]["basic_auth_password"] == "$__file{/etc/grafana/secrets/metrics_password}"
    assert (pki / "passwords/grafana").read_text().strip() not in json.dumps(ini)
    sources = {s["uid"]: s for s in out["grafana_datasources"]}
    assert sources["loki"]["url"].startswith("https://") and sources["loki"]["jsonData"]["tlsAuthWithCACert"] is True
    # Grafana presents its host certificate to Loki and logs in to Jaeger
    assert sources["loki"]["jsonData"]["tlsAuth"] is True
    assert sources["loki"]["secureJsonData"]["tlsClientCert"].startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY" in sources["loki"]["secureJsonData"]["tlsClientKey"]
    assert sources["jaeger"]["url"] == "https://10.0.0.3:16686" and sources["jaeger"]["basicAuth"] is True
    assert sources["jaeger"]["secureJsonData"]["basicAuthPassword"] == (pki / "passwords/jaeger").read_text().strip()
    # Loki: HTTPS for clients with a certificate of the stack's CA only, its gRPC (only its own
    # components dial it) on loopback
    server = out["loki"]["server"]
    assert server["http_tls_config"] == {"cert_file": "/etc/loki/tls.crt", "key_file": "/etc/loki/tls.key",
                                         "client_auth_type": "RequireAndVerifyClientCert", "client_ca_file": "/etc/loki/ca.crt"}
    assert server["grpc_listen_address"] == "127.0.0.1"
    # Promtail: HTTPS for clients with a certificate, and pushes verify the stack's CA and present its own
    promtail = out["promtail"]
    assert promtail["server"]["http_tls_config"]["cert_file"] == "/etc/promtail/tls.crt"
    assert promtail["server"]["http_tls_config"]["client_auth_type"] == "RequireAndVerifyClientCert"
    assert promtail["clients"] == [{"url": "https://10.0.0.2:3100/loki/api/v1/push", "tls_config": {
        "ca_file": "/etc/promtail/ca.crt", "cert_file": "/etc/promtail/tls.crt", "key_file": "/etc/promtail/tls.key"}}]
    # Jaeger: OTLP receivers and the query service over TLS behind the stack's login (basicauth);
    # health stays plain on loopback
    jaeger = out["jaeger"]
    tls = {"cert_file": "/etc/jaeger/tls.crt", "key_file": "/etc/jaeger/tls.key"}
    auth = {"authenticator": "basicauth/stack"}
    assert jaeger["receivers"]["otlp"]["protocols"]["grpc"]["tls"] == tls
    assert jaeger["receivers"]["otlp"]["protocols"]["http"]["tls"] == tls
    assert jaeger["extensions"]["jaeger_query"]["http"]["tls"] == jaeger["extensions"]["jaeger_query"]["grpc"]["tls"] == tls
    for server in (jaeger["receivers"]["otlp"]["protocols"]["grpc"], jaeger["receivers"]["otlp"]["protocols"]["http"],
                   jaeger["extensions"]["jaeger_query"]["http"], jaeger["extensions"]["jaeger_query"]["grpc"],
                   jaeger["exporters"]["prometheus/self"]):
        assert server["auth"] == auth
    assert jaeger["extensions"]["basicauth/stack"] == {"htpasswd": {"file": "/etc/jaeger/htpasswd"}}
    # one line user:bcrypt that verifies the stack's password for Jaeger (crypt(3), as the
    # stand-in and go-htpasswd check it)
    htpasswd = next(f for f in out["jaeger_files"] if f["dest"] == "/etc/jaeger/htpasswd")
    assert htpasswd["mode"] == "0640" and htpasswd["secret"] is True
    user, _, hashed = htpasswd["content"].partition(":")
    assert user == "monstack" and hashed.startswith("$2b$") and "\n" not in hashed and "\\" not in hashed
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "mirror"))
    import standin  # pylint: disable=import-outside-toplevel
    assert standin.crypt_matches((pki / "passwords/jaeger").read_text().strip(), hashed)
    assert "basicauth/stack" in jaeger["service"]["extensions"]
    assert "tls" not in jaeger["extensions"]["healthcheckv2"]["http"]
    # its own metrics: the internal exporter has no TLS, so no pull reader opens 8888; a periodic
    # OTLP push to the relay's loopback receiver feeds a prometheus exporter serving 8888 over TLS
    telemetry = jaeger["service"]["telemetry"]
    assert telemetry["metrics"]["readers"] == [{"periodic": {"interval": 10000, "exporter": {"otlp": {
        "protocol": "http/protobuf", "endpoint": "http://127.0.0.1:4319/v1/metrics"}}}}]
    assert telemetry["resource"] == {"service.name": "jaeger", "service.instance.id": "mon1"}
    assert jaeger["receivers"]["otlp/self"] == {"protocols": {"http": {"endpoint": "127.0.0.1:4319"}}}
    assert jaeger["exporters"]["prometheus/self"] == {"endpoint": "0.0.0.0:8888", "tls": tls, "auth": auth}
    assert jaeger["service"]["pipelines"]["metrics/self"] == {"receivers": ["otlp/self"], "exporters": ["prometheus/self"]}
    assert jaeger["service"]["pipelines"]["traces"]["receivers"] == ["otlp"], "spans still come in through otlp only"
    assert not jaeger_filters.otel_problems(jaeger)
    # Prometheus scrapes it over https, verifying the CA and logging in
    assert {t["labels"]["__scheme__"] for entries in out["prometheus_targets"]["jaeger"].values() for t in entries} == {"https"}
    job = next(j for j in out["prometheus"]["scrape_configs"] if j["job_name"] == "jaeger")
    assert job["tls_config"] == {"ca_file": "ca.crt"} and job["basic_auth"]["password_file"] == "secrets/stack-jaeger"
    for path in ("/etc/loki/tls.key", "/etc/promtail/tls.key", "/etc/promtail/ca.crt", "/etc/jaeger/tls.key",
                 "/etc/grafana/secrets/tls.key", "/etc/grafana/secrets/metrics_password"):
        assert path in out["files"]


def test_without_stack_tls_nothing_of_it_is_written(rendered_plain):
    assert "protocol" not in rendered_plain["grafana_ini"]["server"] and "metrics" not in rendered_plain["grafana_ini"]
    assert "http_tls_config" not in rendered_plain["loki"]["server"]
    assert "grpc_listen_address" not in rendered_plain["loki"]["server"]
    assert rendered_plain["promtail"]["clients"] == [{"url": "http://10.0.0.2:3100/loki/api/v1/push"}]
    assert not [f for f in rendered_plain["files"] if f.endswith(("tls.crt", "tls.key", "ca.crt", "webhook-ca.crt"))]
    # Jaeger's own metrics: its internal exporter, scraped over plain HTTP, and no relay
    jaeger = rendered_plain["jaeger"]
    assert jaeger["service"]["telemetry"]["metrics"]["readers"] == [
        {"pull": {"exporter": {"prometheus": {"host": "0.0.0.0", "port": 8888}}}}]
    assert jaeger["service"]["telemetry"]["resource"] == {"service.name": "jaeger"}
    assert "otlp/self" not in jaeger["receivers"] and "prometheus/self" not in (jaeger.get("exporters") or {})
    assert "metrics/self" not in jaeger["service"]["pipelines"]


def test_the_metrics_relay_must_listen_on_loopback():
    for address in ("127.0.0.1:4319", "[::1]:4319", "localhost:4319"):
        assert jaeger_filters.relay_problems(address) == [], address
    problems = jaeger_filters.relay_problems("0.0.0.0:4319")
    assert problems and "jaeger_metrics_relay_address" in problems[0] and "loopback" in problems[0]


def test_webhooks_over_https_verify_the_ca_you_name():
    config = {"receivers": [{"name": "hook", "webhook_configs": [
        {"url": "https://hooks.internal/a"}, {"url": "http://plain/b"},
        {"url": "https://own/c", "http_config": {"tls_config": {"ca_file": "/etc/own.crt"}}}]},
        {"name": "slack", "slack_configs": [{"api_url": "https://hooks.slack.com/x"}]}]}
    out = alertmanager.webhook_ca(config, "/etc/alertmanager/webhook-ca.crt")
    hooks = out["receivers"][0]["webhook_configs"]
    assert hooks[0]["http_config"]["tls_config"]["ca_file"] == "/etc/alertmanager/webhook-ca.crt"
    assert "http_config" not in hooks[1], "plain http webhooks are left alone"
    assert hooks[2]["http_config"]["tls_config"]["ca_file"] == "/etc/own.crt", "a CA of the webhook's own wins"
    assert out["receivers"][1] == config["receivers"][1], "other receivers keep the system CAs"
    assert alertmanager.webhook_ca(config, "") == config


def test_probes_of_the_stacks_own_endpoints_verify_its_ca(filters):
    probes = [{"url": "https://mon1:3000/api/health", "stack_ca": True}, {"tls": "logs1:3100", "stack_ca": True},
              {"url": "https://shop.example.org/"}]
    out = filters.blackbox_probes(probes, "stack_probes", "/etc/blackbox_exporter/ca.crt")
    assert [p["name"] for p in out] == ["http_2xx_stack_ca", "tls_connect_stack_ca", "http_2xx"]
    assert out[0]["module"] == {"prober": "http", "http": {"tls_config": {"ca_file": "/etc/blackbox_exporter/ca.crt"}}}
    assert out[1]["module"]["tcp"] == {"tls": True, "tls_config": {"ca_file": "/etc/blackbox_exporter/ca.crt"}}
    assert out[2]["module"] == {"prober": "http"}, "other probes keep the system's CAs"
    # Prometheus names the same modules without knowing the path
    assert [p["name"] for p in filters.blackbox_probes(probes)] == [p["name"] for p in out]
    assert filters.probe_problems([{"tcp": "db:5432", "stack_ca": True}, {"url": "https://x/", "stack_ca": "yes"}]) == [
        "stack_probes entry db:5432: stack_ca (true/false) applies to url and tls probes with a generated module",
        "stack_probes entry https://x/: stack_ca (true/false) applies to url and tls probes with a generated module"]


@pytest.mark.parametrize("name, args", [
    ("loki", ["-config.file={path}", "-verify-config"]),
    ("promtail", ["-config.file={path}", "-check-syntax"]),
    ("jaeger", ["validate", "--config=file:{path}"]),
])
def test_the_tls_configs_hold_upstreams_key_contract(tls_rendered, tmp_path, name, args):
    """With stack_tls on, the configs still use only keys upstream has (the stand-in's contract:
    tests/mirror/contracts)."""
    import sys
    rendered, _ = tls_rendered
    path = tmp_path / "config.yml"
    path.write_text(json.dumps(rendered[name]))
    binary = tmp_path / name
    binary.symlink_to(pathlib.Path(__file__).resolve().parents[1] / "mirror" / "standin.py")
    proc = subprocess.run([sys.executable, str(binary), *[a.format(path=path) for a in args]],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
