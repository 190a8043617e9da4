"""protocols.active and protocols.ecdsa_active in real MPyC party processes: honest sessions
give exactly correct results (signatures checked with libsecp256k1 and eth-keys), and a
party that adds an error to any message round is caught by every honest party."""

import hashlib

import numpy as np
import pytest

from protocols.secp256k1 import N
from tests.mpc_harness import run_parties
from tests.test_ecdsa_protocol import DIGEST, assert_valid, keygen

pytestmark = [pytest.mark.heavy, pytest.mark.timeout(180)]


def rounds(count: int, sample: tuple) -> list:
    """Each round a liar can deviate in: the ``sample`` runs in make test, the rest in
    make soak (marked slow)."""
    return [at if at in sample else pytest.param(at, marks=pytest.mark.slow)
            for at in range(count)]


def aborted(honest: list) -> bool:
    """Whether the session stopped: an honest party saw the deviation, and every other honest
    party saw it too or was left waiting for the one that stopped (a node's session would
    have told it: its peers say goodbye; these test parties just exit)."""
    return any("deviation" in r for r in honest) and \
        all("deviation" in r or r == {"timeout": True} for r in honest)


@pytest.fixture(scope="module")
def keys3():
    return keygen(3, 1)


def test_checked_products_are_correct_and_open_consistently():
    results = run_parties("tests.active_targets:products", [[5] for _ in range(3)])
    a, b, c = results[0]["values"]
    assert all(r == results[0] for r in results)
    assert c == [x * y % N for x, y in zip(a, b)]


@pytest.mark.parametrize("at", rounds(8, (1, 5, 7)))
def test_an_error_in_any_round_aborts_every_honest_party(at):
    # the liar's rounds: 0 deal, 1 product, 2 ρ/seed deal, 3 mask deal (a zero sharing of
    # degree 2t among 2t+1: any change to it still shares zero, so harmless), 4 the round
    # that says the products are in (its content is not read: harmless), 5 copies, 6 coin,
    # 7 open T; and the openings of a, b and c
    results = run_parties("tests.active_targets:products", [[3, 1, at] for _ in range(3)],
                          tolerate={1})
    honest = [results[0], results[2]]
    if at in (3, 4) and "values" in honest[0]:
        a, b, c = honest[0]["values"]
        assert honest[0] == honest[1] and c == [x * y % N for x, y in zip(a, b)]
        return
    assert aborted(honest), results
    for r in honest:
        assert "deviation" not in r or (r["culprits"] == [] and "party" in r["deviation"])


@pytest.mark.parametrize("n", [3, 5])
def test_active_sign_and_presign_verify_under_libsecp256k1(n):
    t = (n - 1) // 2
    keys = keygen(n, t)
    pk = keys[0]["public_key"]
    points = list(range(1, n + 1))
    sigs = run_parties("protocols.ecdsa_active:sign",
                       [[k["share"], points, pk, DIGEST] for k in keys], threshold=t)
    assert all(s == sigs[0] for s in sigs) and sigs[0]["excluded"] == []
    assert_valid(sigs[0], pk)
    presigs = run_parties("protocols.ecdsa_active:presign",
                          [[k["share"], points, 2] for k in keys], threshold=t)
    for i in range(2):
        other = hashlib.sha256(b"tx %d" % i).hexdigest()
        online = run_parties("protocols.ecdsa_active:sign_presigned",
                             [[p[i], pk, other] for p in presigs], threshold=t)
        assert_valid(online[0], pk, other)


def test_a_subset_of_a_larger_roster_signs_at_its_roster_points():
    keys = keygen(5, 1)
    pk = keys[0]["public_key"]
    subset = [0, 2, 4]
    sigs = run_parties("protocols.ecdsa_active:sign",
                       [[keys[i]["share"], [i + 1 for i in subset], pk, DIGEST] for i in subset])
    assert_valid(sigs[0], pk)


@pytest.mark.parametrize("at", rounds(11, (2, 4, 10)))
def test_presign_with_a_deviating_party_aborts_or_stays_correct(at, keys3):
    # the liar's message rounds: the check's ρ and seed and its mask (dealt first), k and u,
    # k·G published, k·u, w opened, k⁻¹·x, the copies, the coin, T, K and W published
    keys = keys3
    pk = keys[0]["public_key"]
    results = run_parties("tests.active_targets:presign_with_lie",
                          [[k["share"], [1, 2, 3], 1, 2, at] for k in keys], tolerate={2})
    if aborted(results[:2]):
        return  # nothing released
    online = run_parties("protocols.ecdsa_active:sign_presigned",
                         [[r["presignatures"][0], pk, DIGEST] for r in results])
    assert online[0]["excluded"] == [] and online[0] == online[1]
    assert_valid(online[0], pk)


def test_a_bad_signature_share_is_named_and_left_out(keys3):
    keys = keys3
    pk = keys[0]["public_key"]
    presigs = run_parties("protocols.ecdsa_active:presign", [[k["share"], [1, 2, 3], 1]
                                                             for k in keys])
    results = run_parties("tests.active_targets:sign_with_bad_share",
                          [[p[0], pk, DIGEST, [1]] for p in presigs])
    for honest in (results[0], results[2]):
        assert honest["excluded"] == [1]
        assert_valid(honest, pk)


@pytest.mark.parametrize("values", [[0.25, -3.5, 7.125], [1.5, 1.5, -2.0, 4.0, 0.1],
                                    [2.0, -1.0, 5.0, 3.0]])
@pytest.mark.parametrize("method", ["median", "mean"])
def test_checked_aggregate_is_exact(values, method):
    import statistics
    results = run_parties("tests.active_targets:aggregate_with_lie",
                          [[v, method] for v in values])
    want = statistics.median(values) if method == "median" else statistics.fmean(values)
    assert all(r == results[0] for r in results)
    assert results[0]["value"] == pytest.approx(want, abs=2 ** -31)


def test_a_dealt_non_bit_names_its_dealer():
    results = run_parties("tests.active_targets:aggregate_with_lie",
                          [[v, "median", 1, -1, 2] for v in (1.0, 2.0, 3.0)])
    for r in results:
        assert r["culprits"] == [1] and "bob dealt an input whose bits" in r["deviation"]


@pytest.mark.parametrize("at", rounds(20, (3, 9, 15, 19)))
def test_aggregate_with_a_deviating_party_aborts_or_is_exact(at):
    # the liar's message rounds: the check's ρ and seeds and its zero masks (dealt first),
    # the bits, the bits' products, x·y and six folds of the comparisons, the rank's square,
    # the selection, the copies, the coin, T, the bit check (coin dealt and opened, one value
    # per dealer opened), the result
    values = (1.0, 2.0, 3.0)
    results = run_parties("tests.active_targets:aggregate_with_lie",
                          [[v, "median", 2, at] for v in values], tolerate={2})
    honest = results[:2]
    if aborted(honest):
        return
    # harmless: a change to a dealt random value or zero mask still deals some such value
    assert at in (0, 1, 16) and all(r["value"] == 2.0 for r in honest), results


def _book(count, seed):
    """A book of ``count`` options and each party's vols: most within 2 % of each other, every
    fifth with one party 60 % off (the breaker must stop those at a limit of 0.25)."""
    from tests.test_pricing_protocol import GRID, _public
    rng = np.random.default_rng(seed)
    options = [GRID[i] for i in rng.integers(0, len(GRID), count)]
    deltas = rng.uniform(-0.02, 0.02, (3, count))
    deltas[2, ::5] = 0.6
    vols = [list(np.array([v for _, _, v in options]) * (1 + d)) for d in deltas]
    return _public(options, 0.03), vols


@pytest.mark.parametrize("greeks", [True, False])
def test_checked_pricing_matches_the_semi_honest_exact_path_and_quantlib(greeks):
    from tests.test_pricing_protocol import _aggregate, _check_against_quantlib, _opened
    public, vols = _book(40, 7)
    public["greeks"] = greeks
    checked = run_parties("protocols.pricing_active:price", [[v, public] for v in vols])
    plain = run_parties("protocols.pricing:price", [[v, public] for v in vols])
    assert all(c == checked[0] for c in checked)
    assert checked[0]["breached"] == plain[0]["breached"] == list(range(0, 40, 5))
    assert checked[0]["rows"] == plain[0]["rows"]  # the median party's own rows, exactly
    ok = [j for j in range(40) if j % 5]
    _check_against_quantlib(public, _aggregate(vols, "median"), _opened(checked[0], greeks), ok)


@pytest.mark.parametrize("reveal", ["all", "coordinator"])
def test_checked_portfolio_totals_match_the_semi_honest_ones_within_their_noise(reveal):
    from mpc_nodes.jobs.output_shares import reconstruct
    public, vols = _book(12, 9)
    vols[2] = list(np.array(vols[1]) * 1.001)  # nothing breaches: totals are revealed
    public = dict(public, portfolio=True, quantities=[float(q) for q in range(-6, 6)])
    checked = run_parties("protocols.pricing_active:price",
                          [[v, dict(public, reveal=reveal)] for v in vols])
    plain = run_parties("protocols.pricing:price", [[v, public] for v in vols])[0]
    assert checked[0]["breached"] == plain["breached"] == []
    scale = 2 ** plain["scale_bits"]
    got = checked[0]["rows"] if reveal == "all" else \
        reconstruct({f"p{i}": r["share"] for i, r in enumerate(checked)})
    assert checked[0]["scale_bits"] == plain["scale_bits"]
    for mine, theirs in zip(got, plain["rows"]):  # each carries its own noise below 2^-24
        assert abs(mine - theirs) / scale <= 2 ** -20, (mine, theirs)
    assert len(got) == len(plain["rows"]) == 5  # price and four Greeks


def test_checked_pricing_reveals_to_the_coordinator_as_limb_shares_it_recombines():
    from mpc_nodes.jobs.output_shares import from_limbs, reconstruct
    public, vols = _book(15, 5)
    shared = run_parties("protocols.pricing_active:price",
                         [[v, dict(public, reveal="coordinator")] for v in vols])
    revealed = run_parties("protocols.pricing_active:price", [[v, public] for v in vols])[0]
    records = {f"p{i}": r["share"] for i, r in enumerate(shared)}
    assert all(r["rows"] is None and r["breached"] == revealed["breached"] for r in shared)
    flat = from_limbs(reconstruct(records), records["p0"]).copy()
    rows, width = records["p0"]["shape"]
    assert [flat[i * width:(i + 1) * width] for i in range(rows)] == revealed["rows"]
    # a party's corrupted share is caught by the coordinator's consistency check
    records["p1"] = dict(records["p1"], values=[(records["p1"]["values"][0] + 1) % (2**31 - 1)]
                         + records["p1"]["values"][1:])
    with pytest.raises(ValueError, match="inconsistent"):
        reconstruct(records)


@pytest.fixture(scope="module")
def priced():
    """A small book and its honest checked result."""
    public, vols = _book(10, 11)
    return public, vols, run_parties("protocols.pricing_active:price",
                                     [[v, public] for v in vols])[0]


@pytest.mark.parametrize("at", rounds(39, (0, 3, 9, 17, 22, 24, 25, 26, 29, 30, 33, 38)))
def test_pricing_with_a_deviating_party_aborts_or_is_exact(at, priced):
    # the liar's rounds: the check's dealt randomness, the dealing, the bits' products,
    # comparisons, the rank's square, the selections, the breaker's adder and comparison, the
    # limbs, the batch check (its coin, two halvings of a re-share and a coin each, the copy,
    # T), the bit check, the openings of the breaker and the outputs
    public, vols, honest = priced
    results = run_parties("tests.active_targets:price_with_lie",
                          [[v, public, 0, at] for v in vols], tolerate={0})
    if not aborted(results[1:]):
        assert results[1] == results[2] == honest, (at, results)
