# -*- coding: utf-8 -*-
"""Filters shared by the monitoring-stack roles."""
from __future__ import annotations

import hashlib
import os
import re

from ansible.errors import AnsibleFilterError

from ansible_collections.monstack.observability.plugins.module_utils import stack_backup as _stack_backup
from ansible_collections.monstack.observability.plugins.module_utils import stack_silence as _stack_silence
from ansible_collections.monstack.observability.plugins.module_utils.stack_component import change_action as _change_action
from ansible_collections.monstack.observability.plugins.module_utils.stack_component import config_switched

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


def bcrypt_hash(password, seed, rounds=10):
    """bcrypt hash of password (Ansible's password_hash) with a salt derived from seed, so the
    hash, and the web config holding it, stay the same between runs."""
    from ansible.plugins.filter.core import get_encrypted_password  # pylint: disable=import-outside-toplevel

    salt = hashlib.sha256(str(seed).encode("utf-8")).hexdigest()[:22]  # hex digits are bcrypt-safe
    return get_encrypted_password(str(password), "bcrypt", salt=salt, rounds=int(rounds), ident="2b")


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


def web_files(tls_cert, tls_key, users, directory, group, seed):
    """stack_config entries of an exporter-toolkit web config (Prometheus and the exporters):
    web.yml (bcrypt hashes, secret) when TLS or basic auth is on, and the certificate and key
    next to it. Empty when neither is set."""
    from ansible.plugins.filter.core import to_nice_yaml  # pylint: disable=import-outside-toplevel

    if not tls_cert and not users:
        return []
    settings = {"basic_auth_users": users or {}}
    if tls_cert:
        # relative to web.yml (exporter-toolkit resolves them there): the validator checks the
        # staged copy of the directory before it replaces the live one
        settings.update(tls_cert_file="tls.crt", tls_key_file="tls.key")
    out = [{"dest": f"{directory}/web.yml", "group": group, "mode": "0640", "secret": True,
            "content": to_nice_yaml(web_config(settings, seed), indent=2)}]
    if tls_cert:
        out += [{"dest": f"{directory}/tls.crt", "group": group, "mode": "0640", "content": tls_cert},
                {"dest": f"{directory}/tls.key", "group": group, "mode": "0640", "secret": True, "content": tls_key}]
    return out


def ca_files(tls, directory, group):
    """stack_config entry of the stack's CA certificate (<directory>/ca.crt, world-readable: it is
    public) for a service whose clients verify with it; none when stack_tls is off (tls is
    _stack_tls, {} then), so the file is pruned when the switch goes off."""
    if not tls:
        return []
    return [{"dest": f"{directory}/ca.crt", "content": tls["ca"], "group": group, "mode": "0644"}]


def cert_files(tls, directory, group):
    """The host certificate and key (tls.crt, tls.key, 0640 root:<group>, the key never shown)
    for a service that serves them with stack_tls in its own config; none when it is off (tls is
    _stack_tls, {} then), so they are pruned when the switch goes off."""
    if not tls:
        return []
    return [{"dest": f"{directory}/tls.crt", "content": tls["cert"], "group": group, "mode": "0640"},
            {"dest": f"{directory}/tls.key", "content": tls["key"], "group": group, "mode": "0640", "secret": True}]


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


def collector_flags(enabled, disabled=(), options=None):
    """Exporter collector switches: {collector.<name>: true} for enabled, {no-collector.<name>:
    true} for disabled, {collector.<option>: value} for options (node_exporter's style)."""
    out = {f"collector.{name}": True for name in enabled or []}
    out.update({f"no-collector.{name}": True for name in disabled or []})
    out.update({f"collector.{key}": value for key, value in (options or {}).items()})
    return out


PHASES = ("install", "configure", "service")


def selected(component, phase, run_tags, registry):
    """Whether a role's phase runs for the play's --tags, read as "these components" AND
    "these phases": --tags prometheus,configure re-renders only Prometheus's config, while
    Ansible alone would run every Prometheus task and every component's configure. No
    component tag means every component, no phase tag every phase; phase none (the service
    step) follows the component only."""
    tags = set(run_tags or ["all"])
    named = tags & set(registry or {})
    if named and component not in named:
        return False
    phases = tags & set(PHASES)
    return not (phase and phases and phase not in phases)


def steps(component, run_tags, skip_tags, registry):
    """The steps of a component's one task (stack_component) that run for the play's --tags and
    --skip-tags: each as Ansible would run a task tagged [component, step] (the service step
    also `always`), narrowed by `selected`. A tag that names no component and no step selects
    only the service step, as it selected only the always-tagged task."""
    run, skip = set(run_tags or ["all"]), set(skip_tags or [])
    out = []
    for step in PHASES:
        tags = {component, step} | ({"always"} if step == "service" else set())
        if step != "service" and not run & (tags | {"all", "tagged"}):
            continue
        if skip & (tags | {"tagged"}):
            continue
        if selected(component, None if step == "service" else step, run_tags, registry):
            out.append(step)
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


def wrap(value, key):
    """value -> {key: value}; e.g. a list of URLs into Promtail's clients."""
    return {key: value}


def _lookup(hostvars, name, key, default=None):
    if not key:
        return default
    hv = hostvars[name]
    value = hv.get(key) if hasattr(hv, "get") else None
    return default if value in (None, "") else value


def _truthy(value):
    """A host var read as a switch: true, or a string that says so (-e stack_tls=true)."""
    return value is True or str(value).strip().lower() in ("true", "yes", "on", "1")


def serves_tls(name, hostvars, entry_or_job):
    """Whether a component (registry entry, or a scrape job derived from one) serves HTTPS on
    inventory host name: stack_tls on there for a component that supports it, or its own
    certificate set there (scheme_var / tls_var)."""
    spec = entry_or_job or {}
    if spec.get("tls") and _truthy(_lookup(hostvars, name, "stack_tls", False)):
        return True
    var = spec.get("scheme_var") or spec.get("tls_var")
    return bool(var and _lookup(hostvars, name, var))


def tls_components(registry, auth_only=False):
    """Components that stack_tls protects (their registry entry has tls), sorted; with auth_only
    those whose endpoints also take basic auth (not marked basic_auth: false), the ones that
    get a generated password."""
    return sorted(name for name, entry in (registry or {}).items()
                  if (entry or {}).get("tls") and not (auth_only and entry.get("basic_auth") is False))


def tls_users(passwords, user):
    """{component: password} -> {component: {user: password}}, the basic-auth users each
    protected endpoint accepts (exporter-toolkit's basic_auth_users)."""
    return {name: {str(user): value} for name, value in sorted((passwords or {}).items())}


def env_file(variables):
    """{NAME: value} -> the text of a systemd EnvironmentFile, each value double-quoted (systemd
    then takes #, ; and spaces literally; backslashes and quotes are escaped)."""
    lines = []
    for name, value in sorted((variables or {}).items()):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(name)):
            raise AnsibleFilterError(f"{name!r} is not an environment variable name")
        text = str(value).replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'{name}="{text}"\n')
    return "".join(lines)


def prefix_keys(mapping, prefix):
    """{name: value} -> {prefix + name: value}; e.g. the stack's passwords as secrets/stack-<component>."""
    return {f"{prefix}{name}": value for name, value in (mapping or {}).items()}


def client_cert_components(registry):
    """Components whose endpoints require a client certificate under stack_tls (client_cert)."""
    return sorted(name for name, entry in (registry or {}).items() if (entry or {}).get("tls") and entry.get("client_cert"))


def tls_client_settings(registry, user, ca_file="ca.crt", secrets_dir="secrets", cert_file="tls.crt", key_file="tls.key"):
    """{component: {tls_config, basic_auth}}: how Prometheus reaches each component stack_tls
    protects (scrapes, alerts, remote writes): the CA verifies its certificate, the user logs in
    with the component's password (password_file <secrets_dir>/stack-<component>) where the
    component takes basic auth, and presents its own host certificate where the component asks
    for a client certificate instead (client_cert)."""
    auth = set(tls_components(registry, auth_only=True))
    certs = set(client_cert_components(registry))
    return {name: {"tls_config": {"ca_file": ca_file} | ({"cert_file": cert_file, "key_file": key_file} if name in certs else {})} | (
                {"basic_auth": {"username": str(user), "password_file": f"{secrets_dir}/stack-{name}"}}
                if name in auth else {})
            for name in tls_components(registry)}


def tls_job_settings(registry, user, ca_file="ca.crt", secrets_dir="secrets", cert_file="tls.crt", key_file="tls.key"):
    """tls_client_settings by scrape job name, merged into each job. A target that still serves
    plain HTTP (its host without stack_tls) is scraped as before: the scheme is set per target
    and neither setting applies there (basic auth is ignored by an endpoint without it)."""
    settings = tls_client_settings(registry, user, ca_file, secrets_dir, cert_file, key_file)
    out = {}
    for name, value in settings.items():
        metrics = registry[name].get("metrics") or {}
        if metrics and not _port_spec(registry[name], metrics.get("port")).get("plain"):
            out[metrics.get("job") or name] = value
    return out


def probe_check(item, base_url, module_param=None, metric="up"):
    """stack_service check for one target an exporter probes (multi-target endpoint)."""
    from urllib.parse import urlencode  # pylint: disable=import-outside-toplevel

    params = {"target": item["target"]}
    if module_param:
        params[module_param] = item["name"]
    return {"name": f"{item['name']} ({item['target']})", "url": f"{base_url}?{urlencode(params)}", "metric": metric}


PROBE_KEYS = {"url", "tcp", "tls", "status", "module", "stack_ca"}
HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})$")


def probe_problems(probes, var="stack_probes"):
    """Why entries of stack_probes cannot be probed, each named by its target."""
    if probes in (None, ""):
        return []
    if not isinstance(probes, list):
        return [f"{var} must be a list, got {probes!r}"]
    out = []
    for probe in probes:
        if not isinstance(probe, dict):
            out.append(f"{var} entry {probe!r} is not a mapping like {{url: https://example.org/health}}")
            continue
        kinds = [k for k in ("url", "tcp", "tls") if k in probe]
        where = f"{var} entry {probe[kinds[0]] if kinds else repr(probe)}"
        unknown = sorted(set(probe) - PROBE_KEYS)
        if unknown:
            out.append(f"{where} has unknown keys {', '.join(unknown)} (known: {', '.join(sorted(PROBE_KEYS))})")
        if len(kinds) != 1:
            out.append(f"{where} needs exactly one of url (HTTP), tcp (host:port) or tls (host:port, certificate checked)")
            continue
        target = str(probe[kinds[0]])
        if kinds[0] == "url" and not re.match(r"^https?://[^/\s]+", target):
            out.append(f"{where}: url must start with http:// or https://")
        if kinds[0] != "url" and not (HOST_PORT.match(target) and 0 < int(HOST_PORT.match(target).group(2)) < 65536):
            out.append(f"{where}: {kinds[0]} must be host:port")
        if "status" in probe:
            codes = probe["status"] if isinstance(probe["status"], list) else [probe["status"]]
            if kinds[0] != "url":
                out.append(f"{where}: status applies to url probes only")
            elif not codes or not all(isinstance(c, int) and not isinstance(c, bool) and 100 <= c <= 599 for c in codes):
                out.append(f"{where}: status must be an HTTP status code or a list of them, got {probe['status']!r}")
        if "module" in probe and not re.fullmatch(r"[A-Za-z0-9_-]+", str(probe["module"])):
            out.append(f"{where}: module {probe['module']!r} must be a module name (letters, digits, _ and -)")
        if "stack_ca" in probe and (not isinstance(probe["stack_ca"], bool) or kinds[0] == "tcp" or "module" in probe):
            out.append(f"{where}: stack_ca (true/false) applies to url and tls probes with a generated module")
    return out


def blackbox_probes(probes, var="stack_probes", ca_file="ca.crt"):
    """stack_probes -> [{name: blackbox module, target, module: its config or None}], one per entry:
      {url: https://shop.example.org/health}              -> http_2xx (any 2xx answer)
      {url: http://10.0.0.5:8000/login, status: 401}     -> http_401 (exactly that status)
      {tcp: db1.example.org:5432}                          -> tcp_connect
      {tls: mail.example.org:465}                          -> tls_connect (handshake, certificate expiry)
      {url: ..., module: my_module}                        -> a module of blackbox_exporter_modules
      {url: https://mon1:3000/api/health, stack_ca: true} -> http_2xx_stack_ca (verified with the
                                                             stack's CA, ca_file, not the system's)
    The prometheus role scrapes each through the exporter's /probe with the target as the
    instance label; the blackbox_exporter role writes the modules they use."""
    problems = probe_problems(probes, var)
    if problems:
        raise AnsibleFilterError("; ".join(problems))
    out = []
    for probe in probes or []:
        kind = next(k for k in ("url", "tcp", "tls") if k in probe)
        if probe.get("module"):
            name, module = str(probe["module"]), None
        elif kind == "tcp":
            name, module = "tcp_connect", {"prober": "tcp"}
        elif kind == "tls":
            name, module = "tls_connect", {"prober": "tcp", "tcp": {"tls": True}}
        elif "status" in probe:
            codes = probe["status"] if isinstance(probe["status"], list) else [probe["status"]]
            name = "http_" + "_".join(str(c) for c in codes)
            module = {"prober": "http", "http": {"valid_status_codes": [int(c) for c in codes]}}
        else:
            name, module = "http_2xx", {"prober": "http"}
        if module and probe.get("stack_ca"):
            section = "http" if kind == "url" else "tcp"
            name += "_stack_ca"
            module = {**module, section: {**module.get(section, {}), "tls_config": {"ca_file": ca_file}}}
            if kind == "tls":
                module[section]["tls"] = True
        out.append({"name": name, "target": str(probe[kind]), "module": module})
    return out


def scrape_targets(jobs, groups, hostvars, app_var="stack_app_metrics", by_host=False):
    """file_sd content per job, derived from the inventory.

    jobs: {job: {groups: [the first group with hosts wins], port, listen_var, path, path_var, tls_var,
                 probes_var, probe_path, probe_module_param}}
    Each host of the job's group becomes one target at its address and the port of its listen
    address (host vars win over the job's defaults); a listen address bound to one IP is used as is.
    Entries [{name, target}] in the host's probes_var become extra targets scraped through the
    exporter's multi-target endpoint, labelled instance=<target>.
    Hosts may also declare application endpoints in `app_var`:
    [{name, port, path, scheme, labels}] -> one job per name.
    by_host: {job: {host: its entries}} instead, the host being the one whose vars made them
    (Prometheus keeps one file_sd file per job and host: target_files)."""
    out = {}
    for job, spec in sorted((jobs or {}).items()):
        if not spec:
            continue
        # the first group with hosts: an empty node_exporter group means every host, as in host_components
        members = next((groups[g] for g in spec.get("groups") or [] if groups.get(g)), [])
        entries = []
        for name in members:
            address = service_address(name, hostvars, spec.get("listen_var"), spec.get("port"))
            labels = {}
            path = _lookup(hostvars, name, spec.get("path_var"), spec.get("path") or "/metrics")
            if path != "/metrics":
                labels["__metrics_path__"] = path
            if serves_tls(name, hostvars, spec):
                labels["__scheme__"] = "https"
            if _lookup(hostvars, name, spec.get("local_var"), True) not in (False, "false", "False"):
                entries.append((name, {"targets": [address], "labels": labels} if labels else {"targets": [address]}))
            probes = _lookup(hostvars, name, spec.get("probes_var"), []) or []
            if spec.get("probes_kind") == "blackbox":
                probes = blackbox_probes(probes, spec["probes_var"])
            for probe in probes:
                plabels = {k: v for k, v in labels.items() if k == "__scheme__"}
                if spec.get("probe_source_label"):  # several probers of one target stay apart
                    plabels[spec["probe_source_label"]] = name
                plabels.update({"__metrics_path__": spec.get("probe_path", "/probe"),
                                "__param_target": str(probe["target"]), "instance": str(probe["target"])})
                if spec.get("probe_module_param"):
                    plabels["__param_" + spec["probe_module_param"]] = str(probe["name"])
                entries.append((name, {"targets": [address], "labels": plabels}))
        out[job] = entries
    for name in sorted(groups.get("all", [])) if app_var else []:
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
            out.setdefault(job, []).append((name, {"targets": [address], "labels": labels} if labels else {"targets": [address]}))
    if not by_host:
        return {job: [entry for _, entry in pairs] for job, pairs in out.items()}
    grouped = {}
    for job, pairs in out.items():
        grouped[job] = {}
        for name, entry in pairs:
            grouped[job].setdefault(name, []).append(entry)
    return grouped


def _flip_scheme(entries):
    """The same targets with the other scheme: a host's entries share its listener's scheme."""
    out = []
    for entry in entries:
        labels = dict(entry.get("labels") or {})
        if labels.get("__scheme__") == "https":
            del labels["__scheme__"]
        else:
            labels["__scheme__"] = "https"
        out.append({"targets": entry["targets"], "labels": labels} if labels else {"targets": entry["targets"]})
    return out


def _yaml(data):
    """YAML as every file the roles write from data is written (file_entries, target_files)."""
    from ansible.plugins.filter.core import to_nice_yaml  # pylint: disable=import-outside-toplevel

    return to_nice_yaml(data, indent=2, width=1000)


def target_owners(registry):
    """{scrape job: component} for the components the stack installs: the role that deploys the
    component publishes its hosts' file_sd files of that job (alertmanagers: where Prometheus
    sends alerts, the alertmanager job's targets)."""
    out = {}
    for name, entry in sorted((registry or {}).items()):
        metrics = (entry or {}).get("metrics")
        if metrics and not entry.get("external"):
            out[metrics.get("job") or name] = name
    if "alertmanager" in out:
        out["alertmanagers"] = out["alertmanager"]
    return out


def target_files(by_host, directory, kept_hosts=(), owned_jobs=()):
    """{job: {host: entries}} -> stack_config entries <directory>/<job>/<host>.yml, readable by
    Prometheus (0644: addresses, no secrets). For the jobs in owned_jobs and the hosts in
    kept_hosts (site.yml's one pass, where each host's own role publishes its files right after
    its service switched, publish_targets) the file may keep the other scheme: Prometheus goes on
    scraping a target the way it is served until that target has switched (stack_tls on or off)."""
    out = []
    kept, owned = set(kept_hosts or ()), set(owned_jobs or ())
    for job, hosts in sorted((by_host or {}).items()):
        for host, entries in sorted((hosts or {}).items()):
            entry = {"dest": f"{directory}/{job}/{host}.yml", "content": _yaml(entries), "mode": "0644"}
            if job in owned and host in kept:
                entry["accept"] = [_yaml(_flip_scheme(entries))]
            out.append(entry)
    return out


def published_targets(component, host, scraper, registry, groups, hostvars, endpoint=False):
    """stack_config entries that tell the Prometheus on inventory host scraper how component
    now serves on host: that host's files of the component's jobs, byte for byte what the
    prometheus role writes there (target_files), with that Prometheus's prometheus_inventory_jobs
    merged over the registry's jobs and its disabled jobs left out.
    endpoint: {address, scheme} where that Prometheus scrapes it instead ({} when it does not),
    what stack_config's when_serving waits for."""
    owners = target_owners(registry)
    from ansible.utils.vars import merge_hash  # pylint: disable=import-outside-toplevel

    # what the prometheus role's combine(prometheus_inventory_jobs, recursive=true) does
    jobs = merge_hash(scrape_jobs(registry), _lookup(hostvars, scraper, "prometheus_inventory_jobs", {}) or {})
    disabled = set(_lookup(hostvars, scraper, "prometheus_inventory_jobs_disabled", []) or [])
    mine = {job: jobs[job] for job, owner in owners.items() if owner == component and job in jobs}
    by_host = scrape_targets(mine, groups, hostvars, app_var=None, by_host=True)
    if "alertmanagers" in owners and owners["alertmanagers"] == component and "alertmanager" in by_host:
        by_host["alertmanagers"] = by_host["alertmanager"]
    wanted = {job: {host: hosts[host]} for job, hosts in by_host.items()
              if host in hosts and (job == "alertmanagers" or job not in disabled)}
    if endpoint:
        first = next((hosts[host][0] for _, hosts in sorted(wanted.items())), None)
        return {"address": first["targets"][0], "scheme": (first.get("labels") or {}).get("__scheme__", "http")} if first else {}
    return target_files(wanted, scraper_dir(scraper, hostvars) + "/file_sd")


def scraper_dir(scraper, hostvars):
    """The config directory of the Prometheus on inventory host scraper: its
    prometheus_config_dir where the inventory sets one, else the role's default (role defaults
    are not in another host's hostvars)."""
    return str(_lookup(hostvars, scraper, "prometheus_config_dir", "/etc/prometheus"))


def expand_globs(patterns):
    """Controller files matching any of the user's glob patterns, sorted; missing directories
    match nothing. The builtin fileglob lookup globs only the file name, not directories
    (teams/*/dashboards/*.json), which users' dashboard and rule globs need."""
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
    out = []
    for name, content in sorted((mapping or {}).items()):
        if not isinstance(content, str):
            content = _yaml(content)
        entry = {"dest": f"{directory}/{name}{suffix}", "content": content, "group": group, "mode": mode}
        if secret:
            entry["secret"] = True
        out.append(entry)
    return out


def _port_of(value):
    """Port number of "host:port", ":port" or a bare port; None when there is none."""
    port = str(value).rpartition(":")[2]
    return int(port) if port.isdigit() and 0 < int(port) < 65536 else None


def _members(entry, groups):
    """Hosts that run a registry component: its group, or every host when it runs on all hosts."""
    return list(groups.get(entry.get("group")) or (groups.get("all", []) if entry.get("all_hosts") else []))


def host_components(host, groups, registry, order):
    """The components an inventory host runs, in deployment order (stack_deploy_order): those
    whose group holds it, and those that run on every host when their group is absent or empty."""
    deployed = {name for name, entry in registry.items() if not (entry or {}).get("external")}
    unknown = [name for name in order if name not in deployed] + sorted(name for name in deployed if name not in order)
    if unknown:
        raise AnsibleFilterError(f"stack_deploy_order and stack_components disagree on: {', '.join(unknown)}")
    return [name for name in order if host in _members(registry[name], groups)]


def switched(results):
    """The stack_component results of a host's pass whose config switched how a running service
    serves (stack_tls turned on or off): each waits for its service step in site.yml's switch.
    results: registered results, a loop's ({results: [...]}) or one task's; those without a
    component (not run with role:) or skipped are left out."""
    out = []
    for result in results or []:
        result = result or {}
        items = result["results"] if isinstance(result.get("results"), list) else [result]
        for item in items:
            if isinstance(item, dict) and item.get("switched") and item.get("component"):
                out.append(item)
    return out


def _port_spec(entry, name=None):
    ports = entry.get("ports") or {}
    if not ports:
        raise AnsibleFilterError(f"registry entry {entry!r} has no ports")
    name = name or next(iter(ports))
    if name not in ports:
        raise AnsibleFilterError(f"registry entry has no port named {name!r} (it has {', '.join(ports)})")
    return ports[name]


def scrape_jobs(registry):
    """stack_components -> {job: spec} for scrape_targets: one job per component with metrics,
    over its group (and every host when it runs on all hosts), at its metrics port."""
    jobs = {}
    for name, entry in sorted((registry or {}).items()):
        metrics = (entry or {}).get("metrics")
        if not metrics:
            continue
        port = _port_spec(entry, metrics.get("port"))
        job = {"groups": [entry["group"]] + (["all"] if entry.get("all_hosts") else []),
               "port": port["port"], "listen_var": port["var"]}
        if entry.get("scheme_var"):
            job["tls_var"] = entry["scheme_var"]
        if entry.get("tls") and not port.get("plain"):
            job["tls"] = entry["tls"]
        for key in ("path", "path_var", "local_var", "probes_var", "probes_kind", "probe_path", "probe_module_param",
                    "probe_source_label"):
            if metrics.get(key):
                job[key] = metrics[key]
        jobs[metrics.get("job") or name] = job
    return jobs


def component_urls(members, hostvars, entry, port=None, path=""):
    """URLs of a registry component on each inventory host in members: the port of its
    listen variable there (the registry's default when unset), https where its scheme_var
    is set on that host."""
    spec = _port_spec(entry, port)
    out = []
    for name in members or []:
        # a port marked plain (upstream cannot serve TLS there, like Jaeger's health) stays http
        scheme = "https" if not spec.get("plain") and serves_tls(name, hostvars, entry) else "http"
        out.append(f"{scheme}://{service_address(name, hostvars, spec['var'], spec['port'])}{path}")
    return out


def datasource_urls(registry, groups, hostvars, remote_storage=()):
    """{component: {type, urls, default}} for every registry component with a datasource, from
    its group; a component marked default (a long-term store) is Grafana's default when its
    group has hosts. Remote stores outside the inventory (stack_remote_storage entries with a
    query_url) follow as {name: {type: prometheus, urls: [query_url], default, settings}}: the
    first is the default when no inventory store is."""
    out = {}
    for name, entry in sorted((registry or {}).items()):
        source = (entry or {}).get("datasource")
        if source:
            urls = component_urls(_members(entry, groups), hostvars, entry, source.get("port"), source.get("path", ""))
            out[name] = {"type": source["type"], "urls": urls, "default": bool(source.get("default") and urls)}
            if source.get("name"):
                out[name]["name"] = source["name"]
    taken = any(source["default"] for source in out.values())
    for store in remote_storage or []:
        if store.get("query_url"):
            out[store["name"]] = {"type": "prometheus", "urls": [store["query_url"]], "default": not taken,
                                  "settings": store.get("datasource") or {}}
            taken = True
    return out


def remote_write_urls(registry, groups, hostvars):
    """[{name, url}] of every host of every registry component that takes remote writes
    (the registry's remote_write: {port, path}), named <component>-<host>."""
    out = []
    for name, entry in sorted((registry or {}).items()):
        spec = (entry or {}).get("remote_write")
        if spec:
            members = _members(entry, groups)
            urls = component_urls(members, hostvars, entry, spec.get("port"), spec.get("path", "/api/v1/write"))
            out.extend({"name": f"{name}-{host}", "url": url, "component": name} for host, url in zip(members, urls))
    return out


def port_conflicts(groups, hostvars, registry):
    """Hosts on which two components of the registry would listen on the same port, and
    port variables whose value is not host:port or a port number (named, with the host)."""
    claims, malformed = {}, []
    for component, entry in sorted((registry or {}).items()):
        for name in _members(entry, groups):
            for spec in (entry.get("ports") or {}).values():
                value = _lookup(hostvars, name, spec["var"], spec["port"])
                port = _port_of(value)
                if port is None:
                    # the role's argument specs refuse it too, but only once that role runs
                    malformed.append(f"host {name}: {spec['var']} is {value!r}, not host:port or a port number")
                    continue
                claims.setdefault((name, port), []).append(component)
    return malformed + [f"host {host}: port {port} is wanted by {' and '.join(sorted(set(c)))}"
                        for (host, port), c in sorted(claims.items()) if len(c) > 1]


def _seconds(duration, default=15.0):
    """Seconds of a Prometheus duration (1m30s, 15s, 500ms), or default when it is not one."""
    parts = re.findall(r"([0-9]+)(ms|s|m|h|d|w|y)", str(duration or ""))
    if not parts or "".join(n + u for n, u in parts) != str(duration):
        return default
    unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    return sum(int(n) * unit[u] for n, u in parts)


def _silence_grace(groups, hostvars, registry):
    """Seconds a maintenance silence outlasts the service's return: two scrapes and an evaluation
    of the slowest Prometheus of the inventory (45 without one)."""
    scrapers = _members((registry or {}).get("prometheus") or {}, groups)
    return int(max([2 * _seconds(_lookup(hostvars, p, "prometheus_scrape_interval", "15s"))
                    + _seconds(_lookup(hostvars, p, "prometheus_evaluation_interval", "15s")) for p in scrapers] or [45]))


def maintenance_silence(component, host, groups, hostvars, registry, ca_file="", username=""):
    """The maintenance silence stack_service makes while `component` restarts on `host`
    (stack_maintenance_silences): the alerts about its own target there (instance=<the address
    Prometheus scrapes it at>), on the inventory's Alertmanagers as this host reaches them, those
    of other hosts first; ended, once it is ready again, after two scrapes and an evaluation of
    the slowest Prometheus. None without an Alertmanager in the inventory."""
    entry = (registry or {}).get(component) or {}
    manager = (registry or {}).get("alertmanager") or {}
    members = _members(manager, groups) if manager else []
    if not members or not entry.get("ports"):
        return None
    ordered = [m for m in members if m != host] + [m for m in members if m == host]
    # the port Prometheus scrapes it at (the registry's metrics port, else its first)
    spec = _port_spec(entry, (entry.get("metrics") or {}).get("port"))
    return {"urls": component_urls(ordered, hostvars, manager),
            "matchers": [{"name": "instance", "value": service_address(host, hostvars, spec["var"], spec["port"])}],
            "comment": f"{component} on {host} restarts (monstack maintenance)",
            "grace": _silence_grace(groups, hostvars, registry),
            "ca_file": ca_file or "", "username": username or ""}


def host_silence(host, groups, hostvars, registry, config_dir="/etc/alertmanager"):
    """What playbooks/maintenance.yml silences while `host` is down: every alert about a target on
    it (instance=~"<its address>:<port>"), made on an Alertmanager of the inventory through that
    member's own loopback (another host's first), verified with the CA in its config_dir under
    stack_tls. {on, url, ca_file, matchers, grace}, or None without an Alertmanager."""
    manager = (registry or {}).get("alertmanager") or {}
    members = _members(manager, groups) if manager else []
    if not members:
        return None
    on = next((m for m in members if m != host), members[0])
    spec = _port_spec(manager)
    port = _port_of(_lookup(hostvars, on, spec["var"], spec["port"])) or spec["port"]
    tls = serves_tls(on, hostvars, manager)
    return {"on": on, "url": f"{'https' if tls else 'http'}://127.0.0.1:{port}",
            "ca_file": f"{_lookup(hostvars, on, 'alertmanager_config_dir', config_dir)}/ca.crt" if tls else None,
            "matchers": [{"name": "instance", "value": re.escape(host_address(host, hostvars)) + ":[0-9]+",
                          "isRegex": True, "isEqual": True}],
            "grace": _silence_grace(groups, hostvars, registry)}


def utc_after(seconds):
    """The time `seconds` from now (UTC) as Alertmanager's API takes it (module_utils/stack_silence.after)."""
    return _stack_silence.after(seconds)


def remove_problems(groups, hostvars, registry):
    """Hosts whose stack_remove (the components to take off them) names a component that is not
    in the registry, or one the host still runs through its groups (named, with the host)."""
    problems = []
    deployed = {name for name, entry in (registry or {}).items() if not (entry or {}).get("external")}
    for host in sorted(groups.get("all") or []):
        wanted = _lookup(hostvars, host, "stack_remove", [])
        if wanted in (None, ""):
            continue
        if not isinstance(wanted, list):
            problems.append(f"host {host}: stack_remove must be a list of components, got {wanted!r}"[:200])
            continue
        unknown = [str(name) for name in wanted if name not in deployed]
        if unknown:
            problems.append(f"host {host}: stack_remove names {', '.join(unknown)}, not a component of the stack "
                            f"(one of {', '.join(sorted(deployed))})")
        kept = [name for name in wanted if name in deployed and host in _members(registry[name], groups)]
        if kept:
            where = [f"the {registry[name].get('group')} group" if host in (groups.get(registry[name].get("group")) or [])
                     else f"every host ({name} runs on all while its group {registry[name].get('group')} is empty)"
                     for name in kept]
            problems.append(f"host {host}: stack_remove names {', '.join(kept)}, but the host still runs it through "
                            + " and ".join(where) + ": take the host out of the group to remove the component")
    return problems


# The log shippers a host of the log_shipper group may run (stack_log_shipper), the default first:
# the stack role's default (roles/stack/defaults/main.yml) equals it (tests/unit/test_alloy.py)
LOG_SHIPPERS = ("alloy", "promtail")


def log_shippers(groups, hostvars):
    """[{name, groups}] for add_host: each host of the log_shipper group into the group of the
    shipper its stack_log_shipper names (alloy by default). A bad value fails, naming the variable."""
    out, bad = [], []
    for host in groups.get("log_shipper") or []:
        shipper = _lookup(hostvars, host, "stack_log_shipper", LOG_SHIPPERS[0]) or LOG_SHIPPERS[0]
        if shipper not in LOG_SHIPPERS:
            bad.append(f"host {host}: stack_log_shipper is {shipper!r}; it must be one of {', '.join(LOG_SHIPPERS)}")
        out.append({"name": host, "groups": [str(shipper)]})
    if bad:
        raise AnsibleFilterError("; ".join(bad))
    return out


def log_shipper_problems(groups):
    """Hosts that would ship their logs twice: in the promtail and the alloy group at once."""
    both = sorted(set(groups.get("promtail") or []) & set(groups.get("alloy") or []))
    return [f"host {host} is in both the promtail and the alloy group and would ship every line twice: "
            "keep it in one (for a host of log_shipper, stack_log_shipper picks it)" for host in both]


def change_action(result, root, changes):
    """module_utils/stack_component.change_action (what changed files need), as a filter."""
    try:
        return _change_action(result, root, changes)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def instance_problems(instances, var, needs=("target",), target_pattern=None, target_hint=""):
    """Problems of a list of watched servers [{name, target, ...}] (an exporter's multi-target
    entries): each needs a name that is a file name, the keys in needs, a unique name and,
    with target_pattern, a target of that shape. Names var in every message."""
    problems, names = [], []
    for item in instances or []:
        if not isinstance(item, dict) or not item.get("name"):
            problems.append(f"an entry of {var} has no name: {item!r}"[:200])
            continue
        name = str(item["name"])
        names.append(name)
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            problems.append(f"{var} name {name} may use only A-Z a-z 0-9 _ . -")
        for key in needs:
            if not item.get(key):
                problems.append(f"{var} {name} needs {key}" + (f" ({target_hint})" if key == "target" and target_hint else ""))
        if target_pattern and item.get("target") and not re.match(target_pattern, str(item["target"])):
            problems.append(f"{var} {name}: target {item['target']} must be {target_hint}")
    if len(names) != len(set(names)):
        problems.append(f"{var} names must be unique")
    return problems


def remote_storage_problems(stores):
    """What is wrong with stack_remote_storage entries (named, with the entry)."""
    out, names = [], []
    for index, store in enumerate(stores or []):
        if not isinstance(store, dict) or not store.get("name"):
            out.append(f"stack_remote_storage entry {index + 1} needs a name")
            continue
        name = str(store["name"])
        names.append(name)
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            out.append(f"stack_remote_storage {name}: the name may use only A-Z a-z 0-9 _ . -")
        unknown = sorted(set(store) - {"name", "write_url", "query_url", "remote_write", "datasource", "keep_replica_label"})
        if unknown:
            out.append(f"stack_remote_storage {name}: unknown keys {', '.join(unknown)}")
        for key in ("write_url", "query_url"):
            value = store.get(key)
            if (key == "write_url" or value) and not re.match(r"^https?://[^/\s]+", str(value or "")):
                out.append(f"stack_remote_storage {name}: {key} must be an http(s) URL, got {value!r}")
        for key in ("remote_write", "datasource"):
            if not isinstance(store.get(key, {}), dict):
                out.append(f"stack_remote_storage {name}: {key} must be a dict of settings")
    if len(names) != len(set(names)):
        out.append("stack_remote_storage names must be unique")
    return out


def silences_to_restore(saved, live, now):
    """The silences of a backup to post to an Alertmanager again (module_utils/stack_backup.py)."""
    return _stack_backup.silences_to_restore(saved, live, now)


def backups_to_drop(paths, keep):
    """Backup directories beyond the newest `keep` (module_utils/stack_backup.py)."""
    try:
        return _stack_backup.backups_to_drop(paths, keep)
    except _stack_backup.BackupError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    def filters(self):
        return {
            "stack_instance_problems": instance_problems,
            "stack_systemd_value": systemd_value,
            "stack_systemd_quote": systemd_quote,
            "stack_web_files": web_files,
            "stack_bcrypt": bcrypt_hash,
            "stack_ca_files": ca_files,
            "stack_cert_files": cert_files,
            "stack_tls_components": tls_components,
            "stack_tls_client_cert_components": client_cert_components,
            "stack_tls_users": tls_users,
            "stack_tls_job_settings": tls_job_settings,
            "stack_tls_client_settings": tls_client_settings,
            "stack_prefix_keys": prefix_keys,
            "stack_env_file": env_file,
            "stack_flags": flags,
            "stack_steps": steps,
            "stack_remote_write_urls": remote_write_urls,
            "stack_remote_storage_problems": remote_storage_problems,
            "stack_collector_flags": collector_flags,
            "stack_local_url": local_url,
            "stack_port_conflicts": port_conflicts,
            "stack_remove_problems": remove_problems,
            "stack_maintenance_silence": maintenance_silence,
            "stack_host_silence": host_silence,
            "stack_utc_after": utc_after,
            "stack_silences_to_restore": silences_to_restore,
            "stack_backups_to_drop": backups_to_drop,
            "stack_scrape_jobs": scrape_jobs,
            "stack_host_components": host_components,
            "stack_log_shippers": log_shippers,
            "stack_log_shipper_problems": log_shipper_problems,
            "stack_switched": switched,
            "stack_component_urls": component_urls,
            "stack_datasource_urls": datasource_urls,
            "stack_change_action": change_action,
            "stack_config_switched": config_switched,
            "stack_wrap": wrap,
            "stack_probe_check": probe_check,
            "stack_file_entries": file_entries,
            "stack_files_by_stem": files_by_stem,
            "stack_glob": expand_globs,
            "stack_scrape_targets": scrape_targets,
            "stack_target_owners": target_owners,
            "stack_target_files": target_files,
            "stack_published_targets": published_targets,
            "stack_scraper_dir": scraper_dir,
            "stack_blackbox_probes": blackbox_probes,
            "stack_probe_problems": probe_problems,
            "stack_host_address": host_address,
        }
