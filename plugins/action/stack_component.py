# -*- coding: utf-8 -*-
"""Install, configure and run one component in one task: the stack_install, stack_config and
stack_service actions, in that order, on the same host and with the same guarantees (each is
run as its own task would run it), for the steps asked.

Why one task: on a run that changes nothing (most runs) each task costs Ansible's main process
far more than the module call itself, and site.yml runs about ten components per host. One task
per component instead of six halves a no-op of the whole stack (benchmarks/README.md).

Arguments:
  steps          which of install, configure, service run (the stack_steps filter reads them
                 from --tags and --skip-tags, as the three tasks' own tags were read)
  install        stack_install's arguments
  config         stack_config's arguments
  config_result  for a service step alone: what an earlier config step returned
  service        stack_service's arguments and `changes` ({root, rules}: the registry's change
                 rules for the config directory); `restart` and `reload` add to what the changed
                 files need; `cluster_status_url` is left out when a file of
                 `cluster_switch_files` changed (members cannot see each other mid-switch)
  defer_switch   when the config step changed what an installed service runs with
                 (stack_tls turned on or off, for one), stop before the service step and
                 return switched: site.yml's one pass then gets every Prometheus ready first
                 (roles/stack/tasks/switch.yml) and runs the service step there

Returns changed, failed, the result of each step run (install, config, service), switched and
the config step's diff.
"""
from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.monstack.observability.plugins.filter.stack import change_action, config_switched

STEPS = ("install", "configure", "service")
ACTIONS = {"install": "monstack.observability.stack_install",
           "configure": "monstack.observability.stack_config",
           "service": "monstack.observability.stack_service"}
RESULT_KEYS = {"install": "install", "configure": "config", "service": "service"}


def service_args(service, config_result):
    """stack_service's arguments for a config step's result: restart or reload when the changed
    files need it (the service's changes: {root, rules}, the registry's rules for its config
    directory) or the caller asks for it, no peer check while a file of cluster_switch_files
    changed. Arguments given as none are left out."""
    args = {k: v for k, v in dict(service).items() if v is not None}
    changes = args.pop("changes", None)
    switch_files = set(args.pop("cluster_switch_files", None) or [])
    config_result = config_result or {}
    action = change_action(config_result, changes["root"], changes["rules"]) if changes else "none"
    args["restart"] = bool(args.get("restart")) or action == "restart"
    args["reload"] = bool(args.get("reload")) or action == "reload"
    touched = set(config_result.get("content_changed") or []) | set(config_result.get("removed") or [])
    if switch_files & touched:
        args.pop("cluster_status_url", None)
    return args


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def _step(self, step, args, task_vars):
        """Run one step's action as its own task would, on this task's host and connection."""
        task = self._task.copy()
        task.args = args
        action = self._shared_loader_obj.action_loader.get(
            ACTIONS[step], task=task, connection=self._connection, play_context=self._play_context,
            loader=self._loader, templar=self._templar, shared_loader_obj=self._shared_loader_obj)
        return action.run(task_vars=task_vars)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        steps = list(args.get("steps") or [])
        unknown = [s for s in steps if s not in STEPS]
        if unknown:
            raise AnsibleActionFail(f"steps: {', '.join(map(str, unknown))} is not one of {', '.join(STEPS)}")
        for step in steps:
            if not isinstance(args.get(RESULT_KEYS[step]), dict):
                raise AnsibleActionFail(f"step {step} needs its arguments ({RESULT_KEYS[step]})")
        result.update(changed=False, switched=False)
        warnings = []
        config_result = args.get("config_result")
        for step in STEPS:
            if step not in steps:
                continue
            if step == "service":
                if args.get("defer_switch") and config_switched(config_result):
                    result["switched"] = True
                    break
                outcome = self._step(step, service_args(args["service"], config_result), task_vars)
            else:
                outcome = self._step(step, dict(args[RESULT_KEYS[step]]), task_vars)
            result[RESULT_KEYS[step]] = outcome
            warnings.extend(outcome.pop("warnings", None) or [])
            if step == "configure":
                config_result = outcome
                if outcome.get("diff"):
                    result["diff"] = outcome["diff"]
            result["changed"] = result["changed"] or bool(outcome.get("changed"))
            if outcome.get("failed"):
                result.update(failed=True, msg=f"{step}: {outcome.get('msg', 'failed')}")
                for key in ("stderr", "stdout", "rc", "journal"):
                    if key in outcome:
                        result[key] = outcome[key]
                break
        if warnings:
            result["warnings"] = warnings
        return result
