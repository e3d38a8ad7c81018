"""Turning stack_tls on or off on a running stack (issue 15, point 5): one file_sd file per job
and host, a scheme Prometheus keeps until the target's own role says it switched, and the
switch detected from the config step's result."""
import os
import pathlib
import pwd
import grp

import yaml

from conftest import HostVars


GROUPS = {"all": ["mon", "app"], "prometheus": ["mon"], "alertmanager": ["mon"], "redis_exporter": ["app"],
          "node_exporter": []}


def hostvars(tls):
    return HostVars(mon={"ansible_host": "10.0.0.1", "stack_tls": tls},
                    app={"ansible_host": "10.0.0.2", "stack_tls": tls,
                         "redis_exporter_instances": [{"name": "cache", "target": "redis://localhost:6379"}]})


def prometheus_files(filters, registry, tls, kept=()):
    """The file_sd entries the prometheus role writes (its vars/main.yml, without user jobs)."""
    by_host = filters.scrape_targets(filters.scrape_jobs(registry), GROUPS, hostvars(tls), by_host=True)
    by_host["alertmanagers"] = by_host["alertmanager"]
    return {e["dest"]: e for e in filters.target_files(by_host, "/etc/prometheus/file_sd", kept,
                                                        filters.target_owners(registry))}


def test_each_job_and_host_has_its_own_file_and_only_inventory_components_own_theirs(filters, registry):
    files = prometheus_files(filters, registry, tls=True)
    assert {"/etc/prometheus/file_sd/node/mon.yml", "/etc/prometheus/file_sd/node/app.yml",
            "/etc/prometheus/file_sd/redis/app.yml", "/etc/prometheus/file_sd/alertmanagers/mon.yml",
            "/etc/prometheus/file_sd/prometheus/mon.yml"} <= set(files)
    redis = yaml.safe_load(files["/etc/prometheus/file_sd/redis/app.yml"]["content"])
    # the exporter's own endpoint and the server it watches share the host's scheme
    assert [e["labels"]["__scheme__"] for e in redis] == ["https", "https"]
    assert all(e["mode"] == "0644" and "accept" not in e for e in files.values())
    owners = filters.target_owners(registry)
    assert owners["node"] == "node_exporter" and owners["alertmanagers"] == "alertmanager"
    assert "rabbitmq" not in owners  # external: nobody deploys it, Prometheus writes its files


def test_in_the_one_pass_a_file_may_keep_the_scheme_its_target_still_serves(filters, registry):
    plain = prometheus_files(filters, registry, tls=False)
    switching = prometheus_files(filters, registry, tls=True, kept=["mon", "app"])
    for dest, entry in switching.items():
        assert entry["accept"] == [plain[dest]["content"]], dest
    # a host outside the run (--limit) gets what the inventory says
    only_mon = prometheus_files(filters, registry, tls=True, kept=["mon"])
    assert "accept" not in only_mon["/etc/prometheus/file_sd/node/app.yml"]


def test_a_switched_target_publishes_exactly_what_prometheus_would_write(filters, registry):
    for tls in (True, False):
        files = prometheus_files(filters, registry, tls)
        hv = hostvars(tls)
        for component, host, dests in (
                ("redis_exporter", "app", ["redis/app.yml"]),
                ("node_exporter", "app", ["node/app.yml"]),
                ("alertmanager", "mon", ["alertmanager/mon.yml", "alertmanagers/mon.yml"]),
                ("prometheus", "mon", ["prometheus/mon.yml"]),
                ("redis_exporter", "mon", [])):
            published = filters.published_targets(component, host, "mon", registry, GROUPS, hv)
            assert [e["dest"] for e in published] == [f"/etc/prometheus/file_sd/{d}" for d in dests]
            for entry in published:
                assert entry["content"] == files[entry["dest"]]["content"], (tls, entry["dest"])


def test_publishing_follows_the_scrapers_own_job_settings(filters, registry):
    hv = hostvars(True)
    hv["mon"] = dict(hv["mon"], prometheus_config_dir="/srv/prom", prometheus_inventory_jobs_disabled=["redis"],
                     prometheus_inventory_jobs={"node": {"path": "/node-metrics"}})
    node = filters.published_targets("node_exporter", "app", "mon", registry, GROUPS, hv)
    assert [e["dest"] for e in node] == ["/srv/prom/file_sd/node/app.yml"]
    assert yaml.safe_load(node[0]["content"])[0]["labels"]["__metrics_path__"] == "/node-metrics"
    assert filters.published_targets("redis_exporter", "app", "mon", registry, GROUPS, hv) == []
    # where a switching service waits for the CA: that Prometheus's directory, the role's default
    # when the inventory sets none
    assert filters.scraper_dir("mon", hv) == "/srv/prom"
    assert filters.scraper_dir("mon", hostvars(True)) == "/etc/prometheus"


def test_a_switch_is_a_change_to_an_installed_service(filters):
    assert not filters.config_switched({})
    assert not filters.config_switched({"changed": False, "skipped": True})
    # first install: every file new
    assert not filters.config_switched({"changed": True, "content_changed": ["/etc/x/a", "/etc/x/b"],
                                        "created": ["/etc/x/a", "/etc/x/b"], "removed": []})
    # stack_tls on: the unit changes, the web config and the certificate appear
    assert filters.config_switched({"changed": True, "content_changed": ["/etc/systemd/system/x.service", "/etc/x/web.yml"],
                                    "created": ["/etc/x/web.yml"], "removed": []})
    # stack_tls off: the web config goes
    assert filters.config_switched({"changed": True, "content_changed": [], "created": [], "removed": ["/etc/x/web.yml"]})
    # only ownership or mode
    assert not filters.config_switched({"changed": True, "content_changed": [], "created": [], "removed": []})


def _me():
    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


def test_a_live_file_holding_an_accepted_content_is_kept(config_writer, tmp_path):
    owner, group = _me()
    live = tmp_path / "node" / "app.yml"
    live.parent.mkdir()
    live.write_text("- targets: [a:9100]\n")
    live.chmod(0o644)
    spec = {"dest": str(live), "content": "- targets: [a:9100]\n  labels: {__scheme__: https}\n",
            "owner": owner, "group": group, "mode": "0644", "accept": ["- targets: [a:9100]\n"]}
    assert config_writer.plan([spec], {}, []) == ([], [])
    # anything else is rewritten to the wanted content, not to an accepted one
    live.write_text("- targets: [b:9100]\n")
    writes, _ = config_writer.plan([spec], {}, [])
    assert [w["data"].decode() for w in writes] == [spec["content"]]


def test_prune_globs_reach_every_job_directory(config_writer, tmp_path):
    owner, group = _me()
    for path in ("file_sd/node/app.yml", "file_sd/node/gone.yml", "file_sd/old/x.yml", "file_sd/node.yml"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("[]\n")
    keep = {"dest": str(tmp_path / "file_sd/node/app.yml"), "content": "[]\n", "owner": owner, "group": group,
            "mode": "0644"}
    (tmp_path / "file_sd/node/app.yml").chmod(0o644)
    _, removals = config_writer.plan([keep], {}, [str(tmp_path / "file_sd"), str(tmp_path / "file_sd/*")])
    # the layout before 0.19 (one file per job) goes too
    assert sorted(os.path.relpath(p, tmp_path) for p in removals) == [
        "file_sd/node.yml", "file_sd/node/gone.yml", "file_sd/old/x.yml"]


def test_the_endpoint_a_switching_service_is_waited_on_is_where_prometheus_scrapes_it(filters, registry):
    for tls, scheme in ((True, "https"), (False, "http")):
        endpoint = filters.published_targets("redis_exporter", "app", "mon", registry, GROUPS, hostvars(tls), endpoint=True)
        assert endpoint == {"address": "10.0.0.2:9121", "scheme": scheme}
    # Jaeger's own metrics switch too (its relay serves them over TLS)
    groups = dict(GROUPS, jaeger=["app"])
    assert filters.published_targets("jaeger", "app", "mon", registry, groups, hostvars(True), endpoint=True) == {
        "address": "10.0.0.2:8888", "scheme": "https"}
    assert filters.published_targets("redis_exporter", "mon", "mon", registry, GROUPS, hostvars(True), endpoint=True) == {}


def _serve(tmp_path, tls):
    """A one-connection-at-a-time server on a free loopback port: TLS with a throwaway
    certificate, or plain (answers anything with an HTTP error, as Go's servers do)."""
    import socket
    import ssl
    import sys
    import threading

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "plugins" / "lookup"))
    import stack_tls  # pylint: disable=import-outside-toplevel

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    context = None
    if tls:
        ca_cert, ca_key = stack_tls.make_ca(str(tmp_path))
        cert, key = stack_tls.issue(ca_cert, ca_key, "localhost", ["127.0.0.1"], 1)
        (tmp_path / "s.crt").write_bytes(stack_tls._cert_pem(cert))
        (tmp_path / "s.key").write_bytes(stack_tls._key_pem(key))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tmp_path / "s.crt", tmp_path / "s.key")

    def loop():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                if context:
                    conn = context.wrap_socket(conn, server_side=True)
                conn.recv(100)
                conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    threading.Thread(target=loop, daemon=True).start()
    return listener, f"127.0.0.1:{listener.getsockname()[1]}"


def _stop(listener):
    import socket

    listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread: the port closes for good
    listener.close()


def test_a_service_is_told_apart_by_the_scheme_it_speaks(config_writer, tmp_path):
    tls, tls_address = _serve(tmp_path, tls=True)
    plain, plain_address = _serve(tmp_path, tls=False)
    try:
        assert config_writer.serving(tls_address, "https") and not config_writer.serving(tls_address, "http")
        assert config_writer.serving(plain_address, "http") and not config_writer.serving(plain_address, "https")
    finally:
        _stop(tls)
        _stop(plain)
    # a closed port serves neither
    assert not config_writer.serving(plain_address, "http") and not config_writer.serving(plain_address, "https")


def test_target_files_change_only_once_the_service_speaks_the_new_scheme(config_writer, tmp_path):
    owner, group = _me()
    dest = tmp_path / "node" / "app.yml"
    plain, address = _serve(tmp_path, tls=False)
    try:
        spec = {"dest": str(dest), "content": "https\n", "owner": owner, "group": group, "mode": "0644"}
        # still plain: nothing is written before the timeout
        assert not config_writer.write_when_serving([spec], {}, [], {"address": address, "scheme": "https", "timeout": 0.5},
                                                    poll=0.05)
        assert not dest.exists()
        assert config_writer.write_when_serving([dict(spec, content="http\n")], {}, [],
                                                {"address": address, "scheme": "http", "timeout": 5}, poll=0.05)
        assert dest.read_text() == "http\n"
    finally:
        _stop(plain)


def test_the_waiting_is_left_to_a_process_that_outlives_the_module(config_writer, tmp_path):
    import time

    marker = tmp_path / "written"
    started = time.monotonic()
    config_writer.detach(lambda: (time.sleep(0.5), marker.write_text(str(os.getpid()))))
    assert time.monotonic() - started < 0.4 and not marker.exists()
    for _ in range(50):
        if marker.exists():
            break
        time.sleep(0.1)
    assert marker.read_text() != str(os.getpid())
