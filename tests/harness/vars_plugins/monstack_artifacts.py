"""Vars plugin of the lab, the Molecule scenarios and the benchmark (not of the roles).

Gives every host the artifact source scripts/setup chose (tests/harness/artifact_source.py):
the local mirror's URL and the versions it carries, or nothing in upstream mode. Enabled by
ANSIBLE_VARS_PLUGINS/ANSIBLE_VARS_ENABLED (scripts/lib.sh, .config/molecule/config.yml);
listed before host_group_vars so that an inventory's own group_vars still win.
"""
from __future__ import annotations

import os

import yaml
from ansible.errors import AnsibleError
from ansible.inventory.group import Group
from ansible.plugins.vars import BaseVarsPlugin

DOCUMENTATION = """
    name: monstack_artifacts
    short_description: the artifact source of the lab and tests
    description: Loads $MONSTACK_STATE/artifact-source.yml (default ~/.cache/monitoring-stack) for group all.
    options:
      stage:
        ini: [{key: stage, section: vars_monstack_artifacts}]
        env: [{name: ANSIBLE_VARS_PLUGIN_STAGE}]
"""


def source_file() -> str:
    state = os.environ.get("MONSTACK_STATE") or os.path.expanduser("~/.cache/monitoring-stack")
    return os.path.join(state, "artifact-source.yml")


class VarsModule(BaseVarsPlugin):
    REQUIRES_ENABLED = True

    def get_vars(self, loader, path, entities, cache=True):
        if not any(isinstance(entity, Group) and entity.name == "all" for entity in entities):
            return {}
        path = source_file()
        try:
            with open(path, encoding="utf-8") as handle:
                return yaml.safe_load(handle) or {}
        except OSError as exc:
            raise AnsibleError(f"monstack_artifacts: cannot read {path} ({exc}); run scripts/setup first") from exc
