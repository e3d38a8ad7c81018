# -*- coding: utf-8 -*-
"""Filters of the jaeger role."""
from __future__ import annotations

import ipaddress


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


def _loopback(address):
    """Whether a host:port listen address binds a loopback host (split as stack_local_url does)."""
    host = str(address).rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def relay_problems(address, var="jaeger_metrics_relay_address"):
    """The metrics relay's receiver takes plain HTTP (stack_tls): it must stay on loopback."""
    if not _loopback(address):
        return [f"{var} is {address!r}: the metrics relay's receiver is plain HTTP and must listen on "
                "loopback (127.0.0.1:<port>, [::1]:<port> or localhost:<port>)"]
    return []


class FilterModule:
    def filters(self):
        return {"jaeger_otel_problems": otel_problems, "jaeger_relay_problems": relay_problems}
