"""A node's durable record of the jobs it takes part in: a row when the start arrives (kind,
participants, the boot that started it), then the signed result it published.

A result once produced is never only in the broker's memory: a coordinator that missed it
(a broker restart lost it, or it was itself reconnecting) asks with `job_query`, and the node
republishes the stored envelope.  A started job without a result whose row belongs to an
earlier boot is one this node lost: it stopped while running it.

SQLite in WAL mode with synchronous=NORMAL, written before the result is published: a row
survives a crash of the node process (the tests' SIGKILL, a bug, an OOM kill); a crash of
the machine may lose the latest rows, and with them only that recovery (the coordinator then
hears "unknown"), never a key, nonce or presignature.  Every job wrote two rows with an fsync
each on the path to its result (~2 ms each on this machine's disk).  Bounded: rows older
than the retention are pruned, and no more than `max_rows` are kept (checked at most once
every PRUNE_EVERY_S: the bound's query sorts the table).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from mpc_nodes.durable_db import open_db

RETENTION_S = 7 * 24 * 3600.0
MAX_ROWS = 20_000
PRUNE_EVERY_S = 60.0
MAX_PARAMS = 4096
"""Parameters up to this size (JSON) are kept, so that `job show` can check an output
against them (a signed transaction against the one requested)."""


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    request_digest: str
    kind: str
    shared: bool
    participants: list[str]
    boot_id: str
    params: dict | None  # the request's parameters, when small (None: too big to keep)
    result: bytes | None  # the signed result envelope as published, once there is one


class JobRecords:
    """Started jobs and their signed results, kept across restarts."""

    def __init__(self, path: Path, retention_s: float = RETENTION_S, max_rows: int = MAX_ROWS):
        self._db = open_db(path, "NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY,"
                         " request_digest TEXT NOT NULL, kind TEXT NOT NULL,"
                         " shared INTEGER NOT NULL, participants TEXT NOT NULL,"
                         " boot_id TEXT NOT NULL, params TEXT, result BLOB,"
                         " at REAL NOT NULL)")
        self.retention_s, self.max_rows = retention_s, max_rows
        self._pruned_at = float("-inf")

    def started(self, job_id: str, request_digest: str, kind: str, shared: bool,
                participants: list[str], boot_id: str, params: dict) -> None:
        """Record that this node (boot `boot_id`) was started on a job."""
        now = time.time()
        params_json = json.dumps(params, sort_keys=True)
        self._db.execute("INSERT OR IGNORE INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?)",
                         (job_id, request_digest, kind, int(shared), json.dumps(participants),
                          boot_id, params_json if len(params_json) <= MAX_PARAMS else None,
                          now))
        self._prune(now)

    def finished(self, job_id: str, request_digest: str, kind: str, shared: bool,
                 boot_id: str, result: bytes) -> None:
        """Store the signed result envelope (a job refused at its start has no row yet)."""
        self._db.execute("INSERT INTO jobs VALUES (?, ?, ?, ?, '[]', ?, NULL, ?, ?)"
                         " ON CONFLICT(job_id)"
                         " DO UPDATE SET result = excluded.result",
                         (job_id, request_digest, kind, int(shared), boot_id, result,
                          time.time()))

    def get(self, job_id: str) -> JobRecord | None:
        row = self._db.execute("SELECT job_id, request_digest, kind, shared, participants,"
                               " boot_id, params, result FROM jobs WHERE job_id = ?",
                               (job_id,)).fetchone()
        if row is None:
            return None
        return JobRecord(row[0], row[1], row[2], bool(row[3]), json.loads(row[4]), row[5],
                         json.loads(row[6]) if row[6] is not None else None,
                         bytes(row[7]) if row[7] is not None else None)

    def _prune(self, now: float) -> None:
        if now - self._pruned_at < PRUNE_EVERY_S:
            return
        self._pruned_at = now
        self._db.execute("DELETE FROM jobs WHERE at < ?", (now - self.retention_s,))
        self._db.execute("DELETE FROM jobs WHERE job_id NOT IN (SELECT job_id FROM jobs"
                         " ORDER BY at DESC LIMIT ?)", (self.max_rows,))

    def close(self) -> None:
        self._db.close()
