#!/usr/bin/python3
"""STAND-IN for Grafana, Loki, Promtail and Jaeger in offline tests. NOT the real program.

Installed under the real binary's name (loki, promtail, jaeger, grafana). It reads the
config file the real program reads, refuses one that does not parse, binds the
configured addresses (over TLS where the config's TLS settings ask for it, with the
certificate they name) and answers the health endpoint. It stores no data and serves
no API: anything that needs real behaviour must be tested with the real archive.
"""
import configparser
import http.server
import json
import os
import signal
import socketserver
import ssl
import sys

import yaml

NAME = os.path.basename(sys.argv[0]).split("-linux-")[0]
VERSIONS = {"loki": "3.7.6", "promtail": "3.6.11", "jaeger": "2.20.0", "grafana": "13.2.3"}


def fail(message):
    print(f"{NAME} (stand-in): {message}", file=sys.stderr)
    sys.exit(1)


def flag(args, *names):
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def load_yaml(path):
    if not path:
        fail("no config file given")
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as exc:
        fail(f"cannot load config {path}: {exc}")
    if not isinstance(data, dict):
        fail(f"config {path} is not a mapping")
    return data


def split_endpoint(endpoint, default_port):
    host, _, port = str(endpoint or "").rpartition(":")
    return (host.strip("[]") or "0.0.0.0"), int(port or default_port)


def tls_context(cert, key):
    """Server TLS context for the certificate and key a config names; None without them."""
    if not cert:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        fail(f"cannot load TLS certificate {cert} / key {key}: {exc}")
    return context


class RawHandler(socketserver.BaseRequestHandler):
    """A port the stand-in only binds (gRPC): it takes the connection (and the TLS handshake
    when configured) and closes it."""

    def handle(self):
        self.request.close()


def serve(bindings):
    """bindings: list of (host, port, {path: (status, content_type, body)} or None for a port
    that is only bound, TLS context or None)."""
    servers = []
    for host, port, routes, context in bindings:
        if routes is None:
            server = socketserver.ThreadingTCPServer((host, port), RawHandler, bind_and_activate=False)
            server.allow_reuse_address = True
            server.server_bind()
            server.server_activate()
            if context:
                server.socket = context.wrap_socket(server.socket, server_side=True)
            servers.append(server)
            continue

        class Handler(http.server.BaseHTTPRequestHandler):
            table = routes

            def reply(self, status, ctype, body):
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                # how scripts/lab check tells a stand-in from the real program over HTTP
                self.send_header("X-Monstack-Stand-In", NAME)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                self.reply(*self.table.get(self.path.split("?")[0], (404, "text/plain", "not served by the stand-in\n")))

            do_HEAD = do_GET

            def do_POST(self):  # noqa: N802
                # POST routes are ("POST", path): callables that take the request's headers
                route = self.table.get(("POST", self.path.split("?")[0]))
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.reply(*(route(self.headers) if route else (404, "application/json", '{"message":"Not found"}\n')))

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer((host, port), Handler)
        if context:
            server.socket = context.wrap_socket(server.socket, server_side=True)
        servers.append(server)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    print(f"{NAME} (stand-in) listening on {[(h, p, 'tls' if c else 'plain') for h, p, _, c in bindings]}", flush=True)
    import threading
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    servers[0].serve_forever()


def version_banner():
    print(f"{NAME}, version {VERSIONS.get(NAME, '0')} (STAND-IN, not the real binary)")
    sys.exit(0)


def loki_like(args, default_port):
    if any(a.lstrip("-") == "version" for a in args):
        version_banner()
    config = load_yaml(flag(args, "-config.file", "--config.file"))
    server = config.get("server") or {}
    if not isinstance(server, dict):
        fail("server must be a mapping")
    if NAME == "loki":
        schema = (config.get("schema_config") or {}).get("configs")
        if not isinstance(schema, list) or not schema:
            fail("schema_config.configs must list at least one period")
    if NAME == "promtail" and not config.get("clients"):
        fail("at least one client (clients[].url) is required")
    if any(a.lstrip("-") in ("verify-config", "check-syntax") for a in args):
        print("Valid config file! No syntax issues found" if NAME == "promtail" else "config is valid")
        sys.exit(0)
    host = server.get("http_listen_address") or "0.0.0.0"
    port = int(server.get("http_listen_port") or default_port)
    tls = server.get("http_tls_config") or {}
    bindings = [(host, port, {"/ready": (200, "text/plain", "ready\n")}, tls_context(tls.get("cert_file"), tls.get("key_file")))]
    grpc_port = int(server.get("grpc_listen_port", 9095 if NAME == "loki" else 0) or 0)
    if grpc_port:
        grpc_tls = server.get("grpc_tls_config") or {}
        bindings.append((server.get("grpc_listen_address") or "0.0.0.0", grpc_port, None,
                         tls_context(grpc_tls.get("cert_file"), grpc_tls.get("key_file"))))
    serve(bindings)


def jaeger(args):
    if args and args[0] in ("version", "--version"):
        version_banner()
    config_path = flag(args, "--config", "--config.file")
    config = load_yaml(config_path[5:] if config_path and config_path.startswith("file:") else config_path)
    service = config.get("service") or {}
    for pipeline, spec in (service.get("pipelines") or {}).items():
        for kind in ("receivers", "processors", "exporters"):
            for ref in (spec or {}).get(kind, []) or []:
                if ref not in (config.get(kind) or {}):
                    fail(f"service::pipelines::{pipeline}: references {kind[:-1]} {ref!r} which is not configured")
    for ref in service.get("extensions") or []:
        if ref not in (config.get("extensions") or {}):
            fail(f"service::extensions: references extension {ref!r} which is not configured")
    if args and args[0] == "validate":
        sys.exit(0)
    ext = config.get("extensions") or {}
    health = (ext.get("healthcheckv2") or ext.get("health_check") or {})
    endpoint = (health.get("http") or {}).get("endpoint") or health.get("endpoint") or "localhost:13133"
    host, port = split_endpoint(endpoint, 13133)
    bindings = [(host, port, {"/status": (200, "application/json", '{"status":"StatusOK"}\n'),
                              "/": (200, "application/json", '{"status":"Server available"}\n')}, None)]

    def server_tls(spec):
        tls = (spec or {}).get("tls") or {}
        return tls_context(tls.get("cert_file"), tls.get("key_file"))

    query = (ext.get("jaeger_query") or {})
    if (query.get("http") or {}).get("endpoint"):
        qhost, qport = split_endpoint(query["http"]["endpoint"], 16686)
        bindings.append((qhost, qport, {"/": (200, "text/html", "<html>Jaeger stand-in: no UI, no API</html>\n")},
                         server_tls(query["http"])))
    if (query.get("grpc") or {}).get("endpoint"):
        bindings.append((*split_endpoint(query["grpc"]["endpoint"], 16685), None, server_tls(query["grpc"])))
    # the collector's own metrics exporter (plain HTTP upstream): bound, no metrics served
    for reader in (((service.get("telemetry") or {}).get("metrics") or {}).get("readers") or []):
        pull = (((reader or {}).get("pull") or {}).get("exporter") or {}).get("prometheus") or {}
        if pull.get("port"):
            bindings.append((pull.get("host") or "0.0.0.0", int(pull["port"]), {}, None))
    # OTLP receivers (otlp, otlp/<name>): bound (over TLS when configured), nothing is stored
    for receiver, rspec in (config.get("receivers") or {}).items():
        if receiver.split("/")[0] != "otlp":
            continue
        for name, spec in ((rspec or {}).get("protocols") or {}).items():
            endpoint = (spec or {}).get("endpoint") or ("0.0.0.0:4317" if name == "grpc" else "0.0.0.0:4318")
            routes = None if name == "grpc" else {}
            bindings.append((*split_endpoint(endpoint, 4317 if name == "grpc" else 4318), routes, server_tls(spec)))
    # Prometheus exporters (prometheus, prometheus/<name>): bound (over TLS when configured), no
    # metrics served
    for exporter, spec in (config.get("exporters") or {}).items():
        if exporter.split("/")[0] == "prometheus" and (spec or {}).get("endpoint"):
            bindings.append((*split_endpoint(spec["endpoint"], 8889), {}, server_tls(spec)))
    serve(bindings)


def grafana(args):
    if not args or args[0] in ("-v", "--version", "-version"):
        version_banner()
    if args[0] != "server":
        fail(f"'{args[0]}' is not available in the stand-in")
    home = flag(args, "--homepath", "-homepath")
    if not home or not os.path.isfile(os.path.join(home, "conf", "defaults.ini")):
        fail(f"homepath {home!r} has no conf/defaults.ini")
    path = flag(args, "--config", "-config")
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except (OSError, TypeError, configparser.Error) as exc:
        fail(f"cannot load config {path}: {exc}")
    host = parser.get("server", "http_addr", fallback="") or "0.0.0.0"
    port = int(parser.get("server", "http_port", fallback="3000") or 3000)
    body = json.dumps({"database": "ok", "version": VERSIONS["grafana"] + "-standin", "commit": "stand-in"})
    context = None
    if parser.get("server", "protocol", fallback="http") == "https":
        context = tls_context(parser.get("server", "cert_file", fallback=""), parser.get("server", "cert_key", fallback=""))
        if not context:
            fail("[server] protocol = https needs cert_file and cert_key")
    # grafana/grafana pkg/api/api.go: POST /api/admin/provisioning/{dashboards,datasources}/reload,
    # Grafana admins only (basic auth), answering {"message": "... config reloaded"}; 401 otherwise.
    # The stand-in takes [security] admin_user and admin_password ($__file{...} read at each request,
    # so a rotated password holds as it would once written into the real database).
    def admin_only(message):
        def route(headers):
            import base64
            user = parser.get("security", "admin_user", fallback="admin")
            password = parser.get("security", "admin_password", fallback="admin")
            if password.startswith("$__file{") and password.endswith("}"):
                try:
                    with open(password[len("$__file{"):-1], encoding="utf-8") as handle:
                        password = handle.read().strip()
                except OSError:
                    password = None
            wanted = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            if password is None or headers.get("Authorization") != wanted:
                return 401, "application/json", '{"message":"Unauthorized"}\n'
            return 200, "application/json", json.dumps({"message": message}) + "\n"
        return route

    serve([(host, port, {"/api/health": (200, "application/json", body + "\n"),
                         ("POST", "/api/admin/provisioning/datasources/reload"): admin_only("Datasources config reloaded"),
                         ("POST", "/api/admin/provisioning/dashboards/reload"): admin_only("Dashboards config reloaded")},
            context)])


def main():
    args = sys.argv[1:]
    if NAME in ("loki", "promtail"):
        loki_like(args, 3100 if NAME == "loki" else 9080)
    elif NAME == "jaeger":
        jaeger(args)
    elif NAME == "grafana":
        grafana(args)
    else:
        fail(f"unknown stand-in name {NAME}")


if __name__ == "__main__":
    main()
