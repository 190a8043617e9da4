"""Shamir sharing: the Lagrange helpers of protocols.shamir and our Shamir sampler
(protocols.mpyc_seam.np_random_split, which replaces MPyC's), checked against MPyC's own
recombination and plain polynomial evaluation.

The uniformity tests are chi-square tests with a fixed bound at significance 1e-6: they
fail by chance once in a million runs, never because of a seed.
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from scipy.stats import chi2

from protocols import mpyc_seam  # first: it imports MPyC with a clean command line
from protocols.frost import L
from protocols.secp256k1 import N, lagrange_at_zero
from protocols.shamir import interpolate, lagrange_coefficients

from mpyc import finfields, thresha  # noqa: E402,I001 - after the seam, on purpose

SIGNIFICANCE = 1e-6
P127 = 2 ** 127 - 1  # a Mersenne prime: chance agreements below 2^-120 in the degree tests


def evaluate(coefficients: list[int], x: int, p: int) -> int:
    return sum(c * x ** k for k, c in enumerate(coefficients)) % p


def assert_uniform(cells: np.ndarray, n_cells: int, what: str) -> None:
    counts = np.bincount(cells, minlength=n_cells)
    expected = len(cells) / n_cells
    statistic = float(((counts - expected) ** 2 / expected).sum())
    bound = chi2.isf(SIGNIFICANCE, n_cells - 1)
    assert statistic < bound, (f"{what}: chi-square {statistic:.1f} with {n_cells - 1} degrees"
                               f" of freedom, beyond the bound {bound:.1f} at {SIGNIFICANCE}")


def split(p: int, secrets: list[int], t: int, m: int) -> list[list[int]]:
    """Our sampler's shares, one row per party (row i holds f(i + 1))."""
    field = finfields.GF(p)
    shares = mpyc_seam.np_random_split(field, field.array(secrets), t, m)
    assert shares.shape == (m, len(secrets))
    return [[int(v) for v in row] for row in shares]


# -- Lagrange helpers ------------------------------------------------------------------------

@pytest.mark.parametrize("p", [13, P127, N, L])
def test_lagrange_coefficients_evaluate_every_polynomial_at_any_point(p):
    rng = random.Random(p)
    for k in range(1, 6):
        xs = rng.sample(range(1, min(p, 1000)), k)
        polys = [[rng.randrange(p) for _ in range(k)] for _ in range(4)]
        shares = [[evaluate(f, x, p) for f in polys] for x in xs]
        for at in (0, rng.randrange(p), xs[0]):
            assert interpolate(xs, shares, at, p) == [evaluate(f, at, p) for f in polys]


def test_interpolation_agrees_with_mpycs_recombination():
    p, xs = P127, [2, 5, 6, 9]
    field = finfields.GF(p)
    shares = [[random.randrange(p)] for _ in xs]
    for at in (0, 7):
        theirs = thresha.recombine(field, [(x, [field(s[0])]) for x, s in zip(xs, shares)], at)
        assert interpolate(xs, shares, at, p) == [theirs[0].value]


def test_secp256k1_coefficients_at_zero_are_the_shamir_ones():
    assert lagrange_at_zero([1, 3, 4]) == lagrange_coefficients([1, 3, 4], 0, N)


@pytest.mark.parametrize("xs", [[1, 2, 2], [0, 1], [1, 14], []])
def test_share_points_must_be_distinct_and_nonzero(xs):
    with pytest.raises(ValueError, match="share points"):
        lagrange_coefficients(xs, 0, 13)


def test_interpolate_needs_one_vector_per_point_of_one_length():
    with pytest.raises(ValueError, match="one share vector per point"):
        interpolate([1, 2], [[1, 2], [3]], 0, 13)
    with pytest.raises(ValueError, match="one share vector per point"):
        interpolate([1, 2, 3], [[1], [2]], 0, 13)


# -- our Shamir sampler: uniformity ------------------------------------------------------------

@pytest.mark.parametrize("p, t, m", [(13, 1, 3), (13, 2, 5), (7, 3, 6)])
def test_any_t_shares_of_a_fixed_secret_are_jointly_uniform(p, t, m):
    """t shares reveal nothing: over the p^t cells, the first t and the last t shares of
    one fixed secret are uniform (so are the polynomials' coefficients, their bijective image)."""
    n = 200 * p ** t
    rows = np.array(split(p, [3] * n, t, m), dtype=np.int64)
    weights = p ** np.arange(t, dtype=np.int64)
    for which, chosen in (("first", rows[:t]), ("last", rows[-t:])):
        assert_uniform(weights @ chosen, p ** t, f"the {which} {t} shares over GF({p})")


@pytest.mark.parametrize("p", [P127, N])
def test_shares_over_a_large_prime_are_uniform_in_every_word(p):
    """Coefficients are built from several 64-bit words: a share's top four bits (16
    nearly equal ranges of the field) must be uniform too."""
    shares = np.array([s * 16 // p for s in split(p, [1] * 8000, 1, 3)[0]], dtype=np.int64)
    assert_uniform(shares, 16, f"the top bits of shares over a {p.bit_length()}-bit field")


# -- our Shamir sampler: degree and reconstruction ---------------------------------------------

@pytest.mark.parametrize("t, m", [(1, 3), (2, 5), (3, 7), (2, 7)])
def test_any_t_plus_one_shares_reconstruct_the_secret(t, m):
    secrets = [random.randrange(P127) for _ in range(50)]
    rows = split(P127, secrets, t, m)
    field = finfields.GF(P127)
    for subset in itertools.combinations(range(m), t + 1):
        xs = [i + 1 for i in subset]
        assert interpolate(xs, [rows[i] for i in subset], 0, P127) == secrets
        points = [(i + 1, [field(v) for v in rows[i]]) for i in subset]
        assert [v.value for v in thresha.recombine(field, points)] == secrets
        np_points = [(i + 1, np.array(rows[i], dtype=object)) for i in subset]
        assert list(thresha.np_recombine(field, np_points).value) == secrets


@pytest.mark.parametrize("t, m", [(1, 3), (2, 5), (3, 7)])
def test_shares_lie_on_one_polynomial_of_degree_t_and_no_lower(t, m):
    rows = split(P127, [random.randrange(P127) for _ in range(50)], t, m)
    xs = list(range(1, m + 1))
    for j in range(t + 1, m):  # every share beyond t+1 is on the degree-t polynomial
        assert interpolate(xs[:t + 1], rows[:t + 1], xs[j], P127) == rows[j]
    lower = interpolate(xs[:t], rows[:t], xs[t], P127)  # degree t-1 through t shares
    assert all(a != b for a, b in zip(lower, rows[t])), \
        "a sharing lies on a polynomial of degree below t"


def test_a_field_array_and_plain_integers_give_shares_of_the_same_secrets():
    field = finfields.GF(P127)
    plain = mpyc_seam.np_random_split(field, np.array([5, 6], dtype=object), 1, 3)
    assert interpolate([1, 2], [list(r) for r in plain[:2]], 0, P127) == [5, 6]


# -- our Shamir sampler: falls back to MPyC's ------------------------------------------------

@pytest.fixture
def mpyc_sampler_calls(monkeypatch):
    calls = []
    original = mpyc_seam.MPYC_NP_RANDOM_SPLIT

    def spy(field, s, t, m):
        calls.append((field, t, m))
        return original(field, s, t, m)

    monkeypatch.setattr(mpyc_seam, "MPYC_NP_RANDOM_SPLIT", spy)
    return calls


def test_threshold_zero_uses_mpycs_sampler(mpyc_sampler_calls):
    rows = split(13, [4, 9], 0, 3)
    assert rows == [[4, 9]] * 3 and len(mpyc_sampler_calls) == 1
    split(13, [4, 9], 1, 3)
    assert len(mpyc_sampler_calls) == 1, "a prime field with t >= 1 went to MPyC's sampler"


def test_an_extension_field_uses_mpycs_sampler(mpyc_sampler_calls):
    field = finfields.GF(finfields.find_irreducible(2, 8))
    secrets = field.array([3, 200])
    shares = mpyc_seam.np_random_split(field, secrets, 1, 3)
    assert len(mpyc_sampler_calls) == 1
    opened = thresha.np_recombine(field, [(i + 1, shares[i]) for i in (0, 2)])
    assert list(opened.value) == list(secrets.value)


def test_rank_basis_is_one_at_its_rank_and_zero_at_the_others():
    from protocols.shamir import rank_basis
    p = 2**31 - 1
    for n in range(1, 8):
        for k in range(n):
            c = rank_basis(n, k, p)
            assert [sum(ci * r**i for i, ci in enumerate(c)) % p for r in range(n)] == \
                [int(r == k) for r in range(n)]
