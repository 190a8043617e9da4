"""The coordinator's own record of keys and presignatures (coordinator/ledger.sqlite).

Several coordinator processes may share one ledger (`sign --presigned` run in parallel), so
it is a SQLite database: a presignature (ECDSA) or a preprocessed FROST commitment is taken
inside one write transaction that marks it taken, and is therefore handed out once, whatever
runs beside it.  One that no longer is usable (its holder restarted, it expired, a holder
refused it) is dropped with the reason, never offered again.  keys.json of earlier versions
is migrated on first open.
"""

from __future__ import annotations

import copy
import json
import time
from contextlib import contextmanager
from pathlib import Path

from mpc_nodes.durable_db import open_db

SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (key_id TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS presignatures (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id TEXT NOT NULL, id TEXT NOT NULL, binding TEXT NOT NULL, epoch INTEGER NOT NULL,
    boots TEXT, expires REAL NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'ready',       -- ready, taken or dropped
    reason TEXT, changed REAL,
    UNIQUE (key_id, id));
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS frost_commitments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id TEXT NOT NULL, party TEXT NOT NULL, identifier INTEGER NOT NULL,
    hiding TEXT NOT NULL, binding TEXT NOT NULL, epoch INTEGER NOT NULL,
    boot TEXT NOT NULL, expires REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'ready',       -- ready, taken or dropped
    reason TEXT, changed REAL,
    UNIQUE (key_id, party, hiding));
"""
USE_MARGIN_S = 120.0  # a presignature this close to expiry is not offered: the sign must land


class Ledger:
    """Keys this coordinator made (scheme, public key, threshold, epoch, and for FROST keys
    the verification shares it checks signature shares against: `data`, `key`, `save`), the
    presignatures of its ECDSA keys and the preprocessed commitments of its FROST keys."""

    def __init__(self, coordinator_yaml: Path):
        directory = Path(coordinator_yaml).parent
        self.path = directory / "ledger.sqlite"
        self.db = open_db(self.path, "FULL", timeout=60)
        self.db.executescript(SCHEMA)
        _migrate(self, directory / "keys.json")
        self.data = {k: json.loads(r) for k, r in self.db.execute("SELECT key_id, record FROM keys")}
        self._saved = copy.deepcopy(self.data)

    @contextmanager
    def _write(self):
        """One write transaction: other processes wait for it (BEGIN IMMEDIATE)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def key(self, key_id: str) -> dict:
        return self.data.setdefault(key_id, {})

    def save(self) -> None:
        """Write the key records changed here (others' changes to other keys are kept)."""
        changed = {k: v for k, v in self.data.items() if self._saved.get(k) != v}
        with self._write() as db:
            db.executemany("INSERT OR REPLACE INTO keys VALUES (?, ?)",
                           [(k, json.dumps(v)) for k, v in changed.items()])
        self._saved = copy.deepcopy(self.data)

    # -- presignatures ----------------------------------------------------------------------

    def add_presignatures(self, key_id: str, ids: list[str], binding: str, epoch: int,
                          boots: dict[str, str], expires: float) -> None:
        """Record presignatures every holder (`binding`) reported alike, made while each
        holder ran the process with the boot id in `boots`."""
        with self._write() as db:
            db.executemany("INSERT INTO presignatures (key_id, id, binding, epoch, boots,"
                           " expires) VALUES (?, ?, ?, ?, ?, ?)",
                           [(key_id, i, binding, epoch, json.dumps(boots), expires) for i in ids])

    def presignatures(self, key_id: str, state: str = "ready") -> list[dict]:
        rows = self.db.execute("SELECT id, binding, epoch, boots, expires, reason FROM"
                               " presignatures WHERE key_id = ? AND state = ? ORDER BY seq",
                               (key_id, state))
        return [{"id": i, "binding": b, "epoch": e, "boots": json.loads(bo or "null"),
                 "expires": x, "reason": r} for i, b, e, bo, x, r in rows]

    def take_presignature(self, key_id: str, boots: dict[str, str]) -> tuple[dict | None,
                                                                             list[dict]]:
        """Take the first presignature of `key_id` its holders can still have, for this
        caller alone: unexpired, and every holder still runs the process that made it (the
        same boot id in `boots`, party name -> boot id of its presence; a node keeps
        presignatures in memory only).  Returns it (None when none is left) and the entries
        dropped on the way, each with its reason."""
        dropped = []
        with self._write() as db:
            for entry in self._ready(db, key_id):
                reason = unusable(entry, boots)
                if reason is None:
                    _mark(db, key_id, entry["id"], "taken", None)
                    return entry, dropped
                _mark(db, key_id, entry["id"], "dropped", reason)
                dropped.append({**entry, "reason": reason})
        return None, dropped

    def reconcile(self, key_id: str, boots: dict[str, str]) -> list[dict]:
        """Drop every ready presignature of `key_id` some holder can no longer have; those
        dropped, each with its reason."""
        dropped = []
        with self._write() as db:
            for entry in self._ready(db, key_id):
                if (reason := unusable(entry, boots)) is not None:
                    _mark(db, key_id, entry["id"], "dropped", reason)
                    dropped.append({**entry, "reason": reason})
        return dropped

    def drop_presignature(self, key_id: str, presignature: str, reason: str) -> None:
        """A holder refused it (it lacks it or used it): never offer it again."""
        with self._write() as db:
            _mark(db, key_id, presignature, "dropped", reason)

    def drop_all_presignatures(self, key_id: str, reason: str) -> None:
        with self._write() as db:
            db.execute("UPDATE presignatures SET state = 'dropped', reason = ?, changed = ?"
                       " WHERE key_id = ? AND state = 'ready'", (reason, time.time(), key_id))

    def _ready(self, db, key_id: str) -> list[dict]:
        rows = db.execute("SELECT id, binding, epoch, boots, expires FROM presignatures"
                          " WHERE key_id = ? AND state = 'ready' ORDER BY seq", (key_id,))
        return [{"id": i, "binding": b, "epoch": e, "boots": json.loads(bo or "null"),
                 "expires": x} for i, b, e, bo, x in rows.fetchall()]


    # -- preprocessed FROST commitments, per key and party ------------------------------------

    def add_commitments(self, key_id: str, party: str, identifier: int, commitments: list[dict],
                        epoch: int, boot: str, expires: float) -> None:
        """Record `party`'s preprocessed commitments ({hiding, binding} hex) of a key epoch,
        made by its process with boot id `boot` (its nonces live in that process only)."""
        with self._write() as db:
            db.executemany("INSERT INTO frost_commitments (key_id, party, identifier, hiding,"
                           " binding, epoch, boot, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           [(key_id, party, identifier, c["hiding"], c["binding"], epoch, boot,
                             expires) for c in commitments])

    def commitments(self, key_id: str) -> dict[str, int]:
        """Ready preprocessed commitments of a key, per party."""
        rows = self.db.execute("SELECT party, COUNT(*) FROM frost_commitments WHERE key_id = ?"
                               " AND state = 'ready' GROUP BY party ORDER BY party", (key_id,))
        return dict(rows.fetchall())

    def take_commitments(self, key_id: str, parties: list[str], epoch: int,
                         boots: dict[str, str]) -> tuple[dict[str, dict] | None, list[dict]]:
        """One preprocessed commitment per party of `parties`, for this caller alone, or
        None (and none taken) unless every one of them has a usable one: of key epoch
        `epoch`, unexpired, made by the process the party runs now (`boots`: party name ->
        boot id).  Also returns the entries dropped on the way, each with its reason."""
        stocked = self.commitments(key_id)
        if not all(stocked.get(party) for party in parties):  # no write for an empty pool
            return None, []
        taken, dropped = {}, []
        with self._write() as db:
            for party in parties:
                for entry in self._ready_commitments(db, key_id, party):
                    reason = commitment_unusable(entry, epoch, boots)
                    if reason is None:
                        taken[party] = entry
                        break
                    _mark_commitment(db, entry["seq"], "dropped", reason)
                    dropped.append({**entry, "reason": reason})
            if len(taken) < len(parties):
                return None, dropped
            for entry in taken.values():
                _mark_commitment(db, entry["seq"], "taken", None)
        return taken, dropped

    def drop_commitments(self, key_id: str, party: str, reason: str) -> int:
        """`party` refused one (a restart lost its nonces): drop all its ready ones of the
        key; how many."""
        with self._write() as db:
            return db.execute("UPDATE frost_commitments SET state = 'dropped', reason = ?,"
                              " changed = ? WHERE key_id = ? AND party = ? AND state = 'ready'",
                              (reason, time.time(), key_id, party)).rowcount

    def reconcile_commitments(self, key_id: str, epoch: int, boots: dict[str, str]) -> list[dict]:
        """Drop every ready commitment of `key_id` its party can no longer have; those
        dropped, each with its reason."""
        dropped = []
        with self._write() as db:
            for entry in self._ready_commitments(db, key_id):
                if (reason := commitment_unusable(entry, epoch, boots)) is not None:
                    _mark_commitment(db, entry["seq"], "dropped", reason)
                    dropped.append({**entry, "reason": reason})
        return dropped

    def _ready_commitments(self, db, key_id: str, party: str | None = None) -> list[dict]:
        rows = db.execute("SELECT seq, party, identifier, hiding, binding, epoch, boot, expires"
                          " FROM frost_commitments WHERE key_id = ? AND state = 'ready'"
                          " AND (? IS NULL OR party = ?) ORDER BY seq", (key_id, party, party))
        return [dict(zip(("seq", "party", "identifier", "hiding", "binding", "epoch", "boot",
                          "expires"), row)) for row in rows.fetchall()]


def commitment_unusable(entry: dict, epoch: int, boots: dict[str, str]) -> str | None:
    """Why the party of a preprocessed commitment cannot use it now, or None."""
    party = entry["party"]
    if entry["expires"] - USE_MARGIN_S <= time.time():
        return "expired"
    if entry["epoch"] != epoch:
        return f"bound to epoch {entry['epoch']}; the key is at epoch {epoch}"
    return _process_gone(party, entry["boot"], boots, "nonces")


def _mark_commitment(db, seq: int, state: str, reason: str | None) -> None:
    db.execute("UPDATE frost_commitments SET state = ?, reason = ?, changed = ? WHERE seq = ?",
               (state, reason, time.time(), seq))


def unusable(entry: dict, boots: dict[str, str]) -> str | None:
    """Why a holder of this presignature cannot have it now, or None."""
    if entry["expires"] - USE_MARGIN_S <= time.time():
        return "expired"
    recorded = entry["boots"] or {}
    for holder in entry["binding"].split(","):
        if holder not in recorded:
            return f"no record of {holder}'s process (made by an earlier version)"
        if (gone := _process_gone(holder, recorded[holder], boots, "presignatures")):
            return gone
    return None


def _process_gone(party: str, made_by: str, boots: dict[str, str], what: str) -> str | None:
    """Why `party` no longer holds one-time secrets (`what`) that its process with boot id
    `made_by` made, or None: they live in that process's memory only."""
    if boots.get(party) is None:
        return f"{party} is not online (its {what} are gone if it restarts)"
    if boots[party] != made_by:
        return f"{party} restarted since (a restart discards its {what})"
    return None


def _mark(db, key_id: str, presignature: str, state: str, reason: str | None) -> None:
    db.execute("UPDATE presignatures SET state = ?, reason = ?, changed = ? WHERE key_id = ?"
               " AND id = ?", (state, reason, time.time(), key_id, presignature))


def _migrate(ledger: Ledger, old: Path) -> None:
    """Import keys.json of an earlier version once, then rename it keys.json.migrated."""
    with ledger._write() as db:
        done = db.execute("SELECT 1 FROM meta WHERE name = 'migrated keys.json'").fetchone()
        if not done and old.exists():
            for key_id, record in json.loads(old.read_text()).items():
                pool = record.pop("presignatures", [])
                db.execute("INSERT OR REPLACE INTO keys VALUES (?, ?)",
                           (key_id, json.dumps(record)))
                db.executemany(
                    "INSERT OR IGNORE INTO presignatures (key_id, id, binding, epoch, boots,"
                    " expires) VALUES (?, ?, ?, ?, ?, ?)",
                    [(key_id, e["id"], e["binding"], e.get("epoch", 0),
                      json.dumps(e.get("boots")), e.get("expires", 0)) for e in pool])
            db.execute("INSERT INTO meta VALUES ('migrated keys.json', ?)", (str(time.time()),))
    if old.exists():
        old.rename(old.with_name("keys.json.migrated"))
