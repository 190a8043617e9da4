"""Issue 16's target table in one run: every figure of the table measured under both security
modes, with the plaintext baselines measured in the same run.

For 3, 5 and 7 parties in turn, two local clusters run side by side (embedded TLS broker, real
node processes), one `security: semi-honest` and one `security: malicious`, the jobs
alternating between them (A/B interleaved, the order swapped each round: both see the same
load), each job timed from request to verified result (bench_security's recording):

- price, exact median, 3 parties (a book of --options options with Greeks, end to end through
  the coordinator, options/s at the p50 job); the secure mean (3 parties, --mean-options);
  the median at 5 and 7 parties (--options-5, --options-7: from five parties both modes run
  the checked engine, jobs.pricing.CHECKED_FROM).  Every book is the issue's 10,000 options
  unless asked otherwise; the table prints the size;
- ECDSA sign end to end p50; with a presignature (made ahead by presign jobs, not timed);
- FROST 2-of-3 end to end p50, both rounds and from preprocessed commitments.  FROST signs
  in LocalKind jobs with no MPyC session: the roster's mode changes nothing on its path, so
  its two columns run the same code.

Per figure: target, semi-honest, malicious, met? (the issue's targets hold under malicious;
semi-honest's verdict in brackets where it differs) and the cluster's CPU per job
(bench/_cluster.cluster_cpu).  Baselines: QuantLib one option at a time with Greeks (the
tests' AnalyticEuropeanEngine set-up, and its BlackCalculator alone), vectorised numpy and
scipy (bench_pricing), and the bus round trip (bench_aggregate) through each 3-party
cluster's broker.  Progress goes to stderr.

    python bench/bench_targets.py [--quick] [--json] [--price-rounds 3] [--sigs 30]
                                  [--options 10000] [--mean-options 10000]
                                  [--options-5 10000] [--options-7 10000] [--broker URL]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cluster import clusters_by_mode, pct  # noqa: E402
from bench_aggregate import mqtt_round_trip  # noqa: E402
from bench_pricing import SPOT, options, plaintext_rates  # noqa: E402
from bench_security import (KEY, KINDS, MODES, PRICE_VARIANTS, Side, allow_all,  # noqa: E402
                            git_commit, presign_into, price_book, record, run_ok, sides_of)

from tests.pricing_harness import quantlib as black_calculator  # noqa: E402
from tests.test_pricing_numerics import quantlib as engine_priced  # noqa: E402

from mpc_nodes.jobs.ecdsa import PresignParams  # noqa: E402
from mpc_nodes.jobs.frost import (MAX_PREPROCESS, frost_keygen, preprocess,  # noqa: E402
                                  sign_message)
from mpc_nodes.jobs.pricing import run_price  # noqa: E402

FROST_KEY = "bench-frost"
PRESIGN_MOST = next(m.le for m in PresignParams.model_fields["count"].metadata
                    if getattr(m, "le", None))  # presignatures per presign job
QUANTLIB_OPTIONS = 2_000  # QuantLib prices one option at a time: enough for its rate


@dataclass(frozen=True)
class Row:
    """One figure of issue 16's table: a rate (options/s at the p50 job of `options` options,
    at least `target`) or a latency (p50 ms, at most `target`)."""

    label: str
    parties: int
    target: float
    options: int = 0

    def value(self, walls: list[float]) -> float:
        p50 = pct(walls, .5)
        return self.options / p50 if self.options else 1000 * p50

    def met(self, value: float) -> bool:
        return value >= self.target if self.options else value <= self.target

    def shown(self, value: float) -> str:
        return f"{value:,.0f}/s" if self.options else f"{value:.1f} ms"

    def target_shown(self) -> str:
        return f">= {self.target:,.0f}/s" if self.options else f"<= {self.target:g} ms"


def rows(args) -> list[Row]:
    return [Row(f"price, {args.options:,} options, exact median", 3, 3000, args.options),
            Row(f"price, {args.mean_options:,} options, secure mean", 3, 1000,
                args.mean_options),
            Row(f"price, 5 parties, {args.options_5:,} options, median", 5, 1000, args.options_5),
            Row(f"price, 7 parties, {args.options_7:,} options, median", 7, 300, args.options_7),
            Row("ECDSA sign, end to end p50", 3, 12),
            Row("ECDSA sign with presignature, p50", 3, 6),
            Row("FROST 2-of-3, both rounds, p50", 3, 12),
            Row("FROST 2-of-3, preprocessed, p50", 3, 12)]


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def priced(book: dict):
    """A side's price job on `book` (price job parameters)."""
    return lambda side: run_price(side.c, book)


def frost_signed(pool: bool):
    """A side's FROST signature, from preprocessed commitments (`pool`) or in two rounds."""
    async def job(side: Side):
        o = await sign_message(side.c, FROST_KEY, b"report %d" % side.next(), pool=pool)
        if o.ok and o.output["preprocessed"] != pool:
            o.ok, o.error = False, f"preprocessed {o.output['preprocessed']}, asked {pool}"
        return o
    return job


async def alternate(sides: list[Side], label: str, job, rounds: int) -> None:
    """`rounds` jobs per side, A/B alternating, the order swapped each round."""
    progress(f"{label}: {rounds} jobs per mode")
    for r in range(rounds):
        for side in (sides if r % 2 == 0 else sides[::-1]):
            await record(side, label, job)


async def in_batches(side: Side, label: str, make, count: int, most: int) -> None:
    """`make(side, k)` (a presign or preprocess job of k) until `count` are made, `most` at a
    time."""
    while count:
        await run_ok(side, label, lambda s, k=min(count, most): make(s, k))
        count -= min(count, most)


async def three_parties(clusters: dict, table: list[Row], args) -> tuple[dict, dict]:
    """The 3-party rows on a semi-honest and a malicious cluster; samples by mode, and the
    bus round trip through each cluster's broker."""
    async with sides_of(clusters) as sides:
        median, mean, sign, presigned, frost2, frost1 = [r for r in table if r.parties == 3]
        jobs = {median.label: priced(price_book(median.options)),
                mean.label: priced(price_book(mean.options) | PRICE_VARIANTS["mean"]),
                sign.label: KINDS["sign"][1], presigned.label: KINDS["presigned sign"][1],
                frost2.label: frost_signed(False), frost1.label: frost_signed(True)}
        progress("3 parties: keys, presignatures, FROST commitments, warm-up")
        for side in sides:  # warm-up, not measured: engines, links, imports on the nodes
            await run_ok(side, "keygen", lambda s: s.c.run_job("keygen", {"key_id": KEY}))
            await run_ok(side, "FROST keygen", lambda s: frost_keygen(s.c, FROST_KEY))
            await in_batches(side, "presign", presign_into, args.sigs + 1, PRESIGN_MOST)
            await in_batches(side, "FROST preprocess", lambda s, k: preprocess(s.c, FROST_KEY, k),
                             args.sigs + 1, MAX_PREPROCESS)
            for job in (priced(price_book(10)), priced(price_book(10) | PRICE_VARIANTS["mean"]),
                        *(jobs[r.label] for r in (sign, presigned, frost2, frost1))):
                await run_ok(side, "warm-up", job)
        for row in (sign, presigned, frost2, frost1):
            await alternate(sides, row.label, jobs[row.label], args.sigs)
        for row in (median, mean):
            await alternate(sides, row.label, jobs[row.label], args.price_rounds)
        progress("3 parties: bus round trips")
        bus = {mode: await mqtt_round_trip(clusters[mode][1], clusters[mode][0])
               for mode in MODES}
        return {side.mode: side.samples for side in sides}, bus


async def more_parties(clusters: dict, row: Row, rounds: int) -> dict:
    """A price row at 5 or 7 parties; samples by mode."""
    async with sides_of(clusters) as sides:
        for side in sides:
            await run_ok(side, "warm-up", priced(price_book(10)))
        await alternate(sides, row.label, priced(price_book(row.options)), rounds)
        return {side.mode: side.samples for side in sides}


def measure_pair(parties: int, broker: str | None, run) -> object:
    """`run(clusters)` (a coroutine) with a semi-honest and a malicious cluster of `parties`
    side by side (_cluster.clusters_by_mode)."""
    progress(f"{parties} parties: starting a semi-honest and a malicious cluster")
    with clusters_by_mode(parties, MODES, broker, allow_all) as clusters:
        return asyncio.run(run(clusters))


def quantlib_rate(m: int, price) -> float:
    """Options/s of `price` (a QuantLib pricer of the tests), price and Greeks, one option at
    a time."""
    is_call, strikes, expiries, vols = options(m)
    start = time.perf_counter()
    for c, k, t, v in zip(is_call, strikes, expiries, vols):
        price(c, SPOT, k, t, 0.03, 0.0, float(v))
    return m / (time.perf_counter() - start)


def summary(table: list[Row], samples: dict) -> list[dict]:
    """Per row and mode: the figure, whether it meets the target, jobs, CPU per job."""
    out = []
    for row in table:
        entry = {"figure": row.label, "parties": row.parties, "options": row.options or None,
                 "target": row.target, "unit": "options/s" if row.options else "ms p50"}
        for mode in MODES:
            s = samples[mode][row.label]
            value = row.value(s["wall"])
            entry[mode] = {"value": value, "met": row.met(value), "jobs": len(s["wall"]),
                           "wall_s": s["wall"], "mpc_p50_s": pct(s["mpc"], .5),
                           "cpu_per_job_s": sum(s["cpu"]) / len(s["cpu"])}
        out.append(entry)
    return out


def report(result: dict, table: list[Row]) -> None:
    print(f"bench_targets {result['date']}, commit {result['commit']}: {result['cpus']} CPUs,"
          f" load average {result['load'][0]:.1f} at start, {result['load'][1]:.1f} at end;"
          f" {result['sigs']} signatures and {result['price_rounds']} price jobs per mode, A/B"
          f" interleaved\n")
    print(f"{'figure':46}{'target':>13}{'semi-honest':>13}{'malicious':>13}  {'met?':9}"
          f"{'CPU s/job sh / mal':>20}")
    for row, entry in zip(table, result["rows"]):
        sh, mal = entry["semi-honest"], entry["malicious"]
        met = ("yes" if mal["met"] else "no") + (
            f" (sh {'yes' if sh['met'] else 'no'})" if sh["met"] != mal["met"] else "")
        print(f"{row.label:46}{row.target_shown():>13}{row.shown(sh['value']):>13}"
              f"{row.shown(mal['value']):>13}  {met:9}"
              f"{sh['cpu_per_job_s']:12.3f} / {mal['cpu_per_job_s']:.3f}")
    print("\nFROST signs in LocalKind jobs (no MPyC session): the mode changes nothing on its"
          " path; its two columns differ only by noise.")
    base = result["baselines"]
    print(f"\nbaselines, same run, price and Greeks: QuantLib one option at a time, an"
          f" AnalyticEuropeanEngine with its instrument and process per option"
          f" {base['quantlib_engine']:,.0f} options/s, its BlackCalculator alone"
          f" {base['quantlib_calculator']:,.0f}/s; vectorised numpy (protocols.bsm)"
          f" {base['numpy']:,.0f}/s and scipy.stats {base['scipy']:,.0f}/s on"
          f" {base['plaintext_options']:,} options; bus round trip p50 "
          + ", ".join(f"{mode} {ms:.2f} ms" for mode, ms in base["bus_p50_ms"].items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: small books, few signatures, one price job per mode")
    ap.add_argument("--price-rounds", type=int, default=2, help="price jobs per row and mode")
    ap.add_argument("--sigs", type=int, default=30, help="signatures per row and mode")
    ap.add_argument("--options", type=int, default=10_000, help="3-party median book")
    ap.add_argument("--mean-options", type=int, default=10_000, help="3-party mean book")
    ap.add_argument("--options-5", type=int, default=10_000, help="5-party median book")
    ap.add_argument("--options-7", type=int, default=10_000, help="7-party median book")
    ap.add_argument("--broker", help="external broker URL (default: embedded amqtt with TLS)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.price_rounds, args.sigs = 1, 5
        args.options, args.mean_options, args.options_5, args.options_7 = 500, 30, 60, 30
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0]
    table = rows(args)
    progress("plaintext baselines")
    numpy_rate, scipy_rate = plaintext_rates(args.options)
    m = min(args.options, QUANTLIB_OPTIONS)
    base = {"quantlib_engine": quantlib_rate(m, engine_priced),
            "quantlib_calculator": quantlib_rate(m, black_calculator), "numpy": numpy_rate,
            "scipy": scipy_rate, "plaintext_options": args.options}
    samples, bus = measure_pair(3, args.broker, lambda c: three_parties(c, table, args))
    base["bus_p50_ms"] = {mode: 1000 * pct(times, .5) for mode, times in bus.items()}
    for row in (r for r in table if r.parties > 3):
        more = measure_pair(row.parties, args.broker,
                            lambda c, row=row: more_parties(c, row, args.price_rounds))
        for mode in MODES:
            samples[mode].update(more[mode])
    result = {"date": started, "commit": git_commit(), "cpus": os.cpu_count(),
              "load": [load, os.getloadavg()[0]], "sigs": args.sigs,
              "price_rounds": args.price_rounds, "rows": summary(table, samples),
              "baselines": base}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        report(result, table)


if __name__ == "__main__":
    main()
