# -*- coding: utf-8 -*-
"""Install, configure and run one component in one task, and on a run that changes nothing in
one round trip: the stack_component module runs the install, config and service steps on the
host, each as its own module would (module_utils), and comes back to the controller only where
the controller has to act:

  install  the release is not installed: the archive is verified in the controller cache
           (fetched once, as stack_install does), pushed, and the module called again with it
  service  a restart of a clustered component waits for one of stack_rolling_batch slots
           (stack_service's action takes it and restarts)

Why: on a run that changes nothing (most runs) each task and each round trip costs far more than
the work on the host, and site.yml runs about ten components per host (benchmarks/README.md).
Where Ansible would pipe the module, the steps go to the host as a program of this collection's
own code instead (plugin_utils/stack_remote.py): the module wrapper cost the host more than them.

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
from ansible.utils.display import Display

from ansible_collections.monstack.observability.plugins.action import stack_config, stack_install
from ansible_collections.monstack.observability.plugins.module_utils.stack_component import (ARGUMENT_SPEC, RESULT_KEYS,
                                                                                              STEPS, service_args)
from ansible_collections.monstack.observability.plugins.plugin_utils import stack_remote

display = Display()
MODULE = "monstack.observability.stack_component"


class ActionModule(ActionBase):
    TRANSFERS_FILES = True
    _requires_connection = True

    def _module_args(self, args, steps, task_vars):
        """The module's arguments: the install target, the rendered files, the service's
        arguments (asked to defer a restart that needs a rolling slot)."""
        out = {"steps": steps, "defer_switch": bool(args.get("defer_switch"))}
        fetch = None
        if "install" in steps:
            install = dict(args["install"])
            # a notice the role wants every run to show (identical warnings are shown once)
            notice = install.pop("warn", None)
            if notice:
                display.warning(str(notice))
            spec, out["install"], settings = stack_install.install_target(install)
            fetch = (spec, settings)
        if "configure" in steps:
            out["config"] = stack_config.module_args(self, args["config"], task_vars)
        if "service" in steps:
            service = {k: v for k, v in dict(args["service"]).items() if v is not None}
            if int(service.pop("rolling_batch", 0) or 0) > 0:
                service["defer_restart"] = True
            out["service"] = service
        if args.get("config_result") is not None:
            out["config_result"] = args["config_result"]
        return out, fetch

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
        if not steps:
            result.update(changed=False, switched=False)
            return result
        module_args, fetch = self._module_args(args, steps, task_vars)
        outcome = self._on_host(module_args, task_vars)
        installing = (outcome.get("install") or {}).get("needs_archive") and not outcome.get("failed")
        if installing and self._task.check_mode:
            # what would be installed, from where (the archive is verified in the cache all the same)
            spec, settings = fetch
            _, _, source = stack_install.cached_archive(spec, settings, outcome["install"]["arch"])
            outcome["install"].update(changed=True, source=source)
            outcome["changed"] = True
        elif installing:
            spec, settings = fetch
            module_args["install"], tmpdir = stack_install.push_archive(
                self, spec, module_args["install"], settings, outcome["install"]["arch"])
            outcome = self._on_host(module_args, task_vars)
            self._remove_tmp_path(tmpdir)
            if isinstance(outcome.get("install"), dict):
                outcome["install"]["source"] = module_args["install"]["source"]
        if outcome.get("pending") == "service" and not outcome.get("failed"):
            outcome = self._rolling_restart(args, outcome, task_vars)
        result.update(outcome)
        return result

    def _on_host(self, module_args, task_vars):
        """The steps on the host: without the module wrapper where Ansible would pipe the module
        anyway and knows the host's Python (plugin_utils/stack_remote.py), else the module."""
        python = stack_remote.interpreter(self, task_vars) if stack_remote.usable(self) else None
        if python:
            return stack_remote.run(self, ARGUMENT_SPEC, module_args, task_vars, python)
        return self._execute_module(MODULE, module_args=module_args, task_vars=task_vars)

    def _rolling_restart(self, args, outcome, task_vars):
        """The restart the module deferred, through stack_service's action: one rolling slot."""
        config_result = outcome.get("config") if "config" in outcome else args.get("config_result")
        task = self._task.copy()
        task.args = service_args(args["service"], config_result)
        action = self._shared_loader_obj.action_loader.get(
            "monstack.observability.stack_service", task=task, connection=self._connection,
            play_context=self._play_context, loader=self._loader, templar=self._templar,
            shared_loader_obj=self._shared_loader_obj)
        restarted = action.run(task_vars=task_vars)
        outcome = dict(outcome, service=restarted)
        outcome.pop("pending", None)
        outcome["changed"] = bool(outcome.get("changed") or restarted.get("changed"))
        for key in ("warnings",):
            if restarted.get(key):
                outcome[key] = list(outcome.get(key) or []) + list(restarted[key])
        if restarted.get("failed"):
            outcome.update(failed=True, msg=f"service: {restarted.get('msg', 'failed')}")
        return outcome
