"""Passwords reach only 0640 files of the exporter's group: never a unit file, a world-readable
file or Ansible's output (checked on a -v run)."""
import json

import pytest

from conftest import host_names, hostvars, run_playbook

SECURED = host_names("secured")
testinfra_hosts = [f"podman://{n}" for n in SECURED]
SECRETS = ["redis-pass#1;x", "acl-pass$2", "not-the-password"]


def test_the_acl_user_and_the_password_protected_server_are_both_up(host):
    text = host.check_output("curl -fsS --noproxy '*' http://127.0.0.1:9121/metrics")
    assert "\nredis_up 1" in text
    acl = host.check_output(
        "curl -fsS --noproxy '*' 'http://127.0.0.1:9121/scrape?target=redis://monitor@localhost:6379'")
    assert "\nredis_up 1" in acl


def test_password_files_are_0640_and_group_owned(host):
    for path, group in (("/etc/redis_exporter/passwords.json", "redis_exporter"),
                        ("/etc/postgres_exporter/postgres_exporter.yml", "postgres_exporter")):
        f = host.file(path)
        assert (f.user, f.group, f.mode) == ("root", group, 0o640), path
    stored = json.loads(host.file("/etc/redis_exporter/passwords.json").content_string)
    assert stored == {"redis://localhost:6379": "redis-pass#1;x", "redis://monitor@localhost:6379": "acl-pass$2"}


@pytest.mark.parametrize("secret", SECRETS)
def test_no_secret_in_units_or_world_readable_files(host, secret):
    found = host.run("grep -rlF -- %s /etc /opt/monitoring /var/lib /run/systemd 2>/dev/null", secret).stdout.split()
    for path in found:
        if path.startswith("/etc/redis/"):
            continue  # the Redis server's own config, written by the test's prepare step
        mode = host.file(path).mode
        assert not path.endswith(".service"), f"{secret!r} in unit {path}"
        assert mode & 0o007 == 0, f"{secret!r} in world-readable {path} ({oct(mode)})"
    assert any(p.startswith("/etc/") for p in found), "the secret should be stored somewhere"


def test_no_secret_in_ansible_output_at_verbose(host):
    run = run_playbook("converge.yml", "-v", limit=host.backend.name, extra={"redis_exporter_password": "rotated-s3cret"})
    try:
        assert run.returncode == 0, run.output[-3000:]
        for secret in SECRETS + ["rotated-s3cret"]:
            assert secret not in run.output, f"{secret!r} printed by ansible-playbook -v"
    finally:
        restore = run_playbook("converge.yml", limit=host.backend.name)
        assert restore.returncode == 0, restore.output[-3000:]
