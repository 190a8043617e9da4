"""Median or mean of one private number per party, secure with abort against t actively
malicious parties (issue 13; ``security: malicious``), on ``protocols.active.Checked``.

Each party inputs its number as the FRAC-fraction-bit fixed-point integer x = round(v·2^32)
offset by 2^63, dealt as its L = 64 bits (least significant first, ``protocols.bitwise``).  So every input is in
range by construction once its bits are checked to be bits: b·(1 − b) is computed for every
dealt bit (a checked product) and, after the batch check of all products, the parties open
for each dealer j a random combination Σ αᵢ·bᵢ(1 − bᵢ) of its bits, which is 0 only if all are
bits (else with probability 1/p): a party that dealt a non-bit is named.

- mean: the sum of the inputs is opened (the mean reveals it anyway) and divided by n;
- median: every pair is compared on its bits (``bitwise.less_than``), the ranks are summed
  from the comparisons (ties broken by party order), the rank-k indicator is a Lagrange
  polynomial in the rank, and the selected value Σ [rank = k]·x is opened — only after the
  batch check and the bit check passed.

No value is opened before those checks but the coin of the bit check: nothing depends on
a wrong product or a non-bit before the session aborts.  The field is Z_p for the Mersenne
prime p = 2^127 − 1: a check lets cheating pass with probability below 2^-125.
"""

from __future__ import annotations

import numpy as np

from . import bitwise
from .active import Checked

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
    s.prepare_check()
    bits = await s.deal(np.array([(x >> i) & 1 for i in range(L)], dtype=object))
    not_bits = s.mul(bits, (1 - bits) % P)  # (n, L): 0 wherever a dealt value is a bit
    weights = np.array([1 << i for i in range(L)], dtype=object)
    values = bits @ weights % P
    if method == "mean":
        selected, divisor = values.sum() % P, n
    else:
        wanted = [n // 2] if n % 2 else [n // 2 - 1, n // 2]
        ranks = await bitwise.ranks(s, bits)
        indicators = sum(await bitwise.rank_indicators(s, ranks, wanted)) % P
        selected, divisor = (await s.mul(indicators, values)).sum() % P, len(wanted)
    not_bits = await not_bits
    await s.verify()
    await bitwise.check_bits(s, not_bits)
    (total,) = await s.open(np.array([selected], dtype=object))
    return (int(total) - divisor * OFFSET) / divisor / (1 << FRAC)
