# -*- coding: utf-8 -*-
"""Run the stack_service module; for clustered components, restart a rolling batch at a time.

With `rolling_batch: N` (N > 0) a restart (upgrade, unit change, restart-only config) waits for
one of N slots shared by every host of this ansible-playbook run, and is refused once a host of
the same service failed its restart in this run. The module is first asked with defer_restart:
a host with nothing to restart (every no-op run) makes one round trip and takes no slot; one
with a restart due takes a slot and calls the module again, which restarts and waits until the
service is ready (and, with cluster_status_url, back in its cluster) before the slot is freed.

This is what `serial` does for a play of one component, made to work in site.yml's one pass
(strategy free), where hosts run different components at once and `serial` would make every
host wait for every other.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time

from ansible.plugins.action import ActionBase

MODULE = "monstack.observability.stack_service"


def run_id(pid=None):
    """The same id in every worker process of one ansible-playbook run, another in the next run:
    the main process's pid and start time (workers are its children)."""
    pid = pid or os.getppid()
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            started = handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        started = "0"
    return f"{pid}-{started}"


def run_directory(base=None, current=None):
    """This run's directory for slots and failure marks, made private; those of runs whose main
    process is gone are removed."""
    base = base or os.path.join(tempfile.gettempdir(), f"monstack-rolling-{os.getuid()}")
    current = current or run_id()
    os.makedirs(base, mode=0o700, exist_ok=True)
    for entry in os.listdir(base):
        pid = entry.split("-", 1)[0]
        if entry != current and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(os.path.join(base, entry), ignore_errors=True)
    path = os.path.join(base, current)
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


class RollingSlot:
    """One of `batch` exclusive slots for `name` in `directory` (flock: freed if the holder dies),
    and the mark a failed restart leaves for the hosts after it."""

    def __init__(self, directory, name, batch, poll=0.2):
        self.directory, self.name, self.batch, self.poll = directory, name, max(1, int(batch)), poll
        self.handle = None

    def __enter__(self):
        while True:
            for index in range(self.batch):
                handle = open(os.path.join(self.directory, f"{self.name}.slot{index}"), "a", encoding="utf-8")
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    handle.close()
                    continue
                self.handle = handle
                return self
            time.sleep(self.poll)

    def __exit__(self, *exc):
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()
        self.handle = None

    @property
    def _mark(self):
        return os.path.join(self.directory, f"{self.name}.failed")

    def failed_host(self):
        try:
            with open(self._mark, encoding="utf-8") as handle:
                return handle.read().strip() or "another host"
        except FileNotFoundError:
            return None

    def mark_failed(self, host):
        with open(self._mark, "w", encoding="utf-8") as handle:
            handle.write(host)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        batch = int(args.pop("rolling_batch", 0) or 0)
        if batch <= 0:
            result.update(self._execute_module(MODULE, module_args=args, task_vars=task_vars))
            return result
        first = self._execute_module(MODULE, module_args=dict(args, defer_restart=True), task_vars=task_vars)
        if first.get("failed") or not first.get("deferred"):
            result.update(first)
            return result
        host = task_vars.get("inventory_hostname", "this host")
        with RollingSlot(run_directory(), args["name"], batch) as slot:
            failed = slot.failed_host()
            if failed:
                result.update(failed=True, changed=False, msg=(
                    f"{args['name']} was not restarted here ({first['deferred']}): its restart on {failed} "
                    f"failed in this run, and a rolling restart stops at the first member that does not "
                    f"come back. Fix {failed}, then run again."))
                return result
            outcome = self._execute_module(MODULE, module_args=args, task_vars=task_vars)
            if outcome.get("failed"):
                slot.mark_failed(host)
        result.update(outcome)
        return result
