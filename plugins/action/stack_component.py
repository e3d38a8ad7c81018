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

Arguments:
  role           the role whose component this is: its `_<role>_component` (vars/main.yml) gives
                 the other arguments, evaluated with that role's role_path, and its templates/
                 are searched first; arguments given with it replace those keys. The role may
                 run the task itself (its deploy.yml) or the play may import its variables
                 (site.yml's one pass loops over a host's components in one task)
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

Returns changed, failed, the result of each step run (install, config, service), switched, the
config step's diff, and component (the role) when given one.
"""
from __future__ import annotations

import pathlib
from collections.abc import Mapping

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.monstack.observability.plugins.action import stack_config, stack_install
from ansible_collections.monstack.observability.plugins.module_utils.stack_component import (RESULT_KEYS,
                                                                                              STEPS, service_args, summary)

display = Display()
MODULE = "monstack.observability.stack_component"
# the collection's roles: plugins/action/ -> the collection's root
ROLES = pathlib.Path(__file__).resolve().parents[2] / "roles"


class ActionModule(ActionBase):
    TRANSFERS_FILES = True
    _requires_connection = True

    def _role_args(self, args, task_vars):
        """The task's arguments, its role's `_<role>_component` under them where it names one,
        the variables to render its files with (role_path the role's own) and where its
        templates are."""
        role = args.get("role")
        if role is None:
            return dict(args), task_vars, None
        path = ROLES / str(role)
        name = f"_{role}_component"
        if not (path / "tasks").is_dir():
            raise AnsibleActionFail(f"role: {role} is not a role of this collection")
        if name not in task_vars:
            raise AnsibleActionFail(f"{name} is not in this play: run the {role} role, or import its variables "
                                    "(site.yml's one pass imports every role's)")
        # the role's variables may read its shipped files, through role_path or a lookup's search
        # path (files/, templates/): the role's own, also where the task belongs to no role
        # (site.yml's one pass)
        variables = dict(task_vars)
        variables["role_path"] = str(path)
        variables["ansible_search_path"] = [str(path)] + [p for p in task_vars.get("ansible_search_path") or []
                                                          if p != str(path)]
        templar = self._templar.copy_with_new_env(available_variables=variables)
        raw = task_vars[name]
        if not isinstance(raw, Mapping):
            raw = templar.template(raw)
        if not isinstance(raw, Mapping):
            raise AnsibleActionFail(f"{name} must be a dict of stack_component's arguments")
        merged = {k: v for k, v in args.items() if k != "role"}
        steps = merged["steps"] if "steps" in merged else templar.template(raw.get("steps"))
        merged["steps"] = steps
        # only the arguments of the steps that run: Grafana's install task leaves out its files;
        # the service's go with a config step too, which leaves on the host the reload or
        # restart its change needs (carried out by the next service step that runs)
        wanted = {RESULT_KEYS[step] for step in STEPS if step in (steps or [])}
        if "configure" in (steps or []):
            wanted.add(RESULT_KEYS["service"])
        for key, value in raw.items():
            if key not in merged and (key not in RESULT_KEYS.values() or key in wanted):
                merged[key] = templar.template(value)
        return merged, variables, str(path / "templates")

    def _module_args(self, args, steps, task_vars, templates=None):
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
            out["config"] = stack_config.module_args(self, args["config"], task_vars, templates)
        if "service" in steps or ("configure" in steps and isinstance(args.get("service"), Mapping)):
            service = {k: v for k, v in dict(args["service"]).items() if v is not None}
            if int(service.pop("rolling_batch", 0) or 0) > 0:
                service["defer_restart"] = True
            out["service"] = service
        if args.get("config_result") is not None:
            out["config_result"] = args["config_result"]
        return out, fetch

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args, task_vars, templates = self._role_args(self._task.args, task_vars)
        steps = list(args.get("steps") or [])
        unknown = [s for s in steps if s not in STEPS]
        if unknown:
            raise AnsibleActionFail(f"steps: {', '.join(map(str, unknown))} is not one of {', '.join(STEPS)}")
        for step in steps:
            if not isinstance(args.get(RESULT_KEYS[step]), dict):
                raise AnsibleActionFail(f"step {step} needs its arguments ({RESULT_KEYS[step]})")
        if self._task.args.get("role") is not None:
            # which component a loop's item or a registered result is about (site.yml's switches)
            result["component"] = str(self._task.args["role"])
        if not steps:
            # --tags or --skip-tags left no step of this component: say so, as Ansible would
            result.update(changed=False, switched=False, skipped=True,
                          skip_reason="no step of this component selected by --tags/--skip-tags")
            return result
        module_args, fetch = self._module_args(args, steps, task_vars, templates)
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
            if outcome.get("failed") and not self._task.check_mode:
                outcome = self._roll_back(module_args, outcome, task_vars)
        result.update(outcome)
        said = summary(result)
        if said:
            # one line a person reads at default verbosity (the result shows with -v)
            name = result.get("component") or (args.get("service") or {}).get("name") or \
                (args.get("install") or {}).get("component") or "component"
            mode = " (check mode: what a real run would do)" if self._task.check_mode else ""
            display.display(f"{task_vars.get('inventory_hostname')} {name}: {said}{mode}", color="yellow")
        return result

    def _on_host(self, module_args, task_vars):
        """The steps on the host: the stack_component module."""
        return self._execute_module(MODULE, module_args=module_args, task_vars=task_vars)

    def _roll_back(self, module_args, outcome, task_vars):
        """After a failed restart in a rolling slot: the module puts back the release and config
        this run replaced (as it does itself after a failed service step) and restarts on them."""
        install, config = outcome.get("install") or {}, outcome.get("config") or {}
        if not (install.get("previous_release") or config.get("backup")):
            return outcome
        failure = str(outcome.get("msg") or "failed").removeprefix("service: ")
        back = self._on_host(dict(module_args, steps=[], rollback={
            "failure": failure, "failure_result": outcome.get("service") or {}, "install": install, "config": config}),
            task_vars)
        return dict(outcome, msg=back.get("msg") or outcome.get("msg"), rolled_back=back.get("rolled_back"))

    def _rolling_restart(self, args, outcome, task_vars):
        """The restart the module deferred, through stack_service's action: one rolling slot."""
        config_result = outcome.get("config") if "config" in outcome else args.get("config_result")
        task = self._task.copy()
        task.args = service_args(args["service"], config_result, outcome.get("install"))
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
