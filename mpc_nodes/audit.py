"""A hash-chained, append-only audit log per node, and its verification.

Each line is a JSON object: ``{"seq", "ts", "prev", "event", ..., "hash"}`` where ``hash`` is
SHA-256 over the previous line's hash and the canonical JSON of the line without ``hash``.
Editing, inserting, deleting or reordering any line breaks the chain from that position.
Appends are fsynced.  Cross-checking the logs of all nodes (`verify_cluster`) also catches a
node whose whole chain was rewritten, as long as the other participants' logs disagree.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

GENESIS = "0" * 64


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _line_hash(prev: str, body: dict) -> str:
    return hashlib.sha256(prev.encode() + b"\n" + _canonical(body)).hexdigest()


class AuditLog:
    """Appends events to one node's chain."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        report = verify_log(self.path)
        if not report.ok:
            raise ValueError(f"audit log {self.path} is damaged at line {report.bad_line}:"
                             f" {report.reason}; keep it for investigation and move it aside")
        self._seq, self._head = report.entries, report.head

    def append(self, event: str, **fields) -> str:
        """Write one event durably; return the new head hash."""
        body = {"seq": self._seq, "ts": time.time(), "prev": self._head, "event": event, **fields}
        digest = _line_hash(self._head, body)
        line = _canonical({**body, "hash": digest}) + b"\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._seq, self._head = self._seq + 1, digest
        return digest


@dataclass
class LogReport:
    """Outcome of checking one chain; bad_line is 1-based."""

    path: Path
    ok: bool = True
    entries: int = 0
    head: str = GENESIS
    bad_line: int | None = None
    reason: str = ""
    events: list[dict] = field(default_factory=list)


def verify_log(path: Path) -> LogReport:
    """Check a chain line by line; stop at the first broken line."""
    report = LogReport(Path(path))
    if not report.path.exists():
        return report
    with open(report.path, "rb") as f:
        for number, raw in enumerate(f, start=1):
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
            report.events.append(entry)
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
