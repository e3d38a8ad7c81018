# -*- coding: utf-8 -*-
"""Render a service's files on the controller and hand them to the stack_config module.

Each entry of `files` is {dest, template | content | generate, owner, group, mode, secret, vars,
accept} (accept: other contents the live file may keep, see the module);
`generate: N` makes a random secret of N bytes on the host the first time and keeps it.
Templates are looked up like the template action does (the calling role's templates/
first) and then in this role's templates/, which holds the shared systemd unit.
Entries marked `secret` travel in a no_log parameter, are never diffed and must be
0640 or stricter.
"""
from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.template import trust_as_template

# the unit template every role shares, in the stack role of this collection
SHARED_TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "roles", "stack", "templates")


def render(action, name, extra_vars, task_vars, templates=None):
    """Render template name as the template action would, for action (a running action plugin):
    found in templates (a role's templates/ directory, given where the task belongs to no role)
    or the calling role's templates/ first, then in the stack role's."""
    source = os.path.join(templates, name) if templates else None
    if not source or not os.path.isfile(source):
        try:
            source = action._find_needle("templates", name)
        except Exception:
            source = os.path.join(SHARED_TEMPLATES, name)
            if not os.path.isfile(source):
                raise AnsibleActionFail(f"template {name} not found in the role or in stack")
    searchpath = [os.path.dirname(source), SHARED_TEMPLATES] + list(task_vars.get("ansible_search_path", []))
    variables = dict(task_vars)
    variables.update(extra_vars or {})
    templar = action._templar.copy_with_new_env(searchpath=searchpath, available_variables=variables)
    data = trust_as_template(action._loader.get_text_file_contents(source))
    return to_text(templar.template(data, escape_backslashes=False))


def module_args(action, args, task_vars, templates=None):
    """The stack_config module's arguments for the action's arguments: every file rendered,
    secret contents apart (templates: see render)."""
    files, secrets = [], {}
    for entry in args.get("files") or []:
        if entry.get("generate"):
            # made on the host once (random, never leaves it) and kept from then on
            spec = {k: entry[k] for k in ("dest", "owner", "group", "mode", "generate") if entry.get(k) is not None}
            if int(str(spec.get("mode") or "0644"), 8) & 0o027:
                raise AnsibleActionFail(f"{spec['dest']} holds a secret: mode must be 0640 or stricter")
            files.append(spec)
            continue
        if "template" in entry:
            content = render(action, entry["template"], entry.get("vars"), task_vars, templates)
        elif "content" in entry:
            content = to_text(entry["content"])
        else:
            raise AnsibleActionFail(f"{entry.get('dest')}: give template or content")
        spec = {k: entry[k] for k in ("dest", "owner", "group", "mode") if entry.get(k) is not None}
        if entry.get("secret"):
            if int(str(spec.get("mode") or "0644"), 8) & 0o027:
                raise AnsibleActionFail(f"{spec['dest']} holds secrets: mode must be 0640 or stricter")
            secrets[spec["dest"]] = content
        else:
            spec["content"] = content
            if entry.get("accept"):
                spec["accept"] = [to_text(alt) for alt in entry["accept"]]
        files.append(spec)
    out = {"files": files, "secrets": secrets, "prune": args.get("prune") or []}
    for key in ("root", "validate", "when_serving"):
        if args.get(key):
            out[key] = args[key]
    return out


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        result.update(self._execute_module("monstack.observability.stack_config",
                                           module_args=module_args(self, self._task.args, task_vars), task_vars=task_vars))
        return result
