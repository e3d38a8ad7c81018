#!/usr/bin/python3
"""STAND-IN for Grafana, Loki, Promtail, Alloy and Jaeger in offline tests. NOT the real program.

Installed under the real binary's name (loki, promtail, alloy, jaeger, grafana). It reads the
config file the real program reads, refuses one that does not parse, binds the
configured addresses (over TLS where the config's TLS settings ask for it, with the
certificate they name) and answers the health endpoint. It stores no data and serves
no API: anything that needs real behaviour must be tested with the real archive.
"""
import configparser
import http.server
import json
import os
import re
import signal
import socketserver
import ssl
import sys
import time

import yaml

NAME = os.path.basename(sys.argv[0]).split("-linux-")[0]
VERSIONS = {"loki": "3.7.6", "promtail": "3.6.11", "alloy": "1.18.1", "jaeger": "2.20.0", "grafana": "13.2.3"}
# Upstream's config contracts (tests/mirror/contracts/<name>.yml: the keys each program accepts,
# read from its source at the pinned tag). The mirror build writes them in here; run from the
# checkout, the stand-in reads the files.
CONTRACTS = {}


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


def contract(name):
    if name not in CONTRACTS:
        path = os.path.join(os.path.dirname(os.path.realpath(__file__)), "contracts", f"{name}.yml")
        with open(path, encoding="utf-8") as handle:
            CONTRACTS[name] = yaml.safe_load(handle)
    return CONTRACTS[name]


def unknown_keys(value, tree, path=""):
    """Keys of value that tree does not list (tree: a mapping of the keys accepted, None for any
    value, [node] for a list of node, "*" for keys of the user's choosing; a "*" key in a mapping
    stands for any key), as dotted paths."""
    if tree is None or tree == "*" or value is None:
        return []
    if isinstance(tree, list):
        if not isinstance(value, list):
            return []
        return [found for i, item in enumerate(value) for found in unknown_keys(item, tree[0], f"{path}[{i}]")]
    if not isinstance(value, dict):
        return []
    found = []
    for key, item in value.items():
        where = f"{path}.{key}" if path else str(key)
        if key in tree:
            found += unknown_keys(item, tree[key], where)
        elif "*" in tree:
            found += unknown_keys(item, tree["*"], where)
        else:
            found.append(where)
    return found


def crypt(password, setting):
    """crypt(3) of glibc's libcrypt (bcrypt $2b$ among the schemes it knows): the hash of
    password with the scheme and salt of setting (a hash or a salt string), or "" when refused."""
    import ctypes
    import ctypes.util
    library = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
    library.crypt.restype = ctypes.c_char_p
    library.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    return (library.crypt(password.encode(), setting.encode()) or b"").decode()


def crypt_matches(password, hashed):
    """password against a crypt(3) hash."""
    import hmac
    out = crypt(password, hashed)
    return bool(out) and hmac.compare_digest(out, hashed)


def basic_login(headers):
    """(user, password) of a request's basic auth, or None."""
    import base64
    value = headers.get("Authorization") or ""
    if not value.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(value[6:]).decode().partition(":")
    except ValueError:
        return None
    return user, password


def split_endpoint(endpoint, default_port):
    host, _, port = str(endpoint or "").rpartition(":")
    return (host.strip("[]") or "0.0.0.0"), int(port or default_port)


def tls_context(cert, key, client_ca=None, client_auth=None):
    """Server TLS context for the certificate and key a config names; None without them. With
    client_auth RequireAndVerifyClientCert (dskit's client_auth_type) or a client CA alone (the
    collector's client_ca_file), a client certificate of client_ca is required."""
    if not cert:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
        if client_ca and client_auth in (None, "RequireAndVerifyClientCert"):
            context.load_verify_locations(client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
        elif client_auth and client_auth not in ("NoClientCert", "RequestClientCert", "RequireAnyClientCert",
                                                 "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"):
            fail(f"invalid client_auth_type {client_auth!r}")
    except (OSError, ssl.SSLError) as exc:
        fail(f"cannot load TLS certificate {cert} / key {key} / client CA {client_ca}: {exc}")
    return context


class RawHandler(socketserver.BaseRequestHandler):
    """A port the stand-in only binds (gRPC): it takes the connection (and the TLS handshake
    when configured) and closes it."""

    def handle(self):
        self.request.close()


def serve(bindings, on_hup=None, on_term=None):
    """bindings: list of (host, port, {path: (status, content_type, body)} or None for a port
    that is only bound, TLS context or None); on_hup: what SIGHUP does (ignored without);
    on_term: what runs before SIGTERM ends the process."""
    servers = []
    for binding in bindings:
        host, port, routes, context = binding[:4]
        login = binding[4] if len(binding) > 4 else None
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
            # login(headers) -> True when the request may pass (an authenticator); None: no login
            check = staticmethod(login) if login else None

            def refused(self):
                if self.check and not self.check(self.headers):
                    self.reply(401, "text/plain", "Unauthorized\n")
                    return True
                return False

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
                if self.refused():
                    return
                # a route is (status, content type, body), or a callable that takes the headers
                route = self.table.get(self.path.split("?")[0], (404, "text/plain", "not served by the stand-in\n"))
                self.reply(*(route(self.headers) if callable(route) else route))

            do_HEAD = do_GET

            def do_POST(self):  # noqa: N802
                # POST routes are ("POST", path): callables that take the request's headers
                route = self.table.get(("POST", self.path.split("?")[0]))
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.refused():
                    return
                self.reply(*(route(self.headers) if route else (404, "application/json", '{"message":"Not found"}\n')))

            def log_message(self, *args):
                pass

        if callable(context):
            # TLS chosen per connection by context() (None: plain), so a reload can turn it on or off
            class Switching(http.server.ThreadingHTTPServer):
                current = staticmethod(context)

                def get_request(self):
                    sock, address = super().get_request()
                    now = self.current()
                    return (now.wrap_socket(sock, server_side=True, do_handshake_on_connect=False) if now else sock), address

            server = Switching((host, port), Handler)
        else:
            server = http.server.ThreadingHTTPServer((host, port), Handler)
            if context:
                server.socket = context.wrap_socket(server.socket, server_side=True)
        servers.append(server)
    signal.signal(signal.SIGTERM, lambda *_: (on_term and on_term(), sys.exit(0)))
    signal.signal(signal.SIGHUP, (lambda *_: on_hup()) if on_hup else signal.SIG_IGN)
    shown = [(b[0], b[1], "tls as configured" if callable(b[3]) else "tls" if b[3] else "plain") for b in bindings]
    print(f"{NAME} (stand-in) listening on {shown}", flush=True)
    import threading
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    servers[0].serve_forever()


def version_banner():
    print(f"{NAME}, version {VERSIONS.get(NAME, '0')} (STAND-IN, not the real binary)")
    sys.exit(0)


# Loki's /ready: 503 until the ingester has been ready for min_ready_duration (15 s by default:
# grafana/loki@v3.7.6 pkg/ingester/lifecycler config, pkg/loki/loki.go readyHandler)
LOKI_NOT_READY = "Ingester not ready: waiting for 15s after being ready\n"
# Promtail's /ready: grafana/loki@v3.6.11 clients/pkg/promtail/server/server.go (readinessProbe*)
PROMTAIL_NOT_READY = "Not ready: Unable to find any logs to tail. Please verify permissions, volumes, scrape_config, etc.\n"


def expand_braces(pattern):
    """doublestar's {a,b} alternation; a comma outside braces is a literal character."""
    start = pattern.find("{")
    end = pattern.find("}", start)
    if start < 0 or end < 0:
        return [pattern]
    return [expanded for choice in pattern[start + 1:end].split(",")
            for expanded in expand_braces(pattern[:start] + choice + pattern[end + 1:])]


def promtail_tails_something(config):
    """Promtail's targets are ready when a journal target exists (always ready) or a file target
    tails a file: one readable file matches one of its __path__ patterns."""
    import glob
    for scrape in config.get("scrape_configs") or []:
        if (scrape or {}).get("journal") is not None:
            return True
        for group in (scrape or {}).get("static_configs") or []:
            pattern = ((group or {}).get("labels") or {}).get("__path__")
            for expanded in expand_braces(str(pattern or "")):
                if any(os.access(path, os.R_OK) and os.path.isfile(path) for path in glob.glob(expanded)):
                    return True
    return False


def promtail_positions(config):
    """Promtail's positions file as it keeps it (grafana/loki@v3.6.11 clients/pkg/promtail/positions/
    positions.go: {positions: {path: offset, cursor-<journal job>: cursor}}, written every
    sync_period (10s) and when Promtail stops). The stand-in reads nothing: it records each file its
    targets match as read to its end and the journal's last cursor, so that what a move to Alloy
    hands over can be compared with what Promtail left. Returns what SIGTERM runs first."""
    import glob
    import subprocess
    import threading
    path = (config.get("positions") or {}).get("filename") or "/var/log/positions.yaml"

    def save():
        entries = {}
        for scrape in config.get("scrape_configs") or []:
            if (scrape or {}).get("journal") is not None:
                out = subprocess.run(["journalctl", "-n", "1", "--show-cursor", "-q", "-o", "cat"],
                                     capture_output=True, text=True, check=False).stdout
                cursor = [line[len("-- cursor: "):] for line in out.splitlines() if line.startswith("-- cursor: ")]
                if cursor:
                    entries[f"cursor-{scrape.get('job_name')}"] = cursor[-1]
            for group in (scrape or {}).get("static_configs") or []:
                pattern = ((group or {}).get("labels") or {}).get("__path__")
                for expanded in expand_braces(str(pattern or "")):
                    for name in glob.glob(expanded):
                        if os.path.isfile(name) and os.access(name, os.R_OK):
                            entries[name] = str(os.path.getsize(name))
        try:
            tmp = path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as handle:
                yaml.safe_dump({"positions": entries}, handle, default_flow_style=False)
            os.replace(tmp, path)
        except OSError as exc:
            print(f"level=error msg=\"error writing positions file\" error=\"{exc}\"", flush=True)

    def loop():
        while True:
            time.sleep(10)
            save()

    save()
    threading.Thread(target=loop, daemon=True).start()
    return save


def loki_like(args, default_port):
    if any(a.lstrip("-") == "version" for a in args):
        version_banner()
    config = load_yaml(flag(args, "-config.file", "--config.file"))
    unknown = unknown_keys(config, contract(NAME)["keys"])
    if unknown:
        # what yaml.UnmarshalStrict says, for the first of them
        fail(f"failed parsing config: field {unknown[0].rsplit('.', 1)[-1]} not found (at {unknown[0]}"
             + (f"; also {', '.join(unknown[1:])}" if unknown[1:] else "") + ")")
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
    started = time.monotonic()

    def ready(_headers):
        if NAME == "loki":
            if time.monotonic() - started < 15:
                return 503, "text/plain", LOKI_NOT_READY
            return 200, "text/plain", "ready\n"
        if promtail_tails_something(config):
            return 200, "text/plain", "Ready"
        return 500, "text/plain; charset=utf-8", PROMTAIL_NOT_READY

    routes = {"/ready": ready}
    if NAME == "loki":
        # grafana/loki v3.7.6 pkg/loki/modules.go (initIngester): GET or POST /flush, and
        # pkg/ingester/flush.go (FlushHandler): 204 once the in-memory chunks are queued for flushing
        routes.update({"/flush": (204, "text/plain", ""), ("POST", "/flush"): lambda _headers: (204, "text/plain", "")})
    on_term = None
    if NAME == "promtail":
        on_term = promtail_positions(config)
    bindings = [(host, port, routes,
                 tls_context(tls.get("cert_file"), tls.get("key_file"), tls.get("client_ca_file"), tls.get("client_auth_type")))]
    grpc_port = int(server.get("grpc_listen_port", 9095 if NAME == "loki" else 0) or 0)
    if grpc_port:
        grpc_tls = server.get("grpc_tls_config") or {}
        bindings.append((server.get("grpc_listen_address") or "0.0.0.0", grpc_port, None,
                         tls_context(grpc_tls.get("cert_file"), grpc_tls.get("key_file"),
                                     grpc_tls.get("client_ca_file"), grpc_tls.get("client_auth_type"))))
    serve(bindings, on_term=on_term)


def jaeger_args(args):
    """The collector command's flags (open-telemetry/opentelemetry-collector v0.155.0
    otelcol/command.go, flags.go; cobra): --config (repeatable; a path or file:<path>), --set,
    --feature-gates; subcommands validate, components, print-config. Returns (subcommand, config
    paths); anything else fails as cobra does."""
    subcommand, configs, rest = None, [], list(args)
    if rest and not rest[0].startswith("-"):
        subcommand = rest.pop(0)
        if subcommand not in ("validate", "components", "print-config"):
            fail(f'Error: unknown command "{subcommand}" for "jaeger"')
    while rest:
        arg = rest.pop(0)
        name, _, value = arg.partition("=")
        if name not in ("--config", "--set", "--feature-gates"):
            fail(f"Error: unknown flag: {name}")
        if not _:
            if not rest:
                fail(f"Error: flag needs an argument: {name}")
            value = rest.pop(0)
        if name == "--config":
            if value.startswith("file:"):
                value = value[5:]
            elif ":" in value.split("/")[0]:
                fail(f"Error: cannot resolve the configuration: unsupported scheme in {value!r}")
            configs.append(value)
    return subcommand, configs


def jaeger_problems(config):
    """What the collector refuses in a config: unknown keys, component types it has no factory
    for, unknown keys of the component types the contract lists, pipelines naming components that
    are not configured."""
    spec = contract("jaeger")
    problems = [f"'{path}' has invalid keys" for path in unknown_keys(config, spec["keys"])]
    for kind, types in spec["component_types"].items():
        for ident, body in (config.get(kind) or {}).items():
            kind_type = str(ident).split("/")[0]
            if kind_type not in types:
                problems.append(f"{kind}: unknown type: \"{kind_type}\" for id: \"{ident}\"")
                continue
            tree = spec["component_keys"].get(kind, {}).get(kind_type)
            problems += [f"{kind}::{ident}: '{path}' has invalid keys" for path in unknown_keys(body, tree)]
    service = config.get("service") or {}
    for pipeline, pspec in (service.get("pipelines") or {}).items():
        for kind in ("receivers", "processors", "exporters"):
            for ref in (pspec or {}).get(kind, []) or []:
                if ref not in (config.get(kind) or {}):
                    problems.append(f"service::pipelines::{pipeline}: references {kind[:-1]} {ref!r} which is not configured")
    for ref in service.get("extensions") or []:
        if ref not in (config.get("extensions") or {}):
            problems.append(f"service::extensions: references extension {ref!r} which is not configured")
    # a server's auth.authenticator must be an extension the service runs
    for where, spec, *_ in server_specs(config):
        name = ((spec or {}).get("auth") or {}).get("authenticator")
        if name and name not in (service.get("extensions") or []):
            problems.append(f"{where}: failed to resolve authenticator {name!r}: authenticator not found")
    return problems


def server_specs(config):
    """(where, server config, endpoint the stand-in binds or None, default port, routes) of the
    HTTP and gRPC servers a collector config opens: the query service's, the receivers' (the
    OTLP ones bound, at the collector's defaults without an endpoint; nothing is stored) and the
    Prometheus exporters' (bound, no metrics served). routes None: a gRPC port only bound; {}:
    HTTP serving nothing."""
    query = (config.get("extensions") or {}).get("jaeger_query") or {}
    yield ("extensions::jaeger_query::http", query.get("http"), (query.get("http") or {}).get("endpoint"), 16686,
           {"/": (200, "text/html", "<html>Jaeger stand-in: no UI, no API</html>\n")})
    yield "extensions::jaeger_query::grpc", query.get("grpc"), (query.get("grpc") or {}).get("endpoint"), 16685, None
    for receiver, rspec in (config.get("receivers") or {}).items():
        for name, spec in ((rspec or {}).get("protocols") or {}).items():
            port = 4317 if name == "grpc" else 4318
            endpoint = ((spec or {}).get("endpoint") or f"0.0.0.0:{port}") if receiver.split("/")[0] == "otlp" else None
            yield f"receivers::{receiver}::{name}", spec, endpoint, port, None if name == "grpc" else {}
    for exporter, spec in (config.get("exporters") or {}).items():
        if exporter.split("/")[0] == "prometheus":
            yield f"exporters::{exporter}", spec, (spec or {}).get("endpoint"), 8889, {}


def jaeger_login(config, spec):
    """The login check of a server whose auth names a basicauth extension (its htpasswd file or
    inline entries, user:crypt-hash per line, as contrib's basicauthextension reads them)."""
    name = ((spec or {}).get("auth") or {}).get("authenticator")
    if not name:
        return None
    htpasswd = (((config.get("extensions") or {}).get(name) or {}).get("htpasswd") or {})
    text = htpasswd.get("inline") or ""
    if htpasswd.get("file"):
        try:
            with open(htpasswd["file"], encoding="utf-8") as handle:
                text += "\n" + handle.read()
        except OSError as exc:
            fail(f"extensions::{name}: cannot read htpasswd file: {exc}")
    users = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def check(headers):
        login = basic_login(headers)
        return bool(login) and login[0] in users and crypt_matches(login[1], users[login[0]].strip())
    return check


def jaeger(args):
    if args and args[0] in ("version", "--version"):
        version_banner()
    subcommand, configs = jaeger_args(args)
    if not configs:
        fail("Error: at least one --config is needed (the stand-in has no embedded all-in-one)")
    config = {}
    for path in configs:
        config.update(load_yaml(path))
    problems = jaeger_problems(config)
    if problems:
        fail("Error: invalid configuration: " + "; ".join(problems))
    if subcommand == "validate":
        sys.exit(0)
    if subcommand:
        fail(f"'{subcommand}' is not available in the stand-in")
    service = config.get("service") or {}
    ext = config.get("extensions") or {}
    health = (ext.get("healthcheckv2") or ext.get("health_check") or {})
    endpoint = (health.get("http") or {}).get("endpoint") or health.get("endpoint") or "localhost:13133"
    host, port = split_endpoint(endpoint, 13133)
    started = time.monotonic()

    def status(_headers):
        # healthcheckv2: 503 until every component reports running
        if time.monotonic() - started < 1:
            return 503, "application/json", '{"status":"StatusStarting"}\n'
        return 200, "application/json", '{"status":"StatusOK"}\n'

    bindings = [(host, port, {"/status": status,
                              "/": (200, "application/json", '{"status":"Server available"}\n')}, None)]

    for _, spec, endpoint, default_port, routes in server_specs(config):
        if endpoint:
            tls = (spec or {}).get("tls") or {}
            bindings.append((*split_endpoint(endpoint, default_port), routes,
                             tls_context(tls.get("cert_file"), tls.get("key_file"), tls.get("client_ca_file")),
                             jaeger_login(config, spec)))
    # the collector's own metrics exporter (plain HTTP upstream): bound, no metrics served
    for reader in (((service.get("telemetry") or {}).get("metrics") or {}).get("readers") or []):
        pull = (((reader or {}).get("pull") or {}).get("exporter") or {}).get("prometheus") or {}
        if pull.get("port"):
            bindings.append((pull.get("host") or "0.0.0.0", int(pull["port"]), {}, None))
    serve(bindings)


def grafana_global_flags(args, allowed):
    """(flags, rest): the leading --name=value / --name value flags of args that allowed lists
    (name: takes a value), failing on any other flag as urfave/cli does."""
    flags, rest = {}, list(args)
    while rest and rest[0].startswith("-"):
        arg = rest.pop(0)
        name, eq, value = arg.lstrip("-").partition("=")
        if name not in allowed:
            fail(f"flag provided but not defined: -{name}")
        if allowed[name] and not eq:
            if not rest:
                fail(f"flag needs an argument: -{name}")
            value = rest.pop(0)
        flags[name] = value if allowed[name] else "true"
    return flags, rest


def grafana_cfg(home, flags, args):
    """Grafana's settings as grafana/grafana pkg/setting (NewCfgFromArgs) builds them:
    <home>/conf/defaults.ini, then the --config file, then the cfg:default.<section>.<key>=value
    overrides of --configOverrides and the trailing arguments; paths relative to the home path.
    Returns (ConfigParser, database file, provisioning dir)."""
    config_path = flags.get("config")
    if not home or not os.path.isfile(os.path.join(home, "conf", "defaults.ini")):
        fail(f"Grafana-server Init Failed: Could not find config defaults, make sure homepath command line parameter is set or working directory is homepath (homepath {home!r})")
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        with open(os.path.join(home, "conf", "defaults.ini"), encoding="utf-8") as handle:
            parser.read_file(handle)
        if config_path:
            with open(config_path, encoding="utf-8") as handle:
                parser.read_file(handle)
    except (OSError, configparser.Error) as exc:
        fail(f"cannot load config {config_path}: {exc}")
    for override in flags.get("configOverrides", "").split(" ") + list(args):
        if not override.startswith("cfg:"):
            continue
        key, _, value = override[4:].partition("=")
        parts = key.split(".")
        if parts[0] == "default":
            parts = parts[1:]
        if len(parts) == 2:
            if not parser.has_section(parts[0]):
                parser.add_section(parts[0])
            parser.set(parts[0], parts[1], value)
    # os.path.join keeps a path that is absolute already
    data = os.path.join(home, parser.get("paths", "data", fallback="data"))
    database = os.path.join(data, parser.get("database", "path", fallback="grafana.db"))
    provisioning = os.path.join(home, parser.get("paths", "provisioning", fallback="conf/provisioning"))
    return parser, database, provisioning


def secret_value(value):
    if value.startswith("$__file{") and value.endswith("}"):
        with open(value[len("$__file{"):-1], encoding="utf-8") as handle:
            return handle.read().strip()
    return value


def open_database(path, create_with=None):
    """The stand-in's database: an sqlite file as Grafana's (its default [database] type sqlite3,
    <data>/grafana.db), with the admin login in its user table and a dashboard table. Grafana
    creates it (and the admin user, from [security] admin_user / admin_password) when it opens a
    database that does not exist; that needs a writable directory. Returns {admin_user, admin_password}."""
    import sqlite3
    if not os.path.exists(path):
        if create_with is None:
            fail(f"failed to initialize runner: sqlstore init: unable to open database file {path}")
        try:
            with sqlite3.connect(path) as db:
                db.execute("CREATE TABLE user (id INTEGER PRIMARY KEY, login TEXT UNIQUE, password TEXT, is_admin INTEGER)")
                db.execute("CREATE TABLE dashboard (id INTEGER PRIMARY KEY, uid TEXT UNIQUE, title TEXT, data TEXT)")
                db.execute("INSERT INTO user (login, password, is_admin) VALUES (?, ?, 1)",
                           (create_with["admin_user"], create_with["admin_password"]))
        except sqlite3.Error as exc:
            fail(f"failed to initialize runner: sqlstore init: unable to open database file {path}: {exc}")
    try:
        with sqlite3.connect(path) as db:
            login, password = db.execute("SELECT login, password FROM user WHERE is_admin = 1 ORDER BY id LIMIT 1").fetchone()
    except (sqlite3.Error, TypeError) as exc:
        fail(f"failed to initialize runner: sqlstore init: {path}: {exc}")
    return {"admin_user": login, "admin_password": password}


def set_admin_password(path, password):
    import sqlite3
    with sqlite3.connect(path) as db:
        db.execute("UPDATE user SET password = ? WHERE id = (SELECT id FROM user WHERE is_admin = 1 ORDER BY id LIMIT 1)",
                   (password,))


def provisioning_problems(directory):
    """What Grafana's datasource provisioning refuses (grafana/grafana
    pkg/services/provisioning/datasources/config_reader.go): more than one default per
    organisation, a datasource without a name."""
    import glob
    problems, defaults = [], {}
    for path in sorted(glob.glob(os.path.join(directory, "datasources", "*.y*ml"))):
        try:
            with open(path, encoding="utf-8") as handle:
                doc = yaml.safe_load(handle) or {}
        except (OSError, yaml.YAMLError) as exc:
            problems.append(f"{path}: {exc}")
            continue
        for source in doc.get("datasources") or []:
            if not source.get("name"):
                problems.append(f"{path}: datasource is missing a name")
            if source.get("isDefault"):
                defaults.setdefault(source.get("orgId", 1), []).append(source.get("name"))
    for org, names in defaults.items():
        if len(names) > 1:
            problems.append("datasource.yaml config is invalid. Only one datasource per organization can be marked as default "
                            f"(org {org}: {', '.join(map(str, names))})")
    return problems


def grafana_cli(args):
    """grafana cli (grafana/grafana pkg/cmd/grafana-cli/commands/cli.go, commands.go): global
    --config, --homepath and --configOverrides build the settings (initializeRunner); of the
    subcommands the stand-in does admin reset-admin-password."""
    flags, rest = grafana_global_flags(args, {"config": True, "homepath": True, "configOverrides": True, "debug": False,
                                              "d": False, "pluginsDir": True, "repo": True, "pluginUrl": True,
                                              "insecure": False, "version": False, "v": False})
    if rest[:2] != ["admin", "reset-admin-password"]:
        fail(f"'{' '.join(rest[:2])}' is not available in the stand-in")
    sub, rest = grafana_global_flags(rest[2:], {"password-from-stdin": False, "user-id": True})
    password = sys.stdin.read().strip() if "password-from-stdin" in sub else (rest.pop(0) if rest else "")
    if not password:
        fail("missing arguments: new password")
    home = flags.get("homepath") or os.getcwd()
    parser, database, _ = grafana_cfg(home, flags, rest)
    # a database that is not there is created (as Grafana's migrations would), the admin from the ini
    open_database(database, create_with={"admin_user": parser.get("security", "admin_user", fallback="admin"),
                                         "admin_password": "admin"})
    set_admin_password(database, password)
    print(f"Admin password changed successfully ✔ (database {database})")


def grafana(args):
    if not args or args[0] in ("-v", "--version", "-version"):
        version_banner()
    if args[0] == "cli":
        grafana_cli(args[1:])
        return
    if args[0] != "server":
        fail(f"'{args[0]}' is not available in the stand-in")
    flags, rest = grafana_global_flags(args[1:], {"homepath": True, "config": True, "pidfile": True, "packaging": True,
                                                  "configOverrides": True, "profile": False, "profile-addr": True,
                                                  "profile-port": True, "profile-block-rate": True,
                                                  "profile-mutex-rate": True, "tracing": False, "tracing-file": True,
                                                  "v": False, "vv": False, "version": False})
    parser, database, provisioning = grafana_cfg(flags.get("homepath"), flags, rest)
    problems = provisioning_problems(provisioning)
    if problems:
        fail("Datasource provisioning error: " + "; ".join(problems))
    try:
        admin_password = secret_value(parser.get("security", "admin_password", fallback="admin"))
    except OSError as exc:
        fail(f"cannot read [security] admin_password: {exc}")
    # admin_password counts only when the database is created (Grafana's own rule)
    open_database(database, create_with={"admin_user": parser.get("security", "admin_user", fallback="admin"),
                                         "admin_password": admin_password})
    host = parser.get("server", "http_addr", fallback="") or "0.0.0.0"
    port = int(parser.get("server", "http_port", fallback="3000") or 3000)
    body = json.dumps({"database": "ok", "version": VERSIONS["grafana"] + "-standin", "commit": "stand-in"})
    context = None
    if parser.get("server", "protocol", fallback="http") == "https":
        context = tls_context(parser.get("server", "cert_file", fallback=""), parser.get("server", "cert_key", fallback=""))
        if not context:
            fail("[server] protocol = https needs cert_file and cert_key")

    # grafana/grafana pkg/api/api.go: POST /api/admin/provisioning/{dashboards,datasources}/reload,
    # Grafana admins only (basic auth against the user in its database), 401 otherwise
    def admin_only(message):
        def route(headers):
            db = open_database(database)
            if basic_login(headers) != (db["admin_user"], db["admin_password"]):
                return 401, "application/json", '{"message":"Unauthorized"}\n'
            return 200, "application/json", json.dumps({"message": message}) + "\n"
        return route

    # [metrics] basic_auth_username / basic_auth_password: /metrics asks for that login
    # (grafana/grafana pkg/api/http_server.go, metricsEndpoint: 401 without it); the stand-in serves no
    # metrics behind it
    def metrics(headers):
        user = parser.get("metrics", "basic_auth_username", fallback="")
        wanted = secret_value(parser.get("metrics", "basic_auth_password", fallback=""))
        if user and wanted and basic_login(headers) != (user, wanted):
            return 401, "text/plain", "Unauthorized\n"
        return 404, "text/plain", "not served by the stand-in\n"

    serve([(host, port, {"/metrics": metrics, "/api/health": (200, "application/json", body + "\n"),
                         ("POST", "/api/admin/provisioning/datasources/reload"): admin_only("Datasources config reloaded"),
                         ("POST", "/api/admin/provisioning/dashboards/reload"): admin_only("Dashboards config reloaded")},
            context)])

# ---------------------------------------------------------------------------------------------
# Alloy: the config language parsed, every block, component, argument and reference checked
# against upstream's definitions at the pinned tag (contracts/alloy.yml, made by
# tools/alloy_contract.py from grafana/alloy's structs), `alloy validate FILE`, `alloy run FILE`
# with its flags, /-/ready, /-/healthy, /-/reload and SIGHUP, and the conversion of
# Promtail's positions that loki.source.file (legacy_positions_file) and loki.source.journal
# (legacy_position) do when they start. It reads no log and ships nothing.
ALLOY_TOKEN = re.compile(r"""
    (?P<space>\s+|//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_]\w*)
  | (?P<punct>==|!=|<=|>=|&&|\|\||[{}\[\](),=.+\-*/%<>!^:])
""", re.X | re.S)
# grafana/alloy@v1.18.1 internal/alloycli/cmd_run.go (mountRunFlags) and cmd_validate.go
ALLOY_RUN_FLAGS = {
    "server.http.listen-addr", "server.http.memory-addr", "server.http.ui-path-prefix", "server.http.enable-pprof",
    "server.http.disable-support-bundle", "server.http.enable-graphql", "server.http.enable-graphql-playground",
    "cluster.enabled", "cluster.node-name", "cluster.advertise-address", "cluster.advertise-interfaces",
    "cluster.join-addresses", "cluster.discover-peers", "cluster.rejoin-interval", "cluster.max-join-peers",
    "cluster.name", "cluster.enable-tls", "cluster.tls-ca-path", "cluster.tls-cert-path", "cluster.tls-key-path",
    "cluster.tls-server-name", "cluster.wait-for-size", "cluster.wait-timeout", "config.format",
    "config.bypass-conversion-errors", "config.extra-args", "disable-reporting", "storage.path", "stability.level",
    "feature.community-components.enabled", "feature.prometheus.direct-fanout.enabled", "windows.priority"}
ALLOY_VALIDATE_FLAGS = {"config.format", "config.bypass-conversion-errors", "config.extra-args", "stability.level",
                        "feature.community-components.enabled"}
ALLOY_BOOL_FLAGS = {"server.http.enable-pprof", "server.http.disable-support-bundle", "server.http.enable-graphql",
                    "server.http.enable-graphql-playground", "cluster.enabled", "cluster.enable-tls",
                    "config.bypass-conversion-errors", "disable-reporting", "feature.community-components.enabled",
                    "feature.prometheus.direct-fanout.enabled"}


class AlloyError(Exception):
    pass


class Ref(str):
    """A reference to another component's export (a bare dotted name in the config)."""


def alloy_tokens(text):
    out, at = [], 0
    while at < len(text):
        match = ALLOY_TOKEN.match(text, at)
        if not match:
            line = text.count("\n", 0, at) + 1
            raise AlloyError(f"{line}: illegal character {text[at]!r}")
        if match.lastgroup != "space":
            out.append((match.lastgroup, match.group(), text.count("\n", 0, at) + 1))
        at = match.end()
    out.append(("eof", "", text.count("\n") + 1))
    return out


class AlloyParser:
    """Alloy syntax: a body of attributes (name = expr) and blocks (name.parts "label"? { body })."""

    def __init__(self, text):
        self.tokens, self.at = alloy_tokens(text), 0

    def peek(self, offset=0):
        return self.tokens[min(self.at + offset, len(self.tokens) - 1)]

    def take(self, kind=None, value=None):
        token = self.peek()
        if (kind and token[0] != kind) or (value is not None and token[1] != value):
            raise AlloyError(f"{token[2]}: expected {value or kind}, got {token[1] or 'end of file'!r}")
        self.at += 1
        return token

    def body(self, closing=None):
        items = []
        while not (self.peek()[0] == "eof" if closing is None else self.peek()[1] == closing):
            if self.peek()[0] == "eof":
                raise AlloyError(f"{self.peek()[2]}: expected }}, got end of file")
            line = self.peek()[2]
            name = self.take("ident")[1]
            while self.peek()[1] == ".":
                self.take()
                name += "." + self.take("ident")[1]
            if self.peek()[1] == "=":
                if "." in name:
                    raise AlloyError(f"{line}: attribute name {name!r} may not contain a dot")
                self.take()
                items.append(("attr", name, self.expr(), line))
                continue
            label = None
            if self.peek()[0] in ("string", "raw"):
                label = self.string(self.take())
            self.take("punct", "{")
            inner = self.body("}")
            self.take("punct", "}")
            items.append(("block", name, (label, inner), line))
        return items

    @staticmethod
    def string(token):
        if token[0] == "raw":
            return token[1][1:-1]
        return json.loads(token[1])

    def expr(self):
        value = self.unary()
        while self.peek()[0] == "punct" and self.peek()[1] in ("==", "!=", "<=", ">=", "&&", "||", "+", "-", "*",
                                                               "/", "%", "<", ">", "^"):
            self.take()
            self.unary()
            value = ("op",)
        return value

    def unary(self):
        while self.peek()[1] in ("!", "-"):
            self.take()
        return self.postfix(self.primary())

    def primary(self):
        kind, text, line = self.peek()
        if kind in ("string", "raw"):
            return self.string(self.take())
        if kind == "number":
            self.take()
            return float(text) if "." in text or "e" in text.lower() else int(text)
        if kind == "ident":
            self.take()
            if text in ("true", "false", "null"):
                return {"true": True, "false": False, "null": None}[text]
            return Ref(text)
        if text == "[":
            self.take()
            return self.separated("]", self.expr)
        if text == "{":
            self.take()
            return dict(self.separated("}", self.field))
        if text == "(":
            self.take()
            value = self.expr()
            self.take("punct", ")")
            return value
        raise AlloyError(f"{line}: expected an expression, got {text or 'end of file'!r}")

    def separated(self, closing, item):
        """item() for each entry up to closing, the entries separated by commas (a trailing one allowed)."""
        out = []
        while self.peek()[1] != closing:
            out.append(item())
            if self.peek()[1] != ",":
                break
            self.take()
        self.take("punct", closing)
        return out

    def field(self):
        """key = value in an object literal; the key an identifier or a string."""
        key = self.take()
        if key[0] not in ("ident", "string", "raw"):
            raise AlloyError(f"{key[2]}: expected an object key, got {key[1]!r}")
        self.take("punct", "=")
        return (key[1] if key[0] == "ident" else self.string(key)), self.expr()

    def postfix(self, value):
        while True:
            if self.peek()[1] == "." and isinstance(value, Ref):
                self.take()
                value = Ref(value + "." + self.take("ident")[1])
            elif self.peek()[1] == "[":
                self.take()
                self.expr()
                self.take("punct", "]")
            elif self.peek()[1] == "(":
                self.take()
                self.separated(")", self.expr)
                value = ("call", str(value))
            else:
                return value


def alloy_refs(value):
    if isinstance(value, Ref):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from alloy_refs(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from alloy_refs(item)


def alloy_check_body(items, spec, where, refs):
    """Upstream's messages for an argument or block the definition does not have, or lacks."""
    seen = set()
    for kind, name, value, line in items:
        if kind == "attr":
            if name not in spec.get("attrs", {}):
                raise AlloyError(f"{line}: unrecognized attribute name {name!r} in {where}")
            if name in seen:
                raise AlloyError(f"{line}: attribute {name!r} may only be provided once")
            refs.extend((ref, line) for ref in alloy_refs(value))
        else:
            label, inner = value
            if name not in spec.get("blocks", {}):
                raise AlloyError(f"{line}: unrecognized block name {name!r} in {where}")
            alloy_check_body(inner, spec["blocks"][name], f"{where} {name}", refs)
        seen.add(name)
    for name, required in spec.get("attrs", {}).items():
        if required and name not in seen:
            raise AlloyError(f"missing required attribute {name!r} in {where}")
    for name, block in spec.get("blocks", {}).items():
        if block.get("required") and name not in seen:
            raise AlloyError(f"missing required block {name!r} in {where}")


def alloy_load(path):
    """The config's components {id: (name, label, items)} and unlabelled blocks, checked as
    `alloy validate` checks them; AlloyError with the first problem."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise AlloyError(f"failed to read {path}: {exc}") from exc
    items = AlloyParser(text).body()
    blocks = contract("alloy")["blocks"]
    components, singles, refs = {}, {}, []
    for kind, name, value, line in items:
        if kind == "attr":
            raise AlloyError(f"{line}: unrecognized attribute name {name!r} at the top level")
        label, inner = value
        if name not in blocks:
            raise AlloyError(f"{line}: cannot find the definition of component name {name!r}"
                             " (the stand-in knows the blocks the alloy role writes: contracts/alloy.yml)")
        if "." in name and label is None:
            raise AlloyError(f"{line}: component {name!r} must have a label")
        if "." not in name and label is not None:
            raise AlloyError(f"{line}: block {name!r} does not support specifying labels")
        ident = f"{name}.{label}" if label is not None else name
        if ident in components or ident in singles:
            raise AlloyError(f"{line}: block {ident} already declared")
        alloy_check_body(inner, blocks[name], ident, refs)
        (components if label is not None else singles)[ident] = (name, label, inner)
    auth = alloy_http_tls(singles).get("client_auth_type")
    if auth not in (None, "NoClientCert", "RequestClientCert", "RequireAnyClientCert", "VerifyClientCertIfGiven",
                    "RequireAndVerifyClientCert"):
        raise AlloyError(f"unknown client auth type {auth!r}")  # internal/service/http/tls.go ClientAuth
    namespaces = {name.split(".")[0] for name in blocks if "." in name}
    for ref, line in refs:
        if ref.split(".")[0] not in namespaces:
            continue  # the standard library (env, sys.env, ...) and arguments
        target = next((ident for ident in components if ref.startswith(ident + ".")), None)
        if target is None:
            raise AlloyError(f"{line}: component {ref.rsplit('.', 1)[0]!r} does not exist or is out of scope")
        export = ref[len(target) + 1:].split(".")[0]
        if export not in blocks[components[target][0]].get("exports", []):
            raise AlloyError(f"{line}: {target} does not export {export!r}")
    return components, singles


def alloy_args(items):
    """The literal attributes and blocks of a body: {name: value or [block bodies]}."""
    out = {}
    for kind, name, value, _ in items:
        if kind == "attr":
            out[name] = value
        else:
            out.setdefault(name, []).append(alloy_args(value[1]))
    return out


def alloy_http_tls(singles):
    """The literal arguments of the http block's tls block, {} without one."""
    return (alloy_args(singles.get("http", (None, None, []))[2]).get("tls") or [{}])[0]


def alloy_flags(args, allowed):
    """Upstream's pflag parsing: --name=value or --name value (a bool flag takes no value)."""
    flags, positional, i = {}, [], 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-"):
            name, eq, value = arg.lstrip("-").partition("=")
            if name not in allowed:
                fail(f"Error: unknown flag: --{name}")
            if not eq and name not in ALLOY_BOOL_FLAGS:
                if i + 1 >= len(args):
                    fail(f"Error: flag needs an argument: --{name}")
                i += 1
                value = args[i]
            flags[name] = value if eq or name not in ALLOY_BOOL_FLAGS else "true"
        else:
            positional.append(arg)
        i += 1
    return flags, positional


def read_legacy_positions(path):
    """Promtail's positions file ({positions: {path or cursor-<job>: value}}), or None."""
    try:
        if os.path.getsize(path) == 0:
            return None
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError):
        return None
    positions = data.get("positions") if isinstance(data, dict) else None
    return {str(k): str(v) for k, v in positions.items()} if isinstance(positions, dict) else None


def write_alloy_positions(path, entries):
    """Alloy's positions file as yaml.v2 writes map[Entry]string (mode 0600)."""
    lines = ["positions:"] + [f"  ? path: {json.dumps(p)}\n    labels: {json.dumps(labels)}\n  : {json.dumps(value)}"
                              for (p, labels), value in sorted(entries.items())]
    os.makedirs(os.path.dirname(path), mode=0o750, exist_ok=True)
    tmp = path + ".tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n" if entries else "positions: {}\n")
    os.replace(tmp, path)


def alloy_convert_positions(components, storage):
    """What loki.source.file and loki.source.journal do as they start (grafana/alloy@v1.18.1
    internal/component/loki/source/internal/positions/positions.go, ConvertLegacyPositionsFile*):
    with no positions of their own yet, take a legacy file's entries (a file's as {path, "{}"},
    the journal job's cursor as cursor-<component id>)."""
    for ident, (name, _label, items) in components.items():
        args = alloy_args(items)
        new = os.path.join(storage, ident, "positions.yml")
        if os.path.exists(new) and os.path.getsize(new) > 0:
            continue
        if name == "loki.source.file" and args.get("legacy_positions_file"):
            legacy = read_legacy_positions(args["legacy_positions_file"])
            if legacy is not None:
                write_alloy_positions(new, {(k, "{}"): v for k, v in legacy.items()})
        elif name == "loki.source.journal" and args.get("legacy_position"):
            spec = args["legacy_position"][0]
            legacy = read_legacy_positions(spec["file"])
            if legacy is not None:
                cursor = legacy.get(f"cursor-{spec['name']}")
                write_alloy_positions(new, {(f"cursor-{ident}", "{}"): cursor} if cursor is not None else {})


def alloy(args):
    if not args or args[0] in ("-v", "--version", "version"):
        version_banner()
    command, rest = args[0], args[1:]
    if command == "validate":
        flags, files = alloy_flags(rest, ALLOY_VALIDATE_FLAGS)
        if len(files) != 1:
            fail(f"Error: accepts 1 arg(s), received {len(files)}")
        try:
            alloy_load(files[0])
        except AlloyError as exc:
            fail(f"Error: {files[0]}:{exc}")
        sys.exit(0)
    if command != "run":
        fail(f"Error: unknown command {command!r} for \"alloy\" (the stand-in runs run and validate)")
    flags, files = alloy_flags(rest, ALLOY_RUN_FLAGS)
    if len(files) != 1:
        fail(f"Error: accepts 1 arg(s), received {len(files)}")
    storage = flags.get("storage.path", "data-alloy/")
    host, port = split_endpoint(flags.get("server.http.listen-addr", "127.0.0.1:12345"), 12345)
    try:
        components, singles = alloy_load(files[0])
    except AlloyError as exc:
        fail(f"Error: {files[0]}:{exc}")
    alloy_convert_positions(components, storage)
    state = {"components": components, "tls": alloy_http_tls(singles)}

    def reload():
        try:
            fresh, fresh_singles = alloy_load(files[0])
        except AlloyError as exc:
            print(f"level=error msg=\"failed to reload config\" err=\"{exc}\"", flush=True)
            return 400, "text/plain", f"{exc}\n"
        alloy_convert_positions(fresh, storage)
        state.update(components=fresh, tls=alloy_http_tls(fresh_singles))
        print("level=info msg=\"config reloaded\"", flush=True)
        return 200, "text/plain", "config reloaded\n"

    def server_tls():
        """The http block's TLS for a new connection: upstream reads the certificate on every
        handshake and applies a changed http block on reload, turning TLS on or off without a
        restart (internal/service/http/tls.go, http.go Update)."""
        settings = state["tls"]
        if not settings:
            return None
        try:
            return tls_context(settings.get("cert_file"), settings.get("key_file"), settings.get("client_ca_file"),
                               settings.get("client_auth_type") or "NoClientCert")
        except SystemExit:  # files gone: the handshake fails, as upstream's does
            return None

    if state["tls"] and not server_tls():
        fail(f"Error: {files[0]}: cannot load the certificate, key or client CA of the http block's tls")
    routes = {"/-/ready": (200, "text/plain", "Alloy is ready.\n"),
              "/-/healthy": (200, "text/plain", "All Alloy components are healthy.\n"),
              # no /metrics: like the other stand-ins it has no data to show, and its target is down
              "/-/reload": lambda _headers: reload(),
              ("POST", "/-/reload"): lambda _headers: reload()}
    serve([(host, port, routes, server_tls)], on_hup=reload)


def main():
    args = sys.argv[1:]
    if NAME in ("loki", "promtail"):
        loki_like(args, 3100 if NAME == "loki" else 9080)
    elif NAME == "alloy":
        alloy(args)
    elif NAME == "jaeger":
        jaeger(args)
    elif NAME == "grafana":
        grafana(args)
    else:
        fail(f"unknown stand-in name {NAME}")


if __name__ == "__main__":
    main()
