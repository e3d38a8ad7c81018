"""An older VictoriaMetrics (offline: Debian trixie's build) holding samples, upgraded by the
role (offline: to sid's build): the samples are still there and the new release ingests."""
import json
import time
import urllib.parse

from conftest import expected_version, host_names, previous_version, run_playbook, unit_pid

TARGET = host_names("vmupgrade")[0] if host_names("vmupgrade") else None
testinfra_hosts = [f"podman://{TARGET}"] if TARGET else []
OLD, NEW = previous_version("victoriametrics"), expected_version("victoriametrics")


def query(host, expr, at):
    params = urllib.parse.urlencode({"query": expr, "time": at})
    return json.loads(host.check_output(f"curl -fsS --noproxy '*' 'http://127.0.0.1:8428/api/v1/query?{params}'"))["data"]["result"]


def release(host):
    return host.file("/usr/local/bin/victoria-metrics").linked_to


def test_upgrade_keeps_the_samples(host):
    run = run_playbook("upgrade.yml", extra={"victoriametrics_version": OLD})
    assert run.returncode == 0, run.output[-3000:]
    assert f"/{OLD}-linux-" in release(host)
    at = int(time.time()) - 3600
    host.check_output(f"curl -fsS --noproxy '*' --data-binary 'upgrade_probe{{release=\"old\"}} 42 {at * 1000}' "
                      "http://127.0.0.1:8428/api/v1/import/prometheus")
    host.check_output("curl -fsS --noproxy '*' http://127.0.0.1:8428/internal/force_flush")
    result = query(host, "upgrade_probe", at)
    assert result and result[0]["value"][1] == "42", f"{OLD} did not store the sample: {result}"
    pid = unit_pid(host, "victoriametrics")

    run = run_playbook("upgrade.yml", extra={"victoriametrics_version": NEW})
    assert run.returncode == 0, run.output[-3000:]
    assert f"/{NEW}-linux-" in release(host) and unit_pid(host, "victoriametrics") != pid
    result = query(host, "upgrade_probe", at)
    assert result and result[0]["value"][1] == "42", f"the sample written by {OLD} is gone after the upgrade to {NEW}"
    # and the new release ingests into the same storage
    now = int(time.time()) - 60
    host.check_output(f"curl -fsS --noproxy '*' --data-binary 'upgrade_probe{{release=\"new\"}} 7 {now * 1000}' "
                      "http://127.0.0.1:8428/api/v1/import/prometheus")
    host.check_output("curl -fsS --noproxy '*' http://127.0.0.1:8428/internal/force_flush")
    assert query(host, 'upgrade_probe{release="new"}', now)[0]["value"][1] == "7"
