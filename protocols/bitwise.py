"""Circuits on secret bits in a checked session (``protocols.active.Checked``): comparison,
addition and selection, vectorised over any leading axes.

A number is an array of shared bits along the last axis, least significant first; every
product goes through the session, so the batch check covers it.  Bits must be bits (dealt
bits checked by the caller, or results of these circuits on bits).  Costs per bit of width
w: ``less_than`` 2 + log2(w) products in 2 + log2(w) rounds, ``add`` 3 + 2·log2(w) products
(Kogge–Stone carries), ``add_many`` 2 products per bit and row beyond two (carry-save).
"""

from __future__ import annotations

import numpy as np

from .active import Checked, Deviation


def _xor(s: Checked, x, y, xy):
    """x XOR y from the product x·y (no round)."""
    return (x + y - 2 * xy) % s.p


def _scan(s: Checked, values, combine):
    """Inclusive prefix of ``values`` along the last axis, from index 0 up, in log2 rounds
    (Hillis–Steele); ``combine(s, later, earlier)`` is awaitable."""
    async def run():
        prefix, d, width = values, 1, values.shape[-1]
        while d < width:
            joined = await combine(s, prefix[..., d:], prefix[..., :-d])
            prefix = np.concatenate([prefix[..., :d], joined], axis=-1)
            d *= 2
        return prefix
    return run()


async def _and(s: Checked, later, earlier):
    return await s.mul(later, earlier)


async def less_than(s: Checked, x, y):
    """[x < y] over the last axis (x and y of one width)."""
    xy = await s.mul(x, y)
    equal = (1 - x - y + 2 * xy) % s.p
    # from the top: all bits above i equal (inclusive prefix product of the reversed bits)
    above = (await _scan(s, equal[..., ::-1], _and))[..., ::-1]
    above = np.concatenate([above[..., 1:], np.ones_like(above[..., :1])], axis=-1)
    return (await s.mul(above, (y - xy) % s.p)).sum(axis=-1) % s.p


async def _carry(s: Checked, later, earlier):
    """Stacked (G, P) of two adjacent groups: G = G_hi + P_hi·G_lo (never both 1),
    P = P_hi·P_lo."""
    both = await s.mul(np.stack([later[1], later[1]]), np.stack([earlier[0], earlier[1]]))
    return np.stack([(later[0] + both[0]) % s.p, both[1]])


async def add(s: Checked, x, y):
    """x + y, one bit wider, over the last axis (x and y of one width)."""
    g = await s.mul(x, y)
    p = _xor(s, x, y, g)
    prefix = await _scan(s, np.stack([g, p]), _carry)
    carries = prefix[0]  # carry out of bit i
    shifted = np.concatenate([np.zeros_like(carries[..., :1]), carries[..., :-1]], axis=-1)
    total = _xor(s, p, shifted, await s.mul(p, shifted))
    return np.concatenate([total, carries[..., -1:]], axis=-1)


async def add_many(s: Checked, rows: list, width: int):
    """The sum of the numbers in ``rows`` (each zero-padded to ``width`` bits, which must
    hold the sum): carry-save adders down to two rows, then ``add``."""
    rows = [pad(r, width) for r in rows]
    while len(rows) > 2:
        x, y, z = (np.stack(rows[i:len(rows) - len(rows) % 3:3]) for i in range(3))
        rest = rows[len(rows) - len(rows) % 3:]
        xy = await s.mul(x, y)
        u = _xor(s, x, y, xy)
        uz = await s.mul(u, z)
        total = _xor(s, u, z, uz)
        carry = (xy + uz) % s.p  # majority: xy and uz are never both 1
        carry = np.concatenate([np.zeros_like(carry[..., :1]), carry[..., :-1]], axis=-1)
        rows = list(total) + list(carry) + rest
    if len(rows) == 1:
        return rows[0]
    return (await add(s, rows[0], rows[1]))[..., :width]


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
        coefficients, denominator = np.poly1d([1]), 1
        for j in range(n):
            if j != k:
                coefficients *= np.poly1d([1, -j])
                denominator *= k - j
        total = np.zeros_like(ranks)
        for j, c in enumerate(coefficients.coeffs[::-1]):
            total = (total + int(c) % p * powers[j] % p) % p
        out.append(total * pow(denominator % p, -1, p) % p)
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
