"""Jaeger v2: mechanics on the stand-in (user, persistent storage directories, health wait,
validation), and a span sent with the OpenTelemetry SDK found through the query API when the
real binary is present."""
import json
import re
import subprocess
import time

import pytest

from conftest import host_names, require_real, run_playbook, unit_pid

JAEGER = host_names("jaeger")[0] if host_names("jaeger") else None
testinfra_hosts = [f"podman://{JAEGER}"] if JAEGER else []


def state(host):
    return unit_pid(host, "jaeger"), host.file("/etc/jaeger/config.yaml").sha256sum


@pytest.mark.standin
def test_standin_jaeger_runs_with_persistent_badger_and_answers_health(host):
    assert host.service("jaeger").is_running and host.service("jaeger").is_enabled
    host.check_output("curl -fsS --noproxy '*' http://127.0.0.1:13133/status")
    assert host.socket("tcp://0.0.0.0:16686").is_listening
    config = host.file("/etc/jaeger/config.yaml").content_string
    assert "ephemeral: false" in config and "keys: /var/lib/jaeger/badger/keys" in config
    badger = host.file("/var/lib/jaeger/badger")
    assert (badger.user, badger.mode) == ("jaeger", 0o750)


@pytest.mark.standin
def test_standin_a_pipeline_naming_an_undefined_component_fails_before_any_change(host):
    before = state(host)
    run = run_playbook("converge.yml", limit=JAEGER, extra={"jaeger_config": {"service": {"pipelines": {"traces": {
        "processors": ["batch", "memory_limiter"]}}}}})
    assert run.returncode != 0
    assert "pipeline traces uses processor memory_limiter, which processors does not define" in run.output
    assert not re.search(r"^changed:", run.output, re.M)
    assert state(host) == before


@pytest.mark.real
def test_real_a_span_sent_with_the_otel_sdk_is_returned_by_the_api(host):
    require_real(host, "jaeger", "version")
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    ip = subprocess.run(["podman", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", JAEGER],
                        capture_output=True, text=True, check=True).stdout.strip()
    provider = TracerProvider(resource=Resource.create({"service.name": "monstack-test"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"http://{ip}:4318/v1/traces")))
    with provider.get_tracer("molecule").start_as_current_span("checkout") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
    provider.shutdown()
    deadline = time.time() + 60
    while True:
        out = host.run(f"curl -fsS --noproxy '*' http://127.0.0.1:16686/api/traces/{trace_id}")
        if out.rc == 0 and json.loads(out.stdout).get("data") or time.time() > deadline:
            break
        time.sleep(2)
    spans = [s["operationName"] for t in json.loads(out.stdout)["data"] for s in t["spans"]]
    assert "checkout" in spans
