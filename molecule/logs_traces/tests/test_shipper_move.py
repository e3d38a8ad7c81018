"""Moving a host from Promtail to Alloy while a line is appended to a log every second: Alloy is
ready before Promtail stops, and starts reading where Promtail stopped. Offline (stand-ins) the
positions handed to Alloy (files and the journal cursor) are compared with Promtail's last ones;
with the real programs, Loki holds every line exactly once. Runs after test_promtail.py (the
log_shipper host runs Promtail until here)."""
import json
import re
import time
import urllib.parse

import pytest
import yaml

from conftest import get_host, host_names, is_standin, run_playbook

SHIPPER = host_names("log_shipper")[0] if host_names("log_shipper") else None
LOKI = host_names("loki")[0] if host_names("loki") else None
testinfra_hosts = [f"podman://{SHIPPER}"] if SHIPPER else []
LOG = "/var/log/shop-move.log"
WRITER = f"i=0; while :; do i=$((i+1)); echo \"shop-move line $i\" >> {LOG}; sleep 1; done"


def alloy_positions(text):
    """Alloy's positions file (yaml.v2's map[Entry]string): {path: value}, labels aside."""
    return {m.group(1): m.group(2) for m in re.finditer(r'\? path: "?([^"\n]*)"?\n\s+labels: .*\n\s+: "?([^"\n]*)"?', text)}


def monotonic(host, unit, prop):
    return int(host.check_output(f"systemctl show -p {prop} --value {unit}") or 0)


@pytest.fixture(scope="module")
def moved(tmp_path_factory):
    """The move, run by converge.yml (Loki, Promtail, Alloy, Jaeger) with the host's stack_log_shipper
    set to alloy in an extra inventory file, while a line is appended to LOG every second."""
    host = get_host(SHIPPER)
    assert host.service("promtail").is_running and not host.file("/etc/systemd/system/alloy.service").exists
    host.run("systemctl stop shop-move-writer; rm -f " + LOG)
    host.check_output(f"systemd-run --unit=shop-move-writer sh -c '{WRITER}'")
    time.sleep(12)  # Promtail has read some lines and saved its positions (every 10 s)
    extra = tmp_path_factory.mktemp("move") / "alloy.yml"
    extra.write_text(yaml.safe_dump({"all": {"hosts": {SHIPPER: {"stack_log_shipper": "alloy"}}}}))
    check = run_playbook("converge.yml", "-i", str(extra), "--check", limit=SHIPPER)
    untouched = (host.service("promtail").is_running, host.file("/etc/alloy").exists, host.user("alloy").exists)
    run = run_playbook("converge.yml", "-i", str(extra), limit=SHIPPER)
    time.sleep(3)
    host.run("systemctl stop shop-move-writer")
    assert run.returncode == 0, run.output[-3000:]
    return host, run, extra, check, untouched


def changed_tasks(output):
    """The names of the tasks that reported changed, in order."""
    return [block.split("]", 1)[0].split(" : ", 1)[-1] for block in output.split("TASK [")[1:]
            if re.search(r"^changed: ", block, re.M)]


def test_check_mode_predicts_the_move_and_changes_nothing(moved):
    _, run, _, check, untouched = moved
    assert check.returncode == 0, check.output[-3000:]
    assert untouched == (True, False, False), "--check started, stopped or installed something"
    assert changed_tasks(check.output) == changed_tasks(run.output)


def test_promtail_stops_only_once_alloy_is_ready(moved):
    host, run, *_ = moved
    tasks = re.findall(r"^TASK \[(?:alloy : )?([^\]]+)\]", run.output, re.M)
    ready = tasks.index("Install and start Alloy without its sources, and wait until it is ready, before Promtail stops")
    assert tasks.index("Stop Promtail, which writes its final read positions as it stops") > ready
    assert tasks.index("Start Alloy's sources from Promtail's positions, and wait until Alloy is ready") > ready
    # on the host: Alloy active before Promtail stopped, Promtail gone (its data kept), Alloy running
    stops = [entry for entry in map(json.loads, host.check_output("journalctl -u promtail -o json --no-pager").splitlines())
             if str(entry.get("MESSAGE", "")).startswith("Stopped")]
    assert stops and monotonic(host, "alloy", "ActiveEnterTimestampMonotonic") < int(stops[-1]["__MONOTONIC_TIMESTAMP"])
    assert host.service("alloy").is_running and host.service("alloy").is_enabled
    assert not host.file("/etc/systemd/system/promtail.service").exists
    assert host.file("/var/lib/promtail/positions.yaml").exists


@pytest.mark.standin
def test_standin_alloy_starts_from_promtails_last_positions(moved):
    host, *_ = moved
    last = yaml.safe_load(host.file("/var/lib/promtail/positions.yaml").content_string)["positions"]
    assert host.file("/var/lib/alloy/promtail-positions.yaml").content_string == \
        host.file("/var/lib/promtail/positions.yaml").content_string
    files = alloy_positions(host.file("/var/lib/alloy/data/loki.source.file.varlogs/positions.yml").content_string)
    assert {path: files[path] for path in last} == {path: str(value) for path, value in last.items()}
    assert 0 < int(last[LOG]) < host.file(LOG).size, "Promtail's last position should be inside the growing log"
    journal = alloy_positions(host.file("/var/lib/alloy/data/loki.source.journal.journal/positions.yml").content_string)
    assert journal == {"cursor-loki.source.journal.journal": last["cursor-journal"]}


def test_the_next_run_changes_nothing(moved):
    _, _, extra, *_ = moved
    run = run_playbook("converge.yml", "-i", str(extra), limit=SHIPPER)
    assert run.returncode == 0 and re.search(rf"^{SHIPPER}\s*:.*changed=0 ", run.output, re.M), run.output[-3000:]


@pytest.mark.real
def test_real_loki_holds_every_line_once(moved):
    host, *_ = moved
    loki = get_host(LOKI)
    if is_standin(loki, "loki", "-version") or is_standin(host, "alloy", "--version"):
        pytest.skip("Loki or Alloy is the offline STAND-IN here; this runs with the real archives (MONSTACK_REAL_ARTIFACTS)")
    written = host.file(LOG).content_string.splitlines()
    query = urllib.parse.urlencode({"query": f'{{host="{SHIPPER}", filename="{LOG}"}}', "limit": 5000,
                                    "start": int((time.time() - 3600) * 1e9)})
    deadline = time.time() + 60
    while True:
        out = json.loads(loki.check_output(f"curl -fsS --noproxy '*' 'http://127.0.0.1:3100/loki/api/v1/query_range?{query}'"))
        lines = [v[1] for stream in out["data"]["result"] for v in stream["values"]]
        if len(lines) >= len(written) or time.time() > deadline:
            break
        time.sleep(3)
    assert sorted(lines) == sorted(written), (f"{len(written)} written, {len(lines)} in Loki, "
                                              f"{len(set(lines))} distinct")
