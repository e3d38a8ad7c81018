# -*- coding: utf-8 -*-
"""Filters of the alertmanager role: secrets out of the config, receivers checked."""
from __future__ import annotations

import re


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


def _plain(value):
    """A deep copy as plain dicts and lists (this file's filters edit it). copy.deepcopy of Ansible's
    lazy templated containers also copies the variables they were templated with: a second a run."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def alertmanager_secrets(config, directory):
    """Move inline secrets of an Alertmanager config into files: returns {config, files}
    where each secret value became a *_file setting pointing at <directory>/<name> and
    files maps <name> to the secret. The config written to disk then holds no secret."""
    config = _plain(dict(config or {}))
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


def webhook_ca(config, ca_file):
    """Every webhook receiver with an https URL verifies its server with ca_file (the CA named by
    alertmanager_webhook_ca_cert), unless its http_config already sets a CA of its own or skips
    verification. Only webhooks: other receivers talk to public services the system's CAs know."""
    config = _plain(dict(config or {}))
    if not ca_file:
        return config
    for receiver in config.get("receivers") or []:
        for item in receiver.get("webhook_configs") or []:
            if not isinstance(item, dict) or not str(item.get("url", "")).startswith("https://"):
                continue
            tls = item.setdefault("http_config", {}).setdefault("tls_config", {})
            if not (tls.get("ca_file") or tls.get("ca") or tls.get("insecure_skip_verify")):
                tls["ca_file"] = ca_file
    return config


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


def receiver_name_problems(receivers):
    """alertmanager_receivers entries without a name (the full check needs names)."""
    return [f"a receiver in alertmanager_receivers has no name: {r!r}"[:200]
            for r in receivers or [] if not isinstance(r, dict) or not r.get("name")]


def cluster_tls(directory, server_name="alertmanager-cluster"):
    """--cluster.tls-config with stack_tls: gossip over mutual TLS. Each member serves and dials
    with its host certificate (tls.crt, tls.key) and accepts only peers whose certificate the
    stack's CA (ca.crt) issued; peers are dialled by address, so the name checked is the one
    every Alertmanager host's certificate carries (server_name)."""
    pem = {"cert_file": f"{directory}/tls.crt", "key_file": f"{directory}/tls.key"}
    return {"tls_server_config": dict(pem, client_auth_type="RequireAndVerifyClientCert", client_ca_file=f"{directory}/ca.crt"),
            "tls_client_config": dict(pem, ca_file=f"{directory}/ca.crt", server_name=server_name)}


class FilterModule:
    def filters(self):
        return {"alertmanager_receiver_name_problems": receiver_name_problems, "alertmanager_secrets": alertmanager_secrets,
                "alertmanager_problems": alertmanager_problems, "alertmanager_cluster_tls": cluster_tls,
                "alertmanager_webhook_ca": webhook_ca}
