"""The one way this project opens a SQLite file it keeps state in.

Write-ahead logging: a commit appends to the log and syncs it (one fdatasync of a file
whose blocks are reused), where a rewritten file costs a sync of the file, a rename and a
sync of its directory — each a journal commit of the file system, several milliseconds
on a busy disk.  ``synchronous`` is FULL where a commit must survive a power loss before
the node acts on it (replay ids, nonce bindings), NORMAL where losing the last commits to
a power loss is harmless (it still survives a crash of the process).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


def open_db(path: Path, synchronous: str = "FULL", timeout: float = 5.0) -> sqlite3.Connection:
    """An autocommit connection to ``path`` in WAL mode, the file created 0600 (its log and
    index files take the same mode) in a directory created if missing.  An existing file is
    never opened by hand: closing any descriptor of a file drops every POSIX lock the process
    holds on it, SQLite's included, and a second connection in one process (a coordinator
    and its ledger opened again) corrupted the database that way."""
    if synchronous not in ("FULL", "NORMAL"):
        raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        try:
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass  # another process made it meanwhile
    db = sqlite3.connect(str(path), timeout=timeout, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    return db
