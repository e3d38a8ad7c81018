#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Take components off a host from the record of what they installed (module_utils/stack_remove.py)."""
from __future__ import annotations

DOCUMENTATION = r"""
module: stack_remove
short_description: Remove stack components from a host, and name those left installed outside their groups
description:
  - Every full run of a component (M(monstack.observability.stack_component)) keeps on the host a record of
    what it installed, in C(/var/lib/monstack/components/<component>.json). This module reads those records.
  - For each component of I(remove) it stops and disables the unit, and deletes the unit file and its
    drop-ins, the links in the bin directory that point into its releases, its release directory, its
    config files and directories, a pending reload or restart, its user and (when no other user has it) its
    group, and the record. The data directories (those created for the service user outside the config)
    stay unless I(purge) is set.
  - A component the host has a record or a unit of, that is neither in I(runs) nor in I(remove), is left
    alone and named in a warning.
  - >-
    A component of I(remove) the host has no record of is already gone (nothing to do), unless its unit
    file is there (deployed before the records were kept); that fails, saying how to remove it.
  - Check mode reports what would go and changes nothing.
options:
  remove:
    type: list
    elements: str
    default: []
    description: Components to take off this host (the inventory's C(stack_remove)).
  runs:
    type: list
    elements: str
    default: []
    description: Components this host runs (in one of its groups); one also in I(remove) is an error.
  known:
    type: list
    elements: str
    default: []
    description: Every component of the registry, to find units left from before the records were kept.
  purge:
    type: bool
    default: false
    description: Delete the data directories too (the inventory's C(stack_remove_purge)).
  record_dir:
    type: path
    default: /var/lib/monstack/components
    description: Where the records are kept.
author: monitoring-stack
"""

EXAMPLES = r"""
# site.yml's last task on every host, with the inventory's lists:
- name: Remove the components this host no longer runs
  monstack.observability.stack_remove:
    remove: "{{ stack_remove }}"
    purge: "{{ stack_remove_purge }}"
    runs: [node_exporter, prometheus]
    known: "{{ stack_deploy_order }}"

# Take redis_exporter off a host and delete what it kept too
- name: Remove redis_exporter with its data
  monstack.observability.stack_remove:
    remove: [redis_exporter]
    purge: true
"""

RETURN = r"""
removed:
  description: The components taken off (or that would be, in check mode).
  returned: always
  type: list
  elements: str
components:
  description: >-
    Per component removed: paths (what was deleted), kept (data directories left), stopped (it was running),
    user_removed and group_removed (names, or null).
  returned: always
  type: dict
left_over:
  description: Components still installed on this host that it runs in none of its groups and that are not in I(remove).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.monstack.observability.plugins.module_utils.stack_remove import ARGUMENT_SPEC, run
from ansible_collections.monstack.observability.plugins.module_utils.stack_step import StepError


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = run(module.params, module.check_mode)
    except StepError as exc:
        module.fail_json(msg=exc.msg, **exc.result)
    for warning in result.pop("warnings"):
        module.warn(warning)
    if module._diff and result["removed"]:  # pylint: disable=protected-access
        result["diff"] = [{"before_header": f"{name} on this host", "after_header": f"{name} removed",
                           "before": "".join(f"{path}\n" for path in outcome["paths"]), "after": ""}
                          for name, outcome in result["components"].items() if outcome["paths"]]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
