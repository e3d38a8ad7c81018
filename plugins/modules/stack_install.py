#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Target side of the shared installer (see plugins/action/stack_install.py).

One call does the whole host-side job: the service's group and system user, its
directories, and the versioned install directory behind stable links.  Without
`archive` it only reports whether the requested release is already in place, so
that the controller pushes an archive only to hosts that need it.
"""
from __future__ import annotations

DOCUMENTATION = r"""
module: stack_install
short_description: Install a release archive into a versioned directory behind stable links
description:
  - Creates the service group, system user and directories.
  - Unpacks a verified archive into C(<root>/<component>/<version>-linux-<arch>) and points
    C(<root>/<component>/current) and the links in C(bin_dir) at it; keeps the newest C(keep) releases.
  - Without I(archive), reports C(needs_archive) when the release is not installed yet.
options:
  component: {type: str, required: true, description: Component name.}
  version: {type: str, required: true, description: Release version.}
  sha256: {type: dict, default: {}, description: Expected archive hash per architecture (amd64/arm64), or empty.}
  archive: {type: path, description: Path of the pushed archive on the host.}
  archive_sha256: {type: str, description: Verified hash of I(archive).}
  source: {type: str, description: Where the archive came from (recorded in the marker).}
  format: {type: str, choices: [tar.gz, zip], default: tar.gz, description: Archive format.}
  strip: {type: str, default: '', description: Top directory inside the archive to strip.}
  rename: {type: dict, default: {}, description: Archive member to name in the install directory.}
  links: {type: dict, default: {}, description: Link name in I(bin_dir) to path inside the install directory.}
  requires:
    type: dict
    default: {}
    description: >-
      Paths the unpacked release must hold besides the linked binaries, each with the reason
      given when it is missing (the install then fails and the installed release stays).
  root: {type: path, default: /opt/monitoring, description: Install root.}
  bin_dir: {type: path, default: /usr/local/bin, description: Where the links go.}
  keep: {type: int, default: 2, description: Installed releases kept for rollback.}
  user: {type: str, description: System user to create (none when empty).}
  group: {type: str, description: Group of the user (defaults to the user name).}
  home: {type: path, default: /nonexistent, description: Home directory recorded for the user (not created).}
  groups: {type: list, elements: str, default: [], description: Existing supplementary groups to add the user to.}
  directories: {type: list, elements: dict, default: [], description: 'Directories, each {path, owner, group, mode}.'}
author: monitoring-stack
"""

EXAMPLES = r"""
# Usually through the stack_component action (which verifies the archive on the controller
# and pushes it); alone, with an archive already on the host:
- name: Install node_exporter 1.9.1 with its user and directories
  monstack.observability.stack_install:
    component: node_exporter
    version: 1.9.1
    archive: /tmp/node_exporter-1.9.1.linux-amd64.tar.gz
    archive_sha256: "{{ node_exporter_sha256 }}"
    strip: node_exporter-1.9.1.linux-amd64
    links: {node_exporter: node_exporter}
    user: node_exporter
    directories:
      - {path: /etc/node_exporter, owner: root, group: node_exporter, mode: "0750"}
"""

RETURN = r"""
arch:
  description: The host's architecture (amd64 or arm64).
  returned: always
  type: str
needs_archive:
  description: The release is not installed and no archive was given.
  returned: always
  type: bool
path:
  description: The release's install directory.
  returned: always
  type: str
installed:
  description: The archive was unpacked in this run.
  returned: when it was
  type: bool
switched_release:
  description: C(current) points (or would point, in check mode) at another release than before; the service
    restarts.
  returned: when the release is in place or would be
  type: bool
previous_release:
  description: The release C(current) pointed at before this switch (kept, beyond I(keep), for a rollback).
  returned: when the release switched from an installed one
  type: str
removed:
  description: Older releases removed beyond I(keep).
  returned: when not in check mode
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.monstack.observability.plugins.module_utils.stack_install import ARGUMENT_SPEC, step
from ansible_collections.monstack.observability.plugins.module_utils.stack_step import StepError


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        module.exit_json(**step(module.params, module.check_mode))
    except StepError as exc:
        module.fail_json(msg=exc.msg, **exc.result)


if __name__ == "__main__":
    main()
