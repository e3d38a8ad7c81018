"""A component's steps without the module wrapper (plugins/plugin_utils/stack_remote.py): the
program the host's Python reads from stdin runs the same steps as the stack_component module,
on a Python that has no Ansible, and Ansible takes that way only where it would pipe the module."""
import grp
import json
import os
import pwd
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
USER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name


@pytest.fixture(scope="module")
def remote():
    from ansible_collections.monstack.observability.plugins.plugin_utils import stack_remote
    return stack_remote


@pytest.fixture(scope="module")
def spec():
    from ansible_collections.monstack.observability.plugins.module_utils.stack_component import ARGUMENT_SPEC
    return ARGUMENT_SPEC


def config_args(dest, content):
    return {"steps": ["configure"], "config": {"files": [
        {"dest": str(dest), "content": content, "owner": USER, "group": GROUP, "mode": "0640"}]}}


def on_host(remote, spec, args, python, check_mode=False, diff=False):
    """Run the program as the host would (stdin, no arguments) with the given Python."""
    program = remote.program(remote.checked(spec, args), check_mode, diff)
    proc = subprocess.run([python], input=program, capture_output=True, text=True, check=False,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, cwd="/")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def bare_python():
    """A Python without Ansible, as on a managed host: the system's, where it has none."""
    for candidate in ("/usr/bin/python3", sys.executable):
        if shutil.which(candidate) and subprocess.run(
                [candidate, "-c", "import ansible"], capture_output=True, check=False).returncode != 0:
            return candidate
    pytest.skip("no Python without Ansible on this machine")


def test_the_program_runs_the_steps_on_a_python_without_ansible(remote, spec, tmp_path):
    python = bare_python()
    dest = tmp_path / "conf.yml"
    first = on_host(remote, spec, config_args(dest, "a: 1\n"), python, diff=True)
    assert first["changed"] is True and first["config"]["created"] == [str(dest)]
    assert dest.read_text() == "a: 1\n" and oct(dest.stat().st_mode & 0o777) == "0o640"
    assert first["config"]["diff"], "diff asked for, none returned"
    again = on_host(remote, spec, config_args(dest, "a: 1\n"), python)
    assert again["changed"] is False and again["switched"] is False
    # check mode: what would change, nothing written
    checked = on_host(remote, spec, config_args(dest, "a: 2\n"), python, check_mode=True)
    assert checked["changed"] is True and dest.read_text() == "a: 1\n"


def test_a_failed_step_comes_back_as_a_failure_naming_it(remote, spec, tmp_path):
    args = {"steps": ["configure"], "config": {"files": [{"dest": str(tmp_path / "x.yml")}]}}
    result = on_host(remote, spec, args, bare_python())
    assert result["failed"] is True and "no content" in result["msg"]


def test_arguments_are_checked_and_completed_on_the_controller_as_the_module_would(remote, spec):
    params = remote.checked(spec, {"steps": ["service"], "service": {"name": "loki", "ready_timeout": "30"}})
    # defaults filled in and types converted, as AnsibleModule does on the host
    assert params["defer_switch"] is False and params["service"]["ready_timeout"] == 30
    assert params["service"]["enabled"] is True
    from ansible.errors import AnsibleActionFail
    with pytest.raises(AnsibleActionFail, match="upgrade"):
        remote.checked(spec, {"steps": ["upgrade"]})
    with pytest.raises(AnsibleActionFail, match="bogus"):
        remote.checked(spec, {"steps": [], "bogus": 1})


def playbook(tmp_path, dest, content, pipelining):
    book = tmp_path / "play.yml"
    book.write_text(textwrap.dedent(f"""\
        - hosts: localhost
          gather_facts: false
          tasks:
            - monstack.observability.stack_component:
                steps: [configure]
                config:
                  files: [{{dest: "{dest}", content: "{content}", owner: {USER}, group: {GROUP}, mode: "0640"}}]
              register: out
            - ansible.builtin.copy: {{content: "{{{{ out | to_json }}}}", dest: "{tmp_path}/result.json"}}
        """))
    env = dict(os.environ, ANSIBLE_PIPELINING=str(pipelining), ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    proc = subprocess.run(["ansible-playbook", "-vvv", "-i", "localhost,", "-c", "local",
                           "-e", f"ansible_python_interpreter={sys.executable}", str(book)], cwd=ROOT,
                          env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    # the module wrapper announces its file; the program does not
    return json.loads((tmp_path / "result.json").read_text()), "stack_component.py" in proc.stdout


def test_ansible_takes_the_short_way_only_where_it_would_pipe_the_module(tmp_path):
    dest = tmp_path / "conf.yml"
    result, module = playbook(tmp_path, dest, "a: 1", pipelining=True)
    assert not module and result["changed"] is True and dest.read_text() == "a: 1"
    # without pipelining the module runs, with the same outcome for the same files
    result, module = playbook(tmp_path, dest, "a: 1", pipelining=False)
    assert module and result["changed"] is False
    result, module = playbook(tmp_path, dest, "a: 2", pipelining=True)
    assert not module and result["changed"] is True and result["config"]["content_changed"] == [str(dest)]


def test_secret_arguments_are_masked_wherever_they_show_in_a_result(remote, spec):
    """As AnsibleModule masks them on the host: here the result comes back to the controller."""
    import types
    answer = {"changed": False, "msg": "http://u:basic-auth-pw@127.0.0.1/ refused", "config": {"note": "hunter2-topsecret"}}
    sent = []
    action = types.SimpleNamespace(
        _task=types.SimpleNamespace(check_mode=False, diff=False),
        _connection=types.SimpleNamespace(_shell=types.SimpleNamespace(
            build_module_command=lambda env, shebang, cmd: f"{env} {shebang[2:]} {cmd}")),
        _compute_environment_string=lambda: "",
        _low_level_execute_command=lambda cmd, sudoable, in_data: sent.append((cmd, in_data)) or {
            "rc": 0, "stdout": json.dumps(answer), "stderr": ""},
        _parse_returned_data=lambda res, profile: json.loads(res["stdout"]))
    args = {"steps": ["configure", "service"], "config": {
        "files": [{"dest": "/etc/x/pw", "secret": True}], "secrets": {"/etc/x/pw": "hunter2-topsecret"}},
        "service": {"name": "x", "url_password": "basic-auth-pw"}}
    result = remote.run(action, spec, args, {}, "/usr/bin/python3")
    assert sent[0][0].strip() == "/usr/bin/python3" and b"PAYLOAD" in sent[0][1]
    assert "basic-auth-pw" not in json.dumps(result) and "hunter2-topsecret" not in json.dumps(result)
    assert result["msg"].startswith("http://u:") and result["changed"] is False
