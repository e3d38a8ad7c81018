"""Promtail: its own unprivileged user with journal and /var/log read access, positions kept,
pushing to the inventory's Loki, its end of life stated."""
import pytest

from conftest import host_names, run_playbook

# the promtail group's, and the log_shipper host (stack_log_shipper: promtail until test_shipper_move.py)
testinfra_hosts = [f"podman://{n}" for n in host_names("promtail") + host_names("log_shipper")]
LOKI = host_names("loki")[0] if host_names("loki") else None


@pytest.mark.standin
def test_standin_promtail_runs_unprivileged_with_log_read_groups(host):
    assert host.service("promtail").is_running and host.service("promtail").is_enabled
    user = host.user("promtail")
    assert user.uid != 0 and {"systemd-journal", "adm"} <= set(user.groups)
    unit = host.file("/etc/systemd/system/promtail.service").content_string
    assert "User=promtail" in unit and "SupplementaryGroups=systemd-journal adm" in unit
    assert "ReadWritePaths=/var/lib/promtail" in unit
    host.check_output("curl -fsS --noproxy '*' http://127.0.0.1:9080/ready")


@pytest.mark.standin
def test_standin_promtail_pushes_to_the_inventory_loki_and_keeps_positions(host):
    config = host.file("/etc/promtail/config.yml").content_string
    assert f"url: http://{LOKI}:3100/loki/api/v1/push" in config
    assert "filename: /var/lib/promtail/positions.yaml" in config
    assert f"host: {host.backend.name}" in config
    assert host.file("/var/lib/promtail").user == "promtail"


@pytest.mark.standin
def test_standin_end_of_life_is_stated_in_the_journal_and_the_play(host):
    journal = host.check_output("journalctl -u promtail --no-pager")
    assert "WARNING: Promtail reached end of life on 2026-03-02" in journal
    run = run_playbook("converge.yml", limit=host.backend.name)
    assert run.returncode == 0, run.output[-2000:]
    assert "Promtail reached end of life on 2026-03-02" in " ".join(run.output.split())
