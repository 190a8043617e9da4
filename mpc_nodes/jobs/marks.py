"""The "sign-mark" job: the network's threshold ECDSA key signs one option series' mark, an
EIP-712 typed message a contract verifies with one `ecrecover` (docs/SETTLEMENT.md).

Nodes sign only what they computed.  The request names a price job, the option in it, the
series' terms, the EIP-712 domain and the valuation time; it carries the job's parameters
and output, which each node accepts only if its own audit log recorded exactly their digests
for a price job it took part in (the rule of price reports, mpc_nodes.jobs.price_report).
From them the node builds the mark itself (`build_mark`), checks the series' terms against
the option it priced, computes the EIP-712 digest and signs that digest, never one it is
handed, and only for a domain and type its policy's `typed_data` lists.

A series has an expiry timestamp, an option of a price job a time to expiry in years
(ACT/365).  Before expiry they agree when valuation time + time to expiry is within
EXPIRY_TOLERANCE_S of the series' expiry (options files give whole days).  At or after
expiry (a settlement mark) the option must have been priced at the shortest time the
pricing takes (protocols.domain.EXPIRY_MIN: its price is then nearly its intrinsic value,
and a settlement uses the mark's spot) and the valuation no later than
EXPIRY_TOLERANCE_S after the expiry.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from pydantic import Field

from protocols import domain as pricing_domain
from protocols.secp256k1 import verify

from mpc_nodes.chain.eip712 import (Domain, Mark, MarkError, job_id_word, mark_digest, series_id,
                                    to_fixed, typed_data)
from mpc_nodes.jobs.ecdsa import load_key, observe_excluded, signing_session
from mpc_nodes.jobs.keycheck import eth_address
from mpc_nodes.jobs.kind import JobRejected, KeyId, SessionKind, _Params
from mpc_nodes.jobs.policy import load_policy
from mpc_nodes.jobs.price_report import (REPORT_MAX_AGE_S, REPORT_WINDOW_S, ReportError, canonical,
                                         job_record)
from mpc_nodes.models import StrictTypedModel
from mpc_nodes.node.volsurface import UNDERLYING
from mpc_nodes.wire.messages import JobId, digest_bytes, output_digest

YEAR_S = 365 * 24 * 3600  # ACT/365, as options files count years
EXPIRY_TOLERANCE_S = 24 * 3600
PRIMARY_TYPE = "Mark"


class MarkRefused(ValueError):
    """A mark that does not follow from the price job it names; the message says why."""


class SeriesTerms(StrictTypedModel):
    """An option series as the settlement contract lists it (strike at 1e18, expiry in Unix
    seconds)."""

    underlying: str = Field(pattern=UNDERLYING.pattern)
    strike: int = Field(gt=0, lt=2**256)
    expiry: int = Field(ge=0, lt=2**256)
    is_call: bool

    def series_id(self) -> bytes:
        return series_id(self.underlying, self.strike, self.expiry, self.is_call)


def _check_series(series: SeriesTerms, inputs, option: int, valuation_time: int) -> None:
    """MarkRefused unless `series` is the option `option` of price parameters `inputs`."""
    strike, years = inputs.strikes[option], inputs.expiries[option]
    if series.underlying != inputs.underlying:
        raise MarkRefused(f"the series is on {series.underlying}, the job priced"
                          f" {inputs.underlying}")
    if series.strike != to_fixed(strike):
        raise MarkRefused(f"the series' strike {series.strike} is not the option's {strike!r}"
                          f" (at 1e18: {to_fixed(strike)})")
    if series.is_call != inputs.is_call[option]:
        raise MarkRefused(f"the series is a {'call' if series.is_call else 'put'}, option"
                          f" {option} a {'call' if inputs.is_call[option] else 'put'}")
    if valuation_time < series.expiry:
        gap = valuation_time + years * YEAR_S - series.expiry
        if abs(gap) > EXPIRY_TOLERANCE_S:
            raise MarkRefused(f"option {option} expires {gap:+.0f} s from the series' expiry"
                              f" at the valuation time (at most ±{EXPIRY_TOLERANCE_S} s)")
    elif years != pricing_domain.EXPIRY_MIN:
        raise MarkRefused(f"the series has expired at the valuation time: option {option}"
                          f" must be priced at the shortest expiry {pricing_domain.EXPIRY_MIN:g}"
                          f" years, not {years!r}")
    elif valuation_time - series.expiry > EXPIRY_TOLERANCE_S:
        raise MarkRefused(f"the valuation time is more than {EXPIRY_TOLERANCE_S} s after the"
                          f" series' expiry")


def build_mark(inputs: dict, outputs: dict, job_id: str, option: int, series: SeriesTerms,
               valuation_time: int) -> Mark:
    """The mark of option `option` of the reveal-to-all price job `job_id` run with `inputs`
    (its parameters as sent) that output `outputs`; MarkRefused names what does not fit."""
    from mpc_nodes.jobs.pricing import PriceParams
    try:
        params = PriceParams.model_validate(inputs)
    except ValueError:
        raise MarkRefused("the inputs are not a price job's parameters") from None
    if params.reveal != "all" or params.portfolio:
        raise MarkRefused("a mark covers an option of a reveal-to-all, per-option price job")
    if outputs.get("underlying") != params.underlying or not outputs.get("values"):
        raise MarkRefused("the outputs are not per-option values of this job")
    if not 0 <= option < len(params.strikes):
        raise MarkRefused(f"the job has no option {option}")
    breached = outputs.get("breached", [])
    if option in breached:
        raise MarkRefused(f"option {option} breached the circuit breaker: it has no price")
    _check_series(series, params, option, valuation_time)
    column = option - sum(1 for b in breached if b < option)
    try:
        values = {name: to_fixed(outputs["values"][name][column])
                  for name in ("price", *(("delta", "gamma", "vega", "theta")
                                          if params.greeks else ()))}
        return Mark.of(underlying=params.underlying, series_id=series.series_id(),
                       spot=to_fixed(params.spot), has_greeks=params.greeks,
                       job_id=job_id_word(job_id), valuation_time=valuation_time,
                       inputs_hash=hashlib.sha256(canonical(inputs)).digest(), **values)
    except (KeyError, IndexError, TypeError, MarkError) as exc:
        raise MarkRefused(f"the outputs do not give option {option}'s values: {exc}") from None


class MarkParams(_Params):
    key_id: str = KeyId
    domain: Domain
    series: SeriesTerms
    price_job: JobId
    option: int = Field(ge=0)
    valuation_time: int = Field(ge=0, lt=2**64)
    inputs: dict = Field(description="the price job's parameters, as sent")
    outputs: dict = Field(description="the price job's agreed output")


def rebuild_mark(params: MarkParams, audit_log: Path, now: float | None = None) -> bytes:
    """The digest of the mark this node rebuilds from its own record of the price job:
    MarkRefused unless the job's parameters and output are those whose digests its audit
    log recorded (at most REPORT_MAX_AGE_S ago) and the valuation time is within
    REPORT_WINDOW_S of its clock."""
    now = time.time() if now is None else now
    if abs(params.valuation_time - now) > REPORT_WINDOW_S:
        raise MarkRefused(f"the valuation time is {params.valuation_time - now:+.0f} s from"
                          f" this node's clock (at most ±{REPORT_WINDOW_S} s)")
    try:
        request, result = job_record(audit_log, params.price_job)
    except ReportError as exc:
        raise MarkRefused(str(exc)) from None
    job = params.price_job[:8]
    if now - result["ts"] > REPORT_MAX_AGE_S:
        raise MarkRefused(f"job {job} finished more than {REPORT_MAX_AGE_S} s ago: its marks"
                          f" must be signed within that time")
    if digest_bytes(json.dumps(params.inputs, sort_keys=True).encode()) \
            != request["params_digest"]:
        raise MarkRefused(f"the inputs are not the parameters of job {job} on this node")
    if output_digest(params.outputs) != result["output_digest"]:
        raise MarkRefused(f"job {job} produced other outputs on this node")
    return mark_digest(params.domain, build_mark(params.inputs, params.outputs,
                                                 params.price_job, params.option,
                                                 params.series, params.valuation_time))


def mark_signature(output: dict) -> bytes:
    """The 65-byte r || s || v signature (v 27 or 28) of a sign-mark output."""
    return bytes.fromhex(output["signature"])


class SignMark(SessionKind[MarkParams, bytes]):
    """Threshold-sign the EIP-712 digest of a mark each node rebuilt from its own record,
    in a domain its policy allows."""

    name = "sign-mark"
    params_model = MarkParams
    one_output_suffices = True  # a signature proves itself
    active_secure = True  # signed by jobs.ecdsa.signing_session: checked under malicious
    # approvals: the signers' own (2t+1, each checks its policy and its record).  No policy
    # quorum as for transactions: a mark moves no funds and spends no nonce, and only the
    # parties of the price job can rebuild its marks.

    def verify_output(self, params, output):
        try:
            digest = mark_digest(params.domain, build_mark(
                params.inputs, params.outputs, params.price_job, params.option, params.series,
                params.valuation_time))
            signature = mark_signature(output)
            if output["digest"] != digest.hex() or output["key_id"] != params.key_id:
                return "the output is not a signature of the requested mark"
            if not verify(output["public_key"], digest, int.from_bytes(signature[:32], "big"),
                          int.from_bytes(signature[32:64], "big")):
                return "the signature does not verify under libsecp256k1 (or is high-s)"
            if recover_signer(digest, signature) != output["address"] \
                    or eth_address(output["public_key"]) != output["address"]:
                return "the signature does not recover to the key's address"
        except Exception as exc:  # anything a lying party could put there
            return f"malformed mark signature output: {type(exc).__name__}: {exc}"
        return None

    def _digest(self, ctx, params) -> bytes:
        """This node's own digest of the mark, if its policy lets the key sign it."""
        decision = load_policy(ctx).check_typed_data(params.domain.as_eip712(), PRIMARY_TYPE,
                                                     params.key_id)
        if not decision.accept:
            raise JobRejected(f"policy: {decision.reason}")
        try:
            return rebuild_mark(params, ctx.path(ctx.config.data_dir) / "audit.log")
        except MarkRefused as exc:
            raise JobRejected(f"mark refused: this node signs only marks it rebuilds from its"
                              f" own record of the price job: {exc}") from None

    def prepare(self, ctx, params) -> bytes:
        """Reads the audit log (slow): the mark's digest as this node computes it."""
        return self._digest(ctx, params)

    def check_vote(self, ctx, job):
        load_key(ctx, job.params.key_id)

    def plan(self, ctx, job):
        meta, share = load_key(ctx, job.params.key_id)
        digest = self._digest(ctx, job.params)  # again: the window, the policy may have moved
        if digest != job.prepared:
            raise JobRejected("the mark rebuilt at the start differs from the one voted on")
        return signing_session(ctx, job, meta, share, digest.hex())

    def complete(self, ctx, job, output):
        observe_excluded(job, output)
        meta, _ = ctx.keystore.load(job.params.key_id)
        signature = (output["r"].to_bytes(32, "big") + output["s"].to_bytes(32, "big")
                     + bytes([27 + output["y_parity"]]))
        return {"key_id": meta.key_id, "address": meta.address, "public_key": meta.public_key,
                "digest": job.prepared.hex(), "signature": signature.hex()}


def recover_signer(digest: bytes, signature: bytes) -> str:
    """The address whose key made the 65-byte r || s || v signature of `digest`."""
    from eth_keys import keys  # here, not at the top: every node imports this, eth-keys is slow
    vrs = (signature[64] - 27, int.from_bytes(signature[:32], "big"),
           int.from_bytes(signature[32:64], "big"))
    return keys.Signature(vrs=vrs).recover_public_key_from_msg_hash(digest) \
        .to_checksum_address()


MARK_JOBS = [SignMark()]


# -- the coordinator's side ------------------------------------------------------------

from typing import TYPE_CHECKING  # noqa: E402

from mpc_nodes.errors import UsageError  # noqa: E402

if TYPE_CHECKING:
    from mpc_nodes.client.coordinator import Coordinator, JobOutcome


def mark_request(key_id: str, domain: Domain, series: SeriesTerms, option: int,
                 price_params: dict, price_outcome: JobOutcome,
                 valuation_time: int) -> dict:
    """The sign-mark parameters for option `option` of one finished price job; UsageError
    if its mark cannot be built (the nodes would refuse it for the same reason)."""
    if price_params.get("reveal") != "all" or "jobs" in price_outcome.output:
        raise UsageError("only an option of a single reveal-to-all price job can be marked:"
                         " its signers must know the outputs")
    params = {"key_id": key_id, "domain": domain.model_dump(), "series": series.model_dump(),
              "price_job": price_outcome.job_id, "option": option,
              "valuation_time": valuation_time, "inputs": price_params,
              "outputs": price_outcome.output}
    try:
        build_mark(price_params, price_outcome.output, price_outcome.job_id, option, series,
                   valuation_time)
    except MarkRefused as exc:
        raise UsageError(f"option {option}: {exc}") from None
    return params


async def sign_mark(c: Coordinator, params: dict, progress=lambda text: None) -> JobOutcome:
    """Have the network sign a mark (parameters from `mark_request`); on success the
    output also holds the EIP-712 document (`typed_data`), and the signature was checked
    against the mark the coordinator built on its own."""
    outcome = await c.run_job("sign-mark", params, progress=progress)
    if outcome.ok:
        parsed = SignMark().parse(params)
        problem = SignMark().verify_output(parsed, outcome.output)
        if problem:
            outcome.ok, outcome.error = False, problem
        else:
            mark = build_mark(parsed.inputs, parsed.outputs, parsed.price_job, parsed.option,
                              parsed.series, parsed.valuation_time)
            outcome.output["typed_data"] = typed_data_json(parsed.domain, mark)
    return outcome


def typed_data_json(domain: Domain, mark: Mark) -> dict:
    """The EIP-712 document of a mark with its bytes32 fields as 0x hex (eth_signTypedData_v4
    JSON)."""
    doc = typed_data(domain, mark)
    doc["message"] = {k: "0x" + v.hex() if isinstance(v, bytes) else v
                      for k, v in doc["message"].items()}
    return doc
