# -*- coding: utf-8 -*-
"""Run the stack_remove module and say at default verbosity what it took off the host (the
module's result, with every path, shows with -v)."""
from __future__ import annotations

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()


def summary(result):
    """One line per component removed: what went, and the data that stays."""
    lines = []
    for name, outcome in sorted((result.get("components") or {}).items()):
        if not outcome.get("changed"):
            continue
        kept = outcome.get("kept") or []
        said = f"{name}: removed (unit, binaries, releases, config" + (", user" if outcome.get("user_removed") else "") + ")"
        if kept:
            said += "; data kept in " + ", ".join(kept) + " (stack_remove_purge deletes it)"
        lines.append(said)
    return lines


class ActionModule(ActionBase):
    _requires_connection = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        result.update(self._execute_module("monstack.observability.stack_remove", module_args=dict(self._task.args),
                                           task_vars=task_vars))
        host = task_vars.get("inventory_hostname")
        # Ansible's warnings do not say which host they came from
        if result.get("warnings"):
            result["warnings"] = [f"{host}: {warning}" for warning in result["warnings"]]
        mode = " (check mode: what a real run would do)" if self._task.check_mode else ""
        for line in summary(result):
            display.display(f"{host} {line}{mode}", color="yellow")
        return result
