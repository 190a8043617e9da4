"""Signed price reports: one reveal-to-all price job — its exact inputs and its agreed
outputs — signed with a FROST key whose purpose is "reports" (docs/PRICING.md).

Signed bytes: REPORT_DOMAIN || canonical(report).  Canonical: UTF-8 JSON with keys sorted,
no whitespace (separators "," and ":"), ASCII only, no NaN or infinities, floats in
Python's shortest round-trip form.  The signature is a standard Ed25519 (RFC 8032)
signature over those bytes.

A node signs a report only if the bytes it is asked to sign are exactly the report it
rebuilds itself (`rebuild_for_signing`): inputs and outputs whose digests its own audit log
recorded for a price job it ran, its cluster, the key being used, and a timestamp within
REPORT_WINDOW_S of its clock.  A coordinator thus cannot get a quorum to sign anything but
what the quorum computed; `verify_signed_report` checks every field of such a report.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Annotated, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import Field, ValidationError

from mpc_nodes.jobs.frost_domain import REPORT_DOMAIN
from mpc_nodes.models import StrictTypedModel
from mpc_nodes.node.audit import verify_log
from mpc_nodes.wire.messages import Digest, JobId, digest_bytes, output_digest

REPORT_TYPE = "mpcnet-price-report"
REPORT_VERSION = 2
REPORT_WINDOW_S = 60
"""A node signs a report only if its timestamp is within this many seconds of its clock."""
REPORT_MAX_AGE_S = 600
"""…and only for a job whose result it recorded at most this many seconds ago."""


class ReportError(ValueError):
    """A price report that must not be signed, or whose signature does not check out."""


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode()


def build_report(cluster_id: str, job_id: str, key_id: str, inputs: dict, outputs: dict,
                 timestamp: int) -> dict:
    """The report of a finished reveal-to-all price job: `inputs` are the job's request
    parameters exactly as sent, `outputs` its agreed output."""
    return {"type": REPORT_TYPE, "version": REPORT_VERSION, "cluster_id": cluster_id,
            "job_id": job_id, "key_id": key_id, "timestamp": timestamp,
            "inputs": inputs, "inputs_sha256": hashlib.sha256(canonical(inputs)).hexdigest(),
            "outputs": outputs, "result_digest": output_digest(outputs)}


def report_message(report: dict) -> bytes:
    """The bytes a report is signed as."""
    return REPORT_DOMAIN + canonical(report)


class _Outputs(StrictTypedModel):
    underlying: str
    options: int = Field(ge=1)
    method: str
    breached: list[Annotated[int, Field(ge=0)]]
    limit: float
    values: dict[str, list[float]] | None = None
    portfolio: dict[str, float] | None = None


class Report(StrictTypedModel):
    """The form of every field; `check_report` adds what relates fields to each other."""

    type: Literal["mpcnet-price-report"]
    version: Literal[2]
    cluster_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{2,63}$")
    job_id: JobId
    key_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{2,63}$")
    timestamp: int = Field(ge=0)
    inputs: dict
    inputs_sha256: Digest
    outputs: dict
    result_digest: Digest


def check_report(report) -> Report:
    """Raise ReportError unless `report` is a complete, well-formed, self-consistent report."""
    from mpc_nodes.jobs.registry import \
        kind_for  # not at the top: the job kinds (frost) import this module
    PriceParams = kind_for("price").params_model
    if not isinstance(report, dict):
        raise ReportError("the report is not a JSON object")
    for name in ("type", "version"):
        if name not in report:
            raise ReportError(f"the report has no {name!r}: not an {REPORT_TYPE}")
    if (report["type"], report["version"]) != (REPORT_TYPE, REPORT_VERSION):
        raise ReportError(f"the report is a {report['type']!r} version {report['version']!r},"
                          f" not an {REPORT_TYPE} version {REPORT_VERSION}")
    try:
        r = Report.model_validate(report)
        inputs = PriceParams.model_validate(r.inputs)
        outputs = _Outputs.model_validate(r.outputs)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ReportError(f"report field {'.'.join(map(str, first['loc']))}:"
                          f" {first['msg']}") from None
    if set(r.inputs) != set(PriceParams.model_fields):
        raise ReportError("the report's inputs are not a complete set of price parameters")
    if inputs.reveal != "all":
        raise ReportError("a report covers reveal-to-all jobs only")
    if hashlib.sha256(canonical(r.inputs)).hexdigest() != r.inputs_sha256:
        raise ReportError("the inputs do not match the report's inputs hash")
    if output_digest(r.outputs) != r.result_digest:
        raise ReportError("the outputs do not match the report's result digest")
    m = len(inputs.strikes)
    if (outputs.underlying, outputs.method, outputs.options) != (inputs.underlying,
                                                                 inputs.method, m):
        raise ReportError("the outputs are for another underlying, method or option count")
    if len(set(outputs.breached)) != len(outputs.breached) or any(i >= m for i in
                                                                  outputs.breached):
        raise ReportError("the outputs name breached options that are not in the inputs")
    if inputs.portfolio:  # totals, or nothing ("values": None) when an option breached
        form = ("portfolio" in r.outputs) != ("values" in r.outputs) and outputs.values is None
    else:
        form = outputs.values is not None and "portfolio" not in r.outputs
    if not form:
        raise ReportError("the outputs do not have the form of this job's outputs")
    if outputs.values and any(len(col) != m - len(outputs.breached)
                              for col in outputs.values.values()):
        raise ReportError("the outputs have another number of values than priced options")
    return r


def _parse(message: bytes) -> dict:
    if not message.startswith(REPORT_DOMAIN):
        raise ReportError("the message does not begin with the price-report domain tag")
    try:
        doc = json.loads(message[len(REPORT_DOMAIN):].decode("ascii"))
    except (ValueError, RecursionError):
        raise ReportError("the message is not ASCII JSON after the domain tag") from None
    check_report(doc)
    return doc


def job_record(audit_log: Path, job_id: str) -> tuple[dict, dict]:
    """This node's accepted price request and successful result of the job."""
    log = verify_log(audit_log)
    if not log.ok:
        raise ReportError(f"this node's audit log is damaged at line {log.bad_line}")
    events = [e for e in log.events if e.get("job_id") == job_id]
    requests = [e for e in events if e.get("event") == "request" and e.get("accept")]
    results = [e for e in events if e.get("event") == "result" and e.get("ok")]
    if len(requests) != 1 or len(results) != 1 or requests[0].get("kind") != "price":
        raise ReportError(f"this node has no successful price job {job_id[:8]}")
    return requests[0], results[0]


def rebuild_for_signing(message: bytes, cluster_id: str, key_id: str, audit_log: Path,
                        now: float | None = None) -> None:
    """Raise ReportError unless `message` is exactly the report this node rebuilds from its
    own record of the job: the request parameters and the output it recorded the digests of
    (audit log), its cluster, this key, a timestamp within REPORT_WINDOW_S of its clock."""
    now = time.time() if now is None else now
    claim = _parse(message)
    if claim["cluster_id"] != cluster_id or claim["key_id"] != key_id:
        raise ReportError(f"the report names cluster {claim['cluster_id']!r} and key"
                          f" {claim['key_id']!r}; this is {cluster_id!r}, key {key_id!r}")
    if abs(claim["timestamp"] - now) > REPORT_WINDOW_S:
        raise ReportError(f"the report's timestamp is {claim['timestamp'] - now:+.0f} s from"
                          f" this node's clock (at most ±{REPORT_WINDOW_S} s)")
    request, result = job_record(audit_log, claim["job_id"])
    if now - result["ts"] > REPORT_MAX_AGE_S:
        raise ReportError(f"job {claim['job_id'][:8]} finished more than {REPORT_MAX_AGE_S} s"
                          f" ago: its report must be signed within that time")
    inputs, outputs = claim["inputs"], claim["outputs"]
    if digest_bytes(json.dumps(inputs, sort_keys=True).encode()) != request["params_digest"]:
        raise ReportError(f"the inputs are not the parameters of job {claim['job_id'][:8]}"
                          f" on this node")
    if output_digest(outputs) != result["output_digest"]:
        raise ReportError(f"job {claim['job_id'][:8]} produced other outputs on this node")
    rebuilt = build_report(cluster_id, claim["job_id"], key_id, inputs, outputs,
                           claim["timestamp"])
    if report_message(rebuilt) != message:
        raise ReportError("the message is not the canonical encoding of the report")


def verify_signed_report(signed, public_key_hex: str | None = None,
                         now: float | None = None) -> dict:
    """Check a signed report {report, signature, public_key, signers}: every field's form
    and consistency (`check_report`), a timestamp not in the future, the expected key if
    given, and the Ed25519 signature over REPORT_DOMAIN || canonical(report) with OpenSSL.
    Return the report; raise ReportError naming the first problem."""
    now = time.time() if now is None else now
    if not isinstance(signed, dict) or set(signed) != {"report", "signature", "public_key",
                                                       "signers"}:
        raise ReportError("a signed report has exactly: report, signature, public_key,"
                          " signers")
    report = signed["report"]
    r = check_report(report)
    if r.timestamp > now + REPORT_WINDOW_S:
        raise ReportError(f"the report's timestamp is {r.timestamp - now:.0f} s in the future")
    key, signature = signed["public_key"], signed["signature"]
    if not (isinstance(key, str) and len(key) == 64 and isinstance(signature, str)
            and len(signature) == 128 and all(c in "0123456789abcdef" for c in key + signature)):
        raise ReportError("public_key must be 32 bytes and signature 64 bytes, in lower-case"
                          " hex")
    if public_key_hex is not None and public_key_hex.lower() != key:
        raise ReportError("the report is signed with another key than the one expected")
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(key)).verify(
            bytes.fromhex(signature), report_message(report))
    except (InvalidSignature, ValueError):
        raise ReportError("the signature does not verify for this report and key (over the"
                          " price-report domain and the report's canonical encoding)") from None
    return report
