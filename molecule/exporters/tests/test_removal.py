"""Taking postgres_exporter off a host (stack_remove, docs/operations.md): a host that leaves the
group is named while the exporter stays; --check says what would go and touches nothing; the real
run takes the unit, binary, config and user away, keeps the data, and every Prometheus loses the
target in the same run; the next run changes nothing. On a host of its own, so the scenario's
other tests keep theirs."""
import pathlib
import subprocess

import yaml

from conftest import get_host, host_names, new_host, run_playbook

LEAVER = "exp-leaver"
# something to monitor without a local PostgreSQL: a probe of db13 (its login refused, a warning only)
PROBE = {"postgres_exporter_local_instance": False, "postgres_exporter_create_db_user": False,
         "postgres_exporter_instances": [{"name": "db13-probe", "target": "db13:5432/postgres", "user": "monitor",
                                          "password": "not-the-password", "sslmode": "disable"}]}
INSTALLED = ["/etc/systemd/system/postgres_exporter.service", "/usr/local/bin/postgres_exporter",
             "/opt/monitoring/postgres_exporter", "/etc/postgres_exporter"]


def out_of_every_group(tmp_path, joined, **variables):
    """An inventory file that has the host in no group, reached as in joined (new_host's inventory
    file), with PROBE and variables as its vars."""
    path = tmp_path / "leaver-out.yml"
    host = {**yaml.safe_load(pathlib.Path(joined).read_text())["all"]["hosts"][LEAVER], **PROBE, **variables}
    path.write_text(yaml.safe_dump({"all": {"hosts": {LEAVER: host}}}))
    return str(path)


def present(leaver):
    return {path for path in INSTALLED if leaver.file(path).exists}


def scraped_by_prometheus(mon):
    """Whether the Prometheus of the scenario has a target or a config line naming the host's
    postgres_exporter (its node_exporter stays: every host runs one in this scenario)."""
    targets = mon.check_output("curl -fsS --noproxy '*' http://127.0.0.1:9090/api/v1/targets?state=active")
    return f"{LEAVER}:9187" in targets or mon.run(f"grep -rqs {LEAVER}:9187 /etc/prometheus").rc == 0


def test_a_host_taken_out_of_postgres_exporter_and_removed_keeps_nothing_but_its_data(tmp_path):
    mon = get_host(host_names("prometheus")[0])
    joined = new_host(LEAVER, "monstack-exp", tmp_path, ["postgres_exporter"], PROBE)
    limit = f"{LEAVER},{host_names('prometheus')[0]}"
    try:
        deployed = run_playbook("converge.yml", "-i", joined, limit=limit)
        assert deployed.returncode == 0, deployed.output[-3000:]
        leaver = get_host(LEAVER)
        assert present(leaver) == set(INSTALLED) and scraped_by_prometheus(mon)

        # out of the group, not removed: named, left alone
        left = run_playbook("converge.yml", "-i", out_of_every_group(tmp_path, joined), "--check", limit=limit)
        assert left.returncode == 0, left.output[-3000:]
        assert "postgres_exporter is still installed on this host, but the host is in none of its groups" in \
            " ".join(left.output.split()), left.output[-3000:]

        # check mode says what would go, and nothing goes
        removal = out_of_every_group(tmp_path, joined, stack_remove=["postgres_exporter"])
        check = run_playbook("converge.yml", "-i", removal, "--check", limit=limit)
        assert check.returncode == 0, check.output[-3000:]
        assert f"{LEAVER} postgres_exporter: removed (unit, binaries, releases, config, user) (check mode" in check.output, \
            check.output[-3000:]
        assert present(leaver) == set(INSTALLED) and leaver.service("postgres_exporter").is_running

        real = run_playbook("converge.yml", "-i", removal, limit=limit)
        assert real.returncode == 0, real.output[-3000:]
        assert present(leaver) == set(), "unit, binary, release and config are gone"
        assert not leaver.user("postgres_exporter").exists and not leaver.group("postgres_exporter").exists
        assert leaver.run("systemctl cat postgres_exporter.service").rc != 0
        assert not scraped_by_prometheus(mon), "the target left every Prometheus in the same run"

        again = run_playbook("converge.yml", "-i", removal, limit=limit)
        assert again.returncode == 0, again.output[-3000:]
        recap = again.output.split("PLAY RECAP", 1)[1]
        assert all("changed=0" in line for line in recap.splitlines() if ": ok=" in line), recap
    finally:
        subprocess.run(["podman", "rm", "-f", LEAVER], capture_output=True)
