"""Item 6: fixed-point values stay inside the bounds their masks assume.

The attack: a (curious) coordinator asks for a price at an expiry of 1e-20 years.  Before,
any expiry > 0 passed: the job returned a price of 4.5e22 and a truncation input reached
131 bits against the declared 88, so the opened a + r no longer hid a.  Now every public
parameter is bounded (protocols.domain); the coordinator refuses outside the domain, every
node votes no naming the parameter and the bound, and each truncation states its bound.

The probe instruments the fixed-point truncation and comparison in a single-process MPyC
run and measures the actual magnitude of every input over a grid that includes the
domain's corners; scipy is the independent judge of the prices at the bounds.
"""

import asyncio
import itertools

import numpy as np
import pytest
from scipy.special import ndtr

from mpc_nodes.jobs.pricing import Price
from protocols import domain, pricing
from protocols import fixedpoint as fx
from protocols.bsm import OUTPUTS, denormalise
from tests.pricing_harness import secure_evaluation

SPOT = 2000.0
OK = {"underlying": "ETH", "spot": SPOT, "rate": 0.03, "dividend": 0.0, "is_call": [True],
      "strikes": [SPOT], "expiries": [0.5]}

AT_BOUNDS = [("expiries", [domain.EXPIRY_MIN]), ("expiries", [domain.EXPIRY_MAX]),
             ("strikes", [SPOT * domain.MONEYNESS_MIN]), ("strikes", [SPOT * domain.MONEYNESS_MAX]),
             ("rate", -domain.RATE_MAX), ("rate", domain.RATE_MAX),
             ("dividend", -domain.RATE_MAX), ("dividend", domain.RATE_MAX)]
BEYOND = [("expiries", [1e-20], "expiries.0", "0.001"),
          ("expiries", [domain.EXPIRY_MIN * 0.999], "expiries.0", "0.001"),
          ("expiries", [domain.EXPIRY_MAX * 1.001], "expiries.0", "10"),
          ("strikes", [SPOT * domain.MONEYNESS_MIN * 0.999], "strike/spot", "0.001"),
          ("strikes", [SPOT * domain.MONEYNESS_MAX * 1.001], "strike/spot", "1000"),
          ("rate", -domain.RATE_MAX - 1e-4, "rate", "-0.25"),
          ("rate", domain.RATE_MAX + 1e-4, "rate", "0.25"),
          ("dividend", -domain.RATE_MAX - 1e-4, "dividend", "-0.25"),
          ("dividend", domain.RATE_MAX + 1e-4, "dividend", "0.25")]


@pytest.mark.parametrize("field,value", AT_BOUNDS)
def test_parameters_at_every_bound_are_accepted(field, value):
    Price().parse(OK | {field: value})


@pytest.mark.parametrize("field,value,name,bound", BEYOND)
def test_parameters_beyond_every_bound_are_refused_naming_it(field, value, name, bound):
    with pytest.raises(ValueError) as refused:
        Price().parse(OK | {field: value})
    assert name in str(refused.value) and bound in str(refused.value)


# -- the probe ---------------------------------------------------------------------------

class Probe:
    """Wraps fx.trunc and fx.lt_zero: records (declared bits, stated bound, input)."""

    def __init__(self, monkeypatch):
        self.seen = []
        trunc, lt_zero = fx.trunc, fx.lt_zero

        def probe_trunc(rt, a, f, l, bound=None, times=None):
            self.seen.append(("truncation", l, bound, a if times is None else a * times))
            return trunc(rt, a, f, l, bound, times)

        def probe_lt_zero(rt, a, l, bound=None):
            self.seen.append(("comparison", l, bound, a))
            return lt_zero(rt, a, l, bound)
        monkeypatch.setattr(fx, "trunc", probe_trunc)
        monkeypatch.setattr(fx, "lt_zero", probe_lt_zero)

    def measured(self):
        """(what, declared bits, stated bound, largest |input|) per call, once computed:
        with one party a share is the value itself."""
        out = []
        for what, l, bound, a in self.seen:
            p = type(a).sectype.field.modulus
            share = a.share.result() if isinstance(a.share, asyncio.Future) else a.share
            values = (int(v) for v in np.ravel(share.value))
            out.append((what, l, bound, max(abs(v if v <= p // 2 else v - p) for v in values)))
        return out


def _scipy(is_call, s, k, t, r, q, v) -> dict:
    """Independent BSM reference (scipy's ndtr), QuantLib's conventions."""
    sq = np.sqrt(t)
    d1 = (np.log(s / k) + (r - q + v * v / 2) * t) / (v * sq)
    d2 = d1 - v * sq
    pdf = np.exp(-d1 * d1 / 2) / np.sqrt(2 * np.pi)
    dq, dr, w = np.exp(-q * t), np.exp(-r * t), 1.0 if is_call else -1.0
    return {"price": w * (s * dq * ndtr(w * d1) - k * dr * ndtr(w * d2)),
            "delta": w * dq * ndtr(w * d1), "gamma": dq * pdf / (s * v * sq),
            "vega": s * dq * pdf * sq,
            "theta": -s * dq * pdf * v / (2 * sq) + w * (q * s * dq * ndtr(w * d1)
                                                         - r * k * dr * ndtr(w * d2))}


def _tolerance(name, ref, k, t, r, q, vol):
    """A loose judge of the corners (tests/test_pricing_accuracy.py asserts the stated
    bounds): N(d) within 3.5e-8 and φ(d) within 1.2e-7, carried through each output's
    public coefficients,
    twice over, plus the 2^-32 resolution (four units, and theta's φ·σ√T unit times its
    1/(2T), since that product is rounded before the coefficient); or 1e-4 relative."""
    e_n, e_phi = 2 * 3.5e-8, 2 * 1.2e-7
    dq, kdr = np.exp(-q * t), k / SPOT * np.exp(-r * t)
    normalised = {"price": e_n * (dq + kdr), "delta": e_n * dq,
                  "gamma": e_phi * dq / (vol * np.sqrt(t)), "vega": e_phi * dq * np.sqrt(t),
                  "theta": e_phi * dq * vol / (2 * np.sqrt(t)) + e_n * (abs(q) * dq
                                                                        + abs(r) * kdr)}
    unit = {"price": SPOT, "delta": 1, "gamma": 1 / SPOT, "vega": SPOT, "theta": SPOT}[name]
    rounding = 2 ** -30 * (1 + (1 / (2 * t) if name == "theta" else 0))
    return max(1e-4 * abs(ref), (normalised[name] + rounding) * unit)


def _grid():
    """Options over the domain, corners included: (is_call, K/S, T, vol)."""
    moneyness = (domain.MONEYNESS_MIN, 0.7, 1.0, 1.3, domain.MONEYNESS_MAX)
    expiries = (domain.EXPIRY_MIN, 0.02, 1.0, domain.EXPIRY_MAX)
    vols = (domain.VOL_MIN, 0.01, 0.4, domain.VOL_MAX)
    return list(itertools.product((True, False), moneyness, expiries, vols))


async def _secure_evaluation(options, vols_per_party, rate, dividend, limit=0.25):
    """Run the secure evaluation (pricing.secure_bsm) in one process on the aggregate of
    the given parties' vols, as the MPC would after the breaker (tests/pricing_harness)."""
    out = await secure_evaluation([o[:3] for o in options], vols_per_party, SPOT, rate,
                                  dividend, limit)
    return denormalise(np.array([out[k] for k in OUTPUTS]), SPOT, True)


def _assert_within(probe):
    measured = probe.measured()
    assert len(measured) > 20  # every truncation and comparison of the evaluation
    for what, l, bound, largest in measured:
        assert bound is not None, f"a {what} without a stated bound"
        assert largest <= bound < 2 ** (l - 1), (what, l, bound.bit_length(), largest.bit_length())


@pytest.mark.timeout(300)
@pytest.mark.parametrize("rate,dividend", [(-domain.RATE_MAX, domain.RATE_MAX),
                                           (domain.RATE_MAX, -domain.RATE_MAX), (0.03, 0.0)])
async def test_probe_measures_every_truncation_within_its_bits_and_prices_match_scipy(
        monkeypatch, rate, dividend):
    probe = Probe(monkeypatch)
    options = _grid()
    values = await _secure_evaluation(options, [[o[3] for o in options]], rate, dividend)
    _assert_within(probe)
    for j, (is_call, m, t, vol) in enumerate(options):
        ref = _scipy(is_call, SPOT, m * SPOT, t, rate, dividend, vol)
        for name, r in ref.items():
            assert abs(values[name][j] - r) <= _tolerance(name, r, m * SPOT, t, rate, dividend,
                                                          vol), \
                (name, is_call, m, t, vol, values[name][j], r)


@pytest.mark.timeout(300)
async def test_probe_at_the_newton_corner_spread_at_the_breaker_limit(monkeypatch):
    """The worst start for Newton's 1/(σ√T): three parties whose vols spread exactly the
    secure path's largest breaker limit, the lowest at the vol floor."""
    probe = Probe(monkeypatch)
    limit = domain.SECURE_LIMIT_MAX
    low = domain.VOL_MIN
    # mean m with max − min = limit·m and min = low: m = low / (1 − limit·2/3)
    mean = low / (1 - limit * 2 / 3)
    high = low + limit * mean
    party_vols = [low, low, high]
    options = [(c, m, t, 0.0) for c in (True, False) for m in (domain.MONEYNESS_MIN, 1.0,
               domain.MONEYNESS_MAX) for t in (domain.EXPIRY_MIN, domain.EXPIRY_MAX)]
    values = await _secure_evaluation(options, [[v] * len(options) for v in party_vols],
                                      domain.RATE_MAX, -domain.RATE_MAX, limit)
    _assert_within(probe)
    for j, (is_call, m, t, _) in enumerate(options):
        ref = _scipy(is_call, SPOT, m * SPOT, t, domain.RATE_MAX, -domain.RATE_MAX,
                     float(np.mean(party_vols)))
        assert abs(values["price"][j] - ref["price"]) <= _tolerance(
            "price", ref["price"], m * SPOT, t, domain.RATE_MAX, -domain.RATE_MAX, mean)


async def test_the_attack_expiry_is_refused_by_the_protocol_too():
    """A node that skipped the parameter check still refuses: the protocol checks the
    domain, and the truncation refuses a bound beyond its declared bits."""
    public = {"spot": SPOT, "rate": 0.03, "dividend": 0.0, "is_call": [True],
              "strikes": [SPOT], "expiries": [1e-20], "quantities": None, "greeks": False,
              "portfolio": False, "method": "mean", "limit": 0.25, "reveal": "all"}
    with pytest.raises(domain.DomainError, match="expiry 1e-20 years is outside"):
        pricing._check_public([0.5], public)
    with pytest.raises(ValueError, match=f"beyond the declared {pricing.PRODUCT_BITS}"):
        await _secure_evaluation([(True, 1.0, 1e-20, 0.5)], [[0.5]], 0.03, 0.0)


def test_exact_path_inputs_stay_within_the_selection_type_at_the_corners():
    """The exact path inputs each party's own normalised price and Greeks: at every corner
    they fit the 48-bit selection type that the MPC multiplies and opens."""
    from protocols import bsm
    options = _grid()
    for rate, dividend in itertools.product((-domain.RATE_MAX, domain.RATE_MAX), repeat=2):
        out = bsm.bsm([o[0] for o in options], SPOT, [o[1] * SPOT for o in options],
                      [o[2] for o in options], rate, dividend, [o[3] for o in options])
        rows = pricing._fixed(bsm.normalise(out, SPOT, True))
        assert max(abs(int(x)) for x in rows) < 2 ** (pricing.SELECT_TYPE_BITS - 1)


@pytest.mark.e2e
@pytest.mark.timeout(180)
async def test_curious_coordinator_gets_every_node_to_refuse_out_of_domain_prices(
        make_cluster, curious_factory):
    cluster = make_cluster(parties=3)
    async with curious_factory(cluster) as cc:
        attack = OK | {"expiries": [1e-20], "method": "mean"}
        with pytest.raises(ValueError, match="expiries.0"):  # the coordinator's own check
            await cc.run("price", attack)
        for field, value, name, bound in BEYOND:
            votes = await cc.votes("price", OK | {field: value})  # signed and sent anyway
            assert len(votes) == 3
            for vote in votes.values():
                assert not vote.accept and name in vote.reason and bound in vote.reason, \
                    vote.reason
        votes = await cc.votes("price", OK | {"expiries": [domain.EXPIRY_MIN]})
        assert all(v.accept for v in votes.values()), [v.reason for v in votes.values()]
