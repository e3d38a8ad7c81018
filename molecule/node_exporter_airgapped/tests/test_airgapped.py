"""node_exporter installed from a pre-staged directory with every network route closed."""
import json
import os

from conftest import artifact_source, hosts

VERSION = artifact_source()["monstack_mirror_versions"]["node_exporter"]

testinfra_hosts = hosts()


def test_installed_from_the_staged_directory(host):
    marker = json.loads(host.file(f"/opt/monitoring/node_exporter/{VERSION}-linux-amd64/.stack-release.json").content_string)
    staged = os.environ["MONSTACK_MIRROR_DIR"]
    assert marker["source"].startswith(staged + "/github.com/prometheus/node_exporter/"), marker
    assert "://" not in marker["source"]


def test_serves_metrics(host):
    assert host.service("node_exporter").is_running
    out = host.run("curl -fsS --noproxy '*' --max-time 10 http://127.0.0.1:9100/metrics")
    assert out.rc == 0 and "node_cpu_seconds_total" in out.stdout


def test_cache_was_filled_from_the_staged_directory():
    cache = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "artifacts", "node_exporter", VERSION)
    assert os.path.exists(os.path.join(cache, "linux-amd64", f"node_exporter-{VERSION}.linux-amd64.tar.gz.sha256"))
