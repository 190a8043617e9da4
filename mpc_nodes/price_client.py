"""The coordinator side of a price job: request it, open coordinator-only outputs, and lay
the result out per option, for the CLI, the demo and scripts."""

from __future__ import annotations

import time

from .coordinator import Coordinator, JobOutcome
from .options_csv import OptionBook
from .output_shares import OutputShareError, open_share, reconstruct
from .pricejobs import (MAX_OPTIONS_PER_JOB, PriceParams, rows_from_flat, session_seconds,
                        values_from_rows)

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


def result_timeout(options: int) -> float:
    """How long the coordinator waits for results: the nodes' session bound, plus set-up."""
    return 60.0 + session_seconds(options)


async def run_price(c: Coordinator, params: dict, progress=lambda text: None) -> JobOutcome:
    """Run a price job; on success outcome.output holds the opened values (also for
    reveal=coordinator, after the shares were decrypted and checked)."""
    if params.get("reveal") == "coordinator":
        params = params | {"recipient": c.config.name}
    outcome = await c.run_job("price", params, progress=progress,
                              result_timeout=result_timeout(len(params["strikes"])))
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


async def run_price_batches(c: Coordinator, params: dict,
                            progress=lambda text: None) -> JobOutcome:
    """A price request as one job or, beyond MAX_OPTIONS_PER_JOB options, as consecutive
    jobs whose outputs are merged (a portfolio must fit one job: its totals are revealed
    once)."""
    m = len(params["strikes"])
    if m <= MAX_OPTIONS_PER_JOB:
        return await run_price(c, params, progress)
    if params.get("portfolio"):
        raise ValueError(f"a portfolio is priced in one job: at most {MAX_OPTIONS_PER_JOB:,}"
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
    shape = next(iter(shares.values()))["shape"]
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
    signs only those exact bytes (mpc_nodes.price_report)."""
    from .frost_coordinator import frost_sign
    from .ledger import Ledger
    from .price_report import build_report, report_message
    purpose = Ledger(c.config_path).data.get(key_id, {}).get("purpose")
    if purpose != "reports":
        raise ValueError(f"key {key_id!r} is not a price-report key (purpose {purpose!r}):"
                         f" make one with keygen --scheme frost-ed25519 --purpose reports")
    if params.get("reveal") != "all" or "jobs" in outcome.output:
        raise ValueError("only a single reveal-to-all price job can be signed: its signers"
                         " must know the outputs")
    report = build_report(c.roster.cluster_id, outcome.job_id, key_id, params, outcome.output,
                          int(time.time()))
    progress(f"signing the report with {key_id}")
    signed = await frost_sign(c, key_id, report_message(report), progress=progress)
    return {"report": report, "signature": signed["signature"],
            "public_key": signed["public_key"], "signers": signed["signers"]}
