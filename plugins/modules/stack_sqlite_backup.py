#!/usr/bin/python
# -*- coding: utf-8 -*-
"""An online copy of an sqlite database (module_utils/stack_sqlite_backup.py)."""
from __future__ import annotations

DOCUMENTATION = r"""
module: stack_sqlite_backup
short_description: Copy an sqlite database while its program keeps writing to it
description:
  - Copies the database I(src) to I(dest) with sqlite's online backup, so the copy holds one consistent
    state of the database even while the program that owns it (Grafana) writes to it. A plain file copy
    of a live database can catch it halfway through a transaction.
  - The copy is written next to I(dest) and replaces it once complete; it is readable by root only (0600).
  - Needs Python's sqlite3 module on the host (part of Python's standard library on Debian, Ubuntu and
    RHEL).
  - Check mode copies nothing and reports a change.
options:
  src: {type: path, required: true, description: The live database file.}
  dest: {type: path, required: true, description: Where the copy goes (its directory must exist).}
author: monitoring-stack
"""

EXAMPLES = r"""
- name: Copy Grafana's database while Grafana runs
  monstack.observability.stack_sqlite_backup:
    src: /var/lib/grafana/grafana.db
    dest: /var/lib/monstack/backup/20261207T101500Z/grafana.db
"""

RETURN = r"""
dest:
  description: The copy.
  returned: always
  type: str
size:
  description: The copy's size in bytes.
  returned: when not in check mode
  type: int
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.monstack.observability.plugins.module_utils.stack_sqlite_backup import (ARGUMENT_SPEC, BackupError,
                                                                                                sqlite_copy)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if module.check_mode:
        module.exit_json(changed=True, dest=module.params["dest"])
    try:
        size = sqlite_copy(module.params["src"], module.params["dest"])
    except (BackupError, OSError) as exc:
        module.fail_json(msg=f"Cannot copy the database: {exc}")
    module.exit_json(changed=True, dest=module.params["dest"], size=size)


if __name__ == "__main__":
    main()
