"""Pricing throughput and latency, against the plaintext numpy/scipy evaluation of the same
options in the same run.

- MPC throughput: protocols.pricing in 3 (and 5) real party processes on loopback, options
  per second for batches of 1, 100, 1,000 and 10,000 (time inside the protocol, after a
  barrier), for the exact median path and the secure (mean) path;
- end to end: a single-option price job through a local cluster (bus, votes, session,
  result), p50/p95 over N jobs, and one 10,000-option job;
- baseline: numpy BSM (protocols.bsm) and scipy.stats.norm pricing of the same options.

    python bench/bench_pricing.py [--quick] [--jobs 30] [--parties 3 5] [--batches 1 100 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np
from _cluster import local_cluster, online_coordinator, pct
from scipy.stats import norm

from protocols.bsm import bsm
from tests.mpc_harness import run_parties

from mpc_nodes.jobs.options_csv import OptionBook
from mpc_nodes.jobs.pricing import price_params, run_price

SPOT = 3000.0


def options(m: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    return ([bool(x) for x in rng.integers(0, 2, m)],
            [float(x) for x in rng.uniform(0.5, 2.0, m) * SPOT],
            [float(x) for x in rng.integers(1, 3 * 365, m) / 365], rng.uniform(0.05, 3.0, m))


def public(m: int, method: str) -> tuple[dict, np.ndarray]:
    is_call, strikes, expiries, vols = options(m)
    return ({"spot": SPOT, "rate": 0.03, "dividend": 0.0, "is_call": is_call,
             "strikes": strikes, "expiries": expiries, "quantities": [1.0] * m, "greeks": True,
             "portfolio": False, "method": method, "limit": 0.25, "reveal": "all"}, vols)


def mpc_rate(parties: int, m: int, method: str) -> tuple[float, float]:
    """Options/s (time inside the protocol, the slowest party) and the largest party CPU s."""
    pub, vols = public(m, method)
    rng = np.random.default_rng(7)
    per_party = [list(vols * (1 + rng.uniform(-0.05, 0.05, m))) for _ in range(parties)]
    out = run_parties("bench._timed_pricing:timed", [[v, pub] for v in per_party],
                      timeout=3600)
    return m / max(r["seconds"] for r in out), max(r["cpu"] for r in out)


def plaintext_rates(m: int) -> tuple[float, float]:
    pub, vols = public(m, "median")
    reps = max(1, 20_000 // m)
    t = time.perf_counter()
    for _ in range(reps):
        bsm(pub["is_call"], SPOT, pub["strikes"], pub["expiries"], 0.03, 0.0, vols)
    ours = reps * m / (time.perf_counter() - t)
    k, tt = np.array(pub["strikes"]), np.array(pub["expiries"])
    t = time.perf_counter()
    for _ in range(reps):
        s = vols * np.sqrt(tt)
        d1 = (np.log(SPOT / k) + 0.03 * tt) / s + s / 2
        _ = SPOT * norm.cdf(d1) - k * np.exp(-0.03 * tt) * norm.cdf(d1 - s), norm.pdf(d1)
    return ours, reps * m / (time.perf_counter() - t)


async def end_to_end(cluster_dir, broker, jobs: int) -> tuple[list[float], float]:
    single = OptionBook([True], [3000.0], [0.25], [1.0])
    big = OptionBook(*[list(x) for x in options(10_000)[:3]], [1.0] * 10_000)
    async with online_coordinator(cluster_dir, broker) as c:
        times = []
        for _ in range(jobs):
            t = time.perf_counter()
            outcome = await run_price(c, price_params(single, "ETH", SPOT, 0.03, greeks=True))
            assert outcome.ok, outcome.error
            times.append(time.perf_counter() - t)
        t = time.perf_counter()
        outcome = await run_price(c, price_params(big, "ETH", SPOT, 0.03, greeks=True))
        assert outcome.ok, outcome.error
        return times, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 parties, batches up to 1,000")
    ap.add_argument("--jobs", type=int, default=30)
    ap.add_argument("--e2e-only", action="store_true", help="only the end-to-end figures")
    ap.add_argument("--parties", type=int, nargs="+", default=[3, 5])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 100, 1000, 10_000])
    args = ap.parse_args()
    batches = [] if args.e2e_only else [1, 100, 1000] if args.quick else args.batches
    print("plaintext baseline (options/s, greeks included):")
    base = {}
    for m in batches:
        ours, scipy_rate = plaintext_rates(m)
        base[m] = ours
        print(f"  batch {m:>6}: numpy {ours:>12,.0f}   scipy.stats {scipy_rate:>12,.0f}")
    print("MPC, options/s (time inside the protocol; ratio = plaintext numpy / MPC; CPU = the"
          " busiest party's CPU seconds)")
    for parties in ([] if args.e2e_only else [3] if args.quick else args.parties):
        for method, label in (("median", "exact median"), ("mean", "secure mean")):
            for m in batches:
                rate, cpu = mpc_rate(parties, m, method)
                print(f"  {parties} parties, {label:>12}, batch {m:>6}: {rate:>8,.0f}"
                      f"   (x{base[m] / rate:,.0f} slower than plaintext; CPU {cpu:.2f} s)")
    with local_cluster(3) as (cluster_dir, broker):
        times, big = asyncio.run(end_to_end(cluster_dir, broker, args.jobs))
    print(f"end to end, 3 parties, one option with greeks: p50 {1000 * pct(times, 0.5):.0f} ms,"
          f" p95 {1000 * pct(times, 0.95):.0f} ms over {len(times)} jobs (target <= 150 ms)")
    print(f"end to end, 3 parties, 10,000 options with greeks: {big:.1f} s,"
          f" {10_000 / big:,.0f} options/s (target >= 3,000/s)")


if __name__ == "__main__":
    main()
