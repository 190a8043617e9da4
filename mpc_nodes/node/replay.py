"""Durable replay protection: a job id is accepted once, across restarts.

Job ids are recorded in SQLite (synchronous=FULL) before the node votes.  Requests may
live at most the cluster's max request TTL, so ids older than their expiry are pruned:
a replay of such a request is refused as expired instead.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from mpc_nodes.durable_db import open_db


class ReplayGuard:
    """Remembers which job ids this node has seen."""

    def __init__(self, path: Path):
        self._db = open_db(path, "FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS seen (job_id TEXT PRIMARY KEY,"
                         " expires_at REAL NOT NULL)")

    def first_time(self, job_id: str, expires_at: float) -> bool:
        """Record job_id durably; False if it was seen before."""
        self._db.execute("DELETE FROM seen WHERE expires_at < ?", (time.time() - 60.0,))
        try:
            self._db.execute("INSERT INTO seen VALUES (?, ?)", (job_id, expires_at))
        except sqlite3.IntegrityError:
            return False
        return True

    def close(self) -> None:
        self._db.close()
