"""Every variable of every role, set to a wrong type or a malformed value, is refused before
any change with a message naming it (plugins/action/stack_preflight.py).

Parametrised over the argument specs themselves, so a new option is covered the day it is
added; the last tests run real roles to prove each one calls the check first."""
import json
import os
import pathlib
import subprocess

import pytest
import yaml

from conftest import load

ROOT = pathlib.Path(__file__).resolve().parents[2]
preflight = load(ROOT / "plugins/action/stack_preflight.py", "stack_preflight_action")
ROLES = sorted(p.parent.parent.name for p in ROOT.glob("roles/*/meta/argument_specs.yml"))
# what each type is not: a user's likely mistake for it
WRONG = {"str": {"a": 1}, "path": ["/etc"], "int": "many", "bool": "maybe", "list": "a,b", "dict": "key=value"}
# a malformed value for each format kind
MALFORMED = {"listen": "nohost", "duration": "15 days", "size": "50 gigs", "url": "example.org/x", "path": "etc/x",
             "version": "latest", "group": "web servers", "file_names": {"../escape": "x"}, "words": ["Cpu-Load"],
             "redis_url": "localhost:6379", "pg_role": "Robert'); DROP TABLE",
             "vm_retention": "forever", "label": "replica-name"}


def options(role):
    return preflight.load_options(ROOT / "roles" / role / "meta/argument_specs.yml")


def preflight_formats(role):
    """The formats the role's checks add to the name rules (_<role>_preflight in vars/main.yml)."""
    path = ROOT / "roles" / role / "vars/main.yml"
    role_vars = (yaml.safe_load(path.read_text()) if path.exists() else None) or {}
    return (role_vars.get(f"_{role}_preflight") or {}).get("formats") or {}


def cases(kind):
    for role in ROLES:
        formats = preflight_formats(role)
        for name, spec in options(role).items():
            if kind == "type" and spec.get("type", "str") in WRONG:
                yield pytest.param(role, name, WRONG[spec.get("type", "str")], id=name)
            fmt = preflight.format_of(name, formats, spec)
            if kind == "format" and fmt:
                yield pytest.param(role, name, MALFORMED[fmt], id=name)


@pytest.mark.parametrize("role, name, value", list(cases("type")))
def test_a_wrong_type_is_refused_naming_the_variable(role, name, value):
    problems = preflight.check(options(role), {name: value}, preflight_formats(role))
    assert len(problems) == 1 and problems[0].startswith(f"{name} must be a "), problems


@pytest.mark.parametrize("role, name, value", list(cases("format")))
def test_a_malformed_value_is_refused_naming_the_variable(role, name, value):
    problems = preflight.check(options(role), {name: value}, preflight_formats(role))
    assert len(problems) == 1 and problems[0].startswith(f"{name} must "), problems


@pytest.mark.parametrize("role", ROLES)
def test_every_text_option_has_a_format_or_is_free_text(role):
    """A new str option needs a format (by name or in the role's preflight) or must be
    declared free text: nothing is left unchecked by accident."""
    import re

    formats = preflight_formats(role)
    unchecked = [name for name, spec in options(role).items() if spec.get("type", "str") in ("str", "path")
                 and not preflight.format_of(name, formats, spec) and not re.search(preflight.FREE_TEXT, name)
                 and not spec.get("choices")]
    assert unchecked == []


@pytest.mark.parametrize("role", ROLES)
def test_the_defaults_themselves_pass(role):
    defaults = yaml.safe_load((ROOT / "roles" / role / "defaults/main.yml").read_text()) or {}
    plain = {k: v for k, v in defaults.items() if "{{" not in json.dumps(v)}
    assert preflight.check(options(role), plain, preflight_formats(role)) == []


def test_secrets_are_never_shown_and_pairs_go_together():
    spec = {"x_web_basic_auth_users": {"type": "dict"}, "x_password": {"type": "str"},
            "x_web_tls_cert": {"type": "str", "default": ""}, "x_web_tls_key": {"type": "str", "default": ""}}
    problems = preflight.check(spec, {"x_password": ["hunter2"], "x_web_basic_auth_users": "u:hunter2"})
    assert problems == ["x_web_basic_auth_users must be a dict, got str", "x_password must be a str, got list"]
    assert preflight.check(spec, {"x_web_tls_cert": "PEM", "x_web_tls_key": ""},
                           together=[["x_web_tls_cert", "x_web_tls_key"]]) == [
        "x_web_tls_cert and x_web_tls_key go together: set all or none"]


def test_strings_from_the_command_line_are_read_as_ansible_reads_them():
    spec = {"n": {"type": "int"}, "b": {"type": "bool"}, "s": {"type": "str"}}
    assert preflight.check(spec, {"n": "5", "b": "yes", "s": 9090}) == []
    assert preflight.check(spec, {"n": True}) == ["n must be a int, got bool True"]


FIRST_LISTEN = {role: next(n for n, s in options(role).items() if preflight.format_of(n, {}, s) == "listen")
                for role in ROLES if any(preflight.format_of(n, {}, s) == "listen" for n, s in options(role).items())}


def run_role(tmp_path, role, extra):
    """The real role against this machine in check mode, with extra vars; (rc, output)."""
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{"hosts": "all", "gather_facts": False, "roles": [role]}]))
    env = {k: v for k, v in os.environ.items() if k not in ("ANSIBLE_VARS_PLUGINS", "ANSIBLE_VARS_ENABLED")}
    env.update(ANSIBLE_ROLES_PATH=str(ROOT / "roles"), ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    proc = subprocess.run(["ansible-playbook", "--check", "-i", "localhost,", "-c", "local", str(play),
                           "-e", json.dumps(extra)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize("role", sorted(FIRST_LISTEN))
def test_each_role_refuses_a_wrong_type_before_touching_the_host(tmp_path, role):
    """The real role, run against this machine in check mode: it stops in its first task with
    the variable named (the built-in validation alone would accept a dict for a str)."""
    name = FIRST_LISTEN[role]
    rc, out = run_role(tmp_path, role, {name: {"host": "0.0.0.0", "port": 1}, "grafana_admin_password": "a-long-test-password"})
    assert rc != 0, out[-2000:]
    assert f"{name} must be a str, got dict" in out, out[-3000:]
    assert "changed=0" in out, out[-2000:]


def test_a_roles_own_rules_run_in_the_same_task_once_the_types_hold(tmp_path):
    """One check task per role (site.yml's check play runs it for every component of every
    host): the role's own rules (`problems`) come after the type checks, so a rule that
    assumes a list never meets an int and fails with a Jinja error instead of the variable."""
    both = {"node_exporter_collectors_enabled": ["systemd"], "node_exporter_collectors_disabled": ["systemd"]}
    rc, out = run_role(tmp_path, "node_exporter", both)
    assert rc != 0 and "node_exporter settings: collectors systemd are in both node_exporter_collectors_enabled " \
        "and node_exporter_collectors_disabled" in out, out[-3000:]
    rc, out = run_role(tmp_path, "node_exporter", dict(both, node_exporter_collectors_enabled=5))
    assert rc != 0 and "node_exporter_collectors_enabled must be a list, got int" in out, out[-3000:]
    assert "intersect" not in out, out[-3000:]
    assert len(yaml.safe_load((ROOT / "roles/node_exporter/tasks/preflight.yml").read_text())) == 1


def test_a_wrong_shared_setting_is_refused_naming_it_before_the_roles_own_checks(tmp_path):
    """The stack role's settings are checked with each role's (preflight.yml: components [stack, <role>]);
    its spec has no `main` entry, which Ansible would validate on every dependency again."""
    rc, out = run_role(tmp_path, "node_exporter", {"stack_rolling_batch": "many", "stack_artifact_mirror": "mirror.lan"})
    assert rc != 0, out[-2000:]
    assert "stack settings: stack_artifact_mirror must be an http(s):// URL, got 'mirror.lan'; " \
           "stack_rolling_batch must be a int, got str 'many'" in out, out[-3000:]
    assert "Validating arguments against arg spec 'main' - Shared plumbing" not in out
    assert "changed=0" in out, out[-2000:]
