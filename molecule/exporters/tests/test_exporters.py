"""postgres_exporter and redis_exporter on real servers: logged in, real metrics, secrets
only in 0640 files."""
import re

from conftest import exposure, host_names

testinfra_hosts = [f"podman://{n}" for n in host_names("databases")]


def metrics(host, port, path="/metrics"):
    return host.check_output(f"curl -fsS --noproxy '*' 'http://127.0.0.1:{port}{path}'")


def value(text, metric):
    match = re.search(rf"^{re.escape(metric)}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


def test_postgres_exporter_logs_in_and_reports_real_statistics(host):
    text = metrics(host, 9187)
    assert value(text, "pg_up") == 1
    assert re.search(r'^pg_stat_database_xact_commit\{[^}]*datname="postgres"', text, re.M)
    assert value(text, "pg_settings_max_connections") == 100


def test_the_monitoring_login_has_pg_monitor_and_nothing_more(host):
    row = host.check_output(
        "runuser -u postgres -- psql -At -c \"SELECT rolsuper, rolcreaterole, rolcreatedb, "
        "pg_has_role('postgres_exporter', 'pg_monitor', 'MEMBER') FROM pg_roles WHERE rolname = 'postgres_exporter'\"")
    assert row == "f|f|f|t"


def test_redis_exporter_reports_real_metrics(host):
    text = metrics(host, 9121)
    assert value(text, "redis_up") == 1
    assert value(text, "redis_connected_clients") >= 1


def test_units_are_sandboxed(host):
    for unit in ("postgres_exporter", "redis_exporter"):
        content = host.file(f"/etc/systemd/system/{unit}.service").content_string
        assert "ProtectSystem=strict" in content and f"User={unit}" in content
        score = exposure(host, unit)
        print(f"{unit} exposure score on {host.backend.name}: {score}")
        assert score <= 2.5
