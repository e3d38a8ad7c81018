# -*- coding: utf-8 -*-
"""Bring a systemd service to its wanted state and prove it is ready (for the stack_service and
stack_component modules).

Restarts only when something the running process depends on changed: the unit file
(systemd's NeedDaemonReload, or the file or a drop-in newer than the process: anyone's
daemon-reload in between clears the flag), the binary (the running executable is not the
linked one) or an explicit request; reloads when only its config changed.  After any start,
restart or reload it waits for the readiness endpoint and checks that the unit did not
restart meanwhile; a unit that never gets ready or crash-loops fails the step with its
last journal lines instead of leaving the play green.
"""
from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import time

from ansible_collections.monstack.observability.plugins.module_utils import stack_silence
from ansible_collections.monstack.observability.plugins.module_utils.stack_step import StepError


def systemctl(*args, check=True):
    proc = subprocess.run(["systemctl", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"systemctl {' '.join(args)} failed: {(proc.stderr or proc.stdout).strip()}")
    return proc


def show(unit):
    props = ("LoadState,ActiveState,SubState,MainPID,NRestarts,UnitFileState,NeedDaemonReload,ExecReload,"
             "FragmentPath,DropInPaths")
    out = systemctl("show", unit, "-p", props).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def symlink_mtimes(path):
    """Modification times of every symlink met while resolving path."""
    times, pending = [], os.path.abspath(path)
    for _ in range(40):
        parts, current = pending.strip("/").split("/"), "/"
        for index, part in enumerate(parts):
            candidate = os.path.join(current, part)
            if os.path.islink(candidate):
                times.append(os.lstat(candidate).st_mtime)
                target = os.readlink(candidate)
                base = target if os.path.isabs(target) else os.path.join(current, target)
                pending = os.path.normpath(os.path.join(base, *parts[index + 1:]))
                break
            current = candidate
        else:
            break
    return times


def process_start(pid):
    with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
        ticks = int(handle.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/stat", encoding="utf-8") as handle:
        boot = next(int(line.split()[1]) for line in handle if line.startswith("btime "))
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def binary_replaced(pid, binary):
    """Is the running process executing something other than what binary now points at?

    Reads /proc/<pid>/exe; where that is denied (no CAP_SYS_PTRACE, as in unprivileged
    containers) it asks whether a link on the way to the binary changed after the process
    started (with a margin for the second-granular boot time)."""
    try:
        return os.readlink(f"/proc/{pid}/exe") != os.path.realpath(binary)
    except OSError:
        pass
    try:
        started = process_start(pid)
    except (OSError, ValueError, IndexError, StopIteration):
        return False
    return any(mtime > started + 1.5 for mtime in symlink_mtimes(binary))


def unit_newer(pid, state):
    """Was the unit file or one of its drop-ins written after the process started? systemd's
    NeedDaemonReload says so only until the next daemon-reload, which any other service's step
    (or any other tool) may run in between: site.yml's one pass configures all of a host's
    components before it switches them."""
    paths = [state.get("FragmentPath") or ""] + (state.get("DropInPaths") or "").split()
    try:
        started = process_start(pid)
    except (OSError, ValueError, IndexError, StopIteration):
        return False
    for path in filter(None, paths):
        try:
            # the same margin as binary_replaced: the boot time is counted in whole seconds
            if os.stat(path).st_mtime > started + 1.5:
                return True
        except OSError:
            continue
    return False


# A reload or restart a config change needs, kept on the host until the service step carried it
# out: a run that wrote the config and stopped before its service step (--skip-tags service, a
# failure, a lost connection) leaves it, and the next run that reaches the service step does it.
PENDING_DIR = "/var/lib/monstack/pending"


def pending_path(name, directory=None):
    return os.path.join(directory or PENDING_DIR, f"{name}.json")


def read_pending(name, directory=None):
    """The action ("reload" or "restart") and reason an earlier run left for this service, or None."""
    try:
        with open(pending_path(name, directory), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("action") in ("reload", "restart") else None


def write_pending(name, action, reason, directory=None):
    """Record that the service needs action (the stronger one where one is pending already)."""
    before = read_pending(name, directory)
    if before and (before["action"] == "restart" or action == "reload"):
        action, reason = before["action"], before.get("reason") or reason
    path = pending_path(name, directory)
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump({"action": action, "reason": reason}, handle)
    os.replace(tmp, path)


def clear_pending(name, directory=None):
    try:
        os.unlink(pending_path(name, directory))
    except FileNotFoundError:
        pass


def request(url, username=None, password=None, method="GET", timeout=3, client_cert=None):
    """HTTP call to a service on this host: never through a proxy, certificate not checked
    (it may be self-signed), basic auth when a user is given, client_cert ([cert, key] files)
    presented when given. Returns (status, body). Errors are OSErrors (urllib's included)."""
    # imported here: urllib.request and ssl are most of a no-op's imports on the host (45 ms),
    # and most no-ops make no HTTP call
    import ssl
    import urllib.request

    req = urllib.request.Request(url, data=b"" if method == "POST" else None, method=method)
    if username:
        token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    handlers = [urllib.request.ProxyHandler({})]
    if url.startswith("https"):
        context = ssl._create_unverified_context()
        if client_cert:
            context.load_cert_chain(*client_cert)
        handlers.append(urllib.request.HTTPSHandler(context=context))
    with urllib.request.build_opener(*handlers).open(req, timeout=timeout) as response:
        return response.status, response.read()


def probe(url, port, username, password, accept=(), client_cert=None):
    """(ready, detail, note): note says why an answer in accept ({status, body, means}: a
    non-2xx answer that still means the service runs) counted as ready."""
    if url:
        import urllib.error

        try:
            status, _ = request(url, username, password, client_cert=client_cert)
            return 200 <= status < 300, f"HTTP {status}", None
        except urllib.error.HTTPError as exc:
            body = exc.read().decode("utf-8", "replace")
            for answer in accept or ():
                if exc.code == answer["status"] and answer["body"] in body:
                    return True, f"HTTP {exc.code}: {answer['body']}", answer["means"]
            return False, f"HTTP {exc.code}", None
        except OSError as exc:
            return False, str(getattr(exc, "reason", exc)), None
    if port:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=3):
                return True, f"port {port} open", None
        except OSError as exc:
            return False, str(exc), None
    return True, "no readiness check configured", None


def fetch(url, username, password):
    return request(url, username, password, timeout=15)[1].decode("utf-8", "replace")


def post(url, username, password):
    return request(url, username, password, method="POST", timeout=30)[1]


def metric_value(text, metric):
    """Value of the first sample of metric in Prometheus text format, or None."""
    for line in text.splitlines():
        if line.startswith(metric) and line[len(metric):len(metric) + 1] in (" ", "{"):
            try:
                return float(line.rsplit(None, 1)[-1])
            except ValueError:
                return None
    return None


def run_checks(p):
    failed = []
    for check in p["checks"]:
        name, metric, expect = check.get("name") or check["url"], check["metric"], float(check.get("expect", 1))
        try:
            value = metric_value(fetch(check["url"], p["url_username"], p["url_password"]), metric)
        except OSError as exc:
            failed.append(f"{name}: {check['url']} did not answer ({getattr(exc, 'reason', exc)})")
            continue
        if value != expect:
            failed.append(f"{name}: {metric} is {'missing' if value is None else f'{value:g}'}, expected {expect:g}")
    return failed


def journal(unit, lines):
    proc = subprocess.run(["journalctl", "-u", unit, "-n", str(lines), "--no-pager", "-o", "short-iso"],
                          capture_output=True, text=True)
    return (proc.stdout or proc.stderr).strip()


def wait_ready(p, unit, restarts_before, result):
    """(ready, detail); why an accepted answer counted as ready (probe's note) goes to
    result["ready_notes"], which finish() gives as warnings."""
    deadline = time.monotonic() + p["ready_timeout"]
    detail = "not probed"
    while True:
        state = show(unit)
        if state.get("ActiveState") in ("failed", "inactive"):
            return False, f"the unit is {state.get('ActiveState')} ({state.get('SubState')})"
        if int(state.get("NRestarts") or 0) > restarts_before:
            return False, f"the unit restarted {int(state['NRestarts']) - restarts_before} time(s) while starting"
        if state.get("ActiveState") == "active":
            ok, detail, note = probe(p["ready_url"], p["ready_port"], p["url_username"], p["url_password"],
                                     p.get("ready_accept"), p.get("ready_client_cert") or None)
            if ok:
                if note:
                    result.setdefault("ready_notes", []).append(note)
                # one more look: a process that answered once and died right after is not ready
                time.sleep(0.5)
                again = show(unit)
                if again.get("ActiveState") == "active" and again.get("MainPID") == state.get("MainPID"):
                    return True, detail
                detail = "the process exited right after answering"
        if time.monotonic() > deadline:
            target = p["ready_url"] or (f"port {p['ready_port']}" if p["ready_port"] else "the unit")
            return False, f"{target} not ready after {p['ready_timeout']} s (last: {detail})"
        time.sleep(0.5)


def cluster_peers(p):
    """How many cluster peers the member sees (itself included), or None when it does not answer."""
    try:
        status = json.loads(fetch(p["cluster_status_url"], p["url_username"], p["url_password"]))
        return len((status.get("cluster") or {}).get("peers") or [])
    except (OSError, ValueError, AttributeError):
        return None


def wait_peers(p, before):
    """After a restart: wait until the member sees as many peers as before it."""
    deadline = time.monotonic() + p["ready_timeout"]
    while True:
        now = cluster_peers(p) or 0
        if now >= before:
            return True, f"sees {now} of {before} cluster peers again"
        if time.monotonic() > deadline:
            return False, f"sees {now} of the {before} cluster peers it saw before, after {p['ready_timeout']} s"
        time.sleep(1)


ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    enabled=dict(type="bool", default=True),
    restart=dict(type="bool", default=False),
    reload=dict(type="bool", default=False),
    binary=dict(type="path"),
    ready_url=dict(type="str"),
    ready_accept=dict(type="list", elements="dict", default=[]),
    ready_client_cert=dict(type="list", elements="path", default=[]),
    ready_port=dict(type="int"),
    ready_timeout=dict(type="int", default=60),
    url_username=dict(type="str"),
    url_password=dict(type="str", no_log=True),
    journal_lines=dict(type="int", default=30),
    checks=dict(type="list", elements="dict", default=[]),
    checks_fatal=dict(type="bool", default=False),
    reload_urls=dict(type="list", elements="str", default=[]),
    defer_restart=dict(type="bool", default=False),
    cluster_status_url=dict(type="str"),
    reason=dict(type="str"),
    silence=dict(type="dict"),
    silence_password=dict(type="str", no_log=True),
)


def run(p, check_mode=False, warn=None):
    """Bring the unit of p (ARGUMENT_SPEC) to its wanted state, wait until it is ready and run its
    checks; warn(text) gets what the checks found. Raises StepError."""
    unit = p["name"] + ".service"
    result = {"changed": False, "actions": []}
    pending = read_pending(p["name"])
    if pending:
        p = dict(p, restart=p["restart"] or pending["action"] == "restart",
                 reload=p["reload"] or pending["action"] == "reload",
                 reason=p.get("reason") or f"pending since an earlier run: {pending.get('reason') or pending['action']}")
    try:
        state = show(unit)
        if state.get("LoadState") == "not-found" or state.get("NeedDaemonReload") == "yes":
            result["actions"].append("daemon-reload")
            unit_changed = state.get("LoadState") != "not-found"
        else:
            unit_changed = False
        active = state.get("ActiveState") in ("active", "reloading")
        pid = int(state.get("MainPID") or 0)
        unit_changed = unit_changed or bool(active and pid and unit_newer(pid, state))
        binary_changed = bool(active and p["binary"] and pid and binary_replaced(pid, p["binary"]))
        if p["enabled"] and state.get("UnitFileState") != "enabled":
            result["actions"].append("enable")
        if not active:
            result["actions"].append("start")
        elif p["restart"] or unit_changed or binary_changed:
            result["actions"].append("restart")
            # the caller's reason first (a new release, a changed unit: what check mode also knows)
            detected = "binary changed" if binary_changed else "unit changed" if unit_changed else "requested"
            result["restart_reason"] = (p["restart"] and p.get("reason")) or detected
        elif p["reload"]:
            result["actions"].append("reload" if state.get("ExecReload") or p["reload_urls"] else "restart")
            result["reload_reason"] = p.get("reason") or "requested"
        result["changed"] = bool(result["actions"])
        if p["defer_restart"] and "restart" in result["actions"]:
            return {"changed": False, "actions": [], "deferred": result["restart_reason"]}
        if check_mode:
            return result
        if not result["changed"]:
            clear_pending(p["name"])
            return finish(p, result, warn)

        if "daemon-reload" in result["actions"]:
            systemctl("daemon-reload")
        if "enable" in result["actions"]:
            systemctl("enable", unit)
        # at most one of these was chosen above
        action = next((a for a in ("start", "restart", "reload") if a in result["actions"]), None)
        if action == "reload" and p["reload_urls"]:
            try:
                for url in p["reload_urls"]:
                    post(url, p["url_username"], p["url_password"])
                ok, detail = wait_ready(p, unit, int(show(unit).get("NRestarts") or 0), result)
                result["ready"] = detail
                if not ok:
                    raise StepError(f"{unit} is not ready after reload: {detail}", result)
                action = None
            except OSError as exc:
                # the API refused (e.g. credentials changed): a restart applies the change as well
                result["actions"][result["actions"].index("reload")] = "restart"
                result["restart_reason"] = f"reload through the API failed ({getattr(exc, 'reason', exc)})"
                action = "restart"
        peers_before = cluster_peers(p) if action == "restart" and p["cluster_status_url"] else None
        silence = None
        if action == "restart" and p.get("silence"):
            # the alerts about this service's own targets stay quiet while it restarts
            silence, problem = stack_silence.begin(p["silence"], p.get("silence_password"), p["ready_timeout"] + 60)
            if silence:
                result["silence"] = dict(silence)
            elif warn:
                warn(f"{p['name']} restarts without a maintenance silence: no Alertmanager took it ({problem})")
        try:
            restart_and_wait(p, unit, action, peers_before, result)
        finally:
            if silence:
                outcome = "ready again" if "window" in result else "restart failed"
                problem = stack_silence.end(p["silence"], p.get("silence_password"), silence,
                                            int(p["silence"].get("grace") or 0), outcome)
                if problem and warn:
                    warn(f"the maintenance silence {silence['id']} for {p['name']} could not be ended early: {problem}")
    except RuntimeError as exc:
        raise StepError(str(exc), result) from exc
    # carried out: nothing is pending any more
    clear_pending(p["name"])
    return finish(p, result, warn)


def restart_and_wait(p, unit, action, peers_before, result):
    """Start, restart or reload the unit (action, or nothing), wait until it is ready and, after
    a restart of a cluster member, back in its cluster; result gets ready, cluster and window."""
    if action:
        began = time.time()
        proc = systemctl(action, unit, check=False)
        if proc.returncode != 0:
            raise StepError(f"{unit}: systemctl {action} failed: {proc.stderr.strip()}\n"
                            f"last journal lines:\n{journal(unit, p['journal_lines'])}", result)
        # counted after a manual start, which resets it: later increments are crash restarts
        ok, detail = wait_ready(p, unit, int(show(unit).get("NRestarts") or 0), result)
        result["ready"] = detail
        if not ok:
            raise StepError(f"{unit} is not ready after {action}: {detail}\n"
                            f"last journal lines:\n{journal(unit, p['journal_lines'])}", result)
        if peers_before:
            ok, detail = wait_peers(p, peers_before)
            result["cluster"] = detail
            if not ok:
                raise StepError(f"{unit} restarted but {detail}", result)
        # when the service went down and when it was back (ready, and in its cluster): how
        # long a restart took, and that a rolling restart's windows do not overlap
        result["window"] = [round(began, 3), round(time.time(), 3)]


def finish(p, result, warn=None):
    """Run the post-start checks: their problems are warnings, or a StepError with checks_fatal.
    An answer the readiness check accepted (ready_accept) is a warning as well."""
    for note in result.get("ready_notes") or []:
        if warn:
            warn(f"{p['name']} on {socket.gethostname()} is ready, but {note}")
    if p["checks"]:
        result["checks_failed"] = run_checks(p)
        where = f"{p['name']} on {socket.gethostname()}"
        if result["checks_failed"] and p["checks_fatal"]:
            raise StepError(f"{where} runs, but: " + "; ".join(result["checks_failed"]), result)
        for problem in result["checks_failed"]:
            if warn:
                warn(f"{where} runs, but {problem}")
    return result
