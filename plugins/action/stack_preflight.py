# -*- coding: utf-8 -*-
"""Check a role's variables before anything changes, naming each one that is wrong.

Ansible's own argument validation converts quietly where a user most likely made a mistake
(a dict given for a str becomes its repr, a str for a list is split at commas, an int for
a list becomes [int]) and cannot say what a str must look like. This runs after it, on the
controller, with no connection to the host:
  - types exactly as meta/argument_specs.yml declares them (strings from -e are accepted for
    int and bool, as Ansible would read them);
  - formats of str options, from their names (FORMATS below) or the task's `formats`;
  - settings that only work together (`together`);
  - then, only once all of those hold, the role's own rules (`problems`: bare Jinja
    expressions, each a list of problems, like `when` conditions are bare expressions): a check
    that assumes the types right never meets a wrong one. Their logic (receivers, schema
    periods, ...) lives in each role's filter plugin.
Arguments: `components`, the roles whose settings to check, in order (`stack` for the shared
settings). Each role's spec is its meta/argument_specs.yml; its `formats`, `together`, `label`
and `problems` are its `_<role>_preflight` (vars/main.yml), which must be in the play: the role
runs the task itself (preflight.yml), or the play imports it (site.yml's check play imports every
role, then checks all of a host's components in one task per host).
"""
from __future__ import annotations

import pathlib
import re

import yaml
from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

# the collection's roles: plugins/action/ -> the collection's root
ROLES = pathlib.Path(__file__).resolve().parents[2] / "roles"

LISTEN = r"(\[[0-9a-fA-F:]+\]|[^:\s/]*):([0-9]{1,5})"
DURATION = r"([0-9]+(ms|s|m|h|d|w|y))+"
KINDS = {
    "listen": (LISTEN, "be host:port (host may be empty or 0.0.0.0 for every address), e.g. 0.0.0.0:9090"),
    "duration": (DURATION, "be a duration like 30s, 15d or 1h30m"),
    "size": (r"[0-9]+(B|KB|MB|GB|TB|PB|EB)", "be a size like 50GB"),
    "url": (r"(https?|file)://\S+", "be an http(s):// URL"),
    "path": (r"(/|~)\S*", "be an absolute path"),
    "version": (r"[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?", "be a release version like 1.2.3"),
    "group": (r"[A-Za-z0-9_-]+", "be an inventory group name"),
    "file_names": (r"[A-Za-z0-9_.-]+", "name files with only A-Z a-z 0-9 _ . -"),
    "words": (r"[a-z0-9_]+", "list collector names in lower case (a-z 0-9 _)"),
    "redis_url": (r"(rediss?|unix|valkeys?)://\S*", "start with redis://, rediss:// or unix://"),
    "pg_role": (r"[a-z_][a-z0-9_]{0,62}", "be a plain lower-case role name"),
    "label": (r"[a-zA-Z_][a-zA-Z0-9_]*", "be a Prometheus label name (letters, digits, _)"),
    "vm_retention": (r"[0-9]+(\.[0-9]+)?(s|h|d|w|M|y)?", "be a period like 1y, 13M or 90d (a bare number is months)"),
}
# str/path options whose name ends like this have that format (first match wins); an empty
# value is accepted where the option's default is empty (the feature is then off)
FORMATS = [
    (r"_version$", "version"),
    (r"_(listen_address|otlp_grpc_address|otlp_http_address|query_address|query_grpc_address|health_address|"
     r"metrics_address|metrics_relay_address|advertise_address)$", "listen"),
    (r"_(artifact_url|external_url|root_url|artifact_mirror)$", "url"),
    (r"_(dir|root|path|cache)$", "path"),
    (r"_retention_size$", "size"),
    (r"_(retention|retention_time|retention_period|interval|timeout|ttl|max_age)$", "duration"),
    (r"_group$", "group"),
    (r"_label$", "label"),
]
# str options that are free text: secrets, names, PEM blocks, database settings
FREE_TEXT = r"_(password|secret_key|user|admin_user|cert|key|tls_ca_cert|db_host|db_name|db_sslmode|log_level|" \
            r"log_format|addr|db_user)$"

# options whose value is never shown in a message
SECRET = r"_(password|passwords|secret_key|key|users)$"

TRUE_STRINGS = {"true", "yes", "on", "1"}
BOOL_STRINGS = TRUE_STRINGS | {"false", "no", "off", "0"}
PYTHON_TYPES = {"str": str, "path": str, "dict": dict, "list": list, "int": int, "bool": bool}


def format_of(name, formats=None, spec=None):
    """The format kind of an option: the task's `formats` first, then its name (str and path
    options only: a number's type says enough)."""
    if formats and name in formats:
        return formats[name]
    if (spec or {}).get("type", "str") not in ("str", "path"):
        return None
    for pattern, kind in FORMATS:
        if re.search(pattern, name):
            return kind
    return None


def _type_name(value):
    """The YAML-ish type of a value (Ansible wraps values in tagged subclasses)."""
    for name, kind in (("bool", bool), ("int", int), ("float", float), ("str", str), ("dict", dict), ("list", list)):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _describe(value):
    plain = value
    if isinstance(value, dict):
        plain = dict(value)
    elif isinstance(value, list):
        plain = list(value)
    return f"{_type_name(value)} {plain!r}"[:120]


def type_problem(name, spec, value):
    """Why value is not of the declared type, or None."""
    kind = spec.get("type", "str")
    if kind == "raw" or value is None and not spec.get("required"):
        return None
    if kind == "int":
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and value.strip().isdigit())
    elif kind == "bool":
        ok = isinstance(value, bool) or (isinstance(value, str) and value.lower() in BOOL_STRINGS)
    elif kind in ("str", "path"):
        # numbers read as strings the way a user means them; a dict, list or bool is a mistake
        ok = isinstance(value, (str, int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, PYTHON_TYPES.get(kind, object))
    if not ok:
        shown = _type_name(value) if re.search(SECRET, name) else _describe(value)
        return f"{name} must be a {kind}, got {shown}"
    if kind == "list" and spec.get("elements") in PYTHON_TYPES:
        want = spec["elements"]
        for index, item in enumerate(value):
            problem = type_problem(f"{name}[{index}]", {"type": want}, item)
            if problem:
                return problem
    if spec.get("choices") and kind == "list":
        # as Ansible reads choices of a list: each element is one of them
        bad = [item for item in value if item not in spec["choices"]]
        if bad:
            return f"{name} may hold only {', '.join(map(str, spec['choices']))}, got {', '.join(map(repr, bad))}"
    elif spec.get("choices") and value not in spec["choices"]:
        return f"{name} must be one of {', '.join(map(str, spec['choices']))}, got {value!r}"
    return None


def format_problem(name, kind, value, allow_empty=False):
    """Why value does not have the format, or None."""
    pattern, hint = KINDS[kind]
    if isinstance(value, dict):
        items = list(value)
    elif isinstance(value, list):
        items = [item.get("name") if isinstance(item, dict) else item for item in value]
    else:
        if allow_empty and value in ("", None):
            return None
        items = [value]
    for item in items:
        text = "" if item is None else str(item)
        match = re.fullmatch(pattern, text)
        if match and kind == "listen" and not 0 < int(match.group(2)) < 65536:
            match = None
        if not match:
            return f"{name} must {hint}, got {text!r}"
    return None


def check(options, values, formats=None, together=()):
    """Problems of the values (only names present in values are checked) against the options
    of an argument spec; formats {name: kind} add to or override the name rules."""
    problems = []
    for name, spec in options.items():
        if name not in values:
            continue
        value = values[name]
        problem = type_problem(name, spec or {}, value)
        if problem:
            problems.append(problem)
            continue
        kind = format_of(name, formats, spec)
        if kind and value is not None:
            problem = format_problem(name, kind, value, allow_empty=(spec or {}).get("default") in ("", None))
            if problem:
                problems.append(problem)
    for group in together or ():
        set_ = [bool(values.get(name)) for name in group]
        if any(set_) and not all(set_):
            problems.append(f"{' and '.join(group)} go together: set all or none")
    return problems


def load_options(path):
    """The options of a role's spec: its `main` entry, or `settings` for the stack role, which has
    no `main` (roles/stack/meta/argument_specs.yml says why)."""
    with open(path, encoding="utf-8") as handle:
        # libyaml's loader where PyYAML has it: a tenth of the pure-Python one's time, per task and host
        specs = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))["argument_specs"]
    return (specs["main"] if "main" in specs else specs["settings"])["options"]


def role_problems(templar, expressions):
    """The problems the role's own rules find: each expression evaluates to a list of them."""
    problems = []
    for expression in expressions or []:
        found = templar.evaluate_expression(expression)
        if isinstance(found, str) or not isinstance(found, (list, tuple)):
            raise AnsibleActionFail(f"problems: {expression} must give a list of problems, got {found!r}"[:300])
        problems.extend(str(problem) for problem in found)
    return problems


class ActionModule(ActionBase):
    """stack_preflight: components (the roles to check, in order)."""

    _requires_connection = False
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        components = self._task.args.get("components")
        if not isinstance(components, list) or not components:
            raise AnsibleActionFail("components must be a list of the roles whose settings to check")
        failures, checked = [], 0
        for component in components:
            problems, count = self._check(str(component), task_vars)
            checked += count
            if problems:
                failures.append(problems)
        if failures:
            raise AnsibleActionFail(". ".join(failures))
        result.update(changed=False, msg=f"{checked} settings of {', '.join(map(str, components))} checked")
        return result

    def _check(self, component, task_vars):
        """One role's problems as one message (empty when there are none) and how many of its
        settings were checked."""
        role = ROLES / component
        if not (role / "meta/argument_specs.yml").is_file():
            raise AnsibleActionFail(f"components: {component} is not a role of this collection")
        # the role's variables may read role_path (its shipped files): the role's own, also
        # where the task belongs to no role (site.yml's check play)
        variables = dict(task_vars)
        variables["role_path"] = str(role)
        templar = self._templar.copy_with_new_env(available_variables=variables)
        rules = {}
        if component != "stack":
            name = f"_{component}_preflight"
            if name not in task_vars:
                raise AnsibleActionFail(f"{name} is not in this play: run the {component} role, or import it "
                                        "(site.yml's check play imports every role)")
            rules = templar.template(task_vars[name])
        options = load_options(role / "meta/argument_specs.yml")
        values, problems = {}, []
        for name in options:
            if name in task_vars:
                try:
                    values[name] = templar.template(task_vars[name])
                except Exception as exc:  # pylint: disable=broad-except
                    problems.append(f"{name} cannot be evaluated: {exc}")
        problems += check(options, values, rules.get("formats"), rules.get("together"))
        if not problems:
            problems = role_problems(templar, rules.get("problems"))
        label = rules.get("label") or f"{component} settings"
        return (f"{label}: " + "; ".join(problems)) if problems else "", len(values)
