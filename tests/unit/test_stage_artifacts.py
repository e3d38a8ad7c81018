"""scripts/stage-artifacts lays archives out as <host>/<path> of their upstream URL, Grafana's
build id included, so stack_artifact_dir can serve them with no network at all."""
import json
import os
import pathlib
import subprocess
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
MIRROR = pathlib.Path(os.environ.get("MONSTACK_MIRROR_DIR") or pathlib.Path.home() / ".cache/monitoring-stack/mirror")


def test_stages_grafana_with_its_build_id_and_a_prometheus_release(tmp_path):
    assert (MIRROR / "manifest.json").exists(), "run scripts/setup (it builds the local mirror)"
    prometheus = max(json.loads((MIRROR / "manifest.json").read_text())["prometheus"],
                     key=lambda v: tuple(map(int, v.split("."))))
    grafana = yaml.safe_load((ROOT / "roles/grafana/defaults/main.yml").read_text())
    version = grafana["grafana_version"]
    build = grafana["grafana_build_ids"][version]
    proc = subprocess.run([sys.executable, ROOT / "scripts/stage-artifacts", tmp_path, "--from", f"file://{MIRROR}",
                           "--only", "grafana", "--only", f"prometheus={prometheus}", "--arch", "amd64"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / f"dl.grafana.com/grafana/release/{version}/grafana_{version}_{build}_linux_amd64.tar.gz").is_file()
    assert (tmp_path / f"github.com/prometheus/prometheus/releases/download/v{prometheus}/sha256sums.txt").is_file()


def test_a_grafana_version_without_build_id_is_reported(tmp_path):
    proc = subprocess.run([sys.executable, ROOT / "scripts/stage-artifacts", tmp_path, "--from", f"file://{MIRROR}",
                           "--only", "grafana=99.0.0", "--arch", "amd64"], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "grafana 99.0.0: no build id in grafana_build_ids" in proc.stderr
