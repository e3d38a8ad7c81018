"""Probes from outside (stack_probes through the blackbox_exporter group): each entry becomes a
blackbox module and a target of its own, labelled with what it probes and from where; entries
that cannot be probed are refused naming them; the modules pass the real exporter's check."""
import pathlib
import subprocess
import tarfile

import pytest
import yaml

from conftest import MIRROR

PROBES = [{"url": "https://shop.example.org/health"}, {"url": "http://app2:8000/login", "status": 401},
          {"url": "http://app2:8000/", "status": [200, 302]}, {"tcp": "db1:5432"}, {"tls": "mail.example.org:465"},
          {"url": "https://api.example.org/", "module": "http_post_json"}]


def test_each_probe_gets_the_module_its_kind_and_status_need(filters):
    assert [(p["name"], p["target"]) for p in filters.blackbox_probes(PROBES)] == [
        ("http_2xx", "https://shop.example.org/health"), ("http_401", "http://app2:8000/login"),
        ("http_200_302", "http://app2:8000/"), ("tcp_connect", "db1:5432"), ("tls_connect", "mail.example.org:465"),
        ("http_post_json", "https://api.example.org/")]
    modules = {p["name"]: p["module"] for p in filters.blackbox_probes(PROBES)}
    assert modules["http_401"] == {"prober": "http", "http": {"valid_status_codes": [401]}}
    assert modules["tls_connect"] == {"prober": "tcp", "tcp": {"tls": True}}
    assert modules["http_post_json"] is None, "a module of the user's own is not generated"


@pytest.mark.parametrize("probe, expected", [
    ({"url": "shop.example.org"}, "stack_probes entry shop.example.org: url must start with http:// or https://"),
    ({"tcp": "db1"}, "stack_probes entry db1: tcp must be host:port"),
    ({"url": "http://a/", "tcp": "a:1"}, "needs exactly one of url (HTTP), tcp (host:port) or tls"),
    ({"url": "http://a/", "status": 999}, "status must be an HTTP status code or a list of them"),
    ({"tcp": "a:1", "status": 200}, "status applies to url probes only"),
    ({"url": "http://a/", "expect": 200}, "has unknown keys expect"),
])
def test_a_probe_that_cannot_work_is_refused_naming_it(filters, probe, expected):
    problems = filters.probe_problems([probe])
    assert any(expected in p for p in problems), problems
    with pytest.raises(Exception, match="stack_probes entry"):
        filters.blackbox_probes([probe])


def test_each_probe_is_a_target_through_the_exporter_labelled_with_the_url_and_the_prober(filters, registry):
    jobs = filters.scrape_jobs(registry)
    groups = {"all": ["mon", "edge"], "blackbox_exporter": ["mon", "edge"]}
    hostvars = {"mon": {"stack_probes": PROBES[:2]}, "edge": {"stack_probes": PROBES[:1],
                                                              "blackbox_exporter_listen_address": "0.0.0.0:9200"}}
    targets = filters.scrape_targets({"blackbox": jobs["blackbox"]}, groups, hostvars)["blackbox"]
    assert {"targets": ["mon:9115"]} in targets and {"targets": ["edge:9200"]} in targets, "the exporters' own metrics"
    probes = [t for t in targets if "instance" in t.get("labels", {})]
    assert probes == [
        {"targets": ["mon:9115"], "labels": {"prober": "mon", "__metrics_path__": "/probe", "__param_module": "http_2xx",
                                             "__param_target": "https://shop.example.org/health",
                                             "instance": "https://shop.example.org/health"}},
        {"targets": ["mon:9115"], "labels": {"prober": "mon", "__metrics_path__": "/probe", "__param_module": "http_401",
                                             "__param_target": "http://app2:8000/login", "instance": "http://app2:8000/login"}},
        {"targets": ["edge:9200"], "labels": {"prober": "edge", "__metrics_path__": "/probe", "__param_module": "http_2xx",
                                              "__param_target": "https://shop.example.org/health",
                                              "instance": "https://shop.example.org/health"}}]


def test_the_generated_modules_pass_the_real_exporters_check(filters, tmp_path):
    archives = sorted(MIRROR.parent.parent.parent.glob("blackbox_exporter/releases/download/v*/blackbox_exporter-*.linux-amd64.tar.gz"))
    assert archives, "no blackbox_exporter archive in the mirror: run scripts/setup"
    with tarfile.open(archives[-1]) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/blackbox_exporter"))
        member.name = "blackbox_exporter"
        tar.extract(member, tmp_path, filter="data")
    modules = {p["name"]: dict(p["module"], timeout="5s") for p in filters.blackbox_probes(PROBES) if p["module"]}
    path = tmp_path / "blackbox.yml"
    path.write_text(yaml.safe_dump({"modules": modules}))
    proc = subprocess.run([tmp_path / "blackbox_exporter", "--config.check", f"--config.file={path}"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump({"modules": {"x": {"prober": "http", "http": {"valid_status_codes": "200"}}}}))
    assert subprocess.run([tmp_path / "blackbox_exporter", "--config.check", f"--config.file={broken}"],
                          capture_output=True).returncode != 0, "the check refuses a malformed module"
