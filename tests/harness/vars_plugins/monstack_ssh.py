"""Vars plugin of the Molecule scenarios (not of the roles): their hosts over SSH.

Once molecule/_shared/prepare.yml has given the scenario's containers the harness's key, it
records how to reach each one in $MOLECULE_EPHEMERAL_DIRECTORY/ssh-hosts.yml
(tests/harness/ssh_hosts.py). This plugin gives those hosts their SSH connection variables,
which win over the podman connection Molecule's inventory file names (host vars of a vars plugin
rank above an inventory file's), and stack_address set to the host's name, so that the stack
keeps naming each host as the scenario's network resolves it rather than by ansible_host.
Hosts not in that file, and runs outside Molecule, keep theirs. Enabled by ANSIBLE_VARS_PLUGINS/ANSIBLE_VARS_ENABLED in .config/molecule/config.yml.
"""
from __future__ import annotations

import os
import sys

from ansible.inventory.host import Host
from ansible.plugins.vars import BaseVarsPlugin

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ssh_hosts import load  # noqa: E402  pylint: disable=wrong-import-position

DOCUMENTATION = """
    name: monstack_ssh
    short_description: the Molecule scenarios' hosts over SSH
    description: Connection variables of the hosts listed in $MOLECULE_EPHEMERAL_DIRECTORY/ssh-hosts.yml.
    options:
      stage:
        ini: [{key: stage, section: vars_monstack_ssh}]
        env: [{name: ANSIBLE_VARS_PLUGIN_STAGE}]
"""


class VarsModule(BaseVarsPlugin):
    REQUIRES_ENABLED = True

    def __init__(self):
        super().__init__()
        # (path, modification time) -> what the file says: asked for every host and task, read
        # again only once prepare (re)writes it in the middle of its own run
        self._read = (None, None, {})

    def get_vars(self, loader, path, entities, cache=True):
        directory = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
        hosts = [entity for entity in entities if isinstance(entity, Host)]
        if not directory or not hosts:
            return {}
        found = {}
        for host in hosts:
            found.update(self._reachable(os.path.join(directory, "ssh-hosts.yml")).get(host.name, {}))
        return found

    def _reachable(self, file):
        try:
            stamp = os.stat(file).st_mtime_ns
        except FileNotFoundError:
            return {}
        if self._read[:2] != (file, stamp):
            self._read = (file, stamp, load(file))
        return self._read[2]
