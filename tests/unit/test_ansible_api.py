"""The collection uses Ansible's public names only: a private one (an underscore module or name,
ansible._internal) can go in any release, as remove_internal_keys went in ansible-core 2.21 and
broke every run. Every Python file of the collection and of the harness Ansible loads is read."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The modules plugin authors are given (the plugin base classes, errors, display, module_utils,
# the templating and variable helpers of the plugin guide, the builtin filters, the inventory
# entities a vars plugin is handed); anything else of Ansible's, such as ansible.vars.clean, is
# its own business and can change in any release.
PUBLIC = ("ansible.errors", "ansible.module_utils", "ansible.plugins.action", "ansible.plugins.callback",
          "ansible.plugins.filter.core", "ansible.plugins.lookup", "ansible.plugins.vars", "ansible.template",
          "ansible.utils.display", "ansible.utils.vars", "ansible.inventory.group", "ansible.inventory.host",
          "ansible.parsing.dataloader")
SOURCES = sorted(p for d in ("plugins", "tests/harness", "benchmarks") for p in (ROOT / d).rglob("*.py"))


def private_imports(path):
    """(line, name) of every import of a private Ansible module or name in path."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "ansible":
            groups = [(node.module, [node.module] + [f"{node.module}.{alias.name}" for alias in node.names])]
        elif isinstance(node, ast.Import):
            groups = [(alias.name, [alias.name]) for alias in node.names if alias.name.split(".")[0] == "ansible"]
        else:
            continue
        for module, names in groups:
            public = any(module == p or module.startswith(p + ".") for p in PUBLIC)
            found += [(node.lineno, name) for name in names
                      if not public or any(part.startswith("_") for part in name.split("."))]
    return found


def test_the_collection_imports_no_private_ansible_name():
    assert SOURCES, "no sources found"
    bad = {f"{path.relative_to(ROOT)}:{line}": name for path in SOURCES for line, name in private_imports(path)}
    assert not bad, f"private Ansible names imported: {bad}"


def test_the_check_finds_a_private_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from ansible.vars.clean import remove_internal_keys\n"
                      "from ansible.executor.module_common import _get_shebang\n"
                      "import ansible._internal._templating\n"
                      "from ansible.module_utils.basic import AnsibleModule\n")
    assert [name for _, name in private_imports(sample)] == [
        "ansible.vars.clean", "ansible.vars.clean.remove_internal_keys",
        "ansible.executor.module_common", "ansible.executor.module_common._get_shebang",
        "ansible._internal._templating"]


def test_the_collection_version_is_the_changelogs_newest():
    """`ansible-galaxy collection build` names the release galaxy.yml's version: the one the
    CHANGELOG describes at its top."""
    import re

    import yaml
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    newest = re.search(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), re.M).group(1)
    assert version == newest
