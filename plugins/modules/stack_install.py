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
