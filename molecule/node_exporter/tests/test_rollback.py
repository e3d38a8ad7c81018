"""A release or a flag node_exporter cannot start with comes back off on its own (issue 37): the
failed run puts back the release and unit it replaced, node_exporter serves /metrics again on
them, and the failure says what was rolled back, its cause on the first line."""
import hashlib
import io
import json
import re
import tarfile

from conftest import expected_version, host_names, run_playbook

TARGET = host_names()[0] if host_names() else None
testinfra_hosts = [f"podman://{TARGET}"] if TARGET else []
BROKEN = "1.99.0"


def serving_version(host):
    out = host.run("curl -fsS --max-time 5 http://127.0.0.1:9100/metrics").stdout
    found = re.search(r'^node_exporter_build_info\{[^}]*version="([^"]+)"', out, re.M)
    return found and found.group(1)


def failure_message(output):
    """The msg of the failed node_exporter item or task."""
    for match in re.finditer(r"^(?:failed|fatal): \[[^\]]+\][^\n]*?=> ", output, re.M):
        result = json.JSONDecoder().raw_decode(output, match.end())[0]
        if "Rolled back" in str(result.get("msg")) or "not ready" in str(result.get("msg")):
            return result["msg"]
    return ""


def broken_build(directory, arch="amd64"):
    """A node_exporter release laid out as upstream's download site whose binary exits at once."""
    release = directory / "github.com/prometheus/node_exporter/releases/download" / f"v{BROKEN}"
    release.mkdir(parents=True)
    top = f"node_exporter-{BROKEN}.linux-{arch}"
    data = b"#!/bin/sh\necho 'node_exporter: broken build, cannot start' >&2\nexit 2\n"
    archive = release / f"{top}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        member = tarfile.TarInfo(f"{top}/node_exporter")
        member.size, member.mode = len(data), 0o755
        tar.addfile(member, io.BytesIO(data))
    (release / "sha256sums.txt").write_text(f"{hashlib.sha256(archive.read_bytes()).hexdigest()}  {archive.name}\n")
    return str(directory)


def test_a_flag_node_exporter_refuses_is_rolled_back_with_its_unit(host):
    good = serving_version(host)
    run = run_playbook("converge.yml", limit=TARGET, extra={"node_exporter_extra_flags": {"no-such-flag": True}})
    assert run.returncode != 0, run.output[-3000:]
    msg = failure_message(run.output)
    assert msg, run.output[-4000:]
    assert msg.splitlines()[0].startswith("service: node_exporter.service is not ready after restart"), msg
    assert "Rolled back to the previous config (node_exporter.service): node_exporter is ready again on them" in msg, msg
    assert "no-such-flag" in msg.split("What the failed start logged:", 1)[1], "the journal lines say why"
    assert serving_version(host) == good
    assert "no-such-flag" not in host.file("/etc/systemd/system/node_exporter.service").content_string
    again = run_playbook("converge.yml", limit=TARGET)
    assert again.returncode == 0 and re.search(rf"{TARGET}\s+: ok=\d+\s+changed=0", again.output), again.output[-2000:]


def test_a_release_that_exits_at_start_is_rolled_back(host, tmp_path):
    run = run_playbook("converge.yml", limit=TARGET,
                       extra={"node_exporter_version": BROKEN, "stack_artifact_dir": broken_build(tmp_path)})
    assert run.returncode != 0, run.output[-3000:]
    msg = failure_message(run.output)
    assert msg, run.output[-4000:]
    assert msg.splitlines()[0].startswith("service: node_exporter.service is not ready after restart"), msg
    assert f"Rolled back to the previous release {expected_version('node_exporter')}" in msg, msg
    assert "broken build, cannot start" in msg
    assert serving_version(host) == expected_version("node_exporter")
    assert host.run("readlink /opt/monitoring/node_exporter/current").stdout.strip() == f"{expected_version('node_exporter')}-linux-amd64"
