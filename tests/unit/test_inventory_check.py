"""playbooks/inventory_check.yml, run on its own (as site.yml runs it first): it names the
variable of a malformed address instead of crashing in a template, and needs no role loaded."""
import pathlib
import subprocess

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]


def run_check(tmp_path, hostvars):
    inventory = {"all": {"hosts": {"mon": {"ansible_connection": "local", **hostvars}},
                         "children": {"prometheus": {"hosts": {"mon": None}}}}}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory))
    proc = subprocess.run(["ansible-playbook", "-i", str(path), "playbooks/inventory_check.yml"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


def test_runs_on_its_own_and_passes_a_good_inventory(tmp_path):
    rc, out = run_check(tmp_path, {})
    assert rc == 0, out[-2000:]


def test_names_the_variable_of_a_malformed_listen_address(tmp_path):
    rc, out = run_check(tmp_path, {"node_exporter_listen_address": "nohost"})
    assert rc != 0
    assert "node_exporter_listen_address is 'nohost', not host:port or a port number" in out, out[-2000:]
    assert "CapturedExceptionMarker" not in out


def test_every_install_task_passes_the_installer_its_inputs():
    """stack_install reads nothing from the play: each role hands it its catalog entry and the
    shared settings (it used to read seven variables no task passed), in its component task's
    arguments (_<role>_component)."""
    paths = sorted(ROOT.glob("roles/*/vars/main.yml"))
    components = {path.parts[-3]: yaml.safe_load(path.read_text()).get(f"_{path.parts[-3]}_component") for path in paths}
    components = {role: args for role, args in components.items() if args}
    assert len(components) == 12
    for role, args in components.items():
        task = args["install"]
        assert task["component"] == role
        assert task["catalog"] == "{{ stack_catalog.%s }}" % role, role
        assert task["settings"] == "{{ stack_install_settings }}", role


def test_every_playbook_parses_on_its_own(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"mon": {"ansible_connection": "local"}}}}))
    for path in sorted(ROOT.glob("playbooks/*.yml")):
        proc = subprocess.run(["ansible-playbook", "--syntax-check", "-i", str(inventory), str(path)], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{path.name}: {proc.stdout[-1000:]}{proc.stderr[-1000:]}"
