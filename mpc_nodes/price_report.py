"""Signed price reports: the revealed outputs of a price job, signed with a FROST key so that
anyone can check that a quorum of the operators produced them (docs/PRICING.md).

Canonical encoding: UTF-8 JSON with keys sorted, no whitespace (separators "," and ":"),
ASCII only, no NaN or infinities, floats in Python's shortest round-trip form.  The
signature is a standard Ed25519 (RFC 8032) signature over those bytes.

Nodes sign a report only if it describes a price job they took part in and its outputs are
exactly the ones they reported (their audit log records the digest): a coordinator cannot
get a quorum to sign prices the quorum did not compute.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .audit import verify_log
from .messages import output_digest

REPORT_TYPE = "mpcnet-price-report/1"


class ReportError(ValueError):
    """A price report that must not be signed, or whose signature does not check out."""


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode()


def build_report(cluster_id: str, job_id: str, key_id: str, params: dict, output: dict,
                 timestamp: int) -> dict:
    """The report for a finished reveal-to-all price job (its agreed output)."""
    return {"type": REPORT_TYPE, "cluster_id": cluster_id, "job_id": job_id, "key_id": key_id,
            "timestamp": timestamp, "inputs_sha256": hashlib.sha256(canonical(params)).hexdigest(),
            "inputs": {k: params[k] for k in ("underlying", "spot", "rate", "dividend",
                                              "method", "greeks", "portfolio")}
            | {"options": len(params["strikes"])},
            "outputs": output, "result_digest": output_digest(output)}


def as_report(message: bytes) -> dict | None:
    """The report a message to be signed carries, or None if it is not a price report."""
    try:
        doc = json.loads(message)
    except (ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) and doc.get("type") == REPORT_TYPE else None


def check_against_audit_log(report: dict, cluster_id: str, audit_log: Path) -> None:
    """Raise ReportError unless this node recorded exactly these outputs for the job."""
    try:
        job_id, outputs, claimed = report["job_id"], report["outputs"], report["result_digest"]
    except KeyError as exc:
        raise ReportError(f"price report lacks {exc}") from None
    if report.get("cluster_id") != cluster_id:
        raise ReportError(f"price report is for cluster {report.get('cluster_id')!r}")
    if output_digest(outputs) != claimed:
        raise ReportError("price report outputs do not match its result digest")
    for event in reversed(verify_log(audit_log).events):
        if event.get("event") == "result" and event.get("job_id") == job_id and event.get("ok"):
            if event.get("output_digest") != claimed:
                raise ReportError(f"job {job_id[:8]} produced other outputs on this node")
            return
    raise ReportError(f"this node has no successful result of job {str(job_id)[:8]}")


def verify_signed_report(signed: dict, public_key_hex: str | None = None,
                         params: dict | None = None) -> dict:
    """Check a signed report {report, signature, public_key}: the Ed25519 signature (with
    OpenSSL), the expected key if given, and the inputs hash if the parameters are given."""
    report, signature = signed["report"], bytes.fromhex(signed["signature"])
    key = public_key_hex or signed["public_key"]
    if public_key_hex and public_key_hex != signed.get("public_key"):
        raise ReportError("the report is signed with another key than the one expected")
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(key)).verify(signature,
                                                                     canonical(report))
    except (InvalidSignature, ValueError):
        raise ReportError("the signature does not verify for this report and key") from None
    if params is not None and hashlib.sha256(canonical(params)).hexdigest() \
            != report["inputs_sha256"]:
        raise ReportError("the parameters do not match the report's inputs hash")
    if output_digest(report["outputs"]) != report["result_digest"]:
        raise ReportError("the outputs do not match the report's result digest")
    return report
