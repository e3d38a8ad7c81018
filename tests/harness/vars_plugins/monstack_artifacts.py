"""Vars plugin of the lab, the Molecule scenarios and the benchmark (not of the roles).

Gives every host the artifact source scripts/setup chose (tests/harness/artifact_source.py):
the local mirror's URL and the versions it carries, or nothing in upstream mode. Enabled by
ANSIBLE_VARS_PLUGINS/ANSIBLE_VARS_ENABLED (scripts/lib.sh, .config/molecule/config.yml);
listed before host_group_vars so that an inventory's own group_vars still win.
"""
from __future__ import annotations

import os
import sys

from ansible.errors import AnsibleError
from ansible.inventory.group import Group
from ansible.plugins.vars import BaseVarsPlugin

# the harness's one reader of the choice lives beside this directory
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from artifact_source import load_source, source_file  # noqa: E402  pylint: disable=wrong-import-position

DOCUMENTATION = """
    name: monstack_artifacts
    short_description: the artifact source of the lab and tests
    description: Loads $MONSTACK_STATE/artifact-source.yml (default ~/.cache/monitoring-stack) for group all.
    options:
      stage:
        ini: [{key: stage, section: vars_monstack_artifacts}]
        env: [{name: ANSIBLE_VARS_PLUGIN_STAGE}]
"""


class VarsModule(BaseVarsPlugin):
    REQUIRES_ENABLED = True

    def get_vars(self, loader, path, entities, cache=True):
        if not any(isinstance(entity, Group) and entity.name == "all" for entity in entities):
            return {}
        path = source_file()
        try:
            return load_source(path) or {}
        except OSError as exc:
            raise AnsibleError(f"monstack_artifacts: cannot read {path} ({exc}); run scripts/setup first") from exc
