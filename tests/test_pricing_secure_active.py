"""protocols.pricing_secure_active (the secure evaluation under security: malicious) in real
party processes: its rows agree with the semi-honest evaluation's to a few units of 2^-32 and
with QuantLib within the stated bounds, for the mean, the trimmed mean of five and the median
of four; it reveals to the coordinator and totals a portfolio; and a party that adds an error
to any message round makes every honest party abort, or leaves the result right (to the
truncations' random round-ups: two honest runs differ by a few units of 2^-32)."""

import numpy as np
import pytest

from tests.mpc_harness import run_parties
from tests.test_active import _book, aborted, rounds
from tests.test_pricing_protocol import _aggregate, _check_against_quantlib, _opened

pytestmark = [pytest.mark.heavy, pytest.mark.timeout(300)]
UNITS = 2 ** 12  # the two evaluations' roundings differ by a few hundred units of 2^-32


def _both(public, vols):
    checked = run_parties("protocols.pricing_active:price", [[v, public] for v in vols],
                          timeout=240)
    plain = run_parties("protocols.pricing:price", [[v, public] for v in vols], timeout=240)
    assert all(c == checked[0] for c in checked)
    return checked[0], plain[0]


def _close(mine, theirs):
    diff = np.abs(np.array(mine, dtype=object) - np.array(theirs, dtype=object))
    assert np.max(diff) <= UNITS, np.max(diff)


@pytest.mark.parametrize("greeks", [True, False])
def test_the_checked_mean_matches_the_semi_honest_one_and_quantlib(greeks):
    public, vols = _book(25, 7)
    public = dict(public, method="mean", greeks=greeks)
    checked, plain = _both(public, vols)
    assert checked["breached"] == plain["breached"] == list(range(0, 25, 5))
    _close(checked["rows"], plain["rows"])
    ok = [j for j in range(25) if j % 5]
    _check_against_quantlib(public, _aggregate(vols, "mean"), _opened(checked, greeks), ok)


@pytest.mark.parametrize("n,method", [(5, "trimmed"), (4, "median")])
def test_other_party_counts_use_the_secure_evaluation_too(n, method):
    public, vols = _book(6, 3)
    rng = np.random.default_rng(n)
    vols = [list(np.array(vols[0]) * (1 + rng.uniform(-0.02, 0.02, 6))) for _ in range(n)]
    public = dict(public, method=method)
    checked, plain = _both(public, vols)
    assert checked["breached"] == plain["breached"] == []
    _close(checked["rows"], plain["rows"])
    _check_against_quantlib(public, _aggregate(vols, method), _opened(checked), range(6))


def test_the_checked_mean_reveals_to_the_coordinator_and_totals_a_portfolio():
    from mpc_nodes.jobs.output_shares import reconstruct
    public, vols = _book(8, 9)
    public = dict(public, method="mean")
    shared = run_parties("protocols.pricing_active:price",
                         [[v, dict(public, reveal="coordinator")] for v in vols])
    revealed = run_parties("protocols.pricing_active:price", [[v, public] for v in vols])[0]
    records = {f"p{i}": r["share"] for i, r in enumerate(shared)}
    rows, width = records["p0"]["shape"]
    flat = reconstruct(records)  # (another run: its truncations round up by 0..3 units)
    _close([flat[i * width:(i + 1) * width] for i in range(rows)], revealed["rows"])

    vols[2] = list(np.array(vols[1]) * 1.001)  # nothing breaches: totals are revealed
    portfolio = dict(public, portfolio=True, quantities=[float(q) for q in range(-4, 4)])
    checked, plain = _both(portfolio, vols)
    scale = 2 ** plain["scale_bits"]
    assert checked["scale_bits"] == plain["scale_bits"] and len(checked["rows"]) == 5
    for mine, theirs in zip(checked["rows"], plain["rows"]):  # each with its noise < 2^-24
        assert abs(mine - theirs) / scale <= 2 ** -20, (mine, theirs)


@pytest.fixture(scope="module")
def priced_mean():
    """A small book and its honest checked mean (469 rounds of the liar's, 3 parties)."""
    public, vols = _book(10, 11)
    public = dict(public, method="mean")
    return public, vols, run_parties("protocols.pricing_active:price",
                                     [[v, public] for v in vols])[0]


@pytest.mark.parametrize("at", rounds(469, (0, 2, 3, 5, 8, 10, 14, 25, 30, 37, 41, 45, 46, 60,
                                           78, 150, 251, 455, 460, 461, 465, 468)))
def test_the_mean_with_a_deviating_party_aborts_or_is_exact(at, priced_mean):
    # the liar's rounds: dealing, the bit check (its coin, inner products, check, opening); the
    # ranks' comparisons: the conversion bits (in both fields), the check and the mask
    # opening, then in GF(2^31 - 1) the sum of the mask's pieces, its fold and ripple, the
    # conversion's product, check and opening; the indicators, the sum and spread, the
    # breaker's comparison as the ranks'; then per layer of the evaluation a check (copies
    # with the coin, T) and an opening, the chunk's last check, and the rows' opening.  The
    # liar adds 2^90 to a value (2^90 mod 2^31 - 1 in the small field): an error that got
    # through would show far beyond the round-ups (round 336 once got one through: the
    # chunk's last products went unchecked into the reveal's session)
    public, vols, honest = priced_mean
    results = run_parties("tests.active_targets:price_with_lie",
                          [[v, public, 0, at, 2 ** 90] for v in vols], tolerate={0})
    if not aborted(results[1:]):  # exact up to the truncations' random round-ups
        assert results[1] == results[2] and results[1]["breached"] == honest["breached"], at
        _close(results[1]["rows"], honest["rows"])
