"""The secure (mean) pricing evaluation in one process, and QuantLib as its judge.

``secure_evaluation`` runs protocols.pricing.secure_bsm on a single-party MPyC runtime
on the aggregate of the given parties' vols, as the MPC does after the breaker: fast, no
cluster, the same fixed-point arithmetic (with one party a truncation rounds up by at most
one unit instead of the PRSS subsets' count).  ``checked_evaluations`` runs the mean under
``security: malicious`` (protocols.pricing_secure_active) in real party processes, one
per party's vols, with their truncations' real round-ups: slower, so it takes many books
per launch.  ``quantlib`` is QuantLib's BlackCalculator, the calculator its
AnalyticEuropeanEngine prices with, at an expiry in exact years.  ``errors`` compares the
secure outputs with it the way docs/PRICING.md states the accuracy.
Used by tests/test_pricing_accuracy.py, tests/test_pricing_accuracy_active.py and
bench/accuracy_secure_mean.py.
"""

from __future__ import annotations

import math

import numpy as np
import QuantLib as ql

from mpc_nodes.node.mpyc_runtime import PartyAddress, new_runtime
from protocols import pricing, pricing_secure_active
from protocols.bsm import OUTPUTS
from protocols.fixedpoint import MpcOps
from tests.mpc_harness import run_parties

GREEK_FLOOR = 1e-3  # Greeks are judged relatively where their normalised size exceeds this
SCALE = {"price": 1.0, "delta": 0.0, "gamma": -1.0, "vega": 1.0, "theta": 1.0}  # spot powers


async def secure_evaluation(options, vols_per_party, spot: float, rate: float,
                            dividend: float, limit: float = 0.25) -> dict[str, np.ndarray]:
    """Normalised outputs (price/S, delta, gamma·S, vega/S, theta/S) of the secure path for
    ``options`` = [(is_call, K/S, T)], each party's vols a row of ``vols_per_party``."""
    rt = new_runtime(0, [PartyAddress("127.0.0.1", 0)])
    await rt.start()
    try:
        v = np.array(vols_per_party, dtype=float)
        sec = rt.SecInt(pricing.SECURE_TYPE_BITS)
        sigma_sum = sec.array(np.array([sum(round(x * 2 ** pricing.F) for x in col)
                                        for col in v.T], dtype=object))
        recip_sum = sec.array(np.array([sum(round(2 ** pricing.F / x) for x in col)
                                        for col in v.T], dtype=object))
        out = await pricing.secure_bsm(MpcOps(rt), sigma_sum, recip_sum, len(v),
                                       _public(options, spot, rate, dividend, limit),
                                       np.arange(len(options)))
        rows = np.array(await rt.output(out), dtype=float) / 2 ** pricing.F
        return dict(zip(OUTPUTS, rows))
    finally:
        await rt.shutdown()


def checked_evaluations(books, limit: float = 0.25,
                        timeout: float = 600.0) -> list[dict[str, np.ndarray]]:
    """Normalised outputs of the checked mean (``security: malicious``) for each book
    (options, vols_per_party, spot, rate, dividend) of ``books``, as ``secure_evaluation``
    gives them, from one launch of len(vols_per_party) party processes (all books alike)."""
    per_party = [[[[list(map(float, vols[i])), _public(options, spot, rate, dividend, limit)]
                   for options, vols, spot, rate, dividend in books]]
                 for i in range(len(books[0][1]))]
    results = run_parties("tests.pricing_harness:checked_books", per_party, timeout=timeout)
    if any(r != results[0] for r in results):
        raise AssertionError("the parties opened different rows")
    return [dict(zip(OUTPUTS, np.array(rows, dtype=float) / 2 ** pricing.F))
            for rows in results[0]]


async def checked_books(rt, books) -> list:
    """Party target of ``checked_evaluations``: each book's opened rows, in one runtime."""
    out = []
    for vols, public in books:
        result = await pricing_secure_active.price(rt, vols, public)
        if result["breached"]:
            raise AssertionError(f"the breaker stopped options {result['breached']}")
        out.append(result["rows"])
    return out


def _public(options, spot: float, rate: float, dividend: float, limit: float) -> dict:
    """A job's public terms for ``options`` = [(is_call, K/S, T)]: the mean, every Greek."""
    return {"spot": spot, "rate": rate, "dividend": dividend, "greeks": True,
            "is_call": [o[0] for o in options], "limit": limit,
            "strikes": [o[1] * spot for o in options], "expiries": [o[2] for o in options],
            "quantities": None, "portfolio": False, "method": "mean", "reveal": "all"}


def quantlib(is_call: bool, spot: float, strike: float, expiry: float, rate: float,
             dividend: float, vol: float) -> dict[str, float]:
    """Price and Greeks (vega per unit vol, theta per year) from QuantLib's BlackCalculator."""
    payoff = ql.PlainVanillaPayoff(ql.Option.Call if is_call else ql.Option.Put, strike)
    forward = spot * math.exp((rate - dividend) * expiry)
    black = ql.BlackCalculator(payoff, forward, vol * math.sqrt(expiry),
                               math.exp(-rate * expiry))
    return {"price": black.value(), "delta": black.delta(spot), "gamma": black.gamma(spot),
            "vega": black.vega(expiry), "theta": black.theta(spot, expiry)}


def errors(options, vols, spot: float, rate: float, dividend: float, got: dict):
    """Per option and output: (normalised reference, absolute error of the normalised
    output, relative error); the relative error is None below GREEK_FLOOR (and for price)."""
    out = {name: [] for name in OUTPUTS}
    for j, ((is_call, m, t), vol) in enumerate(zip(options, vols)):
        ref = quantlib(is_call, spot, m * spot, t, rate, dividend, float(vol))
        for name in OUTPUTS:
            r = ref[name] / spot ** SCALE[name]
            err = abs(float(got[name][j]) - r)
            rel = err / abs(r) if name != "price" and abs(r) > GREEK_FLOOR else None
            out[name].append((r, err, rel))
    return out
