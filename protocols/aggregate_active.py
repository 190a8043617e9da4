"""Median or mean of one private number per party, secure with abort against t actively
malicious parties (issue 13; ``security: malicious``), on ``protocols.active.Checked``.

Each party inputs its number as the FRAC-fraction-bit fixed-point integer x = round(v·2^32)
offset by 2^63, dealt as its L = 64 bits (most significant first).  So every input is in
range by construction once its bits are checked to be bits: b·(1 − b) is computed for every
dealt bit (a checked product) and, after the batch check of all products, the parties open
for each dealer j a random combination Σ αᵢ·bᵢ(1 − bᵢ) of its bits, which is 0 only if all are
bits (else with probability 1/p): a party that dealt a non-bit is named.

- mean: the sum of the inputs is opened (the mean reveals it anyway) and divided by n;
- median: every pair is compared on its bits (x < y at the first bit, from the top, where
  they differ: one product per bit for x·y, a prefix product of the bitwise equalities in
  log2(L) rounds, and one product per bit to pick the deciding bit), the ranks are summed
  from the comparisons (ties broken by party order), the rank-k indicator is a Lagrange
  polynomial in the rank, and the selected value Σ [rank = k]·x is opened — only after the
  batch check and the bit check passed.

No value is opened before those checks but the coin of the bit check: nothing depends on
a wrong product or a non-bit before the session aborts.  The field is Z_p for the Mersenne
prime p = 2^127 − 1: a check lets cheating pass with probability below 2^-125.
"""

from __future__ import annotations

import numpy as np

from .active import Checked, Deviation

P = 2 ** 127 - 1
L = 64             # bits of an input
FRAC = 32          # fraction bits
OFFSET = 1 << (L - 1)
METHODS = ("median", "mean")


def fixed(value: float) -> int:
    """round(value·2^FRAC) + 2^63: an L-bit number; ValueError outside ±2^31."""
    x = round(value * (1 << FRAC)) + OFFSET
    if not 0 <= x < 1 << L:
        raise ValueError(f"{value} is outside the range the checked aggregate takes"
                         f" (|v| < 2^{L - 1 - FRAC})")
    return x


async def aggregate(rt, value: float, method: str = "median",
                    names: list[str] | None = None) -> float:
    """Each party inputs ``value``; all learn only the median (or mean) of the inputs, or the
    session aborts naming what it saw (``Deviation``)."""
    if method not in METHODS:
        raise ValueError(f"unknown aggregation method {method!r}; expected one of {METHODS}")
    x = fixed(value)
    s = Checked(rt, P, list(range(1, len(rt.parties) + 1)), names)
    n = s.m
    bits = await s.deal(np.array([(x >> (L - 1 - i)) & 1 for i in range(L)], dtype=object))
    not_bits = s.mul(bits, (1 - bits) % P)  # (n, L): 0 wherever a dealt value is a bit
    weights = np.array([1 << (L - 1 - i) for i in range(L)], dtype=object)
    values = bits @ weights % P
    if method == "mean":
        selected, divisor = values.sum() % P, n
    else:
        wanted = [n // 2] if n % 2 else [n // 2 - 1, n // 2]
        indicators = await _indicators(s, await _ranks(s, bits), wanted)
        selected, divisor = (await s.mul(indicators, values)).sum() % P, len(wanted)
    not_bits = await not_bits
    await s.verify()
    await _check_bits(s, not_bits)
    (total,) = await s.open(np.array([selected], dtype=object))
    return (int(total) - divisor * OFFSET) / divisor / (1 << FRAC)


async def _check_bits(s: Checked, not_bits: np.ndarray) -> None:
    """After the batch check: open Σ αᵢ·bᵢ(1 − bᵢ) per dealer; a nonzero one names it."""
    coin = await s.deal_random(1)
    (seed,) = await s.open(coin)
    alpha = s.coefficients(int(seed), not_bits.shape[1])
    opened = await s.open(not_bits @ alpha % P)
    culprits = [j for j in range(s.m) if opened[j] != 0]
    if culprits:
        raise Deviation(f"{', '.join(s.names[j] for j in culprits)} dealt an input whose bits"
                        f" are not all 0 or 1", culprits)


async def _less_than(s: Checked, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[x < y] per row, for rows of L bits (most significant first)."""
    xy = await s.mul(x, y)
    equal = (1 - x - y + 2 * xy) % P
    prefix = equal.copy()  # inclusive prefix products, Hillis–Steele: log2(L) rounds
    d = 1
    while d < L:
        shifted = await s.mul(prefix[:, d:], prefix[:, :-d])
        prefix = np.concatenate([prefix[:, :d], shifted], axis=1)
        d *= 2
    above = np.concatenate([np.ones((len(x), 1), dtype=object), prefix[:, :-1]], axis=1)
    return (await s.mul(above, (y - xy) % P)).sum(axis=1) % P


async def _ranks(s: Checked, bits: np.ndarray) -> np.ndarray:
    """Secure rank (0 = smallest) of each party's input, ties broken by party order."""
    n = s.m
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
    later_smaller = await _less_than(s, bits[[b for _, b in pairs]], bits[[a for a, _ in pairs]])
    ranks = np.zeros(n, dtype=object)
    for g, (a, b) in zip(later_smaller, pairs):  # g = [x_b < x_a]: b comes before a
        ranks[a] += g
        ranks[b] += 1 - g
    return ranks % P


async def _indicators(s: Checked, ranks: np.ndarray, wanted: list[int]) -> np.ndarray:
    """Σ over k in ``wanted`` of [rank = k], per party: Lagrange basis polynomials over
    0..n-1 at each rank (the powers of the ranks cost n-2 products)."""
    n = len(ranks)
    powers = [np.ones(n, dtype=object), ranks]
    for _ in range(2, n):
        powers.append(await s.mul(powers[-1], ranks))
    total = np.zeros(n, dtype=object)
    for k in wanted:
        coefficients, denominator = np.poly1d([1]), 1
        for j in range(n):
            if j != k:
                coefficients *= np.poly1d([1, -j])
                denominator *= k - j
        c = [int(v) for v in coefficients.coeffs[::-1]]
        inverse = pow(denominator % P, -1, P)
        total = total + sum(cj * powers[j] for j, cj in enumerate(c)) * inverse
    return total % P
