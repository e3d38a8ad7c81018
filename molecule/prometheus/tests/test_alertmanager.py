"""Every Alertmanager of the inventory group: one gossip cluster, secrets kept out of the config."""
import json
import time

from conftest import exposure, host_names

MEMBERS = host_names("alertmanager")
testinfra_hosts = [f"podman://{n}" for n in MEMBERS]


def status(host):
    return json.loads(host.check_output("curl -fsS --noproxy '*' http://127.0.0.1:9093/api/v2/status"))


def test_all_members_form_one_cluster(host):
    deadline = time.time() + 60
    while True:
        cluster = status(host)["cluster"]
        if len(cluster.get("peers") or []) == len(MEMBERS) or time.time() > deadline:
            break
        time.sleep(2)
    assert cluster["status"] == "ready"
    assert len(cluster["peers"]) == len(MEMBERS) == 3


def test_secrets_live_in_0640_files_not_in_the_config(host):
    config = host.file("/etc/alertmanager/alertmanager.yml")
    assert "pd-routing-key-not-real" not in config.content_string
    assert "routing_key_file: /etc/alertmanager/secrets/pager-pagerduty-0-routing_key" in config.content_string
    secret = host.file("/etc/alertmanager/secrets/pager-pagerduty-0-routing_key")
    assert (secret.user, secret.group, secret.mode) == ("root", "alertmanager", 0o640)
    assert secret.content_string == "pd-routing-key-not-real"


def test_unit_is_sandboxed(host):
    score = exposure(host, "alertmanager")
    print(f"alertmanager exposure score on {host.backend.name}: {score}")
    assert score <= 2.5
