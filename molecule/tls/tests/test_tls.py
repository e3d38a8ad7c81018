"""stack_tls with the real Prometheus family: every target up over verified TLS with basic auth
(or, for Loki and Promtail, a client certificate), plain HTTP, no password (no certificate) and
another CA refused on every port beyond loopback, Alertmanager gossip over mutual
TLS, a certificate near expiry renewed with no service restarted, and stack_tls turned off and on
again on the running stack. The tests run in file order: the last ones change the stack.

Grafana, Loki, Promtail and Jaeger run on tls-scan as well. Offline they are STAND-INS
(tests/mirror/standin.py): they serve the TLS their rendered configs name but no /metrics, so
for them these tests check what a stand-in can show (HTTPS with the stack's certificate, plain
HTTP and other CAs refused, anonymous requests refused as the real programs' configs make them
refuse them, Prometheus's handshake and login accepted: its scrape ends in the stand-in's 404) and say so; with the real archives in the mirror their targets must be up."""
import datetime
import json
import os
import pathlib
import subprocess
import time

import pytest
import yaml

from conftest import exposure, get_host, hostvars, is_standin, run_playbook, unit_pid, wait_for

MON, AM2, SCAN = "tls-mon", "tls-am2", "tls-scan"
SERVICES = {MON: ["prometheus", "alertmanager", "node_exporter"],
            AM2: ["alertmanager", "blackbox_exporter", "redis_exporter", "node_exporter", "alloy"],
            SCAN: ["victoriametrics", "node_exporter", "loki", "promtail", "jaeger", "grafana"]}
# where each service keeps its private key
KEYS = {"redis_exporter": "/etc/redis_exporter/server.key", "victoriametrics": "/etc/victoriametrics/tls.key",
        "grafana": "/etc/grafana/secrets/tls.key"}
# scrape job, the binary's version flag and the host of the components that are stand-ins offline
MAYBE_STANDIN = {"grafana": ("grafana", "-v", SCAN), "loki": ("loki", "-version", SCAN),
                 "promtail": ("promtail", "-version", SCAN), "jaeger": ("jaeger", "version", SCAN),
                 "alloy": ("alloy", "--version", AM2)}
# ports that take a client certificate of the stack's CA instead of a password (Loki and
# Promtail have no basic auth upstream, Alloy is set up like Promtail): a client without one
# does not get through the handshake
CLIENT_CERT_PORTS = {(SCAN, 3100): "loki", (SCAN, 9080): "promtail", (AM2, 12345): "alloy"}
# gRPC ports: curl cannot speak gRPC, so their login is checked in the config they run with
GRPC_PORTS = {4317: "jaeger"}
_standins = {}


def standin_jobs():
    """Scrape jobs whose program is the offline stand-in on tls-scan."""
    if not _standins:
        _standins.update({job: is_standin(get_host(name), binary, flag) for job, (binary, flag, name) in MAYBE_STANDIN.items()})
    return {job for job, standin in _standins.items() if standin}


def healthy(target):
    """Up; or, for a stand-in, scraped over verified TLS (and logged in) up to the stand-in's 404
    for /metrics: the handshake, the CA and the login were accepted."""
    if target["health"] == "up":
        return True
    return target["labels"]["job"] in standin_jobs() and "404" in target.get("lastError", "")
PKI = pathlib.Path(hostvars(MON)["stack_tls_dir"]) if os.environ.get("MOLECULE_INVENTORY_FILE") else None
USER = "monstack"
REPORT = pathlib.Path(os.environ.get("MONSTACK_STATE", "/tmp")) / "tls-scan-report.json"


def password(component):
    return (PKI / "passwords" / component).read_text().strip()


def put(name, path, text):
    """Write text to path inside container name (podman cp from a controller file)."""
    local = pathlib.Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp")) / f"put-{name}-{os.path.basename(path)}"
    local.write_text(text)
    subprocess.run(["podman", "cp", str(local), f"{name}:{path}"], check=True)


@pytest.fixture(scope="module")
def scan():
    host = get_host(SCAN)
    put(SCAN, "/tmp/ca.crt", (PKI / "ca.crt").read_text())
    return host


def api(path, host=MON, **params):
    """Prometheus's API, reached over verified TLS with the stack's user."""
    query = " ".join(f"--data-urlencode '{k}={v}'" for k, v in params.items())
    out = get_host(host).check_output(
        f"curl -fsS -G --cacert /etc/prometheus/ca.crt -u {USER}:{password('prometheus')} "
        f"https://{MON}:9090{path} {query}")
    return json.loads(out)["data"]


def targets():
    return api("/api/v1/targets")["activeTargets"]


def all_up():
    found = targets()
    return found if found and all(healthy(t) for t in found) else None


def test_every_target_is_up_over_verified_tls():
    found = wait_for(all_up, timeout=90) or targets()
    assert [t for t in found if not healthy(t)] == [], "targets down over TLS"
    by_job = {}
    for target in found:
        by_job.setdefault(target["labels"]["job"], []).append(target["scrapeUrl"])
    tls_jobs = ("prometheus", "alertmanager", "node", "blackbox", "redis", "victoriametrics", "grafana", "loki", "promtail",
                "jaeger", "alloy")
    assert set(by_job) >= set(tls_jobs)
    for job in tls_jobs:
        assert all(url.startswith("https://") for url in by_job[job]), (job, by_job[job])
    # Jaeger's own metrics through its relay: no plain listener is left for them
    assert by_job["jaeger"] == [f"https://{SCAN}:8888/metrics"]
    assert len(by_job["node"]) == 3 and len(by_job["alertmanager"]) == 2
    # Prometheus sends its alerts to both Alertmanagers over TLS
    managers = api("/api/v1/alertmanagers")["activeAlertmanagers"]
    assert sorted(m["url"] for m in managers) == [f"https://{AM2}:9093/api/v2/alerts", f"https://{MON}:9093/api/v2/alerts"]


@pytest.mark.standin
def test_standin_grafana_loki_promtail_alloy_and_jaeger_serve_the_stacks_certificate(scan):
    """What the stand-ins show: their configs make them serve HTTPS with the host's certificate,
    Grafana's datasources and Promtail's pushes point at https, Loki's gRPC stays on loopback."""
    if not standin_jobs():
        pytest.skip("the real Grafana, Loki, Promtail and Jaeger run here: the scan and targets test cover them")
    for port in (3000, 3100, 9080, 4318, 16686, 8888):
        assert served_certificate(scan, SCAN, port), port
    assert not [p for p in listening_ports(SCAN) if p in (9096, 16685, 13133, 4319)], "gRPC/health/relay ports left loopback"
    host = get_host(SCAN)
    promtail = host.file("/etc/promtail/config.yml").content_string
    assert f"url: https://{SCAN}:3100/loki/api/v1/push" in promtail and "ca_file: /etc/promtail/ca.crt" in promtail
    # Alloy on am2: HTTPS for clients of the stack's CA, and its pushes verify and present the host's
    assert served_certificate(scan, AM2, 12345)
    alloy = get_host(AM2).file("/etc/alloy/config.alloy").content_string
    assert f'url = "https://{SCAN}:3100/loki/api/v1/push"' in alloy and 'ca_file = "/etc/alloy/ca.crt"' in alloy
    assert 'cert_file = "/etc/alloy/tls.crt"' in alloy and 'client_auth_type = "RequireAndVerifyClientCert"' in alloy
    datasources = host.file("/etc/grafana/provisioning/datasources/monitoring-stack.yaml").content_string
    for url in (f"https://{MON}:9090", f"https://{SCAN}:3100", f"https://{SCAN}:16686", f"https://{SCAN}:8428"):
        assert f"url: {url}" in datasources, url


def listening_ports(name):
    """TCP ports name listens on for other hosts (not loopback only)."""
    out = get_host(name).check_output("ss -ltnH")
    ports = set()
    for line in out.splitlines():
        local = line.split()[3]
        address, port = local.rsplit(":", 1)
        if not address.startswith(("127.", "[::1]", "::1")):
            ports.add(int(port))
    return sorted(ports)


def probe(scan_host, url, *options):
    """(curl exit code, HTTP status) of one request from the scanner."""
    cmd = scan_host.run(f"curl -sS -o /dev/null -w '%{{http_code}}' --max-time 5 --noproxy '*' {' '.join(options)} '{url}'")
    return cmd.rc, cmd.stdout.strip()


def test_no_port_serves_plain_http_nor_answers_without_the_password_or_to_another_ca(scan):
    put(SCAN, "/tmp/other-ca.crt", OTHER_CA.read_text())
    report = {}
    for name in (MON, AM2, SCAN):
        ports = listening_ports(name)
        assert {9100} <= set(ports)
        for port in ports:
            plain = probe(scan, f"http://{name}:{port}/metrics")
            anonymous = probe(scan, f"https://{name}:{port}/metrics", "--cacert /tmp/ca.crt")
            other = probe(scan, f"https://{name}:{port}/metrics", "--cacert /tmp/other-ca.crt")
            key = f"{name}:{port}"
            report[key] = {"plain http": plain, "https, no password": anonymous, "https, other CA": other}
            # plain HTTP: a TLS port answers 400 ("client sent an HTTP request to an HTTPS server")
            # or drops the connection; never a 2xx
            assert not plain[1].startswith("2"), (name, port, plain)
            # a client that trusts another CA does not accept the server's certificate (curl 60)
            assert other[0] != 0 and other[1] == "000", (name, port, other)
            if (name, port) in CLIENT_CERT_PORTS:
                # no client certificate: the handshake ends before any HTTP (curl fails, no status)
                assert anonymous[0] != 0 and anonymous[1] == "000", (name, port, anonymous)
                report[key]["note"] = f"{CLIENT_CERT_PORTS[(name, port)]}: client certificate required"
                continue
            if name == SCAN and port in GRPC_PORTS:
                report[key]["note"] = f"{GRPC_PORTS[port]}: gRPC, login required by its config (checked below)"
                continue
            # verified with our CA but without the password: 401 (the gossip port asks for a
            # client certificate instead and ends the handshake)
            assert anonymous[1] == "401" or anonymous[0] != 0, (name, port, anonymous)
    REPORT.write_text(json.dumps(report, indent=1, sort_keys=True))
    # Jaeger's gRPC servers take the same login as its HTTP ones
    jaeger = yaml.safe_load(get_host(SCAN).file("/etc/jaeger/config.yaml").content_string)
    assert jaeger["receivers"]["otlp"]["protocols"]["grpc"]["auth"] == {"authenticator": "basicauth/stack"}
    assert jaeger["extensions"]["jaeger_query"]["grpc"]["auth"] == {"authenticator": "basicauth/stack"}


def test_alertmanager_gossips_over_mutual_tls(scan):
    for name in (MON, AM2):
        status = json.loads(get_host(name).check_output(
            f"curl -fsS --cacert /etc/alertmanager/ca.crt -u {USER}:{password('alertmanager')} "
            f"https://{name}:9093/api/v2/status"))
        assert len(status["cluster"]["peers"]) == 2, status["cluster"]
        assert status["cluster"]["status"] == "ready"
    # the gossip port refuses a TLS client without a certificate of the stack's CA
    handshake = scan.run(
        "python3 -c \"import socket,ssl; c=ssl.create_default_context(cafile='/tmp/ca.crt'); "
        f"c.check_hostname=False; s=c.wrap_socket(socket.create_connection(('{AM2}', 9094), 5)); "
        "s.send(b'x'); print(s.recv(10))\"")
    assert handshake.rc != 0, handshake.stdout


OTHER_CA = pathlib.Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp")) / "other-ca" / "ca.crt"


@pytest.fixture(scope="module", autouse=True)
def other_ca():
    """A second CA, made the way the stack makes its own, for the refusal tests."""
    import sys  # pylint: disable=import-outside-toplevel
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3] / "plugins" / "lookup"))
    import stack_tls  # pylint: disable=import-outside-toplevel
    return stack_tls.host_material(OTHER_CA.parent, AM2, [AM2])


def test_a_target_with_a_certificate_from_another_ca_is_refused(other_ca):
    node = get_host(AM2)
    saved = {f: node.file(f"/etc/node_exporter/{f}").content_string for f in ("tls.crt", "tls.key")}
    try:
        put(AM2, "/etc/node_exporter/tls.crt", other_ca["cert"])
        put(AM2, "/etc/node_exporter/tls.key", other_ca["key"])
        # Prometheus keeps its scrape connection open: a restart makes it shake hands again
        node.run("chmod 0644 /etc/node_exporter/tls.*; systemctl restart node_exporter")

        def refused():
            # a scrape during the restart fails with "connection refused": wait for the handshake's error
            target = next(t for t in targets() if t["labels"]["instance"] == f"{AM2}:9100")
            return target if target["health"] == "down" and "certificate" in target["lastError"] else None
        target = wait_for(refused, timeout=30)
        assert target, "Prometheus kept scraping a target whose certificate another CA issued"
        assert "certificate" in target["lastError"] and "authority" in target["lastError"], target["lastError"]
    finally:
        for name, text in saved.items():
            put(AM2, f"/etc/node_exporter/{name}", text)
        node.run("chgrp node_exporter /etc/node_exporter/tls.crt /etc/node_exporter/tls.key; "
                 "chmod 0640 /etc/node_exporter/tls.crt /etc/node_exporter/tls.key")
    assert wait_for(all_up, timeout=30), "the target did not come back with its own certificate"


def test_private_keys_are_readable_by_their_service_only():
    for name, services in SERVICES.items():
        host = get_host(name)
        for service in services:
            key = host.file(KEYS.get(service, f"/etc/{service}/tls.key"))
            assert key.exists and key.mode == 0o640 and key.user == "root" and key.group == service, (name, service)
    assert not any(get_host(name).file("/etc/prometheus/ca.key").exists for name in SERVICES)
    assert oct(PKI.stat().st_mode & 0o777) == "0o700" and oct((PKI / "ca.key").stat().st_mode & 0o777) == "0o600"


def test_every_prometheus_sample_arrives_in_victoriametrics_over_tls(scan):
    def stored():
        out = get_host(SCAN).run(
            f"curl -fsS --cacert /tmp/ca.crt -u {USER}:{password('victoriametrics')} "
            f"'https://{SCAN}:8428/api/v1/query?query=count(up)'")
        result = json.loads(out.stdout)["data"]["result"] if out.rc == 0 else []
        return result and int(result[0]["value"][1]) >= len(targets())
    assert wait_for(stored, timeout=60), "Prometheus's samples do not arrive in VictoriaMetrics over TLS"
    # and keep arriving: VictoriaMetrics's newest sample is a few scrape intervals old at most
    newest = get_host(SCAN).check_output(
        f"curl -fsS --cacert /tmp/ca.crt -u {USER}:{password('victoriametrics')} "
        f"'https://{SCAN}:8428/api/v1/query?query=time()-max(timestamp(up))'")
    age = float(json.loads(newest)["data"]["result"][0]["value"][1])
    assert age < 30, f"the newest sample in VictoriaMetrics is {age:.0f}s old"


def test_every_unit_stays_hardened():
    scores = {f"{name}/{unit}": exposure(get_host(name), unit) for name, units in SERVICES.items() for unit in units}
    (REPORT.parent / "tls-exposure.json").write_text(json.dumps(scores, indent=1, sort_keys=True))
    assert max(scores.values()) <= 2.0, scores


def served_certificate(scan_host, name, port):
    """notAfter of the certificate name serves on port, as the scanner sees it."""
    return scan_host.check_output(
        "python3 -c \"import socket,ssl; c=ssl.create_default_context(cafile='/tmp/ca.crt'); "
        f"s=c.wrap_socket(socket.create_connection(('{name}', {port}), 5), server_hostname='{name}'); "
        "print(s.getpeercert()['notAfter'])\"")


def pids():
    return {(name, unit): unit_pid(get_host(name), unit) for name, units in SERVICES.items() for unit in units}


def test_a_certificate_near_expiry_is_renewed_on_the_next_run_without_a_restart(scan):
    import sys  # pylint: disable=import-outside-toplevel
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3] / "plugins" / "lookup"))
    import stack_tls  # pylint: disable=import-outside-toplevel
    from cryptography import x509  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives import serialization  # pylint: disable=import-outside-toplevel

    ca_cert = x509.load_pem_x509_certificate((PKI / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((PKI / "ca.key").read_bytes(), None)
    old_cert = x509.load_pem_x509_certificate((PKI / f"hosts/{AM2}.crt").read_bytes())
    san = old_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    sans = [str(v) for v in san.get_values_for_type(x509.DNSName) + san.get_values_for_type(x509.IPAddress)]
    # a certificate issued 355 days ago for 365: ten days left, inside the 30-day window
    near, key = stack_tls.issue(ca_cert, ca_key, AM2, sans, 365,
                                not_before=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=355))
    (PKI / f"hosts/{AM2}.crt").write_bytes(stack_tls._cert_pem(near))
    (PKI / f"hosts/{AM2}.key").write_bytes(stack_tls._key_pem(key))
    # the host first gets it (a renewal window of one day keeps it), as if it had been there a year
    deployed = run_playbook("converge.yml", limit=AM2, extra={"stack_tls_renew_days": 1})
    assert deployed.returncode == 0, deployed.output[-3000:]
    before_pids = pids()
    before = served_certificate(scan, AM2, 9100)
    expires = datetime.datetime.strptime(before.strip(), "%b %d %H:%M:%S %Y %Z")
    assert expires < datetime.datetime.utcnow() + datetime.timedelta(days=11), f"the near-expiry one is served: {before}"
    renewed = run_playbook("converge.yml", limit=AM2)
    assert renewed.returncode == 0, renewed.output[-3000:]
    # Alloy too: upstream reads its certificate on every handshake (internal/service/http/tls.go)
    for port in (9100, 9093, 9115, 9121, 12345):
        after = served_certificate(scan, AM2, port)
        assert after != before, (port, after)
        not_after = datetime.datetime.strptime(after.strip(), "%b %d %H:%M:%S %Y %Z")
        assert not_after > datetime.datetime.utcnow() + datetime.timedelta(days=360), after
    # exporter-toolkit rereads its certificate on every handshake: nothing restarted
    assert pids() == before_pids
    assert wait_for(all_up, timeout=30)


def down_windows(since, step=1):
    """Longest run of up == 0 per target since a Unix time, in seconds of query_range steps (for the report)."""
    result = api("/api/v1/query_range", query="up", start=since, end=time.time(), step=step)["result"]
    out = {}
    for series in result:
        longest = run = 0
        for _, value in series["values"]:
            run = run + step if value == "0" else 0
            longest = max(longest, run)
        out[f'{series["metric"]["job"]}/{series["metric"]["instance"]}'] = longest
    return out


def failed_scrapes(since):
    """Failed scrapes per target since a Unix time, counted in the raw samples of up."""
    window = int(time.time() - since) + 1
    result = api("/api/v1/query", query=f"up[{window}s]")["result"]
    return {f'{series["metric"]["job"]}/{series["metric"]["instance"]}':
            sum(value == "0" for _, value in series["values"]) for series in result}


def task_lines(output, task_prefix, state="changed"):
    """Result lines ("changed: [host] => (item=...)") of the tasks whose name starts with task_prefix."""
    lines = []
    for block in output.split("TASK [")[1:]:
        if block.split("]", 1)[0].split(" : ", 1)[-1].startswith(task_prefix):
            lines += [line for line in block.splitlines() if line.startswith(f"{state}: [")]
    return lines


def test_stack_tls_turns_off_and_on_again_on_the_running_stack():
    # at the role's default scrape interval: Prometheus applies a changed target file in batches
    # of up to 2 x 5s (its discovery and scrape managers), longer than this scenario's 5s
    interval = {"prometheus_scrape_interval": "15s"}
    off = run_playbook("converge.yml", extra={"stack_tls": False, **interval})
    assert off.returncode == 0, off.output[-3000:]

    def plain_up():
        found = json.loads(get_host(MON).check_output(f"curl -fsS http://{MON}:9090/api/v1/targets"))["data"]["activeTargets"]
        return found if found and all(healthy(t) for t in found) else None
    plain = wait_for(plain_up, timeout=60)
    assert plain, "targets down after stack_tls was turned off"
    assert {t["scrapeUrl"].split(":")[0] for t in plain} == {"http"}
    assert not get_host(SCAN).file("/etc/loki/tls.key").exists, "the key is removed when stack_tls goes off"
    started = time.time()
    on = run_playbook("converge.yml", extra=interval)
    assert on.returncode == 0, on.output[-3000:]
    # every switching service had its target files rewritten by the process that waited for it
    armed = task_lines(on.output, "Have the target files on every Prometheus of this run follow")
    assert len(armed) >= 8, on.output[-3000:]
    rewritten_late = task_lines(on.output, "Make sure the target files on every Prometheus of this run follow")
    assert wait_for(all_up, timeout=60), "targets down after stack_tls was turned on again"
    time.sleep(10)
    windows = down_windows(started)
    failed = failed_scrapes(started)
    (REPORT.parent / "tls-switch-windows.json").write_text(json.dumps(
        {"interval": interval["prometheus_scrape_interval"], "longest_up_0_seconds": windows,
         "failed_scrapes": failed, "armed": armed,
         "rewritten_after_the_service_step": rewritten_late}, indent=1, sort_keys=True))
    # Every target of a real program is scraped through the switch: Prometheus already holds the
    # CA and logins, and its target files follow each service the moment it switches, so at most
    # one scrape per target fails. (The time up reads 0 can still exceed one interval: the target,
    # now https, is a new scrape loop with its own offset inside the interval.)
    # Stand-ins serve no /metrics: their up is 0 throughout and says nothing.
    real = {target: count for target, count in failed.items() if target.split("/")[0] not in standin_jobs()}
    assert real, f"no real target in {failed}"
    assert max(real.values()) <= 1, f"targets with more than one failed scrape: {real} (seconds at 0: {windows})"
