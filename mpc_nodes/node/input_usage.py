"""One participant set and one aggregation per version of a private input.

A coordinator that aggregates the same private values over several participant sets, or
with several methods, can solve the outputs for the inputs: the means of the four 3-party
subsets of four parties give every party's input.  A node therefore binds each version of
a private input it hands to an MPC session (its value: a number, a surface grid) to the
first participant set and aggregation it is used with, durably and before the session
runs, and refuses any other; a changed value is a new version.  docs/SECURITY.md, attack 1,
has the argument and the limits.

Versions are HMAC-SHA256 digests under a random key kept in the same 0600 database: a
low-entropy value hashed without a secret could be found by trying values, so the digests
never leave this node (not in votes, results or the audit log).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from mpc_nodes.durable_db import open_db


class InputReused(Exception):
    """This version of a private input is bound to another participant set or aggregation;
    the message names the input and the binding, never the value."""


@dataclass(frozen=True)
class InputUse:
    """A private input a job hands to its session: a name for reasons (never the value),
    the value as canonical bytes (they stay on this node) and how the job aggregates it."""

    label: str
    value: bytes
    aggregation: str


class InputUsage:
    """The durable record of which set and aggregation each input version is bound to."""

    def __init__(self, path: Path):
        self._db = open_db(path, "FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS hmac_key (key BLOB NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS binding (version TEXT PRIMARY KEY,"
                         " participants TEXT NOT NULL, aggregation TEXT NOT NULL,"
                         " bound_at REAL NOT NULL)")
        self._db.execute("BEGIN IMMEDIATE")
        row = self._db.execute("SELECT key FROM hmac_key").fetchone()
        if row is None:
            row = (secrets.token_bytes(32),)
            self._db.execute("INSERT INTO hmac_key VALUES (?)", row)
        self._db.execute("COMMIT")
        self._key = row[0]

    def _version(self, use: InputUse) -> str:
        return hmac.new(self._key, use.value, hashlib.sha256).hexdigest()

    def _bound(self, use: InputUse) -> tuple[str, str] | None:
        return self._db.execute("SELECT participants, aggregation FROM binding WHERE"
                                " version = ?", (self._version(use),)).fetchone()

    @staticmethod
    def _refuse_aggregation(use: InputUse, bound: str) -> None:
        if bound != use.aggregation:
            raise InputReused(f"{use.label} is bound to aggregation {bound!r} (this job asks"
                              f" for {use.aggregation!r}): a version of a private input is"
                              " aggregated one way only, until its operator changes it")

    def check(self, uses: list[InputUse]) -> None:
        """At the vote: refuse an aggregation other than the one a version is bound to
        (the participant set is not known yet)."""
        for use in uses:
            bound = self._bound(use)
            if bound is not None:
                self._refuse_aggregation(use, bound[1])

    def claim(self, uses: list[InputUse], participants: list[str]) -> None:
        """Right before the session: refuse another set or aggregation than the bound one,
        else bind every unbound version to this set and aggregation (durably, at once)."""
        names = ", ".join(participants)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for use in uses:
                bound = self._bound(use)
                if bound is None:
                    self._db.execute("INSERT INTO binding VALUES (?, ?, ?, ?)",
                                     (self._version(use), names, use.aggregation, time.time()))
                    continue
                if bound[0] != names:
                    raise InputReused(f"{use.label} is bound to participants {bound[0]} (this"
                                      f" job has {names}): a version of a private input is"
                                      " used with one participant set only, until its"
                                      " operator changes it")
                self._refuse_aggregation(use, bound[1])
            self._db.execute("COMMIT")
        except BaseException:  # also a COMMIT refused on a full disk: nothing is bound
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()
