"""A hash-chained, append-only audit log per node, and its verification.

Each line is a JSON object: ``{"seq", "ts", "prev", "event", ..., "hash"}`` where ``hash`` is
SHA-256 over the previous line's hash and the canonical JSON of the line without ``hash``.
Editing, inserting, deleting or reordering any line breaks the chain from that position.
Appends are fsynced.  Cross-checking the logs of all nodes (`verify_cluster`) also catches a
node whose whole chain was rewritten, as long as the other participants' logs disagree.

A full disk or a crash must not damage the chain.  An append that fails is cut back to the
last complete line, so no later append continues a partial one, and the caller learns that
its operation was not recorded (`AuditWriteError`).  A final line without its newline (an
append a crash or a power loss interrupted) is a torn tail: it is no tampering (deleting
the last line was always possible), so the log opens, moves the torn bytes aside into
``audit.log.torn-<seq>`` and records a ``torn_tail`` event with their size and digest;
verification reports it as a warning.  A damaged line anywhere else is still refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from keyshare.atomic import write_atomic

from mpc_nodes.errors import UserError

GENESIS = "0" * 64
TORN_EVENT = "torn_tail"


class AuditWriteError(Exception):
    """An event could not be written durably (e.g. the disk is full); the log is unchanged."""


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _line_hash(prev: str, body: dict) -> str:
    return hashlib.sha256(prev.encode() + b"\n" + _canonical(body)).hexdigest()


def torn_file(path: Path, seq: int) -> Path:
    """Where the torn bytes found after `seq` complete lines are kept."""
    return path.with_name(f"{path.name}.torn-{seq}")


class AuditLogDamaged(UserError, ValueError):
    """The node's audit log fails verification: the operator must look at it before the node runs."""


class AuditLog:
    """Appends events to one node's chain."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        report = verify_log(self.path)
        if not report.ok:
            raise AuditLogDamaged(f"audit log {self.path} is damaged at line {report.bad_line}:"
                             f" {report.reason}; keep it for investigation and move it aside")
        self._seq, self._head, self._size = report.entries, report.head, report.size
        self._torn = report.torn  # bytes still to move aside before the next append
        self._cut = False  # a failed append may have left bytes after self._size
        try:
            self._recover()
        except AuditWriteError:
            pass  # retried before every append; until then appends fail, reads do not

    def _recover(self) -> None:
        """Move a torn tail aside and record it (idempotent across crashes)."""
        side = torn_file(self.path, self._seq)
        if self._torn:
            try:
                write_atomic(side, self._torn)
            except OSError as exc:
                raise AuditWriteError(f"cannot move the torn final line of {self.path} aside:"
                                      f" {exc}") from exc
            self._cut, self._torn = True, b""
        if side.exists():  # moved aside, not yet recorded (also after a crash in between)
            data = side.read_bytes()
            self._write(TORN_EVENT, {"file": side.name, "bytes": len(data),
                                     "sha256": hashlib.sha256(data).hexdigest()})

    def append(self, event: str, **fields) -> str:
        """Write one event durably; return the new head hash.  Raises AuditWriteError, with
        the log as it was, when the event could not be written."""
        self._recover()
        return self._write(event, fields)

    def _write(self, event: str, fields: dict) -> str:
        body = {"seq": self._seq, "ts": time.time(), "prev": self._head, "event": event, **fields}
        digest = _line_hash(self._head, body)
        line = _canonical({**body, "hash": digest}) + b"\n"
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise AuditWriteError(f"cannot open audit log {self.path}: {exc}") from exc
        try:
            if self._cut:  # leftovers of a failed append or of a torn tail moved aside
                os.ftruncate(fd, self._size)
                self._cut = False
            view = memoryview(line)
            while view:  # a full disk may take part of a write before refusing the rest
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as exc:
            self._cut = True
            try:
                os.ftruncate(fd, self._size)
                os.fsync(fd)
                self._cut = False
            except OSError:
                pass  # cut before the next append
            raise AuditWriteError(f"cannot append to audit log {self.path}: {exc}") from exc
        finally:
            os.close(fd)
        self._seq, self._head, self._size = self._seq + 1, digest, self._size + len(line)
        return digest


@dataclass
class LogReport:
    """Outcome of checking one chain; bad_line is 1-based.  A torn tail (final bytes
    without a newline) and recovered torn tails are warnings, not breaks."""

    path: Path
    ok: bool = True
    entries: int = 0
    head: str = GENESIS
    bad_line: int | None = None
    reason: str = ""
    events: list[dict] = field(default_factory=list)
    size: int = 0  # bytes of complete, valid lines
    torn: bytes = b""
    warnings: list[str] = field(default_factory=list)


def _torn_warning(path: Path, number: int, entry: dict) -> str:
    side = path.with_name(str(entry.get("file", "")))
    kept = side.is_file() and hashlib.sha256(side.read_bytes()).hexdigest() == entry.get("sha256")
    return (f"line {number}: a torn final line ({entry.get('bytes')} bytes, sha256"
            f" {str(entry.get('sha256'))[:16]}…) was recovered, kept in {side.name}"
            + ("" if kept else " — that file is now missing or changed"))


def verify_log(path: Path) -> LogReport:
    """Check a chain line by line; stop at the first broken line."""
    report = LogReport(Path(path))
    if not report.path.exists():
        return report
    with open(report.path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.endswith(b"\n"):  # only the last line can lack its newline
                report.torn = raw
                report.warnings.append(f"line {number}: torn final line ({len(raw)} bytes of"
                                       " an append that did not finish); the node moves it"
                                       " aside when it starts")
                break
            problem = None
            try:
                entry = json.loads(raw)
                body = {k: v for k, v in entry.items() if k != "hash"}
                if entry.get("seq") != report.entries:
                    problem = f"sequence number {entry.get('seq')!r}, expected {report.entries}"
                elif entry.get("prev") != report.head:
                    problem = "does not follow the previous line (prev hash differs)"
                elif entry.get("hash") != _line_hash(report.head, body):
                    problem = "content does not match its hash (edited)"
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, TypeError):
                problem = "not a JSON object (corrupt or truncated)"
            if problem:
                report.ok, report.bad_line, report.reason = False, number, problem
                return report
            report.entries, report.head = report.entries + 1, entry["hash"]
            report.size += len(raw)
            report.events.append(entry)
            if entry["event"] == TORN_EVENT:
                report.warnings.append(_torn_warning(report.path, number, entry))
    return report


def verify_cluster(logs: dict[str, Path]) -> tuple[dict[str, LogReport], list[str]]:
    """Check every node's chain, then that all participants of each job with one agreed
    output recorded the same result."""
    reports = {name: verify_log(path) for name, path in logs.items()}
    results: dict[str, dict[str, str | None]] = {}
    for name, report in reports.items():
        for e in report.events:
            # parties of a per-party kind (FROST rounds, sealed output shares) report
            # different outputs by design; older lines have no flag and count as shared
            if e["event"] == "result" and e.get("ok") and e.get("shared", True):
                results.setdefault(e["job_id"], {})[name] = e.get("output_digest")
    disagreements = [f"job {job_id}: " + ", ".join(f"{n}={(d or '-')[:12]}"
                                                   for n, d in sorted(by_node.items()))
                     for job_id, by_node in sorted(results.items())
                     if len(set(by_node.values())) > 1]
    return reports, disagreements
