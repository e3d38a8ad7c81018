# -*- coding: utf-8 -*-
"""What the host-side steps (install, config, service) share: how a step fails."""
from __future__ import annotations


class StepError(Exception):
    """A step failed: msg says why, result holds what the step had found or done so far."""

    def __init__(self, msg, result=None):
        super().__init__(msg)
        self.msg = msg
        self.result = dict(result or {})
