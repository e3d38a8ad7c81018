"""Invalid variables fail before any change, naming the problem."""
import re

import pytest

from conftest import host_names, run_playbook, unit_pid

TARGET = host_names("databases")[0] if host_names("databases") else None
testinfra_hosts = [f"podman://{TARGET}"] if TARGET else []


@pytest.mark.parametrize("extra, names", [
    ({"postgres_exporter_db_host": "db.example.org"}, "is reached over TCP: set postgres_exporter_db_password"),
    ({"postgres_exporter_instances": [{"name": "x", "user": "monitor"}]}, "postgres_exporter_instances x needs target"),
    ({"postgres_exporter_db_user": "Robert'); DROP TABLE"}, "postgres_exporter_db_user must be a plain lower-case role name"),
    ({"redis_exporter_addr": "localhost:6379"}, "redis_exporter_addr must start with redis://"),
    ({"redis_exporter_instances": "redis://x:6379"}, "redis_exporter_instances"),
])
def test_invalid_variables_fail_before_any_change(host, extra, names):
    before = (unit_pid(host, "postgres_exporter"), unit_pid(host, "redis_exporter"),
              host.file("/etc/systemd/system/postgres_exporter.service").sha256sum)
    run = run_playbook("converge.yml", limit=TARGET, extra=extra)
    assert run.returncode != 0
    assert names in run.output, run.output[-2500:]
    assert not re.search(r"^changed:", run.output, re.M), run.output[-2500:]
    assert (unit_pid(host, "postgres_exporter"), unit_pid(host, "redis_exporter"),
            host.file("/etc/systemd/system/postgres_exporter.service").sha256sum) == before
