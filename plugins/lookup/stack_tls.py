# -*- coding: utf-8 -*-
"""The stack's internal CA, host certificates and generated passwords, kept on the controller.

Like the builtin password lookup, this lookup creates what it returns on first use and reads
it back afterwards, so every run and every host of a run sees the same CA, the same host
certificate (until it comes within renew_days of expiry) and the same passwords.
"""
from __future__ import annotations

DOCUMENTATION = r"""
name: stack_tls
short_description: Internal CA, host certificate and basic-auth passwords of the stack (stack_tls)
description:
  - Returns C({cert, key, ca, not_after, passwords}) for the inventory host given as the term.
  - The CA is made once in I(dir) (C(ca.crt), C(ca.key) 0600, the directory 0700) unless I(ca_cert)
    is given; its key never leaves the controller.
  - The host certificate (C(hosts/<host>.crt), C(.key) 0600) is issued by that CA with I(sans)
    as subject alternative names, and issued again when it is missing, expires within
    I(renew_days), lacks one of I(sans) or was not issued by the CA in use.
  - I(cert) and I(key) given (a host's own certificate) are returned as they are.
  - C(passwords) holds one generated password per name in I(passwords) (C(passwords/<name>),
    0600); I(given) passwords (from vault) win and are not written.
options:
  _terms:
    description: The inventory host name (the certificate's common name).
    required: true
  dir:
    description: Controller directory holding the CA, the host certificates and the passwords.
    type: path
    required: true
  sans:
    description: DNS names and IP addresses the certificate is valid for, besides the host name.
    type: list
    elements: str
    default: []
  days:
    description: Validity of a host certificate in days.
    type: int
    default: 365
  renew_days:
    description: Issue a new host certificate when the current one expires within this many days.
    type: int
    default: 30
  ca_cert:
    description: Your own CA certificate (PEM) instead of the internal one.
    type: str
    default: ""
  ca_key:
    description: Its key (PEM), to issue host certificates with it.
    type: str
    default: ""
  cert:
    description: This host's own certificate (PEM).
    type: str
    default: ""
  key:
    description: Its key (PEM).
    type: str
    default: ""
  passwords:
    description: Names of the generated passwords to return.
    type: list
    elements: str
    default: []
  given:
    description: Passwords you supply as name to password; they win over generated ones.
    type: dict
    default: {}
"""

import datetime
import fcntl
import ipaddress
import os
import secrets

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

CA_DAYS = 3650


def _crypto():
    try:
        from cryptography import x509  # pylint: disable=import-outside-toplevel
        from cryptography.hazmat.primitives import hashes, serialization  # pylint: disable=import-outside-toplevel
        from cryptography.hazmat.primitives.asymmetric import ec  # pylint: disable=import-outside-toplevel
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # pylint: disable=import-outside-toplevel
    except ImportError as exc:  # ansible-core depends on it, so this is a broken controller
        raise AnsibleLookupError(f"stack_tls needs the Python package cryptography on the controller: {exc}") from exc
    return x509, hashes, serialization, ec, ExtendedKeyUsageOID, NameOID


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _write(path, data, mode=0o600):
    """Write data atomically, readable by the controller user only."""
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data if isinstance(data, bytes) else data.encode("utf-8"))
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def _key_pem(key):
    _, _, serialization, _, _, _ = _crypto()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert):
    _, _, serialization, _, _, _ = _crypto()
    return cert.public_bytes(serialization.Encoding.PEM)


def _not_after(cert):
    value = getattr(cert, "not_valid_after_utc", None)
    return value if value is not None else cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def _san_entries(sans):
    x509 = _crypto()[0]
    out, seen = [], set()
    for name in sans or []:
        name = str(name).strip().strip("[]")
        if not name or name in seen:
            continue
        seen.add(name)
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def make_ca(directory, common_name="monitoring-stack CA"):
    """A new EC P-256 CA valid for ten years: (cert, key), written to directory."""
    x509, hashes, _, ec, _, NameOID = _crypto()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    _write(os.path.join(directory, "ca.key"), _key_pem(key))
    _write(os.path.join(directory, "ca.crt"), _cert_pem(cert), 0o644)
    return cert, key


def issue(ca_cert, ca_key, host, sans, days, not_before=None):
    """A host certificate for host (common name) and sans, issued by the CA: (cert, key).
    Valid for TLS servers and clients (Alertmanager's gossip uses both ends)."""
    x509, hashes, _, ec, ExtendedKeyUsageOID, NameOID = _crypto()
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or (_now() - datetime.timedelta(minutes=5))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(host))]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(_san_entries([host] + list(sans or []))), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, key_cert_sign=False,
                                         crl_sign=False, content_commitment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert, key


def renewal_reason(cert, ca_cert, host, sans, renew_days, now=None):
    """Why cert must be issued again ('' when it is fine): expiry within renew_days, a
    missing name, or another issuer than the CA in use."""
    x509 = _crypto()[0]
    now = now or _now()
    if _not_after(cert) - now < datetime.timedelta(days=renew_days):
        return f"it expires {_not_after(cert):%Y-%m-%d %H:%M} UTC, within {renew_days} days"
    if cert.issuer != ca_cert.subject:
        return "another CA issued it"
    try:
        cert.verify_directly_issued_by(ca_cert)
    except Exception:  # pylint: disable=broad-except  # a wrong key type or signature alike
        return "the CA in use did not sign it"
    have = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    missing = [str(getattr(entry, "value", entry)) for entry in _san_entries([host] + list(sans or [])) if entry not in have]
    if missing:
        return "it lacks " + ", ".join(missing)
    return ""


def password(directory, name, given=None):
    """The password called name: given (vault) wins, else the one stored in directory, else a
    new one written there (0600)."""
    if given:
        return str(given)
    if not _NAME_OK(name):
        raise AnsibleLookupError(f"stack_tls: password name {name!r} may use only letters, digits, _ . -")
    path = os.path.join(directory, "passwords", name)
    if os.path.exists(path):
        return _read(path).decode("utf-8").strip()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    value = secrets.token_urlsafe(24)
    _write(path, value + "\n")
    return value


def _NAME_OK(name):  # noqa: N802 - reads as a predicate
    return bool(name) and all(ch.isalnum() or ch in "_.-" for ch in str(name))


def host_material(directory, host, sans=(), days=365, renew_days=30, ca_cert_pem="", ca_key_pem="",
                  cert_pem="", key_pem="", names=(), given=None):
    """Everything stack_tls returns for host (see DOCUMENTATION); creates what is missing."""
    x509, _, serialization, _, _, _ = _crypto()
    if int(renew_days) >= int(days):
        raise AnsibleLookupError(f"stack_tls_renew_days ({renew_days}) must be less than stack_tls_days ({days}): "
                                 "every run would issue the certificates again")
    directory = os.path.abspath(os.path.expanduser(str(directory)))
    os.makedirs(os.path.join(directory, "hosts"), mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    with open(os.path.join(directory, ".lock"), "a+", encoding="utf-8") as lock:
        # the play's forks ask at once: one of them makes the CA, the others read it
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ca_cert_pem:
            ca_cert = x509.load_pem_x509_certificate(str(ca_cert_pem).encode("utf-8"))
            ca_key = serialization.load_pem_private_key(str(ca_key_pem).encode("utf-8"), None) if ca_key_pem else None
        elif os.path.exists(os.path.join(directory, "ca.crt")):
            ca_cert = x509.load_pem_x509_certificate(_read(os.path.join(directory, "ca.crt")))
            ca_key = serialization.load_pem_private_key(_read(os.path.join(directory, "ca.key")), None)
        else:
            ca_cert, ca_key = make_ca(directory)
        if cert_pem:
            cert = x509.load_pem_x509_certificate(str(cert_pem).encode("utf-8"))
            host_key = str(key_pem)
        else:
            if ca_key is None:
                raise AnsibleLookupError(f"stack_tls: host {host} has no stack_tls_cert and the CA given in "
                                         "stack_tls_ca_cert has no stack_tls_ca_key to issue one")
            crt_path, key_path = (os.path.join(directory, "hosts", f"{host}.{ext}") for ext in ("crt", "key"))
            cert = None
            if os.path.exists(crt_path) and os.path.exists(key_path):
                cert = x509.load_pem_x509_certificate(_read(crt_path))
                if renewal_reason(cert, ca_cert, host, sans, int(renew_days)):
                    cert = None
            if cert is None:
                cert, new_key = issue(ca_cert, ca_key, host, sans, int(days))
                _write(key_path, _key_pem(new_key))
                _write(crt_path, _cert_pem(cert), 0o644)
            host_key = _read(key_path).decode("utf-8")
        out = {"cert": _cert_pem(cert).decode("utf-8"), "key": host_key,
               "ca": _cert_pem(ca_cert).decode("utf-8"), "not_after": _not_after(cert).strftime("%Y-%m-%dT%H:%M:%SZ"),
               "passwords": {name: password(directory, name, (given or {}).get(name)) for name in names or []}}
    return out


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        return [host_material(self.get_option("dir"), term, self.get_option("sans"), self.get_option("days"),
                              self.get_option("renew_days"), self.get_option("ca_cert"), self.get_option("ca_key"),
                              self.get_option("cert"), self.get_option("key"), self.get_option("passwords"),
                              self.get_option("given"))
                for term in terms]
