# -*- coding: utf-8 -*-
"""Filters shared by the monitoring-stack roles."""
from __future__ import annotations

import hashlib
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
    a list repeats the flag."""
    out = []
    for name, value in (options or {}).items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if item is False:
                continue
            out.append(f"{prefix}{name}" if item is True or item is None or item == "" else f"{prefix}{name}={item}")
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


class FilterModule:
    def filters(self):
        return {
            "stack_systemd_value": systemd_value,
            "stack_systemd_quote": systemd_quote,
            "stack_bcrypt": bcrypt_hash,
            "stack_web_config": web_config,
            "stack_flags": flags,
            "stack_local_url": local_url,
        }
