# -*- coding: utf-8 -*-
"""Take a component off its host (the stack_remove module), from the record of what it installed.

Every full run of a component (stack_component with its install, config and service steps)
leaves on the host a record of what it put there (`record`, written by `write_record`): the
unit, the links in the bin directory, the release directory, the config files and directories
the config step owns, the directories holding the service's data and its user and group. The
removal reads that record, not the inventory, so it takes away exactly what was installed even
when the settings that placed it have changed since.

Removing stops and disables the unit, deletes the unit file, the links, the releases, the
config, the pending-action marker, the user and its group; the data directories (those the
install step created for the service user, outside the config) stay unless `purge` is set.
"""
from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import subprocess

from ansible_collections.monstack.observability.plugins.module_utils.stack_step import StepError

RECORD_DIR = "/var/lib/monstack/components"
PENDING_DIR = "/var/lib/monstack/pending"
UNIT_DIR = "/etc/systemd/system"
# never removed whole, whatever a record says (a config or data directory set to one of these
# by mistake would otherwise take the system with it)
SYSTEM_DIRS = {"/", "/etc", "/var", "/var/lib", "/var/log", "/opt", "/usr", "/usr/local", "/usr/local/bin", "/usr/bin",
               "/home", "/srv", "/tmp", "/run", "/root", "/boot", "/etc/systemd", "/etc/systemd/system"}


def _below(path, directory):
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def record(p):
    """What a run of stack_component with parameters p says of what the component put on the
    host: the install step's part (release directory, links, user, group, the directories made for
    the user) when p has its arguments, the config step's (unit, files, config directories) when p
    has the config and service arguments; None when it has neither. write_record merges the parts
    (Grafana's role runs its install step in a task of its own)."""
    install, config, service = p.get("install"), p.get("config"), p.get("service")
    out = {}
    if install:
        user = install.get("user") or ""
        out.update(component=install["component"],
                   release_dir=os.path.join(install.get("root") or "/opt/monitoring", install["component"]),
                   links=sorted(os.path.join(install.get("bin_dir") or "/usr/local/bin", name)
                                for name in install.get("links") or {}),
                   user=user, group=install.get("group") or user,
                   user_dirs=sorted(os.path.normpath(d["path"]) for d in install.get("directories") or []
                                    if user and d.get("owner") == user))
    if config and service:
        out.update(component=out.get("component") or service["name"], unit=service["name"],
                   files=sorted({f["dest"] for f in config.get("files") or [] if f.get("dest")}),
                   config_dirs=sorted({os.path.normpath(d) for d in config.get("prune") or []}))
    return out or None


def data_dirs(data):
    """The directories of a record that hold the service's data: made for its user, outside its config."""
    config_dirs = data.get("config_dirs") or []
    return [d for d in data.get("user_dirs") or [] if not any(_below(d, c) for c in config_dirs)]


def record_path(component, directory=None):
    return os.path.join(directory or RECORD_DIR, f"{component}.json")


def read_records(directory=None):
    """{component: record} of every record on the host."""
    directory = directory or RECORD_DIR
    out = {}
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return out
    for name in names:
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("component"):
            out[data["component"]] = data
    return out


def write_record(part, directory=None):
    """Keep the record on the host, part merged into the one there (written only when that
    changes it)."""
    if not part:
        return False
    path = record_path(part["component"], directory)
    try:
        with open(path, encoding="utf-8") as handle:
            before = json.load(handle)
    except (OSError, ValueError):
        before = {}
    data = dict(before if isinstance(before, dict) else {}, **part)
    if data == before:
        return False
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
    os.replace(tmp, path)
    return True


def _exists(path):
    return os.path.lexists(path)


def _safe_dir(path):
    path = os.path.normpath(path)
    return os.path.isabs(path) and path not in SYSTEM_DIRS and path.count("/") >= 2


def _systemctl(*args):
    return subprocess.run(["systemctl", *args], capture_output=True, text=True)


def _user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _group_removable(name, leaving=""):
    """Whether group name exists and no user but `leaving` has it as primary or supplementary group."""
    try:
        entry = grp.getgrnam(name)
    except KeyError:
        return False
    if [member for member in entry.gr_mem if member != leaving]:
        return False
    return not any(user.pw_gid == entry.gr_gid and user.pw_name != leaving for user in pwd.getpwall())


def plan(data, purge, unit_dir=UNIT_DIR, pending_dir=PENDING_DIR):
    """What removing the component of record data takes away from this host: (paths, kept).
    paths: what exists of its unit file and drop-ins, links, releases, config and (purge) data;
    kept: its data directories that stay."""
    unit = data.get("unit") or data["component"]
    paths = []
    unit_file = os.path.join(unit_dir, f"{unit}.service")
    dropins = unit_file + ".d"
    for path in [unit_file] + [f for f in data.get("files") or [] if _below(f, dropins) or f == unit_file]:
        if path not in paths and _exists(path):
            paths.append(path)
    if os.path.isdir(dropins) and _safe_dir(dropins):
        paths.append(dropins)
    release_dir = os.path.normpath(data.get("release_dir") or os.path.join("/opt/monitoring", data["component"]))
    for link in data.get("links") or []:
        # only links that still point into this component's releases (never a binary put there by hand)
        if os.path.islink(link) and _below(os.path.normpath(os.path.join(os.path.dirname(link), os.readlink(link))), release_dir):
            paths.append(link)
    if os.path.isdir(release_dir) and _safe_dir(release_dir):
        paths.append(release_dir)
    config_dirs = [d for d in data.get("config_dirs") or [] if _safe_dir(d)]
    for path in data.get("files") or []:
        if path not in paths and _exists(path) and not any(_below(path, d) for d in config_dirs + [dropins]):
            paths.append(path)
    for directory in config_dirs:
        if os.path.isdir(directory) and not any(_below(directory, p) for p in paths):
            paths.append(directory)
    pending = os.path.join(pending_dir, f"{unit}.json")
    if _exists(pending):
        paths.append(pending)
    kept = []
    for directory in data_dirs(data):
        if not os.path.isdir(directory) or any(_below(directory, p) for p in paths):
            continue
        if purge and _safe_dir(directory):
            paths.append(directory)
        else:
            kept.append(directory)
    return paths, kept


def _delete(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif _exists(path):
        os.unlink(path)


def remove_one(data, purge, check_mode=False, unit_dir=UNIT_DIR, pending_dir=PENDING_DIR, record_dir=None):
    """Take one component off the host from its record; its result (changed, paths, kept,
    stopped, user_removed, group_removed)."""
    unit = data.get("unit") or data["component"]
    paths, kept = plan(data, purge, unit_dir, pending_dir)
    state = _systemctl("show", f"{unit}.service", "-p", "LoadState,ActiveState,UnitFileState").stdout
    props = dict(line.split("=", 1) for line in state.splitlines() if "=" in line)
    running = props.get("ActiveState") in ("active", "activating", "reloading", "deactivating")
    enabled = props.get("UnitFileState") in ("enabled", "enabled-runtime", "linked")
    user = data.get("user") or ""
    group = data.get("group") or user
    user_there = bool(user) and _user_exists(user)
    result = {"changed": bool(paths or running or enabled or user_there), "paths": paths, "kept": kept,
              "stopped": running, "user_removed": user if user_there else None, "group_removed": None}
    if group and _group_removable(group, user):
        result["group_removed"] = group
        result["changed"] = True
    if check_mode:
        return result
    if running or enabled:
        proc = _systemctl("disable", "--now", f"{unit}.service")
        if proc.returncode != 0:
            raise StepError(f"{data['component']}: systemctl disable --now {unit}.service failed: "
                            f"{(proc.stderr or proc.stdout).strip()}", result)
    _systemctl("reset-failed", f"{unit}.service")
    for path in paths:
        _delete(path)
    _systemctl("daemon-reload")
    if user_there:
        proc = subprocess.run(["userdel", user], capture_output=True, text=True)
        if proc.returncode not in (0, 6):
            raise StepError(f"{data['component']}: userdel {user} failed: {(proc.stderr or proc.stdout).strip()}", result)
    if result["group_removed"] and _group_removable(group):
        subprocess.run(["groupdel", group], capture_output=True, text=True, check=False)
    try:
        os.unlink(record_path(data["component"], record_dir))
        result["changed"] = True
    except FileNotFoundError:
        pass
    return result


def run(p, check_mode=False, unit_dir=UNIT_DIR, pending_dir=PENDING_DIR):
    """stack_remove: remove the components of p['remove'] that this host has a record of, and
    name those it has a record or a unit of while running none of them (p['runs'])."""
    record_dir = p.get("record_dir") or RECORD_DIR
    records = read_records(record_dir)
    remove = list(dict.fromkeys(p.get("remove") or []))
    runs = set(p.get("runs") or [])
    both = sorted(set(remove) & runs)
    if both:
        raise StepError(f"stack_remove names {', '.join(both)}, which this host also runs (it is in the group): "
                        "take the host out of the group, or the component out of stack_remove")
    result = {"changed": False, "removed": [], "components": {}, "left_over": [], "warnings": []}
    for name in remove:
        data = records.get(name)
        if data is None:
            unit_file = os.path.join(unit_dir, f"{name}.service")
            if _exists(unit_file):
                raise StepError(f"stack_remove: {name} runs on this host ({unit_file}) but has no record of what it "
                                f"installed ({record_path(name, record_dir)}; kept since collection 0.19.0): put the host "
                                f"back in the {name} group for one run of site.yml, then remove it", result)
            continue  # not on this host (removed by an earlier run): nothing to do
        try:
            outcome = remove_one(data, bool(p.get("purge")), check_mode, unit_dir, pending_dir, record_dir)
        except (OSError, subprocess.SubprocessError) as exc:
            raise StepError(f"{name}: {exc}", result) from exc
        result["components"][name] = outcome
        if outcome["changed"]:
            result["changed"] = True
            result["removed"].append(name)
    for name in sorted(set(records) | {n for n in p.get("known") or [] if _exists(os.path.join(unit_dir, f"{n}.service"))}):
        if name in runs or name in remove:
            continue
        result["left_over"].append(name)
        result["warnings"].append(
            f"{name} is still installed on this host, but the host is in none of its groups: nothing scrapes or uses "
            f"it any more. Add {name} to stack_remove for this host to remove it (its data stays unless "
            f"stack_remove_purge), or put the host back in the {name} group")
    return result


ARGUMENT_SPEC = dict(
    remove=dict(type="list", elements="str", default=[]),
    runs=dict(type="list", elements="str", default=[]),
    known=dict(type="list", elements="str", default=[]),
    purge=dict(type="bool", default=False),
    record_dir=dict(type="path", default=RECORD_DIR),
)
