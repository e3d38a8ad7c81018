# -*- coding: utf-8 -*-
"""Count, per host, the tasks a playbook run executed (ok, changed, failed) and skipped, and time them.

Enabled by benchmarks/run; writes JSON to $BENCH_COUNTER_OUT when the run ends. A task's time is
from the moment a worker starts it for a host to its result (so a loop counts once, whole).
"""
from __future__ import annotations

import json
import os
import time
from collections import defaultdict

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: bench_counter
type: aggregate
short_description: Per-host task counts for the benchmark
description: "Writes {host: {executed, ok, changed, failed, skipped, seconds: {task: s}}} to $BENCH_COUNTER_OUT."
requirements: [enable in callbacks_enabled]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_counter"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.counts = defaultdict(lambda: {"executed": 0, "ok": 0, "changed": 0, "failed": 0, "skipped": 0,
                                           "seconds": defaultdict(float)})
        self.started = {}

    def v2_runner_on_start(self, host, task):
        self.started[(host.get_name(), task._uuid)] = time.monotonic()

    def _count(self, result, kind):
        host = result._host.get_name()
        self.counts[host][kind] += 1
        if kind != "skipped":
            self.counts[host]["executed"] += 1
        began = self.started.pop((host, result._task._uuid), None)
        if began is not None:
            self.counts[host]["seconds"][result._task.get_name()] += time.monotonic() - began

    def v2_runner_on_ok(self, result):
        self._count(result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._count(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._count(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._count(result, "failed")

    def v2_playbook_on_stats(self, stats):
        out = os.environ.get("BENCH_COUNTER_OUT")
        if out:
            with open(out, "w", encoding="utf-8") as handle:
                json.dump(self.counts, handle, indent=1, sort_keys=True)
