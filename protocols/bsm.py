"""Black-Scholes-Merton prices and Greeks in plain floating point, vectorised with numpy.

Each party evaluates these at its own volatility (see protocols.pricing), and the public
coefficients of the secure evaluation come from the same formulas.  Conventions (as
QuantLib's AnalyticEuropeanEngine): vega per unit of volatility (not per 1 %), theta per
year (the change of value as calendar time passes, usually negative).
"""

from __future__ import annotations

import math

import numpy as np

OUTPUTS = ("price", "delta", "gamma", "vega", "theta")

_erfc = np.frompyfunc(math.erfc, 1, 1)


def norm_cdf(x):
    """Standard normal distribution function, accurate in both tails."""
    return _erfc(-np.asarray(x, dtype=float) / math.sqrt(2.0)).astype(float) / 2.0


def norm_pdf(x):
    x = np.asarray(x, dtype=float)
    return np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def bsm(is_call, spot: float, strike, expiry, rate: float, dividend: float, vol) -> dict:
    """Price, delta, gamma, vega and theta of European options (arrays in, arrays out)."""
    is_call = np.asarray(is_call, dtype=bool)
    k, t, v = (np.asarray(a, dtype=float) for a in (strike, expiry, vol))
    sqrt_t = np.sqrt(t)
    s = v * sqrt_t
    d1 = (np.log(spot / k) + (rate - dividend) * t) / s + s / 2
    d2 = d1 - s
    dq, dr = np.exp(-dividend * t), np.exp(-rate * t)
    sign = np.where(is_call, 1.0, -1.0)
    n1, n2 = norm_cdf(sign * d1), norm_cdf(sign * d2)
    pdf = norm_pdf(d1)
    return {
        "price": sign * (spot * dq * n1 - k * dr * n2),
        "delta": sign * dq * n1,
        "gamma": dq * pdf / (spot * s),
        "vega": spot * dq * pdf * sqrt_t,
        "theta": (-spot * dq * pdf * v / (2 * sqrt_t)
                  + sign * (dividend * spot * dq * n1 - rate * k * dr * n2)),
    }


def normalise(outputs: dict, spot: float, greeks: bool) -> np.ndarray:
    """Output rows in units of order one: price/S, delta, gamma·S, vega/S, theta/S."""
    rows = [outputs["price"] / spot]
    if greeks:
        rows += [outputs["delta"], outputs["gamma"] * spot, outputs["vega"] / spot,
                 outputs["theta"] / spot]
    return np.array(rows)


def denormalise(rows, spot: float, greeks: bool) -> dict[str, list[float]]:
    """Inverse of normalise, on revealed rows (lists of floats)."""
    names = OUTPUTS if greeks else OUTPUTS[:1]
    scale = {"price": spot, "delta": 1.0, "gamma": 1.0 / spot, "vega": spot, "theta": spot}
    return {name: [float(v) * scale[name] for v in row] for name, row in zip(names, rows)}
