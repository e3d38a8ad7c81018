# -*- coding: utf-8 -*-
"""What playbooks/backup.yml and restore.yml decide beyond builtin modules: the silences worth
putting back into an Alertmanager, and the backups a retention count drops (the online copy of
Grafana's database is module_utils/stack_sqlite_backup.py)."""
from __future__ import annotations

import datetime
import os


class BackupError(Exception):
    pass


def _time(value):
    """Alertmanager's RFC 3339 timestamps (2026-12-07T10:00:00.123Z) as aware datetimes."""
    text = str(value).replace("Z", "+00:00")
    # fromisoformat before Python 3.11 takes at most microseconds: cut longer fractions
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        rest = rest[:min(digits, 6)] + rest[digits:]
        text = head + dot + rest
    return datetime.datetime.fromisoformat(text)


def _utc(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _same(saved, live):
    keys = ("matchers", "endsAt", "createdBy", "comment")
    matchers = sorted(tuple(sorted(m.items())) for m in saved.get("matchers") or [])
    other = sorted(tuple(sorted(m.items())) for m in live.get("matchers") or [])
    return matchers == other and all(_time(saved[k]) == _time(live[k]) if k == "endsAt" else saved.get(k) == live.get(k)
                                     for k in keys[1:])


def silences_to_restore(saved, live, now):
    """The silences of a backup (GET /api/v2/silences) to post again: those not expired at `now`
    (RFC 3339), each without its id (Alertmanager takes a silence with an unknown id as an update of
    one it does not have and refuses it) and starting no earlier than now; one an Alertmanager
    already holds (the same matchers, end, author and comment, as its cluster peers gossip them
    back) is left out."""
    moment = _time(now)
    out = []
    for silence in saved or []:
        if (silence.get("status") or {}).get("state") == "expired" or _time(silence["endsAt"]) <= moment:
            continue
        if any(_same(silence, other) for other in live or [] if (other.get("status") or {}).get("state") != "expired"):
            continue
        out.append({"matchers": silence["matchers"], "startsAt": _utc(max(_time(silence["startsAt"]), moment)),
                    "endsAt": silence["endsAt"], "createdBy": silence.get("createdBy") or "monstack (restore)",
                    "comment": silence.get("comment") or "restored"})
    return out


def backups_to_drop(paths, keep):
    """Of the backup directories `paths` (named by their UTC stamps, 20261207T101500Z), the ones
    beyond the newest `keep`."""
    if int(keep) < 1:
        raise BackupError(f"backup_keep must be at least 1, not {keep}")
    ordered = sorted(paths, key=os.path.basename)
    return ordered[:-int(keep)]
