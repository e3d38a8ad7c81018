# -*- coding: utf-8 -*-
"""Run a component's host-side steps (module_utils/stack_component.run) on the host in one
Python process that loads only this collection's module_utils, instead of an AnsiballZ module.

Why: on a run that changes nothing, the host's share of a component's task is almost all
Ansible's module wrapper. An AnsiballZ module compiles and imports ansible.module_utils.basic
on every call: about 0.2 s of CPU on the host, where the steps themselves take 5-40 ms
(benchmarks/README.md, "The host's share of a no-op"). With about ten components per host and
the hosts' CPU shared with everything else, that was a quarter of a 20-host no-op.

Used only where Ansible would pipe a module through the connection anyway (pipelining on and
supported by the connection and the become method): the same command line, environment and
become wrapping as a pipelined module, with a different program on stdin. Everywhere else
(podman exec, for one, which has no stdin for commands) the stack_component module runs as
before. The arguments are checked and completed against the module's own spec on the controller,
as AnsibleModule would on the host.
"""
from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.vars.clean import remove_internal_keys

PACKAGE = "ansible_collections.monstack.observability.plugins.module_utils"
MODULE_UTILS = Path(__file__).resolve().parent.parent / "module_utils"

# The program the host's Python reads from stdin. It takes its module_utils from the payload
# (a finder in front of sys.meta_path, so a collection of the same name on the host is not
# used), runs the steps and prints the result as JSON, as a module would.
PROGRAM = r'''
import base64, json, sys, zlib
from importlib.abc import Loader, MetaPathFinder
from importlib.util import spec_from_loader

DATA = json.loads(zlib.decompress(base64.b64decode(PAYLOAD)))
SOURCES = DATA["sources"]


class Payload(MetaPathFinder, Loader):
    def find_spec(self, name, path=None, target=None):
        if name in SOURCES:
            return spec_from_loader(name, self, is_package=SOURCES[name] is None)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        source = SOURCES[module.__name__]
        if source is not None:
            exec(compile(source, module.__name__.replace(".", "/") + ".py", "exec"), module.__dict__)


def plain(value):
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot return {type(value).__name__}")


sys.meta_path.insert(0, Payload())
from ansible_collections.monstack.observability.plugins.module_utils import stack_component, stack_step

warnings = []
try:
    result = stack_component.run(DATA["params"], DATA["check_mode"], DATA["diff"], warnings.append)
except stack_step.StepError as exc:
    result = dict(exc.result or {}, failed=True, msg=exc.msg)
if warnings:
    result["warnings"] = warnings
print(json.dumps(result, default=plain))
'''

_SOURCES = {}


def sources():
    """This collection's module_utils (what stack_component.run imports, and nothing of Ansible),
    by module name (None for a package), read once per worker process (a task can call twice)."""
    if not _SOURCES:
        parts = PACKAGE.split(".")
        for depth in range(1, len(parts) + 1):
            _SOURCES[".".join(parts[:depth])] = None
        for path in sorted(MODULE_UTILS.glob("*.py")):
            _SOURCES[f"{PACKAGE}.{path.stem}"] = path.read_text(encoding="utf-8")
    return _SOURCES


def usable(action):
    """Whether Ansible would pipe a module to this host: then the program goes the same way."""
    if action._connection is None or action._task.async_val:
        return False
    try:
        return bool(action._is_pipelining_enabled("new"))
    except Exception:  # a connection or become plugin that cannot tell: the module, as always
        return False


def validated(spec, args):
    """args checked and completed against spec (defaults, types, choices) as AnsibleModule does
    on the host: the validator's result, whose no_log values AnsibleModule masks in its output.
    Raises AnsibleActionFail with every problem."""
    outcome = ArgumentSpecValidator(spec).validate(dict(args))
    if outcome.error_messages:
        raise AnsibleActionFail("; ".join(outcome.error_messages))
    return outcome


def checked(spec, args):
    """The parameters of validated(spec, args)."""
    return validated(spec, args).validated_parameters


def program(params, check_mode, diff):
    """The Python program, with its payload, for these (checked) parameters."""
    payload = {"sources": sources(), "params": params, "check_mode": bool(check_mode), "diff": bool(diff)}
    blob = base64.b64encode(zlib.compress(json.dumps(payload).encode("utf-8"), 6)).decode("ascii")
    return f"PAYLOAD = {blob!r}\n{PROGRAM}"


def run(action, spec, module_args, task_vars, interpreter):
    """Run the steps on the host through the action's connection; the result as
    _execute_module would return it (a failure included)."""
    outcome = validated(spec, module_args)
    data = program(outcome.validated_parameters, action._task.check_mode, action._task.diff).encode("utf-8")
    shebang = "#!" + interpreter
    cmd = action._connection._shell.build_module_command(action._compute_environment_string(), shebang, "").strip()
    action._used_interpreter = shebang
    answer = action._low_level_execute_command(cmd, sudoable=True, in_data=data)
    result = action._parse_returned_data(answer, "legacy")
    if answer.get("rc") and not result.get("failed"):
        result.update(failed=True, msg=f"the component's steps exited with {answer['rc']} on the host",
                      module_stderr=answer.get("stderr", ""))
    # as _execute_module cleans a module's result
    remove_internal_keys(result)
    # as AnsibleModule does on the host: a secret argument never shows in the result
    return remove_values(result, outcome._no_log_values)


def interpreter(action, task_vars):
    """The host's Python as a module's shebang would name it: the configured one, or the one an
    earlier module found. None while discovery has yet to run (the module runs then, and finds
    it for the next tasks) or where this Ansible cannot tell (the module, as always)."""
    try:
        from ansible.executor.interpreter_discovery import InterpreterDiscoveryRequiredError
        from ansible.executor.module_common import _get_shebang
    except ImportError:
        return None
    try:
        _, found = _get_shebang("/usr/bin/python", task_vars, action._templar,
                                remote_is_local=bool(getattr(action._connection, "_remote_is_local", False)))
    except InterpreterDiscoveryRequiredError:
        return None
    except Exception:  # a private helper whose shape changed: no shortcut
        return None
    return str(found) if found else None
