# -*- coding: utf-8 -*-
"""Filters shared by the monitoring-stack roles."""
from __future__ import annotations

import hashlib
import os
import re

from ansible.errors import AnsibleFilterError

BCRYPT_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
SAFE_ARG = re.compile(r"^[A-Za-z0-9_@%+=:,./\-\[\]]+$")


def systemd_value(value):
    """Python value -> unit file value (booleans as yes/no)."""
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return "" if value is None else str(value)


def systemd_quote(arg):
    """Quote one ExecStart argument so systemd passes it through unchanged."""
    text = str(arg).replace("%", "%%").replace("$", "$$")
    if text and SAFE_ARG.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def bcrypt_salt(seed):
    """A valid 22-character bcrypt salt derived from seed, so hashes are stable between runs."""
    digest = hashlib.sha256(str(seed).encode("utf-8")).digest()
    chars = [BCRYPT_ALPHABET[b % 64] for b in digest[:21]]
    # the 22nd character carries only 2 significant bits; these four are the canonical ones
    chars.append(".Oeu"[digest[21] % 4])
    return "".join(chars)


def bcrypt_hash(password, seed, rounds=10):
    """bcrypt hash of password with a salt derived from seed (idempotent across runs)."""
    salt = bcrypt_salt(seed)
    try:
        import bcrypt  # pylint: disable=import-outside-toplevel
    except ImportError:
        try:
            from passlib.hash import bcrypt as passlib_bcrypt  # pylint: disable=import-outside-toplevel
        except ImportError as exc:
            raise AnsibleFilterError(
                "hashing web passwords needs the Python package 'bcrypt' (or passlib) on the controller: "
                "pip install bcrypt") from exc
        return passlib_bcrypt.using(salt=salt, rounds=rounds, ident="2b").hash(str(password))
    setting = f"$2b${int(rounds):02d}${salt}".encode()
    return bcrypt.hashpw(str(password).encode("utf-8"), setting).decode()


def web_config(settings, seed):
    """exporter-toolkit web config from {tls_cert_file, tls_key_file, basic_auth_users: {user: password}}."""
    settings = settings or {}
    config = {}
    if settings.get("tls_cert_file"):
        config["tls_server_config"] = {"cert_file": settings["tls_cert_file"], "key_file": settings["tls_key_file"]}
    users = settings.get("basic_auth_users") or {}
    if users:
        config["basic_auth_users"] = {
            user: bcrypt_hash(password, f"{seed}:{user}") for user, password in sorted(users.items())}
    return config


def flags(options, prefix="--"):
    """{name: value} -> ["--name=value"]; True or None gives a bare flag, False drops it,
    "" gives "--name=" (an explicitly empty value), a list repeats the flag."""
    out = []
    for name, value in (options or {}).items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if item is False:
                continue
            out.append(f"{prefix}{name}" if item is True or item is None else f"{prefix}{name}={item}")
    return out


def local_url(listen, scheme="http", path="/"):
    """URL to reach a service from its own host, given its listen address."""
    host, _, port = str(listen).rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}{path}"


def merge(base, override):
    """Deep merge of override into base: dicts merge key by key, anything else replaces."""
    if not isinstance(base, dict) or not isinstance(override, dict):
        return override
    out = dict(base)
    for key, value in override.items():
        out[key] = merge(base[key], value) if key in base else value
    return out


def alert_rules(files, disabled=(), overrides=None):
    """Rule files {name: {groups: [...]}} with the named alerts/records dropped or deep-merged
    with overrides {name: {for: 10m, labels: {...}}}; groups left empty are removed."""
    disabled, overrides = set(disabled or ()), overrides or {}
    out = {}
    for filename, doc in (files or {}).items():
        groups = []
        for group in (doc or {}).get("groups") or []:
            rules = []
            for rule in group.get("rules") or []:
                name = rule.get("alert") or rule.get("record")
                if name in disabled:
                    continue
                rules.append(merge(rule, overrides[name]) if name in overrides else rule)
            if rules:
                groups.append(dict(group, rules=rules))
        if groups:
            out[filename] = {"groups": groups}
    return out


def host_address(name, hostvars):
    """How other hosts reach inventory host `name`: stack_address, else ansible_host, else its name."""
    hv = hostvars[name]
    for key in ("stack_address", "ansible_host"):
        value = hv.get(key) if hasattr(hv, "get") else None
        if value:
            return str(value)
    return str(name)


def service_address(name, hostvars, listen_var, default_port):
    """host:port where other hosts reach a service on inventory host name: the port of its
    listen address, and its IP when bound to one, else the host's address."""
    listen = str(_lookup(hostvars, name, listen_var, f":{default_port}"))
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = host_address(name, hostvars)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def service_urls(names, hostvars, listen_var, default_port, scheme="http", path=""):
    """URLs of a service on each inventory host in names, at the port of its listen address."""
    return [f"{scheme}://{service_address(name, hostvars, listen_var, default_port)}{path}" for name in names or []]


def wrap(value, key):
    """value -> {key: value}; e.g. a list of URLs into Promtail's clients."""
    return {key: value}


def _lookup(hostvars, name, key, default=None):
    if not key:
        return default
    hv = hostvars[name]
    value = hv.get(key) if hasattr(hv, "get") else None
    return default if value in (None, "") else value


def probe_check(item, base_url, module_param=None, metric="up"):
    """stack_service check for one target an exporter probes (multi-target endpoint)."""
    from urllib.parse import urlencode  # pylint: disable=import-outside-toplevel

    params = {"target": item["target"]}
    if module_param:
        params[module_param] = item["name"]
    return {"name": f"{item['name']} ({item['target']})", "url": f"{base_url}?{urlencode(params)}", "metric": metric}


def scrape_targets(jobs, groups, hostvars, app_var="stack_app_metrics"):
    """file_sd content per job, derived from the inventory.

    jobs: {job: {groups: [first existing group wins], port, listen_var, path, path_var, tls_var,
                 probes_var, probe_path, probe_module_param}}
    Each host of the job's group becomes one target at its address and the port of its listen
    address (host vars win over the job's defaults); a listen address bound to one IP is used as is.
    Entries [{name, target}] in the host's probes_var become extra targets scraped through the
    exporter's multi-target endpoint, labelled instance=<target>.
    Hosts may also declare application endpoints in `app_var`:
    [{name, port, path, scheme, labels}] -> one job per name."""
    out = {}
    for job, spec in sorted((jobs or {}).items()):
        if not spec:
            continue
        members = next((groups[g] for g in spec.get("groups") or [] if g in groups), [])
        entries = []
        for name in members:
            address = service_address(name, hostvars, spec.get("listen_var"), spec.get("port"))
            labels = {}
            path = _lookup(hostvars, name, spec.get("path_var"), spec.get("path") or "/metrics")
            if path != "/metrics":
                labels["__metrics_path__"] = path
            if spec.get("tls_var") and _lookup(hostvars, name, spec["tls_var"]):
                labels["__scheme__"] = "https"
            if _lookup(hostvars, name, spec.get("local_var"), True) not in (False, "false", "False"):
                entries.append({"targets": [address], "labels": labels} if labels else {"targets": [address]})
            for probe in _lookup(hostvars, name, spec.get("probes_var"), []) or []:
                plabels = {k: v for k, v in labels.items() if k == "__scheme__"}
                plabels.update({"__metrics_path__": spec.get("probe_path", "/probe"),
                                "__param_target": str(probe["target"]), "instance": str(probe["target"])})
                if spec.get("probe_module_param"):
                    plabels["__param_" + spec["probe_module_param"]] = str(probe["name"])
                entries.append({"targets": [address], "labels": plabels})
        out[job] = entries
    for name in sorted(groups.get("all", [])):
        for app in _lookup(hostvars, name, app_var, []) or []:
            if not isinstance(app, dict) or not app.get("name") or not app.get("port"):
                raise AnsibleFilterError(f"{name}: every {app_var} entry needs name and port, got {app!r}")
            job = str(app["name"])
            if job in (jobs or {}):
                raise AnsibleFilterError(f"{name}: {app_var} entry {job!r} reuses the name of an inventory job")
            host = str(app.get("address") or host_address(name, hostvars))
            address = f"[{host}]:{app['port']}" if ":" in host else f"{host}:{app['port']}"
            labels = {str(k): str(v) for k, v in (app.get("labels") or {}).items()}
            if app.get("path", "/metrics") != "/metrics":
                labels["__metrics_path__"] = app["path"]
            if app.get("scheme", "http") != "http":
                labels["__scheme__"] = app["scheme"]
            out.setdefault(job, []).append({"targets": [address], "labels": labels} if labels else {"targets": [address]})
    return out


def expand_globs(patterns):
    """Controller files matching any of the glob patterns (missing directories match nothing)."""
    import glob  # pylint: disable=import-outside-toplevel

    found = set()
    for pattern in patterns or []:
        if pattern:
            found.update(p for p in glob.glob(os.path.expanduser(str(pattern))) if os.path.isfile(p))
    return sorted(found)


def files_by_stem(paths, prefix="", parse=False):
    """Controller files -> {prefix + stem: text (or parsed YAML)}; rule and dashboard files."""
    import yaml  # pylint: disable=import-outside-toplevel

    out = {}
    for path in sorted(paths or []):
        stem = os.path.splitext(os.path.basename(path))[0]
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        if parse:
            try:
                text = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise AnsibleFilterError(f"{path} is not valid YAML: {exc}") from exc
        out[prefix + stem] = text
    return out


def file_entries(mapping, directory, suffix="", group="root", mode="0640", secret=False):
    """{name: text or data} -> stack_config file entries <directory>/<name><suffix>; data is
    written as YAML."""
    from ansible.plugins.filter.core import to_nice_yaml  # pylint: disable=import-outside-toplevel

    out = []
    for name, content in sorted((mapping or {}).items()):
        if not isinstance(content, str):
            content = to_nice_yaml(content, indent=2, width=1000)
        entry = {"dest": f"{directory}/{name}{suffix}", "content": content, "group": group, "mode": mode}
        if secret:
            entry["secret"] = True
        out.append(entry)
    return out


# Alertmanager settings that hold secrets, and their *_file twins.
AM_GLOBAL_SECRETS = {"smtp_auth_password": "smtp_auth_password_file", "slack_api_url": "slack_api_url_file",
                     "opsgenie_api_key": "opsgenie_api_key_file", "telegram_bot_token": "telegram_bot_token_file"}
AM_RECEIVER_SECRETS = {
    "slack_configs": {"api_url": "api_url_file"},
    "pagerduty_configs": {"routing_key": "routing_key_file", "service_key": "service_key_file"},
    "email_configs": {"auth_password": "auth_password_file"},
    "opsgenie_configs": {"api_key": "api_key_file"},
    "telegram_configs": {"bot_token": "bot_token_file"},
    "discord_configs": {"webhook_url": "webhook_url_file"},
    "msteams_configs": {"webhook_url": "webhook_url_file"},
    "msteamsv2_configs": {"webhook_url": "webhook_url_file"},
}
AM_HTTP_SECRETS = (("basic_auth", "password", "password_file"), ("authorization", "credentials", "credentials_file"))


def alertmanager_secrets(config, directory):
    """Move inline secrets of an Alertmanager config into files: returns {config, files}
    where each secret value became a *_file setting pointing at <directory>/<name> and
    files maps <name> to the secret. The config written to disk then holds no secret."""
    import copy  # pylint: disable=import-outside-toplevel

    config = copy.deepcopy(dict(config or {}))
    files = {}

    def move(holder, key, file_key, name):
        if holder.get(key) not in (None, ""):
            files[name] = str(holder.pop(key))
            holder[file_key] = f"{directory}/{name}"

    glob = config.get("global") or {}
    for key, file_key in AM_GLOBAL_SECRETS.items():
        move(glob, key, file_key, f"global-{key}")
    for receiver in config.get("receivers") or []:
        rname = re.sub(r"[^A-Za-z0-9_.-]", "_", str(receiver.get("name", "receiver")))
        for kind, values in receiver.items():
            if not kind.endswith("_configs") or not isinstance(values, list):
                continue
            short = kind[: -len("_configs")]
            for index, item in enumerate(values):
                if not isinstance(item, dict):
                    continue
                for key, file_key in AM_RECEIVER_SECRETS.get(kind, {}).items():
                    move(item, key, file_key, f"{rname}-{short}-{index}-{key}")
                http = item.get("http_config") or {}
                for section, key, file_key in AM_HTTP_SECRETS:
                    if isinstance(http.get(section), dict):
                        move(http[section], key, file_key, f"{rname}-{short}-{index}-{section}")
    return {"config": config, "files": files}


def alertmanager_problems(config, secret_files, directory):
    """What would make Alertmanager refuse a receiver or silently drop its notifications."""
    problems = []
    glob = config.get("global") or {}
    names = [r.get("name") for r in config.get("receivers") or []]
    if not names:
        problems.append("no receivers: set alertmanager_receivers")
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"receiver {dup} is defined twice")

    def has(item, key, global_key=None):
        return bool(item.get(key) or item.get(f"{key}_file")
                    or (global_key and (glob.get(global_key) or glob.get(f"{global_key}_file"))))

    for receiver in config.get("receivers") or []:
        rname = receiver.get("name")
        for item in receiver.get("slack_configs") or []:
            if not has(item, "api_url", "slack_api_url"):
                problems.append(f"receiver {rname}: Slack needs api_url (or global slack_api_url)")
        for item in receiver.get("pagerduty_configs") or []:
            keys = [k for k in ("routing_key", "service_key") if has(item, k)]
            if len(keys) != 1:
                problems.append(f"receiver {rname}: PagerDuty needs exactly one of routing_key (Events API v2) "
                                f"or service_key")
        for item in receiver.get("webhook_configs") or []:
            if not has(item, "url"):
                problems.append(f"receiver {rname}: webhook needs url")
        for item in receiver.get("email_configs") or []:
            if not item.get("to"):
                problems.append(f"receiver {rname}: email needs to")
            if not (item.get("smarthost") or glob.get("smtp_smarthost")):
                problems.append(f"receiver {rname}: email needs smarthost (or global smtp_smarthost)")
            if not (item.get("from") or glob.get("smtp_from")):
                problems.append(f"receiver {rname}: email needs from (or global smtp_from)")
            user = item.get("auth_username") or glob.get("smtp_auth_username")
            if user and not has(item, "auth_password", "smtp_auth_password"):
                problems.append(f"receiver {rname}: email auth_username {user} has no password")

    def files_in(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key.endswith("_file") and isinstance(value, str):
                    yield value
                else:
                    yield from files_in(value)
        elif isinstance(node, list):
            for value in node:
                yield from files_in(value)

    for path in files_in(config):
        if path.startswith(directory.rstrip("/") + "/") and path.rsplit("/", 1)[1] not in (secret_files or {}):
            problems.append(f"{path} is referenced but not in alertmanager_secret_files")
    return problems


def otel_problems(config):
    """What an OpenTelemetry-collector (Jaeger v2) config references but does not define."""
    problems = []
    config = config or {}
    service = config.get("service") or {}
    for ref in service.get("extensions") or []:
        if ref not in (config.get("extensions") or {}):
            problems.append(f"service.extensions names {ref}, which extensions does not define")
    for pipeline, spec in (service.get("pipelines") or {}).items():
        for kind in ("receivers", "processors", "exporters", "connectors"):
            for ref in (spec or {}).get(kind) or []:
                defined = (config.get(kind) or {}) if kind != "exporters" else \
                    {**(config.get("exporters") or {}), **(config.get("connectors") or {})}
                if kind == "receivers":
                    defined = {**defined, **(config.get("connectors") or {})}
                if ref not in defined:
                    problems.append(f"pipeline {pipeline} uses {kind[:-1]} {ref}, which {kind} does not define")
    backends = ((config.get("extensions") or {}).get("jaeger_storage") or {}).get("backends") or {}
    for name, backend in backends.items():
        badger = (backend or {}).get("badger")
        if badger is not None and not badger.get("ephemeral", True):
            for key, path in ((badger.get("directories") or {}).items()):
                if not str(path).startswith("/"):
                    problems.append(f"badger backend {name}: directories.{key} must be an absolute path, got {path}")
    storage_refs = [(f"exporter {n}", (e or {}).get("trace_storage")) for n, e in (config.get("exporters") or {}).items()
                    if n.split("/")[0] == "jaeger_storage_exporter"]
    query = (config.get("extensions") or {}).get("jaeger_query") or {}
    storage_refs += [(f"jaeger_query storage.{k}", v) for k, v in (query.get("storage") or {}).items()]
    for what, ref in storage_refs:
        if ref and backends and ref not in backends:
            problems.append(f"{what} names storage backend {ref}, which jaeger_storage.backends does not define")
    return problems


# Ports each component's group takes on a host: (host var of the address or port, default port).
COMPONENT_PORTS = {
    "prometheus": [("prometheus_listen_address", 9090)],
    "alertmanager": [("alertmanager_listen_address", 9093), ("alertmanager_cluster_port", 9094)],
    "grafana": [("grafana_listen_address", 3000)],
    "loki": [("loki_listen_address", 3100), ("loki_grpc_port", 9096)],
    "promtail": [("promtail_listen_address", 9080)],
    "jaeger": [("jaeger_otlp_grpc_address", 4317), ("jaeger_otlp_http_address", 4318),
               ("jaeger_query_address", 16686), ("jaeger_query_grpc_address", 16685),
               ("jaeger_health_address", 13133), ("jaeger_metrics_address", 8888)],
    "node_exporter": [("node_exporter_listen_address", 9100)],
    "postgres_exporter": [("postgres_exporter_listen_address", 9187)],
    "redis_exporter": [("redis_exporter_listen_address", 9121)],
}


def port_conflicts(groups, hostvars):
    """Hosts on which two components of the stack would listen on the same port."""
    claims, malformed = {}, []
    for component, ports in COMPONENT_PORTS.items():
        members = groups.get(component) or (groups.get("all", []) if component == "node_exporter" else [])
        for name in members:
            for var, default in ports:
                value = _lookup(hostvars, name, var, default)
                port = str(value).rpartition(":")[2]
                if not port.isdigit() or not 0 < int(port) < 65536:
                    # the role's argument specs refuse it too, but only once that role runs
                    malformed.append(f"host {name}: {var} is {value!r}, not host:port or a port number")
                    continue
                claims.setdefault((name, int(port)), []).append(component)
    return malformed + [f"host {host}: port {port} is wanted by {' and '.join(sorted(set(c)))}"
                        for (host, port), c in sorted(claims.items()) if len(c) > 1]


class FilterModule:
    def filters(self):
        return {
            "stack_systemd_value": systemd_value,
            "stack_systemd_quote": systemd_quote,
            "stack_bcrypt": bcrypt_hash,
            "stack_web_config": web_config,
            "stack_flags": flags,
            "stack_local_url": local_url,
            "stack_merge": merge,
            "stack_port_conflicts": port_conflicts,
            "stack_otel_problems": otel_problems,
            "stack_service_urls": service_urls,
            "stack_wrap": wrap,
            "stack_probe_check": probe_check,
            "stack_alertmanager_secrets": alertmanager_secrets,
            "stack_alertmanager_problems": alertmanager_problems,
            "stack_file_entries": file_entries,
            "stack_files_by_stem": files_by_stem,
            "stack_glob": expand_globs,
            "stack_alert_rules": alert_rules,
            "stack_scrape_targets": scrape_targets,
            "stack_host_address": host_address,
        }
