# -*- coding: utf-8 -*-
"""An online copy of an sqlite database (Grafana's), for the stack_sqlite_backup module."""
from __future__ import annotations

import os
import sqlite3
import tempfile

ARGUMENT_SPEC = {"src": {"type": "path", "required": True},
                 "dest": {"type": "path", "required": True}}


class BackupError(Exception):
    pass


def sqlite_copy(src, dest):
    """Copy the sqlite database src to dest while its program keeps writing to it: sqlite's
    online backup (the pages of one consistent state), into a file next to dest that replaces it
    once complete. Returns dest's size in bytes."""
    if not os.path.isfile(src):
        raise BackupError(f"{src}: no such database file")
    handle, partial = tempfile.mkstemp(prefix=".backup-", dir=os.path.dirname(os.path.abspath(dest)))
    os.close(handle)
    try:
        # the backup reads under shared locks: the live program keeps writing between its steps
        source, target = sqlite3.connect(src, timeout=30), sqlite3.connect(partial)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        os.chmod(partial, 0o600)
        os.replace(partial, dest)
    except sqlite3.Error as exc:
        raise BackupError(f"{src}: {exc}") from exc
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return os.path.getsize(dest)
