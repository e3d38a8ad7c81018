# -*- coding: utf-8 -*-
"""Write a service's config files as one unit: stage, validate with the real tool, swap (for the
stack_config and stack_component modules).

The live files change only after the service's own validator accepted the staged
tree, so a rejected config leaves the running service and its files untouched and
fails the play with the validator's words.
"""
from __future__ import annotations

import glob
import grp
import json
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import sys
import time

from ansible_collections.monstack.observability.plugins.module_utils.stack_step import StepError


def _ids(owner, group):
    return pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid


def plan(files, secrets, prune, check_mode=False):
    """Return (writes, removals): files whose content or metadata differ, and strays. In check
    mode an owner or group the run would create first (its install step) counts as a change."""
    writes = []
    for spec in files:
        dest = spec["dest"]
        if spec.get("generate") and os.path.exists(dest):
            # a generated secret is made once and then kept: only its metadata is managed
            with open(dest, "rb") as handle:
                spec = dict(spec, content=handle.read().decode("utf-8"))
        elif spec.get("generate"):
            import secrets as _secrets  # pylint: disable=import-outside-toplevel
            spec = dict(spec, content=_secrets.token_urlsafe(int(spec["generate"])))
        content = secrets.get(dest, spec.get("content"))
        if content is None:
            raise ValueError(f"{dest}: no content")
        data = content.encode("utf-8")
        mode = int(str(spec.get("mode") or "0644"), 8)
        try:
            uid, gid = _ids(spec.get("owner") or "root", spec.get("group") or "root")
        except KeyError:
            if not check_mode:
                raise
            uid = gid = -1  # chown leaves it as it is; compared, it differs from any owner
        reason = None
        try:
            st = os.lstat(dest)
            with open(dest, "rb") as handle:
                current = handle.read()
            if current != data and current in [str(alt).encode("utf-8") for alt in spec.get("accept") or []]:
                data = current
            if current != data:
                reason = "content"
            elif (st.st_uid, st.st_gid, st.st_mode & 0o7777) != (uid, gid, mode):
                reason = "metadata"
        except FileNotFoundError:
            reason = "new"
        if reason:
            writes.append({"dest": dest, "data": data, "mode": mode, "uid": uid, "gid": gid, "reason": reason,
                           "hidden": dest in secrets or bool(spec.get("generate")),
                           "before": current if reason != "new" else b""})
    wanted = {os.path.normpath(spec["dest"]) for spec in files}
    removals = []
    directories = []
    for pattern in prune:
        directories.extend(sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern])
    for directory in directories:
        if not os.path.isdir(directory):
            continue
        for name in sorted(os.listdir(directory)):
            path = os.path.normpath(os.path.join(directory, name))
            if path not in wanted and (os.path.isfile(path) or os.path.islink(path)):
                removals.append(path)
    return writes, removals


def _text(data):
    return data.decode("utf-8", errors="replace")


def diffs(writes, removals):
    """Ansible diff entries (before/after) for --diff: the text of every changed file, a
    secret one only named as changed, a removed one as gone."""
    out = []
    for w in writes:
        if w["reason"] == "metadata":
            continue
        if w["hidden"]:
            out.append({"before_header": w["dest"], "after_header": w["dest"],
                        "before": "" if w["reason"] == "new" else "(secret, not shown)\n",
                        "after": "(secret, changed: not shown)\n"})
        else:
            out.append({"before_header": w["dest"], "after_header": w["dest"],
                        "before": _text(w["before"]), "after": _text(w["data"])})
    for path in removals:
        out.append({"before_header": path, "after_header": f"{path} (removed)", "before": "(file)\n", "after": ""})
    return out


def write_file(dest, data, mode, uid, gid):
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    tmp = f"{dest}.stack-tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chown(tmp, uid, gid)
    os.chmod(tmp, mode)
    os.replace(tmp, dest)


def apply(writes, removals):
    """Carry out a plan on the live files."""
    for item in writes:
        write_file(item["dest"], item["data"], item["mode"], item["uid"], item["gid"])
    for path in removals:
        os.unlink(path)


def backup(writes, removals, directory):
    """Keep what a change replaces, in directory (root only, 0700): each file's content, owner
    and mode before it, or that it was not there. restore() puts it back."""
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, mode=0o700)
    os.chmod(directory, 0o700)
    entries = []
    for index, dest in enumerate([w["dest"] for w in writes] + list(removals)):
        try:
            st = os.lstat(dest)
        except FileNotFoundError:
            entries.append({"dest": dest, "absent": True})
            continue
        copy = os.path.join(directory, str(index))
        shutil.copyfile(dest, copy)
        os.chmod(copy, 0o600)
        entries.append({"dest": dest, "copy": copy, "mode": st.st_mode & 0o7777, "uid": st.st_uid, "gid": st.st_gid})
    with open(os.path.join(directory, "index.json"), "w", encoding="utf-8") as handle:
        json.dump(entries, handle)


def restore(directory):
    """Put back the files backup() kept in directory (and remove those that were not there);
    the paths restored, or [] when directory holds no backup. The backup is dropped after."""
    try:
        with open(os.path.join(directory, "index.json"), encoding="utf-8") as handle:
            entries = json.load(handle)
    except (OSError, ValueError):
        return []
    for entry in entries:
        if entry.get("absent"):
            if os.path.lexists(entry["dest"]):
                os.unlink(entry["dest"])
            continue
        with open(entry["copy"], "rb") as handle:
            write_file(entry["dest"], handle.read(), entry["mode"], entry["uid"], entry["gid"])
    shutil.rmtree(directory, ignore_errors=True)
    return [entry["dest"] for entry in entries]


def drop_backup(directory):
    if directory:
        shutil.rmtree(directory, ignore_errors=True)


def validate(root, command, writes, removals, check_mode=False):
    """Apply the change to a copy of root and run command on it; return (rc, output), or None
    when the validator is not installed yet (check mode on a host the run would install first).
    The copy sits next to root, or in a private temporary directory in check mode (which writes
    nothing where the service or its owner would see it)."""
    root = os.path.normpath(root)
    argv0 = shlex.split(command)[0]
    if check_mode and not shutil.which(argv0):
        return None
    if check_mode:
        import tempfile  # pylint: disable=import-outside-toplevel
        staging = os.path.join(tempfile.mkdtemp(prefix="monstack-check-"), os.path.basename(root))
    else:
        staging = os.path.join(os.path.dirname(root), f".{os.path.basename(root)}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    if os.path.isdir(root):
        shutil.copytree(root, staging, symlinks=True)
    else:
        os.makedirs(staging)
    try:
        for item in writes:
            if os.path.commonpath([root, item["dest"]]) == root:
                write_file(os.path.join(staging, os.path.relpath(item["dest"], root)),
                           item["data"], item["mode"], item["uid"], item["gid"])
        for path in removals:
            if os.path.commonpath([root, path]) == root:
                os.unlink(os.path.join(staging, os.path.relpath(path, root)))
        argv = [part.replace("{root}", staging) for part in shlex.split(command)]
        proc = subprocess.run(argv, cwd=staging, capture_output=True, text=True, timeout=120)
        output = (proc.stdout + proc.stderr).replace(staging, root)
        return proc.returncode, output.strip()
    finally:
        shutil.rmtree(os.path.dirname(staging) if check_mode else staging, ignore_errors=True)


def serving(address, scheme, timeout=1.0):
    """Whether host:port answers as scheme: https when a TLS handshake succeeds (any certificate),
    http when the port is open and the handshake fails (a plain server answers the hello with
    an HTTP error or closes)."""
    host, _, port = str(address).rpartition(":")
    host = host.strip("[]")
    try:
        sock = socket.create_connection((host, int(port)), timeout)
    except OSError:
        return False
    import ssl  # here: a config step that checks no scheme does not pay for it (25 ms)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with context.wrap_socket(sock, server_hostname=host or None):
            return scheme == "https"
    except (ssl.SSLError, ConnectionError, socket.timeout):
        return scheme == "http"
    except OSError:
        return False
    finally:
        sock.close()


def write_when_serving(files, secrets, prune, wait, poll=0.2):
    """Wait until wait["address"] speaks wait["scheme"] (at most wait["timeout"] seconds), then
    apply the change; True when it was applied."""
    deadline = time.monotonic() + float(wait.get("timeout") or 120)
    while not serving(wait["address"], wait.get("scheme") or "http"):
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    apply(*plan(files, secrets, prune))
    return True


def detach(work):
    """Run work() in a process of its own that outlives the module (double fork, no inherited
    output: the connection returns as soon as the module has answered)."""
    if os.fork():
        return
    os.setsid()
    if os.fork():
        os._exit(0)  # pylint: disable=protected-access
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    try:
        work()
    finally:
        os._exit(0)  # pylint: disable=protected-access


ARGUMENT_SPEC = dict(
    files=dict(type="list", elements="dict", required=True),
    secrets=dict(type="dict", default={}, no_log=True),
    root=dict(type="path"),
    validate=dict(type="str"),
    prune=dict(type="list", elements="path", default=[]),
    when_serving=dict(type="dict"),
    backup_dir=dict(type="path"),
)


def run(p, check_mode=False, diff=False):
    """Plan, validate and apply the files of p (ARGUMENT_SPEC); raises StepError. With
    when_serving a detached process applies them later (see the module's documentation)."""
    try:
        writes, removals = plan(p["files"], p["secrets"], p["prune"], check_mode)
    except (KeyError, ValueError, OSError) as exc:
        raise StepError(f"cannot plan config change: {exc}") from exc
    result = {
        "changed": bool(writes or removals),
        "written": [w["dest"] for w in writes],
        "content_changed": [w["dest"] for w in writes if w["reason"] != "metadata"],
        "created": [w["dest"] for w in writes if w["reason"] == "new"],
        "removed": removals,
    }
    if diff:
        result["diff"] = diffs(writes, removals)
    if not result["changed"]:
        return result
    if p["when_serving"]:
        # armed: the files change when the service switches, after the module has returned
        result["armed"] = dict(p["when_serving"])
        if not check_mode:
            sys.stdout.flush()
            detach(lambda: write_when_serving(p["files"], p["secrets"], p["prune"], p["when_serving"]))
        return result
    touches_root = p["root"] and any(
        os.path.commonpath([os.path.normpath(p["root"]), d]) == os.path.normpath(p["root"])
        for d in result["content_changed"] + removals)
    if p["validate"] and touches_root:
        outcome = validate(p["root"], p["validate"], writes, removals, check_mode)
        rc, output = outcome if outcome else (0, "not validated: the validator is not installed yet (check mode)")
        result["validation"] = output
        if rc != 0:
            result["changed"] = False
            raise StepError(f"the new configuration was rejected; the live one is unchanged:\n{output}", result)
    if not check_mode:
        if p.get("backup_dir"):
            # what this change replaces, for a rollback when the service fails on it (stack_component)
            backup(writes, removals, p["backup_dir"])
            result["backup"] = p["backup_dir"]
        apply(writes, removals)
    return result
