"""Argument specs, role defaults and role READMEs cannot drift apart.

For every role: the variables in meta/argument_specs.yml and in defaults/main.yml are the
same names; a documented default equals the real one (a default computed by a template is
described in words instead, so the spec states none); a role README names no variable that
exists nowhere."""
import importlib
import os
import pathlib
import re

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLES = sorted(p.parent.parent.name for p in ROOT.glob("roles/*/meta/argument_specs.yml"))
# read from hostvars by the shared filters; they have no role default on purpose (per host)
INVENTORY_VARS = {"stack_address", "stack_app_metrics", "stack_required_groups"}


def spec_options(role):
    specs = yaml.safe_load((ROOT / "roles" / role / "meta/argument_specs.yml").read_text())["argument_specs"]
    # the stack role's one entry is `settings` (its argument_specs.yml says why)
    return (specs["main"] if "main" in specs else specs["settings"])["options"]


def defaults(role):
    path = ROOT / "roles" / role / "defaults/main.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


@pytest.mark.parametrize("role", ROLES)
def test_specs_and_defaults_name_the_same_variables(role):
    spec, real = set(spec_options(role)), set(defaults(role))
    assert spec - real == set(), f"{role}: in argument_specs.yml but not defaults/main.yml"
    assert real - spec == set(), f"{role}: in defaults/main.yml but not argument_specs.yml"


@pytest.mark.parametrize("role", ROLES)
def test_documented_defaults_are_the_real_ones(role):
    real = defaults(role)
    for name, option in spec_options(role).items():
        templated = "{{" in yaml.safe_dump(real.get(name))
        if templated:
            assert "default" not in option, f"{role}: {name} is computed; describe it instead of stating a default"
        else:
            assert "default" in option, f"{role}: {name} has a default ({real.get(name)!r}) the spec does not state"
            assert option["default"] == real[name], f"{role}: {name}: spec says {option['default']!r}, defaults say {real[name]!r}"


def known_names():
    names = set(INVENTORY_VARS)
    for role in (p.name for p in (ROOT / "roles").iterdir() if p.is_dir()):
        names |= set(defaults(role))
        vars_file = ROOT / "roles" / role / "vars/main.yml"
        if vars_file.exists():
            names |= set(yaml.safe_load(vars_file.read_text()) or {})
    for plugin in (ROOT / "plugins").glob("*/*.py"):
        names |= set(re.findall(r'"(\w+)":', plugin.read_text())) | {plugin.stem}
    return names


@pytest.mark.parametrize("role", sorted(p.parent.name for p in ROOT.glob("roles/*/README.md")))
def test_readmes_document_only_variables_that_exist(role):
    text = (ROOT / "roles" / role / "README.md").read_text()
    prefixes = tuple(f"{r}_" for r in ROLES)
    mentioned = set(re.findall(r"`(\w+)", text)) | set(re.findall(r"^\s*(\w+):", text, re.M))
    unknown = sorted(n for n in mentioned if n.startswith(prefixes) and not n.endswith("_") and n not in known_names())
    assert unknown == [], f"roles/{role}/README.md documents variables that do not exist: {unknown}"


def test_variable_reference_is_generated_from_the_current_specs():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(ROOT / "tools/spec_docs.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("role", ROLES)
def test_ansible_doc_reads_every_role_spec(role):
    import subprocess

    proc = subprocess.run(["ansible-doc", "--type", "role", "--roles-path", str(ROOT / "roles"), role],
                          capture_output=True, text=True, timeout=60)
    # the stack role's one entry is `settings` (its argument_specs.yml says why); the word alone
    # would also match a checkout path such as /work/main
    entry = "settings" if role == "stack" else "main"
    # ansible-core 2.19 marks the name *main*, 2.21 in bold (ANSI)
    plain = re.sub(r"\x1b\[[0-9;]*m|\*", "", proc.stdout)
    assert proc.returncode == 0 and f"ENTRY POINT: {entry} " in plain, proc.stdout[:300] + proc.stderr[-1000:]


MODULES = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("stack_*.py"))


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders_every_module_with_examples_and_return_values(module):
    import subprocess

    proc = subprocess.run(["ansible-doc", f"monstack.observability.{module}"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env={**os.environ, "ANSIBLE_NOCOLOR": "1"})
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert "EXAMPLES:" in proc.stdout and "RETURN VALUES:" in proc.stdout, proc.stdout[-500:]


@pytest.mark.parametrize("module", MODULES)
def test_every_module_documents_exactly_the_options_its_spec_takes(module):
    import ast

    tree = ast.parse((ROOT / "plugins" / "modules" / f"{module}.py").read_text())
    docs = {node.targets[0].id: node.value.value for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)}
    documented = set(yaml.safe_load(docs["DOCUMENTATION"])["options"])
    spec = importlib.import_module(f"ansible_collections.monstack.observability.plugins.module_utils.{module}").ARGUMENT_SPEC
    # stack_component's `role` is its action's (the module never sees it)
    assert documented - {"role"} == set(spec), (sorted(documented), sorted(spec))
