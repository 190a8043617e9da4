"""Secure arithmetic building blocks for the pricing protocol, on MPyC secure-integer arrays.

Values are integers with an explicit binary scale (x·2^f) chosen by the caller, so each
multiplication is followed by at most one truncation and many are never truncated at all
(a product with a 0/1 indicator is exact).  The costly parts of MPyC's own fixed-point
type are avoided where they are not needed:

- ``trunc`` opens a + r once, with r drawn by pseudorandom secret sharing (PRSS, no
  communication); MPyC's generic truncation also generates f secret random bits per
  element, which costs a square-root per bit.  The price is a rounding error of at most
  d units in the last place (d = number of PRSS subsets: 3 for 3 parties, 10 for 5).
- comparisons pass MPyC the actual bit length of their arguments (``lt(..., l)``);
- with three parties (threshold 1), the secret random bits that comparisons consume come
  from ``xor_bits``: a dealt bit XOR a PRSS bit, one multiplication per bit instead of
  MPyC's opening of a square and a modular square root per bit.  With more parties from
  ``protocols.randomness`` (dealt by the parties, not PRSS, whose cost grows with the
  C(n-1, t) key sets each party holds).
"""

from __future__ import annotations

import contextlib
import os
from asyncio import Future
from math import comb

import numpy as np

from protocols import compare3, randomness
from protocols.shamir import rank_basis
from protocols.mpyc_seam import (comparison_bits, fast_prss_randoms, mpc_coro, prss_pieces,
                                 prss_weight, prss_zero_share, reshare)


def prss_subsets(rt) -> int:
    """How many PRSS pieces make up one pseudorandom sharing among rt's parties."""
    return comb(len(rt.parties), rt.threshold)


def check_bound(bound: int | None, l: int, what: str) -> None:
    """Refuse a caller's public bound on |a| that does not fit the declared l bits."""
    if bound is not None and bound >= 1 << (l - 1):
        raise ValueError(f"{what} input may reach {bound.bit_length() + 1} bits (sign"
                         f" included), beyond the declared {l}")


def trunc(rt, a, f: int, l: int, bound: int | None = None, times=None):
    """floor(a / 2^f) + e with 0 <= e <= prss_subsets(rt), for every |a| < 2^(l-1); with
    ``times``, of the product a·times (``mul``: the product is never reshared).

    One opening of a + r, where r's low f bits and high bits are PRSS sums of uniform
    pieces, so the opened value is statistically independent of a (security parameter
    rt.options.sec_param) only while |a| < 2^(l-1): callers pass ``bound``, their proof
    that |a| <= bound (public), and a bound beyond l bits is refused.  The field must hold
    a + r without wrapping around."""
    _check_truncation(rt, type(a), l, bound)
    return _trunc(rt, a, f, l) if times is None else _mul_trunc(rt, a, times, f, l)


def _check_truncation(rt, stype, l: int, bound: int | None) -> None:
    """Refuse a bound beyond l bits, and a field too small to hold a + r without wrapping."""
    check_bound(bound, l, "truncation")
    check_field(rt, stype.sectype.field.modulus, l, "truncate")


def check_field(rt, p: int, l: int, what: str) -> None:
    """Refuse a prime p too small to hold an l-bit value plus a PRSS mask without wrapping
    (``what``: the operation, for the message)."""
    if p.bit_length() < rt.options.sec_param + l + prss_subsets(rt).bit_length() + 2:
        raise ValueError(f"a {p.bit_length()}-bit field is too small to {what} {l}-bit values"
                         f" among {len(rt.parties)} parties")


@mpc_coro
async def _trunc(rt, a, f: int, l: int):
    stype = type(a)
    await rt.returnType((stype, a.shape))
    field = stype.sectype.field
    r, r_hi = truncation_mask(rt, field, f, l, a.size)
    a = await rt.gather(a)
    c = (await rt.output(field.array(a.value.reshape(-1) + r + (1 << (l - 1))))).value
    return field.array(high_part(c, f) - r_hi - (1 << (l - 1 - f))).reshape(a.shape)


def truncation_mask(rt, field, f: int, l: int, n: int):
    """This party's shares of n masks r = r_lo + 2^f·r_hi and of their r_hi: PRSS sums of
    uniform (k + l)-bit pieces (r_lo the low f bits of each, r_hi the rest), one draw."""
    r = r_hi = 0
    for subset, piece in prss_pieces(rt, rt.options.sec_param + l, n).items():
        weight, piece = prss_weight(rt, field, subset), piece.astype(object)
        r, r_hi = r + piece * weight, r_hi + (piece >> f) * weight
    return r, r_hi


def high_part(c, f: int):
    """(c − (c mod 2^f)) / 2^f of opened values c = a + r + 2^(l-1): floor((a + r_lo)/2^f)
    + r_hi + 2^(l-1-f), so that subtracting r_hi's shares and 2^(l-1-f) leaves the result."""
    return (c - (c & ((1 << f) - 1))) >> f


@mpc_coro
async def xor_bits(rt, field, n: int):
    """n secret uniformly random bits (shares in ``field``) for three parties, threshold 1.

    Bit j·k of party j's third is d XOR b = d + b − 2·d·b: d a bit party j deals, b a PRSS
    bit of the key subset of the two other parties (shared without communication, and
    unknown to j).  Any single party misses d or b, so the bit is uniform to it.  One round
    of dealing and one product per bit (MPyC's PRSS parity took two products), and each
    dealt d could later be checked to be a bit."""
    await rt.returnType(Future)
    m = len(rt.parties)
    per = -(-n // m)
    own = np.unpackbits(np.frombuffer(os.urandom(-(-per // 8)), dtype=np.uint8))[:per]
    dealt = rt.input(field.array(own.astype(object)), senders=None)
    pieces = prss_pieces(rt, 1, per)
    prss = []  # this party's shares of the PRSS bits of each third: 0 for its own
    for j in range(m):
        others = tuple(i for i in range(m) if i != j)
        prss.append(pieces[others].astype(object) * prss_weight(rt, field, others)
                    if others in pieces else np.zeros(per, dtype=object))
    d = np.concatenate([x[0].value for x in await rt.gather(dealt)])
    b = np.concatenate(prss)
    db = await reshare(rt, field.array(d * b))
    return (field.array(d + b) - db * 2)[:n]


def bit_source(rt):
    """Where comparisons get their random bits in this session: ``xor_bits`` for three
    parties (threshold 1), else ``randomness.random_bits`` (dealt and
    extracted, linear in the number of parties, where a PRSS bit of MPyC's costs each party
    (t+1)·C(n-1, t) PRF evaluations: 80 at 7 parties)."""
    if len(rt.parties) == 3 and rt.threshold == 1 and not rt.options.no_prss:
        return xor_bits
    return randomness.random_bits


@contextlib.contextmanager
def cheap_random_bits(rt):
    """Within the block, MPyC's comparisons draw their random bits from ``bit_source(rt)``
    and their other PRSS random values from ``fast_prss_randoms``."""
    source = bit_source(rt)
    with comparison_bits(rt, lambda field, n: source(rt, field, n)), fast_prss_randoms(rt):
        yield


def mul(rt, a, b, f: int, l: int, bound: int | None = None):
    """Product of two values scaled by 2^f, rescaled to 2^f (|a·b| <= bound < 2^(l-1)), as
    ``trunc(rt, a * b, f, l, bound)`` but without resharing the product: the degree-2t
    product shares, masked as ``trunc`` masks and re-randomised by a PRSS sharing of zero of
    degree 2t, are opened by all parties; the result floor((a·b + r_lo)/2^f) is then a public
    value minus r's high part, degree t again.  One opening instead of a resharing and an
    opening."""
    return trunc(rt, a, f, l, bound, times=b)


@mpc_coro
async def _mul_trunc(rt, a, b, f: int, l: int):
    stype = type(a)
    shape = np.broadcast_shapes(a.shape, b.shape)
    await rt.returnType((stype, shape))
    field = stype.sectype.field
    a, b = await rt.gather(a, b)
    product = np.broadcast_to(a.value * b.value, shape).reshape(-1)  # degree-2t shares
    r, r_hi = truncation_mask(rt, field, f, l, product.size)
    masked = product + r + (1 << (l - 1)) + prss_zero_share(rt, field, product.size).value
    c = (await rt.output(field.array(masked), threshold=2 * rt.threshold)).value
    return field.array(high_part(c, f) - r_hi - (1 << (l - 1 - f))).reshape(shape)


def lt_zero(rt, a, l: int, bound: int | None = None):
    """Elementwise [a < 0] as 0/1 secure integers, for |a| <= bound < 2^(l-1): for three
    parties by ``compare3`` (bitwise work in a 31-bit field), else MPyC's comparison."""
    check_bound(bound, l, "comparison")
    if compare3.supported(rt):
        return compare3.lt_zero(rt, a, l)
    return rt.np_sgn(a, l=l, LT=True)


def ranks(rt, values: list, l: int) -> list:
    """Secure rank (0 = smallest) of each party's value, element by element, with ties
    broken by party order: a total order, so each rank 0..n-1 occurs exactly once.

    ``values`` holds one array per party; n(n-1)/2 comparisons of differences shorter
    than ``l`` bits, all in one batch."""
    n = len(values)
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
    if not pairs:
        return [values[0] * 0]
    # g[a,b] = [v_b < v_a]: party b comes before a.  Otherwise a comes before b (ties: a < b).
    diffs = rt.np_stack([values[b] - values[a] for a, b in pairs])
    g = lt_zero(rt, diffs, l)
    before = [0] * n
    for i, (a, b) in enumerate(pairs):
        before[a] = before[a] + g[i]
        before[b] = before[b] + (1 - g[i])
    return before


def rank_indicators(rt, rank_list: list, n: int, wanted: list[int]) -> dict[int, list]:
    """For each k in ``wanted``: per party, the secure 0/1 indicator [rank == k].

    Lagrange basis polynomials over {0..n-1} evaluated at the secret ranks: the powers of
    the ranks cost n-2 multiplications, the rest is local (exact division in the field)."""
    field = type(rank_list[0]).sectype.field
    r = rt.np_stack(rank_list)
    powers = [None, r]
    for _ in range(2, n):
        powers.append(powers[-1] * r)
    out = {}
    for k in wanted:
        c = rank_basis(n, k, field.modulus)  # c[0] + c[1] r + ...
        indicator = c[0] + sum(c[j] * powers[j] for j in range(1, n))
        out[k] = [indicator[i] for i in range(len(rank_list))]
    return out


async def chebyshev_basis(ops, u, degree: int, f: int, l: int, bound: int | None = None) -> list:
    """T_0(u) .. T_degree(u) for secret u in [-1, 1] scaled by 2^f (T_0 as the public 2^f),
    with ``ops`` (``MpcOps`` or ``fixed_active.CheckedOps``); ``bound`` bounds every |T_k|
    (scaled), so products stay below bound².

    Doubling formulas T_2k = 2·T_k² − 1 and T_2k+1 = 2·T_k·T_k+1 − u give every degree up
    to 2h from those up to h in one round of multiplications: log2(degree) rounds."""
    one = 1 << f
    basis = [one, u]
    while len(basis) <= degree:
        h = len(basis) - 1
        targets = range(h + 1, min(2 * h, degree) + 1)
        left = [basis[d // 2] for d in targets]
        right = [basis[d // 2 + d % 2] for d in targets]
        products = await ops.mul_trunc(ops.stack(left), ops.stack(right), f, l,
                                       None if bound is None else bound * bound)
        basis += [2 * products[i] - (u if d % 2 else one) for i, d in enumerate(targets)]
    return basis


class MpcOps:
    """The secret arithmetic of ``pricing.secure_bsm`` on MPyC secure arrays (semi-honest):
    ``fixed_active.CheckedOps`` offers the same on a checked session.  Every operation is a
    coroutine there, so it is one here too (MPyC's results are placeholders, never waited on).
    The functions are looked up at each call (tests instrument them)."""

    def __init__(self, rt):
        self.rt, self.e = rt, prss_subsets(rt)  # e: how far a truncation may round up

    def stack(self, xs):
        return self.rt.np_stack(xs)

    async def mul(self, a, b):
        return a * b

    async def trunc(self, a, f: int, l: int, bound: int | None):
        return trunc(self.rt, a, f, l, bound)

    async def mul_trunc(self, a, b, f: int, l: int, bound: int | None):
        return mul(self.rt, a, b, f, l, bound)

    async def lt_zero(self, a, l: int, bound: int | None):
        return lt_zero(self.rt, a, l, bound)
