"""Pricing numerics without MPC: the plaintext BSM against QuantLib and textbook values, the
normal approximations' coefficients and error bounds, the aggregation plans, and the
reconstruction of coordinator-only output shares."""

import math
import random

import numpy as np
import pytest
import QuantLib as ql
from scipy.special import ndtr

from mpc_nodes.jobs.output_shares import OutputShareError, open_share, reconstruct, seal_share
from protocols import normal_approx
from protocols.bsm import bsm, denormalise, normalise
from protocols.pricing import PricingError, newton_steps, plan


def quantlib(is_call, spot, strike, expiry_years, rate, dividend, vol) -> dict:
    """Price and Greeks from QuantLib's AnalyticEuropeanEngine (theta per year, vega per
    unit vol), with expiry as an exact year fraction on an Actual/365 (Fixed) day count."""
    today = ql.Date(1, 1, 2030)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    days = expiry_years * 365
    assert abs(days - round(days)) < 1e-9, "QuantLib needs a whole number of days"
    maturity = today + int(round(days))
    payoff = ql.PlainVanillaPayoff(ql.Option.Call if is_call else ql.Option.Put, strike)
    option = ql.EuropeanOption(payoff, ql.EuropeanExercise(maturity))
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(spot)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, dividend, dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, rate, dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), vol, dc)))
    option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
    return {"price": option.NPV(), "delta": option.delta(), "gamma": option.gamma(),
            "vega": option.vega(), "theta": option.theta()}


def test_hull_example_15_6():
    # Hull, Options, Futures and Other Derivatives, Example 15.6: S=42, K=40, r=10%, σ=20%,
    # T=0.5 -> call 4.76, put 0.81
    out = bsm([True, False], 42.0, [40.0, 40.0], [0.5, 0.5], 0.10, 0.0, [0.2, 0.2])
    assert out["price"][0] == pytest.approx(4.759422, abs=1e-6)
    assert out["price"][1] == pytest.approx(0.808599, abs=1e-6)


def test_textbook_at_the_money_values():
    # S = K = 100, r = 5 %, σ = 20 %, T = 1: call 10.450584, put 5.573526 (Haug)
    out = bsm([True, False], 100.0, [100.0, 100.0], [1.0, 1.0], 0.05, 0.0, [0.2, 0.2])
    assert out["price"] == pytest.approx([10.450584, 5.573526], abs=1e-6)


def test_plaintext_bsm_matches_quantlib_on_the_grid():
    rng = random.Random(3)
    worst = {k: 0.0 for k in ("price", "delta", "gamma", "vega", "theta")}
    for _ in range(300):
        is_call = rng.random() < 0.5
        spot = 3000.0
        strike = spot * rng.uniform(0.5, 2.0)
        expiry = rng.randint(1, 3 * 365) / 365
        vol, rate, div = rng.uniform(0.05, 3.0), rng.uniform(-0.01, 0.1), rng.uniform(0, 0.05)
        ours = bsm([is_call], spot, [strike], [expiry], rate, div, [vol])
        ref = quantlib(is_call, spot, strike, expiry, rate, div, vol)
        for k in worst:
            err = abs(ours[k][0] - ref[k]) / max(1.0, abs(ref[k]))
            worst[k] = max(worst[k], err)
    assert max(worst.values()) < 1e-9, worst


def test_normal_coefficients_are_reproducible_and_within_their_documented_bounds():
    cdf, pdf = normal_approx.fit()
    assert (cdf, pdf) == (normal_approx.CDF, normal_approx.PDF)
    from numpy.polynomial import chebyshev
    u = np.linspace(-1, 1, 400_001)
    w, x = 2 * u * u - 1, u * normal_approx.BOUND
    scale = 2.0 ** normal_approx.FRAC_BITS
    cdf_err = np.abs(0.5 + u * chebyshev.chebval(w, np.array(cdf) / scale) - ndtr(x)).max()
    pdf_err = np.abs(chebyshev.chebval(w, np.array(pdf) / scale)
                     - np.exp(-x * x / 2) / math.sqrt(2 * math.pi)).max()
    tail, pdf_tail = ndtr(-normal_approx.BOUND), math.exp(-normal_approx.BOUND ** 2 / 2)
    # docs/PRICING.md states these bounds
    assert cdf_err < 3e-14 and pdf_err < 3e-14
    assert tail < 4e-14 and pdf_tail / math.sqrt(2 * math.pi) < 3e-13


@pytest.mark.parametrize("n,method,expected", [
    (3, "median", ("exact", [1], 1)), (5, "median", ("exact", [2], 1)),
    (4, "median", ("secure", [1, 2], 2)), (3, "mean", ("secure", None, 3)),
    (3, "trimmed", ("exact", [1], 1)), (5, "trimmed", ("secure", [1, 2, 3], 3)),
    (2, "trimmed", ("secure", None, 2)),
])
def test_aggregation_plans(n, method, expected):
    assert plan(n, method) == expected


def test_unknown_aggregation_and_loose_limits_are_refused():
    with pytest.raises(PricingError, match="unknown aggregation"):
        plan(3, "max")
    with pytest.raises(PricingError, match="too loose"):
        newton_steps(0.5)
    assert newton_steps(0.25) <= newton_steps(0.45)
    e0 = 0.45 / 0.55
    assert e0 ** (2 ** newton_steps(0.45)) < 2 ** -34


def test_normalisation_round_trips():
    out = bsm([True, False], 3000.0, [2800, 3300], [0.3, 1.2], 0.03, 0.01, [0.7, 0.5])
    back = denormalise(normalise(out, 3000.0, True).tolist(), 3000.0, True)
    for k, v in out.items():
        assert back[k] == pytest.approx(list(v), rel=1e-12)


def _shares(secret_values, points, degree, p, rng):
    shares = {}
    coeffs = [[v] + [rng.randrange(p) for _ in range(degree)] for v in secret_values]
    for x in points:
        shares[f"party{x - 1}"] = {
            "point": x, "modulus": p, "degree": degree, "shape": [len(secret_values)],
            "values": [sum(c * x ** k for k, c in enumerate(cs)) % p for cs in coeffs]}
    return shares


def test_output_shares_reconstruct_and_detect_a_corrupted_share():
    p = 2 ** 127 - 1
    rng = random.Random(5)
    secrets = [5, -7, 2 ** 90, 0]
    shares = _shares([s % p for s in secrets], [1, 2, 3, 4, 5], 2, p, rng)
    assert reconstruct(shares) == secrets
    only_three = {k: shares[k] for k in ("party0", "party2", "party4")}
    assert reconstruct(only_three) == secrets
    shares["party3"]["values"][1] += 1
    with pytest.raises(OutputShareError, match="party3"):
        reconstruct(shares)
    with pytest.raises(OutputShareError, match="cannot open"):
        reconstruct({k: shares[k] for k in ("party0", "party1")})


def test_sealed_shares_open_only_for_the_coordinator():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    coordinator, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    public = coordinator.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    share = {"point": 2, "modulus": 2 ** 89 - 1, "degree": 1, "shape": [3],
             "values": [1, 2 ** 88, 3]}
    sealed = seal_share(share, public)
    assert open_share(sealed, coordinator) == share
    with pytest.raises(OutputShareError):
        open_share(sealed, other)
    with pytest.raises(OutputShareError):
        open_share("not base64!", coordinator)
