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
  role:
    type: str
    description: >-
      (the action) The collection role whose C(_<role>_component) variable gives the other
      arguments; arguments given with it replace those keys.
author: monitoring-stack
"""

EXAMPLES = r"""
# What each role's tasks/deploy.yml runs: its arguments are the role's _<role>_component
- name: Install, configure and run node_exporter and wait until it serves metrics
  monstack.observability.stack_component:
    role: node_exporter
"""

RETURN = r"""
install:
  description: The install step's result (see stack_install).
  returned: when it ran
  type: dict
config:
  description: The config step's result (see stack_config).
  returned: when it ran
  type: dict
service:
  description: The service step's result (see stack_service).
  returned: when it ran
  type: dict
switched:
  description: The config switched how a running service serves; site.yml switches it once every Prometheus
    is ready.
  returned: always
  type: bool
pending:
  description: What the controller has to do before the rest runs, install (push the archive) or service
    (a rolling slot).
  returned: when it stopped for that
  type: str
component:
  description: The role the arguments came from.
  returned: with role
  type: str
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
