"""The secure (mean) pricing evaluation in one process, and QuantLib as its judge.

``secure_evaluation`` runs protocols.pricing.secure_bsm on a single-party MPyC runtime
on the aggregate of the given parties' vols, as the MPC does after the breaker: fast, no
cluster, the same fixed-point arithmetic (with one party a truncation rounds up by at most
one unit instead of the PRSS subsets' count).  ``quantlib`` is QuantLib's BlackCalculator,
the calculator its AnalyticEuropeanEngine prices with, at an expiry in exact years.
``worst_errors`` compares the two the way docs/PRICING.md states the accuracy.
Used by tests/test_pricing_accuracy.py and bench/accuracy_secure_mean.py.
"""

from __future__ import annotations

import math

import numpy as np
import QuantLib as ql

from mpc_nodes.node.mpyc_runtime import PartyAddress, new_runtime
from protocols import pricing
from protocols.bsm import OUTPUTS
from protocols.fixedpoint import MpcOps

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
        public = {"spot": spot, "rate": rate, "dividend": dividend, "greeks": True,
                  "is_call": [o[0] for o in options], "limit": limit,
                  "strikes": [o[1] * spot for o in options],
                  "expiries": [o[2] for o in options]}
        out = await pricing.secure_bsm(MpcOps(rt), sigma_sum, recip_sum, len(v), public,
                                       np.arange(len(options)))
        rows = np.array(await rt.output(out), dtype=float) / 2 ** pricing.F
        return dict(zip(OUTPUTS, rows))
    finally:
        await rt.shutdown()


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
