"""Circuits on secret bits in a checked session (``protocols.active.Checked``): comparisons,
ranks and the check that dealt bits are bits, vectorised over any leading axes.

A number is an array of shared bits along the last axis, least significant first; every
product goes through the session, so the batch check covers it.  Bits must be bits (dealt
bits checked with ``check_bits``, or results of these circuits on bits).  Per bit of width
w, ``less_than`` costs about three products in 1 + log2(w) rounds, ``greater_than_sum`` two
more per bit and term beyond the first (carry-save) and never forms the sum.
"""

from __future__ import annotations

import numpy as np

from .active import Checked, Deviation
from .shamir import rank_basis


def xor(s: Checked, x, y, xy):
    """x XOR y from the product x·y (no round)."""
    return (x + y - 2 * xy) % s.p


async def fold(s: Checked, first, second):
    """Fold pairs (f, g) along the last axis, least significant first, into one pair for the
    whole width: (f, g)_hi ∘ (f, g)_lo = (f_hi + g_hi·f_lo, g_hi·g_lo).  With (f, g) = ([x < y],
    [x = y]) per bit this is the comparison; with (generate, propagate) the carry out.  Two
    products per fold, log2(width) rounds; g of the whole is returned too."""
    while first.shape[-1] > 1:
        n = first.shape[-1]
        odd = n % 2  # an unpaired top element goes up as it is
        f_lo, f_hi = first[..., 0:n - odd:2], first[..., 1:n - odd:2]
        g_lo, g_hi = second[..., 0:n - odd:2], second[..., 1:n - odd:2]
        both = await s.mul(np.stack([g_hi, g_hi]), np.stack([f_lo, g_lo]))
        f_new, g_new = (f_hi + both[0]) % s.p, both[1]
        if odd:
            f_new = np.concatenate([f_new, first[..., -1:]], axis=-1)
            g_new = np.concatenate([g_new, second[..., -1:]], axis=-1)
        first, second = f_new, g_new
    return first[..., 0], second[..., 0]


async def less_than(s: Checked, x, y):
    """[x < y] over the last axis (x and y of one width): per bit [x < y] and [x = y] from
    x·y, folded (``fold``): about three products per bit."""
    xy = await s.mul(x, y)
    lt, _ = await fold(s, (y - xy) % s.p, (1 - x - y + 2 * xy) % s.p)
    return lt


async def public_less_than(s: Checked, c, x):
    """[c < x] over the last axis for public bits c (0/1 integers) and secret bits x of one
    width: per bit [c < x] and [c = x] are linear in x, so only the fold costs products."""
    lt = x * (1 - c) % s.p
    eq = (1 - c - x + 2 * c * x) % s.p
    result, _ = await fold(s, lt, eq)
    return result


async def greater_than_sum(s: Checked, a, terms: list, width: int):
    """[a > Σ terms] for numbers below 2^width whose sum is below 2^width too.

    With r terms, D = a + Σ (2^width − 1 − tⱼ) + (r − 1) = a − Σ tⱼ − 1 + r·2^width lies in
    [(r−1)·2^width, (r+1)·2^width), and a > Σ tⱼ exactly when D >= r·2^width: when bit
    ``width`` of D has the parity of r.  Carry-save adders take the r + 1 rows (and the public
    constant) down to two, and the bit is theirs plus the carry into it (``fold``): no sum
    is ever formed."""
    p, r, top = s.p, len(terms), width + 1  # bits 0..width of every row
    x, y = await carry_save(s, [pad(a, top)] + [pad((1 - pad(t, width)) % p, top)
                                                for t in terms])
    k = np.array([(r - 1) >> i & 1 for i in range(top)], dtype=x.dtype)  # public: no product
    xy = await s.mul(x, y)
    u = xor(s, x, y, xy)
    x, y = (u + k - 2 * u * k) % p, shifted_up((xy + u * k) % p)
    xy = await s.mul(x, y)
    carry, _ = await fold(s, xy[..., :width], xor(s, x, y, xy)[..., :width])
    top_bits = xor(s, x[..., width], y[..., width], xy[..., width])
    bit = xor(s, top_bits, carry, await s.mul(top_bits, carry))
    return bit if r % 2 else (1 - bit) % p


async def carry_save(s: Checked, rows: list) -> tuple:
    """Two rows of bits with the sum of ``rows`` (at least two, bits on the last axis, one
    width): carry-save adders, three rows to two per layer, all adders of a layer at once."""
    while len(rows) > 2:
        x, y, z = (np.stack(rows[i:len(rows) - len(rows) % 3:3]) for i in range(3))
        rest = rows[len(rows) - len(rows) % 3:]
        xy = await s.mul(x, y)
        u = xor(s, x, y, xy)
        uz = await s.mul(u, z)
        # the sum bits and the majorities (shifted up), which are disjoint
        rows = list(xor(s, u, z, uz)) + list(shifted_up((xy + uz) % s.p)) + rest
    return rows[0], rows[1]


def shifted_up(x):
    """x·2 within the same width (the top bit leaves)."""
    return np.concatenate([np.zeros_like(x[..., :1]), x[..., :-1]], axis=-1)


def pad(x, width: int):
    """x with zero bits on top up to ``width`` (never cut)."""
    if x.shape[-1] > width:
        raise ValueError(f"a {x.shape[-1]}-bit number does not fit {width} bits")
    pad = np.zeros(x.shape[:-1] + (width - x.shape[-1],), dtype=x.dtype)
    return np.concatenate([x, pad], axis=-1)


def shift(x, k: int):
    """x·2^k: k zero bits below."""
    return np.concatenate([np.zeros(x.shape[:-1] + (k,), dtype=x.dtype), x], axis=-1)


async def ranks(s: Checked, values):
    """Rank (0 = smallest) of each party's number, for numbers values[a] (shape (n, ..., w)):
    n(n-1)/2 comparisons in one batch, ties broken by party order (each rank occurs once)."""
    n = len(values)
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
    later_smaller = await less_than(s, values[[b for _, b in pairs]],
                                    values[[a for a, _ in pairs]])
    out = np.zeros(values.shape[:-1], dtype=values.dtype)
    for g, (a, b) in zip(later_smaller, pairs):  # g = [x_b < x_a]: b comes before a
        out[a] = (out[a] + g) % s.p
        out[b] = (out[b] + 1 - g) % s.p
    return out


async def rank_indicators(s: Checked, ranks, wanted: list[int]) -> list:
    """[rank = k] per party for each k in ``wanted``: the Lagrange basis polynomial of k over
    0..n-1 at each rank (the powers of the ranks cost n-2 products)."""
    n, p = len(ranks), s.p
    powers = [np.ones_like(ranks), ranks]
    for _ in range(2, n):
        powers.append(await s.mul(powers[-1], ranks))
    out = []
    for k in wanted:
        total = np.zeros_like(ranks)
        for c, power in zip(rank_basis(n, k, p), powers):
            total = (total + c * power % p) % p
        out.append(total)
    return out


async def check_bits(s: Checked, not_bits) -> None:
    """After the batch check, with not_bits[j] = b·(1 − b) for each value b dealer j dealt
    as a bit (checked products): open Σ αᵢ·bᵢ(1 − bᵢ) per dealer; a nonzero one names the
    dealer (it is 0 for a non-bit with probability 1/p per repetition)."""
    not_bits = not_bits.reshape(s.m, -1)
    for _ in range(s.reps):
        (seed,) = await s.open(await s.deal_random(1))
        alpha = s.coefficients(int(seed), not_bits.shape[1])
        opened = await s.open(np.array([int((row * alpha % s.p).sum() % s.p) for row in not_bits],
                                       dtype=s.dtype))
        culprits = [j for j in range(s.m) if opened[j] != 0]
        if culprits:
            raise Deviation(f"{', '.join(s.names[j] for j in culprits)} dealt an input whose"
                            f" bits are not all 0 or 1", culprits)
