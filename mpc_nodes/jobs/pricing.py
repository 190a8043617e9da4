"""The "price" job: options priced at the aggregate of the parties' private volatilities.

Each node interpolates its own surface (mpc_nodes.node.volsurface) once per job, before it
votes, and feeds those vols to protocols.pricing.price as its private input.  Everything
checkable is checked before any MPC runs: the parameters by the model below (on the
coordinator too), the surface and the vols by every node before it votes.

The coordinator's side (below): request a price job (in batches for big books), open
coordinator-only outputs, lay the result out per option, and have a report signed.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from protocols import domain
from protocols.bsm import denormalise
from protocols.domain import SECURE_LIMIT_MAX
from protocols.pricing_plan import plan

from mpc_nodes.jobs.kind import JobRejected, MpcSession, SessionKind, _Params
from mpc_nodes.jobs.options_csv import MAX_QUANTITY, OptionBook
from mpc_nodes.jobs.output_shares import (OutputShareError, from_limbs, open_share, reconstruct,
                                         seal_share)
from mpc_nodes.node.input_usage import InputUse
from mpc_nodes.node.volsurface import UNDERLYING, NoSurface, Surface, SurfaceBook, SurfaceError

if TYPE_CHECKING:  # the coordinator imports the job kinds
    from mpc_nodes.client.coordinator import Coordinator, JobOutcome


Finite = Annotated[float, Field(allow_inf_nan=False)]
MAX_OPTIONS_PER_JOB = 20_000  # request and results stay well inside the 4 MiB message limit


CHECKED_FROM = 5
"""From this many parties the exact path runs the checked protocol under semi-honest too: it is
faster than MPyC's there (2.5x at five parties, 3.5x at seven: PERFORMANCE.md) and no weaker."""


def session_seconds(options: int, checked_among: int = 0) -> float:
    """Time a price session may take: generous for the slowest case measured (five parties,
    secure evaluation, about 45 options/s on a 2-core machine).  ``checked_among``: the
    secure evaluation under security: malicious, among that many parties, whose comparisons'
    random bits cost C(n, t) − 1 checked products each in each field: 273, 34 and 2.6
    options/s at three, five and seven parties on a 2-core machine (PERFORMANCE.md), so it
    may take 100 / (n·(C(n, t) − 1)) options/s, t the largest threshold n allows: 17, 2.2
    and 0.4."""
    if not checked_among:
        return 60.0 + options / 20.0
    n = checked_among
    rate = 100.0 / (n * max(math.comb(n, (n - 1) // 2) - 1, 1))
    return 60.0 + options / rate


def checked_engine(security: str, parties: int, method: str) -> bool:
    """Whether a price job runs protocols.pricing_active (the checked session): always under
    security: malicious, and for the exact path from CHECKED_FROM parties, where it is the
    faster engine."""
    return security == "malicious" or (parties >= CHECKED_FROM
                                       and plan(parties, method)[0] == "exact")


def checked_evaluation(security: str, parties: int, method: str) -> bool:
    """Whether a price job runs the checked secure evaluation (the slowest path)."""
    return security == "malicious" and plan(parties, method)[0] == "secure"


class PriceParams(_Params):
    underlying: str = Field(pattern=UNDERLYING.pattern)
    spot: Finite = Field(gt=0)
    # the domain of protocols.domain: outside it a fixed-point value could outgrow its mask
    rate: Finite = Field(ge=-domain.RATE_MAX, le=domain.RATE_MAX)
    dividend: Finite = Field(default=0.0, ge=-domain.RATE_MAX, le=domain.RATE_MAX)
    is_call: list[bool] = Field(min_length=1, max_length=MAX_OPTIONS_PER_JOB)
    strikes: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]]
    expiries: list[Annotated[float, Field(ge=domain.EXPIRY_MIN, le=domain.EXPIRY_MAX,
                                          allow_inf_nan=False)]]
    quantities: list[Annotated[float, Field(ge=-MAX_QUANTITY, le=MAX_QUANTITY,
                                            allow_inf_nan=False)]] | None = None
    greeks: bool = False
    method: Literal["median", "mean", "trimmed"] = "median"
    reveal: Literal["all", "coordinator"] = "all"
    recipient: str | None = Field(default=None, description="coordinator, for reveal=coordinator")
    portfolio: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> "PriceParams":
        m = len(self.is_call)
        if len(self.strikes) != m or len(self.expiries) != m:
            raise ValueError("is_call, strikes and expiries need one entry per option")
        if self.quantities is not None and len(self.quantities) != m:
            raise ValueError("quantities need one entry per option")
        if self.portfolio and self.quantities is None:
            raise ValueError("a portfolio needs quantities")
        if (self.reveal == "coordinator") != (self.recipient is not None):
            raise ValueError("reveal=coordinator needs a recipient, and only it does")
        try:
            domain.check(self.strikes, self.expiries, self.spot, self.rate, self.dividend)
        except domain.DomainError as exc:
            raise ValueError(str(exc)) from None
        return self


@dataclass(frozen=True)
class PrivateVols:
    """This node's vols for a job's options (its private input, kept out of reprs), and the
    surface they come from as an input use."""

    vols: list[float] = field(repr=False)
    use: InputUse = field(repr=False)


class Price(SessionKind[PriceParams, PrivateVols]):
    """Joint BSM prices (and Greeks) from secret-shared private vols; only outputs leave."""

    name = "price"
    params_model = PriceParams
    active_secure = True  # protocols.pricing_active (and pricing_secure_active) under malicious

    def output_is_shared(self, params: PriceParams) -> bool:
        return params.reveal == "all"

    def sealed_to(self, params: PriceParams) -> str | None:
        return params.recipient  # reveal=coordinator: each party's share, encrypted to it

    @staticmethod
    @functools.cache
    def _book(directory: str) -> SurfaceBook:
        return SurfaceBook(directory)

    def prepare(self, ctx, params) -> PrivateVols:
        """Parses a changed surface file (into the book's cache) and interpolates it."""
        book = self._book(str(ctx.path(ctx.config.data_dir) / "surfaces"))
        try:
            surface = book.get(params.underlying)
        except NoSurface as exc:
            raise JobRejected(str(exc)) from None
        except SurfaceError:  # its message may quote surface values: it stays in the log
            raise JobRejected(f"the {params.underlying} surface file is invalid (the node's"
                              " log says why)") from None
        vols = surface.vol(params.strikes, params.expiries, params.spot)
        if not np.all(np.isfinite(vols)):
            raise JobRejected(f"the {params.underlying} surface gives non-finite vols")
        return PrivateVols([float(v) for v in vols], surface_use(surface, params))

    def check_vote(self, ctx, job):
        limit, method = ctx.roster.limits.vol_spread_limit, job.params.method
        if method != "median" and limit > SECURE_LIMIT_MAX:  # (even median: in the session)
            raise JobRejected(f"the cluster's vol_spread_limit {limit:g} is too loose for"
                              f" {method} aggregation (needs <= {SECURE_LIMIT_MAX})")
        ctx.bind_inputs([job.prepared.use])

    def plan(self, ctx, job):
        import protocols.pricing  # (MPyC: loaded where a session runs, never on a coordinator)
        params = job.params
        ctx.bind_inputs([job.prepared.use], job.participants)
        public = {
            "spot": params.spot, "rate": params.rate, "dividend": params.dividend,
            "is_call": params.is_call, "strikes": params.strikes, "expiries": params.expiries,
            "quantities": params.quantities, "greeks": params.greeks,
            "portfolio": params.portfolio, "method": params.method,
            "limit": ctx.roster.limits.vol_spread_limit, "reveal": params.reveal,
        }
        import protocols.pricing_active
        n = len(job.participants)
        checked = checked_evaluation(ctx.roster.security, n, params.method)
        timeout = session_seconds(len(params.strikes), n if checked else 0)
        if checked_engine(ctx.roster.security, n, params.method):
            return MpcSession(protocols.pricing_active.price,
                              [job.prepared.vols, public, [p.name for p in job.participants]],
                              timeout=timeout)
        return MpcSession(protocols.pricing.price, [job.prepared.vols, public], timeout=timeout)

    def complete(self, ctx, job, output):
        params = job.params
        result = {"underlying": params.underlying, "options": len(params.strikes),
                  "method": params.method, "breached": output["breached"],
                  "limit": ctx.roster.limits.vol_spread_limit}
        if output.get("share") is not None:
            coordinator = ctx.roster.coordinator(params.recipient)
            return result | {"sealed_share": seal_share(output["share"],
                                                        coordinator.identity_key),
                             "scale_bits": output["scale_bits"]}
        return result | values_from_rows(params, output["rows"], output["scale_bits"])


def surface_use(surface: Surface, params: PriceParams) -> InputUse:
    """A surface's version is its grid (the numbers, not the file's formatting); options,
    spot, Greeks, portfolio and reveal mode only choose where and to whom the one
    aggregate surface is evaluated, so the aggregation is the method alone."""
    grid = b"".join(np.ascontiguousarray(a, dtype="<f8").tobytes() for a in  # (the shape
                    (np.array(surface.vols.shape, dtype=float), surface.expiries,  # first
                     surface.points, surface.vols))  # fixes where each array ends)
    return InputUse(f"the {params.underlying} surface", b"surface\0" + surface.axis.encode()
                    + b"\0" + grid, params.method)


def values_from_rows(params: PriceParams, rows, scale_bits: int) -> dict:
    """Revealed integer rows (or totals) -> named floats, in the options' units."""
    if rows is None:  # a portfolio with a breached option: nothing was revealed
        return {"values": None}
    rows = [[v / 2 ** scale_bits for v in row] for row in (rows if not params.portfolio
                                                           else [[x] for x in rows])]
    values = denormalise(rows, params.spot, params.greeks) if rows else {}
    if params.portfolio:
        return {"portfolio": {k: v[0] for k, v in values.items()}}
    return {"values": values}


def rows_from_flat(flat: list[int], shape: list[int], portfolio: bool):
    """Reconstructed flat integers back into the protocol's row layout."""
    if portfolio:
        return flat
    width = shape[1] if len(shape) > 1 else 0
    return [flat[i * width:(i + 1) * width] for i in range(shape[0])]


PRICE_JOBS = [Price()]


# -- the coordinator's side ------------------------------------------------------------

from mpc_nodes.errors import UsageError  # noqa: E402

PER_OPTION = ("is_call", "strikes", "expiries", "quantities")


def price_params(book: OptionBook, underlying: str, spot: float, rate: float,
                 dividend: float = 0.0, greeks: bool = False, method: str = "median",
                 reveal: str = "all", portfolio: bool = False,
                 recipient: str | None = None) -> dict:
    """Job parameters for an option book (validated by the nodes and by run_job)."""
    return {"underlying": underlying, "spot": spot, "rate": rate, "dividend": dividend,
            "is_call": book.is_call, "strikes": book.strikes, "expiries": book.expiries,
            "quantities": book.quantities, "greeks": greeks, "method": method,
            "reveal": reveal, "recipient": recipient if reveal == "coordinator" else None,
            "portfolio": portfolio}


def result_timeout(options: int, checked_among: int = 0) -> float:
    """How long the coordinator waits for results: the nodes' session bound, plus set-up."""
    return 60.0 + session_seconds(options, checked_among)


async def run_price(c: Coordinator, params: dict, progress=lambda text: None) -> JobOutcome:
    """Run a price job; on success outcome.output holds the opened values (also for
    reveal=coordinator, after the shares were decrypted and checked)."""
    if params.get("reveal") == "coordinator":
        params = params | {"recipient": c.config.name}
    n = len(c.roster.parties)  # the most that can take part
    checked = checked_evaluation(c.roster.security, n, params.get("method", "median"))
    outcome = await c.run_job("price", params, progress=progress,
                              result_timeout=result_timeout(len(params["strikes"]),
                                                            n if checked else 0))
    if outcome.ok and params.get("reveal") == "coordinator":
        try:
            outcome.output = open_outputs(c, PriceParams.model_validate(params),
                                          outcome.party_outputs)
        except OutputShareError as exc:
            outcome.ok, outcome.error = False, str(exc)
        outcome.party_outputs = {}
    return outcome


def job_slices(params: dict):
    """(first, last + 1, parameters) of each job a request needs, MAX_OPTIONS_PER_JOB
    options at most per job."""
    m = len(params["strikes"])
    for start in range(0, m, MAX_OPTIONS_PER_JOB):
        end = min(m, start + MAX_OPTIONS_PER_JOB)
        yield start, end, params | {k: params[k][start:end] for k in PER_OPTION if params.get(k)}


def check_params(params: dict) -> None:
    """Validate a price request as the nodes will, before anything is sent: UsageError
    naming the bad field (and, beyond one job, the job's first option)."""
    for start, _, part in job_slices(params):
        try:
            Price().parse(part)
        except ValueError as exc:
            raise UsageError(f"{exc} (counting from option {start})" if start else
                             str(exc)) from None


async def run_price_batches(c: Coordinator, params: dict,
                            progress=lambda text: None) -> JobOutcome:
    """A price request as one job or, beyond MAX_OPTIONS_PER_JOB options, as consecutive
    jobs whose outputs are merged (a portfolio must fit one job: its totals are revealed
    once)."""
    m = len(params["strikes"])
    if m <= MAX_OPTIONS_PER_JOB:
        return await run_price(c, params, progress)
    if params.get("portfolio"):
        raise UsageError(f"a portfolio is priced in one job: at most {MAX_OPTIONS_PER_JOB:,}"
                         f" options, not {m:,}")
    merged = None
    for start, end, part in job_slices(params):
        progress(f"options {start + 1:,}-{end:,} of {m:,}")
        outcome = await run_price(c, part, progress)
        if not outcome.ok:
            outcome.error = f"options {start + 1:,}-{end:,}: {outcome.error}"
            return outcome
        outcome.output["breached"] = [i + start for i in outcome.output["breached"]]
        if merged is None:
            merged = outcome
            merged.output["jobs"] = [outcome.job_id]
            continue
        merged.output["jobs"].append(outcome.job_id)
        merged.output["breached"] += outcome.output["breached"]
        for name, column in (outcome.output.get("values") or {}).items():
            merged.output["values"].setdefault(name, []).extend(column)
        merged.timings["total_s"] += outcome.timings.get("total_s", 0.0)
    merged.output["options"] = m
    return merged


def open_outputs(c: Coordinator, params: PriceParams, party_outputs: dict) -> dict:
    """Decrypt every party's sealed share, check they agree, reconstruct the values."""
    first = next(iter(party_outputs.values()))
    for name, out in party_outputs.items():
        if out["breached"] != first["breached"] or out["scale_bits"] != first["scale_bits"]:
            raise OutputShareError(f"{name} reports different breaker results")
    common = {k: v for k, v in first.items() if k not in ("sealed_share",)}
    if "sealed_share" not in first:  # nothing to open (a refused portfolio, all breached)
        return common
    shares = {name: open_share(out["sealed_share"], c.identity)
              for name, out in party_outputs.items()}
    flat = reconstruct(shares)
    record = next(iter(shares.values()))
    if "limb_bits" in record:  # the checked protocol's limbs (pricing_active)
        flat = from_limbs(flat, record)
    shape = record["shape"]
    rows = rows_from_flat(flat, shape, params.portfolio)
    return common | values_from_rows(params, rows, first["scale_bits"])


def per_option(params: dict, output: dict) -> list[dict]:
    """One record per option: its terms, and its values or that the breaker refused it."""
    breached = set(output.get("breached", []))
    values = output.get("values") or {}
    records, k = [], 0
    for i, (call, strike, expiry) in enumerate(zip(params["is_call"], params["strikes"],
                                                   params["expiries"])):
        r = {"index": i, "type": "call" if call else "put", "strike": strike,
             "expiry_years": expiry}
        if params.get("quantities") is not None:
            r["quantity"] = params["quantities"][i]
        if i in breached:
            r["status"] = "breaker"
        else:
            r["status"] = "ok"
            for name, column in values.items():
                r[name] = column[k]
            k += 1
        records.append(r)
    return records


async def sign_report(c: Coordinator, key_id: str, params: dict, outcome: JobOutcome,
                      progress=lambda text: None) -> dict:
    """A FROST signature, with a "reports" key, of the report of one reveal-to-all price job
    run with `params`: each signer rebuilds the report from its own record of the job and
    signs only those exact bytes (mpc_nodes.jobs.price_report)."""
    from mpc_nodes.jobs.frost import frost_sign
    from mpc_nodes.jobs.price_report import build_report, report_message
    check_report_key(c, key_id)
    if params.get("reveal") != "all" or "jobs" in outcome.output:
        raise UsageError("only a single reveal-to-all price job can be signed: its signers"
                         " must know the outputs")
    report = build_report(c.roster.cluster_id, outcome.job_id, key_id, params, outcome.output,
                          int(time.time()))
    progress(f"signing the report with {key_id}")
    signed = await frost_sign(c, key_id, report_message(report), progress=progress)
    return {"report": report, "signature": signed["signature"],
            "public_key": signed["public_key"], "signers": signed["signers"]}


def check_report_key(c: Coordinator, key_id: str) -> None:
    """UsageError unless the ledger records `key_id` as a FROST key of purpose reports."""
    from mpc_nodes.client.ledger import Ledger
    purpose = Ledger(c.config_path).data.get(key_id, {}).get("purpose")
    if purpose != "reports":
        raise UsageError(f"key {key_id!r} is not a price-report key (purpose {purpose!r}):"
                         f" make one with keygen --scheme frost-ed25519 --purpose reports")
