"""Secure comparisons for three parties (threshold 1) whose bitwise work runs in a small field.

MPyC's comparison (``np_sgn``, after Toft) opens a + r for a secret random r made of l
secret bits, then multiplies l + 1 secret terms built from r's bits and the opened value
and tests the product for zero.  Every bit and every product is a resharing of a Python-int
array in the secure type's prime field (80-140 bits): about 2.2 l field elements dealt,
pickled and recombined per comparison, most of a pricing party's CPU.

Here the same algorithm runs with each random bit held twice, as Shamir shares in the
session's field p and in the 31-bit field Q = 2^31 - 1, where numpy's int64 arithmetic does
the dealing, the products and the zero test, and messages are raw int64 arrays:

- bit = d XOR b as in ``fixedpoint.xor_bits``: d dealt by one party in both fields, b a
  PRSS bit of the two other parties (free in either field); d·b is one product in Q.
- In p only two products per comparison: r = Σ 2^i (d_i + b_i − 2 d_i b_i) needs the inner
  product Σ 2^i d_i b_i (one resharing of a degree-2 sum), and the sign bit one more.
- The l + 1 terms and their product live in Q: each term is a small nonzero integer or 0,
  so the product is 0 in Q exactly when it is 0 over the integers.  It is tested for zero
  by opening its products with two PRSS random values (reshared first, so that nothing but
  the products is revealed); a nonzero product opens as zero only if both are 0 (2^-62).

What is opened is what MPyC opens: a + r + 2^l·r' (r' a PRSS mask of k bits) and whether the
product is zero (which the random sign bit makes independent of a).  Security: passive, one
corrupt party, as the rest of the session; every dealt d could later be checked to be a bit
in both fields, the check an actively secure version (issue 13) needs.
"""

from __future__ import annotations

import os
from asyncio import Future

import numpy as np

from protocols.mpyc_seam import exchange, mpc_coro, prss_pieces, prss_share, prss_weight, reshare

Q = 2 ** 31 - 1          # a Mersenne prime: products of two residues fit in int64
LAMBDA = (3, -3, 1)      # Lagrange coefficients at 0 for the points 1, 2, 3 (degree <= 2)


def supported(rt) -> bool:
    """Whether this session can use these comparisons: three parties, threshold 1, PRSS."""
    return len(rt.parties) == 3 and rt.threshold == 1 and not rt.options.no_prss


def _uniform(count: int) -> np.ndarray:
    """count residues uniform mod Q (within 2^-90): 128 random bits each, reduced."""
    raw = np.frombuffer(os.urandom(16 * count), dtype=np.uint64).reshape(2, count) % np.uint64(Q)
    return ((raw[0] * np.uint64(4) + raw[1]) % np.uint64(Q)).astype(np.int64)  # 2^64 = 4 mod Q


def _deal(values: np.ndarray) -> np.ndarray:
    """Shares for the points 1, 2, 3 of random degree-1 polynomials with these constant terms."""
    c = _uniform(values.size).reshape(values.shape)
    return np.stack([(values + c * x) % Q for x in (1, 2, 3)])


def _recombine(rows: np.ndarray) -> np.ndarray:
    """The constant terms of the degree <= 2 polynomials whose values at 1, 2, 3 are rows."""
    return (LAMBDA[0] * rows[0] + LAMBDA[1] * rows[1] + LAMBDA[2] * rows[2]) % Q


async def _swap(rt, rows: np.ndarray) -> np.ndarray:
    """Send rows[j] to party j; row j of the result is what party j sent us."""
    sent = await exchange(rt, [r.astype("<i8").tobytes() for r in rows])
    return np.stack([rows[rt.pid] if j == rt.pid
                     else np.frombuffer(s, dtype="<i8").reshape(rows.shape[1:])
                     for j, s in enumerate(sent)])


async def _reshare(rt, x: np.ndarray) -> np.ndarray:
    """Degree-1 shares of the values whose degree <= 2 shares are x (one round)."""
    return _recombine(await _swap(rt, _deal(x)))


async def _mul(rt, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return await _reshare(rt, a * b % Q)


async def _open(rt, x: np.ndarray) -> np.ndarray:
    """The values whose degree <= 2 shares are x."""
    return _recombine(await _swap(rt, np.stack([x] * 3)))


def _weight_q(rt, subset: tuple) -> int:
    """f_S(pid + 1) mod Q (1 at 0, 0 at the party outside S): as prss_weight, in Q."""
    (out,) = [j for j in range(3) if j not in subset]
    x = rt.pid + 1
    return (out + 1 - x) * pow(out + 1, -1, Q) % Q


def _prss_q(rt, n: int) -> np.ndarray:
    """Shares of n PRSS values uniform mod Q (two 62-bit draws per key, within 2^-90)."""
    total = np.zeros(n, dtype=np.int64)
    hi, lo = prss_pieces(rt, 62, n), prss_pieces(rt, 62, n)
    for subset in hi:  # 2^62 = 1 mod Q
        total = (total + (hi[subset] % Q + lo[subset] % Q) % Q * _weight_q(rt, subset)) % Q
    return total


@mpc_coro
async def lt_zero(rt, a, l: int):
    """Elementwise [a < 0] as 0/1 secure integers of a's type, for |a| < 2^(l-1): MPyC's
    ``np_sgn(a, l, LT=True)`` with the bitwise part in the small field (module docstring)."""
    stype = type(a)
    await rt.returnType((stype, True, a.shape))
    field = stype.sectype.field
    p, n, k = field.modulus, a.size, rt.options.sec_param
    width = l + 1                      # l bits of r, then the sign bit
    total = n * width
    per = -(-total // 3)               # bits each party deals
    own = np.unpackbits(np.frombuffer(os.urandom(-(-per // 8)), dtype=np.uint8))[:per]
    dealt_p = rt.input(field.array(own.astype(object)), senders=None)
    dealt_q = _swap(rt, _deal(own.astype(np.int64)))
    pieces = prss_pieces(rt, 1, per)
    b = np.zeros(3 * per, dtype=np.int64)        # the PRSS bits of the groups we hold
    wp = np.zeros(3 * per, dtype=object)         # our share weights of them, in p and Q
    wq = np.zeros(3 * per, dtype=np.int64)
    for j in range(3):                           # group j: dealt by j, PRSS of the others
        others = tuple(i for i in range(3) if i != j)
        if others in pieces:
            b[j * per:(j + 1) * per] = pieces[others]
            wp[j * per:(j + 1) * per] = prss_weight(rt, field, others)
            wq[j * per:(j + 1) * per] = _weight_q(rt, others)
    b, wp, wq = (x[:total].reshape(n, width) for x in (b, wp, wq))
    r_divl = prss_share(rt, field, 1 << max(0, ((1 << k) // 3).bit_length() - 1), n)

    # in p: r = Σ 2^i (d_i + b_i) − 2 Σ 2^i d_i b_i (one resharing), and the sign bit
    d_p = np.concatenate([x[0].value for x in await rt.gather(dealt_p)])[:total]
    d_p = d_p.reshape(n, width)
    powers = np.array([1 << i for i in range(l - 1, -1, -1)] + [0], dtype=object)
    bw = b * wp                                  # our shares of the PRSS bits, in p
    linear = (d_p + bw) @ powers
    cross = (d_p * bw) @ powers
    sign_cross = d_p[:, l] * bw[:, l]
    crossed = reshare(rt, field.array(np.concatenate([cross, sign_cross])))
    # in Q: every bit, by one product
    d_q = (await dealt_q).reshape(-1)[:total].reshape(n, width)
    b_q = b * wq % Q
    r_q = (d_q + b_q - 2 * await _mul(rt, d_q, b_q)) % Q
    crossed = (await crossed).value
    r_modl = linear - 2 * crossed[:n]
    sign_p = d_p[:, l] + bw[:, l] - 2 * crossed[n:]

    shape = a.shape
    a = (await rt.gather(a)).value.reshape(n)
    a_r = a + (1 << l) + r_modl
    c = (await rt.output(field.array(a_r + (r_divl.value << l)))).value
    c = np.array([int(v) & ((1 << l) - 1) for v in c], dtype=object)

    # Toft's terms, MSB first: s − (c_i − r_i) + 3·Σ_{j<i} (c_j XOR r_j), and s − 1 + 3·Σ all
    shifts = np.arange(l - 1, -1, -1)
    c_bits = (np.right_shift.outer(c.astype(np.int64), shifts).T & 1)      # (l, n)
    rq = r_q[:, :l].T
    xor = np.where(c_bits == 1, 1 - rq, rq)
    prefix = np.cumsum(np.vstack([np.zeros((1, n), dtype=np.int64), xor]), axis=0) % Q
    sign_q = 2 * r_q[:, l] - 1
    terms = (sign_q - np.vstack([c_bits - rq, np.ones((1, n), dtype=np.int64)]) + 3 * prefix) % Q
    while len(terms) > 1:
        half = len(terms) // 2
        product = await _mul(rt, terms[:half], terms[half:2 * half])
        terms = np.concatenate([product, terms[2 * half:]])
    rho = _prss_q(rt, 2 * n).reshape(2, n)
    masked = await _open(rt, await _reshare(rt, terms[0] * rho % Q))
    zero = np.all(masked == 0, axis=0).astype(object)

    h = (1 - 2 * zero) * (2 * sign_p - 1) + 3
    z = (c - a_r + h * (1 << (l - 1))) * pow(1 << l, -1, p)
    return field.array(z).reshape(shape)
