#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Write a service's config files as one unit: stage, validate with the real tool, swap.

The live files change only after the service's own validator accepted the staged
tree, so a rejected config leaves the running service and its files untouched and
fails the play with the validator's words.
"""
from __future__ import annotations

DOCUMENTATION = r"""
module: stack_config
short_description: Stage, validate and atomically install a set of config files
description:
  - Plans the change of a set of files (content, owner, mode; strays under I(prune) removed), applies
    it to a copy of I(root) and runs the service's own validator on that copy; only an accepted
    change replaces the live files, each atomically. In check mode nothing is written; the copy
    goes to a private temporary directory, and a validator that is not installed yet is skipped.
options:
  files:
    type: list
    elements: dict
    required: true
    description:
      - 'Each {dest, content, owner, group, mode, accept}; content of secret files comes in I(secrets).'
      - 'accept: other contents the live file may keep (a target file that keeps the scheme its
        target still serves); it is rewritten only when it holds neither.'
  secrets:
    type: dict
    default: {}
    description: dest -> content for files that hold secrets (never logged or diffed).
  root:
    type: path
    description: Config directory that I(validate) checks; it is copied to a staging directory first.
  validate:
    type: str
    description: Command run against the staged tree; C({root}) names the staging directory.
  prune:
    type: list
    elements: path
    default: []
    description: Directories whose files not listed in I(files) are removed; a glob names every directory it matches.
  when_serving:
    type: dict
    description:
      - '{address: "host:port", scheme: http|https, timeout: seconds}: write the files only once the
        service at address speaks scheme (a TLS handshake succeeds, or fails while the port is open).
        The module returns at once and a detached process on the host waits and writes: a target
        file changes within a fraction of a second of its service switching (stack_tls).'
  backup_dir:
    type: path
    description: >-
      Keep there (root only, 0700) what the change replaces, each file's content, owner and mode or that
      it was not there, so that a service failing on the new config can get the old one back
      (M(monstack.observability.stack_component) does, and drops the copy once the service is ready).
author: monitoring-stack
"""

EXAMPLES = r"""
- name: Write alertmanager.yml, checked by amtool before it replaces the live one
  monstack.observability.stack_config:
    root: /etc/alertmanager
    validate: amtool check-config {root}/alertmanager.yml
    files:
      - {dest: /etc/alertmanager/alertmanager.yml, content: "{{ config | to_nice_yaml }}", owner: root,
         group: alertmanager, mode: "0640"}
    prune: [/etc/alertmanager]
"""

RETURN = r"""
written:
  description: Files whose content or owner and mode changed (or would, in check mode).
  returned: always
  type: list
  elements: str
content_changed:
  description: Files whose content changed.
  returned: always
  type: list
  elements: str
created:
  description: Files that did not exist.
  returned: always
  type: list
  elements: str
removed:
  description: Stray files removed by I(prune).
  returned: always
  type: list
  elements: str
backup:
  description: Where what the change replaced is kept (I(backup_dir)).
  returned: when a change was applied with I(backup_dir)
  type: str
validation:
  description: The validator's output, or why it did not run in check mode.
  returned: when it ran
  type: str
diff:
  description: Before and after of every changed file; secrets are not shown.
  returned: with --diff
  type: list
armed:
  description: The I(when_serving) condition a detached process waits for.
  returned: with when_serving and a change
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.monstack.observability.plugins.module_utils.stack_config import ARGUMENT_SPEC, run
from ansible_collections.monstack.observability.plugins.module_utils.stack_step import StepError


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        module.exit_json(**run(module.params, module.check_mode, module._diff))
    except StepError as exc:
        module.fail_json(msg=exc.msg, **exc.result)


if __name__ == "__main__":
    main()
