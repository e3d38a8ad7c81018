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
  - >-
    Keeps on the host a record of what the component installed (C(record_dir)/<component>.json with its unit,
    links, releases, config files and directories, user and the directories made for it), which
    M(monstack.observability.stack_remove) reads to take the component off again.
  - >-
    When the service step fails to get the service ready on a new release, unit or config, puts back the
    release C(current) pointed at and the config files as they were (kept by the config step under
    C(/var/lib/monstack/previous/<service>) until the service is ready), restarts on them, waits until
    ready and fails, the cause on the first line, naming what was rolled back. Not after a first deploy,
    nor when only a post-start check or the cluster check failed.
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
  rollback:
    type: dict
    description: >-
      (the action, after a restart in a rolling slot failed) C({failure, failure_result, install, config}):
      put back the release and config the install and config steps replaced, restart, wait until ready,
      and fail naming what was rolled back.
  record_dir: {type: path, default: /var/lib/monstack/components, description: Where the records of what each component installed are kept.}
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
rolled_back:
  description: What was put back after the service failed on the new one (C(release <version>), C(config (<files>))).
  returned: when a failed service step was rolled back
  type: list
  elements: str
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
