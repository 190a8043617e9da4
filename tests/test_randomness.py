"""protocols.randomness: dealt and extracted random sharings, and the random bits made from them.

Each party returns its raw shares; the test checks that they lie on one polynomial of the
session's degree (the parties agree on one value each) and opens them itself.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from protocols import fixedpoint as fx
from protocols import mpyc_seam, randomness
from protocols.shamir import interpolate
from tests.mpc_harness import run_parties

P = 2 ** 61 - 1  # a prime, for the matrix test


async def draw(rt, n: int) -> dict:
    """(Run in each party.) Shares of n random elements and n random bits, and the opened
    result of comparisons of known values made with the session's bit source."""
    field = rt.SecInt(48).field
    elements = await randomness.random_elements(rt, field, n)
    bits = await randomness.random_bits(rt, field, n)
    secint = rt.SecInt(32)
    values = secint.array(np.array([-5, 0, 7, -(2 ** 20), 2 ** 20 - 1], dtype=object))
    with fx.cheap_random_bits(rt):
        below = await rt.output(fx.lt_zero(rt, values, 22))
    return {"modulus": field.modulus, "t": rt.threshold, "point": rt.pid + 1,
            "elements": [int(v) for v in elements.value], "bits": [int(v) for v in bits.value],
            "below": [int(v) for v in below]}


def _opened(parties: list[dict], key: str) -> list[int]:
    """What the parties' shares of ``key`` open to, after checking that they lie on one
    polynomial of degree t."""
    p, t = parties[0]["modulus"], parties[0]["t"]
    xs = [r["point"] for r in parties]
    base = [r[key] for r in parties[:t + 1]]
    for r in parties[t + 1:]:
        assert interpolate(xs[:t + 1], base, r["point"], p) == r[key], \
            f"the shares of {key} are not on one degree-{t} polynomial"
    return interpolate(xs[:t + 1], base, 0, p)


def _rank_mod_p(rows: list[list[int]], p: int) -> int:
    rows, rank = [list(r) for r in rows], 0
    for col in range(len(rows[0])):
        pivot = next((i for i in range(rank, len(rows)) if rows[i][col] % p), None)
        if pivot is None:
            continue
        rows[rank], rows[pivot] = rows[pivot], rows[rank]
        inv = pow(rows[rank][col], -1, p)
        for i in range(len(rows)):
            if i != rank and rows[i][col] % p:
                f = rows[i][col] * inv % p
                rows[i] = [(a - f * b) % p for a, b in zip(rows[i], rows[rank])]
        rank += 1
    return rank


@pytest.mark.parametrize("m,t", [(3, 1), (5, 2), (7, 3), (9, 4)])
def test_any_m_minus_t_columns_of_the_extraction_matrix_are_independent(m, t):
    """What the extraction's secrecy rests on: whichever t parties collude, the other m - t
    dealt values alone determine the extracted ones one to one."""
    matrix = randomness.extraction_matrix(m, t, P)
    assert matrix.shape == (m - t, m)
    for honest in combinations(range(m), m - t):
        square = [[int(matrix[i][j]) for j in honest] for i in range(m - t)]
        assert _rank_mod_p(square, P) == m - t, f"columns {honest} are dependent"


@pytest.mark.heavy
@pytest.mark.timeout(120)
@pytest.mark.parametrize("parties", [3, 5])
def test_random_elements_and_bits_are_shares_of_one_uniform_value_each(parties):
    n = 1000
    results = run_parties("tests.test_randomness:draw", [[n]] * parties)
    p = results[0]["modulus"]
    elements = _opened(results, "elements")
    assert len(set(elements)) == n, "repeated random field elements"
    assert 0.4 < sum(e > p // 2 for e in elements) / n < 0.6  # 1000 uniform: 6 sigma is 0.095
    bits = _opened(results, "bits")
    assert set(bits) == {0, 1}
    assert abs(sum(bits) / n - 0.5) < 0.095  # 6 sigma
    assert all(r["below"] == [1, 0, 0, 1, 0] for r in results), \
        "comparisons with the session's random bits gave a wrong answer"


async def test_comparisons_draw_dealt_bits_beyond_three_parties():
    three = mpyc_seam.install_runtime(0, [("127.0.0.1", 0)] * 3, 1)
    assert fx.bit_source(three) is fx.xor_bits
    for m in (5, 7):
        rt = mpyc_seam.install_runtime(0, [("127.0.0.1", 0)] * m, (m - 1) // 2)
        assert fx.bit_source(rt) is randomness.random_bits
