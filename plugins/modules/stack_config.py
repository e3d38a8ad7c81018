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
author: monitoring-stack
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
