"""scripts/stage-artifacts lays archives out as <host>/<path> of their upstream URL, Grafana's
build id included, so stack_artifact_dir can serve them with no network at all."""
import importlib.machinery
import importlib.util
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


def test_victoriametrics_is_staged_with_its_tools_for_backups(tmp_path):
    """vmbackup and vmrestore (playbooks/backup.yml, restore.yml) come from the vmutils archive of
    the same release: staging VictoriaMetrics stages it too."""
    version = max(json.loads((MIRROR / "manifest.json").read_text())["victoriametrics"],
                  key=lambda v: tuple(map(int, v.split("."))))
    proc = subprocess.run([sys.executable, ROOT / "scripts/stage-artifacts", tmp_path, "--from", f"file://{MIRROR}",
                           "--only", f"victoriametrics={version}", "--only", f"vmutils={version}", "--arch", "amd64"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    release = tmp_path / f"github.com/VictoriaMetrics/VictoriaMetrics/releases/download/v{version}"
    assert (release / f"vmutils-linux-amd64-v{version}.tar.gz").is_file()
    assert (release / f"vmutils-linux-amd64-v{version}_checksums.txt").is_file()
    spec = importlib.util.spec_from_file_location("stage", ROOT / "scripts/stage-artifacts",
                                                  loader=importlib.machinery.SourceFileLoader("stage", str(ROOT / "scripts/stage-artifacts")))
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    assert stage.default_versions()["vmutils"] == stage.default_versions()["victoriametrics"]
