"""Accuracy of the secure (mean) pricing path against QuantLib, over the accepted domain.

A seeded held-out grid that no test uses: K/S, T and σ log-uniform over protocols.domain,
r and q uniform in it, calls and puts, spots 1, 100, 3,000 and 60,000, three parties whose
vols spread ±10 % around their mean; then the domain's corners (K/S, T, σ, r and q each at
its bounds and in the middle).  The secure evaluation runs in one process
(tests/pricing_harness.py); QuantLib's BlackCalculator (what its AnalyticEuropeanEngine
evaluates) judges at the parties' mean vol.  Prints, per output, the worst absolute error of
the normalised output (price/S, delta, gamma·S, vega/S, theta/S) and the worst relative
error where the normalised reference exceeds 1e-3, with where each occurs; and the most
negative price.

``--security malicious`` judges the checked mean instead (protocols.pricing_secure_active,
what ``security: malicious`` runs): three real party processes (tests/mpc_harness.py) with
the truncations' real round-ups, 20 to 50 options a second on two cores (as busy as they
are), so its grid defaults to 2,000 random options drawn the same way (another draw, as the
count differs) plus all 1,944 corners, a few minutes; it prints its progress per launch of
the parties.

    python bench/accuracy_secure_mean.py [--options N] [--seed 2024]
                                         [--security {semi-honest,malicious}]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocols import domain  # noqa: E402
from protocols.bsm import OUTPUTS  # noqa: E402
from tests.pricing_harness import (GREEK_FLOOR, checked_evaluations, errors,  # noqa: E402
                                   secure_evaluation)

SPOTS = (1.0, 100.0, 3000.0, 60000.0)
SPREAD = (-0.1, 0.0, 0.1)  # the parties' vols around their mean (a 0.2 spread < limit 0.25)
DEFAULT_OPTIONS = {"semi-honest": 12000, "malicious": 2000}
LAUNCH = 1000  # options per launch of the party processes (a progress line each)


def log_uniform(rng, low: float, high: float, n: int) -> np.ndarray:
    return np.exp(rng.uniform(math.log(low), math.log(high), n))


def batches(n: int, seed: int):
    """(spot, rate, dividend, options [(is_call, K/S, T)], mean vols) per batch."""
    rng = np.random.default_rng(seed)
    for spot in SPOTS:
        for _ in range(2):
            rate, dividend = rng.uniform(-domain.RATE_MAX, domain.RATE_MAX, 2)
            m = n // (2 * len(SPOTS))
            kappa = log_uniform(rng, domain.MONEYNESS_MIN, domain.MONEYNESS_MAX, m)
            t = log_uniform(rng, domain.EXPIRY_MIN, domain.EXPIRY_MAX, m)
            vol = log_uniform(rng, domain.VOL_MIN / (1 + min(SPREAD)),
                              domain.VOL_MAX / (1 + max(SPREAD)), m)
            calls = rng.integers(0, 2, m).astype(bool)
            yield (spot, float(rate), float(dividend),
                   [(bool(c), float(k), float(x)) for c, k, x in zip(calls, kappa, t)], vol)


def corners():
    """The same, at every corner of the domain (and the middle of each range)."""
    vols = np.array([domain.VOL_MIN / (1 + min(SPREAD)), 0.2, domain.VOL_MAX / (1 + max(SPREAD))])
    rates = (-domain.RATE_MAX, 0.0, domain.RATE_MAX)
    options = list(itertools.product((True, False), (domain.MONEYNESS_MIN, 1.0,
                                                      domain.MONEYNESS_MAX),
                                     (domain.EXPIRY_MIN, 1.0, domain.EXPIRY_MAX)))
    for spot, rate, dividend in itertools.product(SPOTS, rates, rates):
        yield (spot, rate, dividend, [o for o in options for _ in vols],
               np.tile(vols, len(options)))


def describe(spot, rate, dividend, option, vol) -> str:
    is_call, m, t = option
    return (f"{'call' if is_call else 'put'} S={spot:g} K/S={m:.4g} T={t:.4g} σ={vol:.4g}"
            f" r={rate:+.3f} q={dividend:+.3f}")


def books(n: int, seed: int):
    """(options, each party's vols, spot, rate, dividend) over the grid, then the corners."""
    for spot, rate, dividend, options, vol in itertools.chain(batches(n, seed), corners()):
        yield options, [vol * (1 + d) for d in SPREAD], spot, rate, dividend


async def evaluations(grid: list, security: str):
    """(book, normalised outputs) of the secure mean under ``security``, book by book."""
    if security == "semi-honest":
        for book in grid:
            yield book, await secure_evaluation(*book)
        return
    total, done, start = sum(len(b[0]) for b in grid), 0, time.perf_counter()
    for launch in launches(grid):
        for book, got in zip(launch, checked_evaluations(launch)):
            yield book, got
        done += sum(len(b[0]) for b in launch)
        print(f"  {done}/{total} options ({time.perf_counter() - start:.0f} s)", flush=True)


def launches(grid: list):
    """The books in groups of at least LAUNCH options (the last may be smaller)."""
    group, size = [], 0
    for book in grid:
        group.append(book)
        size += len(book[0])
        if size >= LAUNCH:
            yield group
            group, size = [], 0
    if group:
        yield group


async def measure(n: int, seed: int, security: str) -> dict:
    worst = {name: {"abs": (0.0, ""), "rel": (0.0, "")} for name in OUTPUTS}
    lowest = (math.inf, "")
    count = 0
    async for (options, parties, spot, rate, dividend), got in evaluations(
            list(books(n, seed)), security):
        agg = np.mean(parties, axis=0)
        count += len(options)
        for name, per_option in errors(options, agg, spot, rate, dividend, got).items():
            for j, (_, err, rel) in enumerate(per_option):
                where = describe(spot, rate, dividend, options[j], agg[j])
                if err > worst[name]["abs"][0]:
                    worst[name]["abs"] = (err, where)
                if rel is not None and rel > worst[name]["rel"][0]:
                    worst[name]["rel"] = (rel, where)
        j = int(np.argmin(got["price"]))
        if got["price"][j] * spot < lowest[0]:
            lowest = (got["price"][j] * spot, describe(spot, rate, dividend, options[j], agg[j]))
    return {"worst": worst, "lowest": lowest, "count": count}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--options", type=int, help="random options in the grid, besides the"
                    " corners (default 12,000; 2,000 with --security malicious)")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--security", choices=tuple(DEFAULT_OPTIONS), default="semi-honest",
                    help="the semi-honest mean in one process, or the checked mean in three")
    args = ap.parse_args()
    n = DEFAULT_OPTIONS[args.security] if args.options is None else args.options
    start = time.perf_counter()
    result = asyncio.run(measure(n, args.seed, args.security))
    print(f"secure mean path ({args.security}) vs QuantLib, {result['count']} options,"
          f" seed {args.seed} ({time.perf_counter() - start:.0f} s)")
    print(f"{'output':<10}{'worst |error|':>15}  where")
    for name in OUTPUTS:
        err, where = result["worst"][name]["abs"]
        print(f"{name:<10}{err:>15.3e}  {where}")
    print(f"{'output':<10}{'worst relative':>15}  where (normalised reference > {GREEK_FLOOR:g})")
    for name in OUTPUTS[1:]:
        rel, where = result["worst"][name]["rel"]
        print(f"{name:<10}{rel:>15.3e}  {where}")
    price, where = result["lowest"]
    print(f"lowest price {price:.3e}  {where}")
    print("normalised: price/S, delta, gamma·S, vega/S, theta/S (theta per year, vega per unit"
          " vol)")


if __name__ == "__main__":
    main()
