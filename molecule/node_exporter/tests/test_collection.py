"""The repository built as the collection monstack.observability, installed into a fresh path
and used from a playbook outside this repository (no roles_path, no ansible.cfg of ours): its
role monstack.observability.node_exporter runs on the hosts the scenario converged and finds
nothing to change, so the collection does exactly what site.yml does."""
import os
import pathlib
import re
import subprocess

import yaml

from conftest import INVENTORY, host_names

ROOT = pathlib.Path(__file__).resolve().parents[3]
TARGET = next((n for n in host_names() if n not in host_names("web_auth")), None)
testinfra_hosts = [f"podman://{TARGET}"] if TARGET else []


def test_the_built_collection_runs_its_roles_from_an_outside_playbook(host, tmp_path):
    built = subprocess.run(["ansible-galaxy", "collection", "build", "--output-path", str(tmp_path), str(ROOT)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    archive = next(tmp_path.glob("monstack-observability-*.tar.gz"))
    # --force and a path of its own: the clone itself is on Molecule's collections path as the
    # same collection, and ansible-galaxy would otherwise call it installed already
    installed = subprocess.run(["ansible-galaxy", "collection", "install", "--force", "-p", str(tmp_path / "cols"),
                                str(archive)], capture_output=True, text=True, timeout=300,
                               env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "cols")))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert (tmp_path / "cols/ansible_collections/monstack/observability/roles/node_exporter").is_dir(), installed.stdout
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "play.yml").write_text(yaml.safe_dump([{
        "name": "node_exporter from the installed collection", "hosts": "all", "gather_facts": False,
        "roles": [{"role": "monstack.observability.node_exporter"}]}]))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "cols"), ANSIBLE_ROLES_PATH=str(outside / "none"),
               ANSIBLE_CONFIG=str(outside / "ansible.cfg"))
    (outside / "ansible.cfg").write_text("[defaults]\ngathering = explicit\ninterpreter_python = /usr/bin/python3\n")
    run = subprocess.run(["ansible-playbook", "-i", INVENTORY, "--limit", TARGET, "play.yml"], cwd=outside, env=env,
                         capture_output=True, text=True, timeout=600)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    assert "monstack.observability.node_exporter : Install, configure and run node_exporter" in output, output[-3000:]
    assert re.search(rf"^{re.escape(TARGET)}\s+: ok=\d+\s+changed=0\s", output, re.M), output[-3000:]
