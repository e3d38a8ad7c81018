#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Host side of one component's task (see plugins/action/stack_component.py)."""
from __future__ import annotations

DOCUMENTATION = r"""
module: stack_component
short_description: Install, configure and run one component in one call
description:
  - Runs the install, config and service steps of one component on its host, in that order, each
    as the stack_install, stack_config and stack_service modules would; on a run that changes
    nothing that is one round trip instead of three.
  - Returns C(pending) where the controller has to act before the rest can run (C(install) the
    release's archive has to be pushed; C(service) a restart waits for a rolling slot).
options:
  steps: {type: list, elements: str, choices: [install, configure, service], description: The steps to run.}
  install: {type: dict, description: The stack_install module's options.}
  config: {type: dict, description: The stack_config module's options.}
  config_result: {type: dict, description: 'For a service step without a config step: what an earlier config step returned.'}
  service:
    type: dict
    description: >-
      The stack_service module's options, and C(changes) ({root, rules}: the registry's change
      rules for the config directory) and C(cluster_switch_files).
  defer_switch: {type: bool, default: false, description: Stop before the service step when the config step switched a running service.}
author: monitoring-stack
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.monstack.observability.plugins.module_utils.stack_component import ARGUMENT_SPEC, run
from ansible_collections.monstack.observability.plugins.module_utils.stack_step import StepError


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        module.exit_json(**run(module.params, module.check_mode, module._diff, module.warn))
    except StepError as exc:
        module.fail_json(msg=exc.msg, **exc.result)


if __name__ == "__main__":
    main()
