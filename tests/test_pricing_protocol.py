"""protocols.pricing in real MPyC party processes, checked against QuantLib.

The grid is the issue's: K/S in [0.5, 2], T from one day to three years, vol from 0.05 to 3,
r from -0.01 to 0.1.  Bounds: price within 1e-6 × spot; Greeks within 1e-4 relative or
1e-6 × spot absolute."""

import itertools

import numpy as np
import pytest

from mpc_nodes.jobs.output_shares import reconstruct
from protocols import compare3
from protocols.bsm import denormalise
from tests.mpc_harness import run_parties
from tests.test_pricing_numerics import quantlib

SPOT = 3000.0
GRID = list(itertools.product((0.5, 0.8, 1.0, 1.25, 2.0), (1, 7, 30, 182, 365, 1095),
                              (0.05, 0.2, 0.8, 1.5, 3.0)))


def _public(options, rate, dividend=0.0, method="median", greeks=True, portfolio=False,
            reveal="all", limit=0.25, quantities=None):
    return {"spot": SPOT, "rate": rate, "dividend": dividend,
            "is_call": [i % 2 == 0 for i in range(len(options))],
            "strikes": [SPOT * k for k, _, _ in options],
            "expiries": [d / 365 for _, d, _ in options],
            "quantities": quantities or [1.0] * len(options), "greeks": greeks,
            "portfolio": portfolio, "method": method, "limit": limit, "reveal": reveal}


def _party_vols(options, deltas):
    base = np.array([v for _, _, v in options])
    return [list(base * (1 + d)) for d in deltas]


def _aggregate(vols, method):
    v = np.array(vols)
    if method == "mean":
        return v.mean(axis=0)
    if method == "trimmed":
        return np.sort(v, axis=0)[1:-1].mean(axis=0)
    return np.median(v, axis=0)


def _check_against_quantlib(public, agg, values, indices):
    for k, j in enumerate(indices):
        ref = quantlib(public["is_call"][j], SPOT, public["strikes"][j], public["expiries"][j],
                       public["rate"], public["dividend"], float(agg[j]))
        assert abs(values["price"][k] - ref["price"]) <= 1e-6 * SPOT, (j, values["price"][k], ref)
        for g in ("delta", "gamma", "vega", "theta"):
            if g in values:
                err = abs(values[g][k] - ref[g])
                assert err <= max(1e-4 * abs(ref[g]), 1e-6 * SPOT), (j, g, values[g][k], ref[g])


def _opened(result, greeks=True):
    rows = np.array(result["rows"], dtype=float) / 2 ** result["scale_bits"]
    return denormalise(rows, SPOT, greeks)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method,rate,dividend", [("median", -0.01, 0.0), ("median", 0.1, 0.02),
                                                  ("mean", -0.01, 0.02), ("mean", 0.1, 0.0)])
@pytest.mark.heavy
def test_three_parties_match_quantlib_on_the_grid(method, rate, dividend):
    vols = _party_vols(GRID, (-0.03, 0.0, 0.04))
    public = _public(GRID, rate, dividend, method)
    results = run_parties("protocols.pricing:price", [[v, public] for v in vols])
    assert results[0] == results[1] == results[2]
    assert results[0]["breached"] == []
    _check_against_quantlib(public, _aggregate(vols, method), _opened(results[0]),
                            range(len(GRID)))


@pytest.mark.heavy
@pytest.mark.timeout(120)
@pytest.mark.parametrize("n,method", [(5, "trimmed"), (5, "median"), (4, "median")])
def test_other_party_counts_and_aggregations(n, method):
    options = GRID[::5]
    vols = _party_vols(options, (-0.05, 0.02, 0.0, 0.06, -0.01)[:n])
    public = _public(options, 0.03, 0.01, method)
    results = run_parties("protocols.pricing:price", [[v, public] for v in vols])
    assert all(r == results[0] for r in results)
    _check_against_quantlib(public, _aggregate(vols, method), _opened(results[0]),
                            range(len(options)))


@pytest.mark.heavy
@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", ["median", "mean"])
def test_circuit_breaker_refuses_exactly_the_options_that_disagree(method):
    rng = np.random.default_rng(11)
    options = GRID[::3]
    base = np.array([v for _, _, v in options])
    vols = [list(base * (1 + rng.uniform(-0.15, 0.15, len(options)))) for _ in range(3)]
    public = _public(options, 0.03, method=method, limit=0.2)
    result = run_parties("protocols.pricing:price", [[v, public] for v in vols])[0]
    v, agg = np.array(vols), _aggregate(vols, method)
    expected = [j for j in range(len(options)) if v[:, j].max() - v[:, j].min() > 0.2 * agg[j]]
    assert 0 < len(expected) < len(options)
    assert result["breached"] == expected
    passed = [j for j in range(len(options)) if j not in expected]
    assert len(result["rows"][0]) == len(passed)  # nothing of the breached ones is revealed
    _check_against_quantlib(public, agg, _opened(result), passed)


@pytest.mark.heavy
@pytest.mark.timeout(120)
def test_portfolio_reveals_only_totals_and_refuses_when_the_breaker_trips():
    options = GRID[::4]
    rng = np.random.default_rng(2)
    quantities = list(rng.uniform(-20, 20, len(options)))
    vols = _party_vols(options, (0.01, -0.02, 0.0))
    public = _public(options, 0.05, method="median", portfolio=True, quantities=quantities)
    result = run_parties("protocols.pricing:price", [[v, public] for v in vols])[0]
    agg = _aggregate(vols, "median")
    totals = {g: 0.0 for g in ("price", "delta", "gamma", "vega", "theta")}
    for j, q in enumerate(quantities):
        ref = quantlib(public["is_call"][j], SPOT, public["strikes"][j], public["expiries"][j],
                       0.05, 0.0, float(agg[j]))
        for g in totals:
            totals[g] += q * ref[g]
    got = denormalise([[x / 2 ** result["scale_bits"]] for x in result["rows"]], SPOT, True)
    scale = sum(abs(q) for q in quantities)
    for g, total in totals.items():
        assert abs(got[g][0] - total) <= max(1e-4 * abs(total), 1e-6 * SPOT * scale), g

    vols[2][0] *= 2  # one option's vols now disagree: the whole portfolio is refused
    refused = run_parties("protocols.pricing:price", [[v, public] for v in vols])[0]
    assert refused["breached"] == [0] and refused["rows"] is None


@pytest.mark.heavy
@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", ["median", "mean"])
def test_reveal_to_coordinator_gives_shares_that_only_together_open(method):
    options = GRID[::6]
    vols = _party_vols(options, (0.0, 0.03, -0.02))
    public = _public(options, 0.03, method=method, reveal="coordinator")
    results = run_parties("protocols.pricing:price", [[v, public] for v in vols])
    assert all(r["rows"] is None for r in results)  # no party learns the outputs
    shares = {f"party{i}": r["share"] for i, r in enumerate(results)}
    flat = reconstruct(shares)
    width = shares["party0"]["shape"][1]
    rows = [flat[i * width:(i + 1) * width] for i in range(shares["party0"]["shape"][0])]
    opened = _opened({"rows": rows, "scale_bits": results[0]["scale_bits"]})
    _check_against_quantlib(public, _aggregate(vols, method), opened, range(len(options)))


async def compare_in_three(rt, values: list[int], l: int, type_bits: int) -> list[int]:
    """(Run in each party.) compare3.lt_zero of party 0's values as a 2 x k array, opened."""
    secint = rt.SecInt(type_bits)
    x = rt.input(secint.array(np.array(values, dtype=object).reshape(2, -1)), senders=0)
    below = await rt.output(compare3.lt_zero(rt, x, l))
    assert below.shape == (2, len(values) // 2)
    return [int(v) for v in np.ravel(below)]


@pytest.mark.heavy
@pytest.mark.timeout(120)
@pytest.mark.parametrize("l,type_bits", [(8, 48), (28, 48), (49, 108)])
def test_three_party_comparisons_with_bitwise_work_in_the_small_field(l, type_bits):
    rng = np.random.default_rng(l)
    edges = [0, -1, 1, -(2 ** (l - 1)), 2 ** (l - 1) - 1, 2 ** (l - 2), -(2 ** (l - 2))]
    values = [int(v) for v in rng.integers(-(2 ** (l - 1)), 2 ** (l - 1), 993)] + edges
    results = run_parties("tests.test_pricing_protocol:compare_in_three",
                          [[values, l, type_bits]] * 3)
    assert results[0] == results[1] == results[2]
    assert results[0] == [int(v < 0) for v in values]


@pytest.mark.heavy
@pytest.mark.timeout(60)
def test_xor_bits_are_bits_and_balanced():
    results = run_parties("tests.mpc_targets:open_xor_bits", [[4000]] * 3)
    bits = results[0]
    assert results[1] == results[2] == bits
    assert set(bits) == {0, 1}
    assert abs(sum(bits) / len(bits) - 0.5) < 0.05  # 4000 fair bits: 6 sigma is 0.047


@pytest.mark.heavy
@pytest.mark.timeout(60)
def test_truncation_rounds_within_its_bound():
    rng = np.random.default_rng(4)
    values = [int(v) for v in rng.integers(-2 ** 40, 2 ** 40, 500)] + [0, -1, 2 ** 40 - 1]
    results = run_parties("tests.mpc_targets:truncate", [[values, 16, 42, 48]] * 3)
    assert results[0] == results[1] == results[2]
    for v, got in zip(values, results[0]):
        assert 0 <= got - (v >> 16) <= 3, (v, got)  # floor + at most 3 (three PRSS pieces)



async def test_truncation_refuses_a_field_that_could_wrap_around():
    from mpc_nodes.node.mpyc_runtime import PartyAddress, new_runtime
    from protocols import fixedpoint as fx
    rt = new_runtime(0, [PartyAddress("127.0.0.1", 0)])
    await rt.start()
    try:
        x = rt.SecInt(40).array(np.array([1, 2, 3], dtype=object))  # a 72-bit field
        with pytest.raises(ValueError, match="too small to truncate 60-bit values"):
            fx.trunc(rt, x, 16, 60)
        assert [int(v) for v in await rt.output(fx.trunc(rt, x * 2 ** 16, 16, 30))] == [1, 2, 3]
    finally:
        await rt.shutdown()
