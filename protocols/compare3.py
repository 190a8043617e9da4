"""Secure comparisons for three parties (threshold 1) whose bitwise work runs in a small field.

MPyC's comparison (``np_sgn``, after Toft) opens a + r for a secret random r made of l
secret bits, then multiplies l + 1 secret terms built from r's bits and the opened value
and tests the product for zero.  Every bit and every product is a resharing of a Python-int
array in the secure type's prime field (80-140 bits): about 2.2 l field elements dealt,
pickled and recombined per comparison, most of a pricing party's CPU.

Here the same algorithm runs with each random bit held twice, as Shamir shares in the
session's field p and in the 31-bit field Q = 2^31 - 1, where numpy's int64 arithmetic does
the dealing, the products and the zero test, and messages are raw arrays of 4-byte words:

- bit = d XOR b as in ``fixedpoint.xor_bits``, d dealt by one party j, b a PRSS bit of the
  two others k and m (free in either field); d·b is one product in Q.
- In p only the packed values r = Σ 2^i (d_i + b_i − 2 d_i b_i) and the sign bit are
  needed, not the bits: j deals Σ 2^i d_i; the cross term Σ 2^i d_i b_i is k's
  Σ 2^i (d_i + α_i) b_i minus m's Σ 2^i α_i b_i, where j sent k its bits under masks α
  below 2^60 that j and m draw from their PRSS key; k and m deal their sums.  Two values
  dealt per party and comparison in p, instead of l + 1 bits and products.
- The l + 1 terms and their product live in Q: each term is a small nonzero integer or 0,
  so the product is 0 in Q exactly when it is 0 over the integers.  It is tested for zero
  by opening its products with two PRSS random values (plus a PRSS sharing of zero of degree
  2, so that nothing but the products is revealed); a nonzero product opens as zero only if
  both are 0 (2^-62).

What is opened is what MPyC opens: a + r + 2^l·r' (r' a PRSS mask of k bits) and whether the
product is zero (which the random sign bit makes independent of a).  Security: passive, one
corrupt party, as the rest of the session: j misses b, k sees d + α (statistically hiding d
to 2^-60), m misses d.  An actively secure version (issue 13) would check each dealt d to be
a bit and the sums dealt in p to match the bits in Q, e.g. by opening random combinations.
"""

from __future__ import annotations

import os

import numpy as np

from protocols.mpyc_seam import exchange, mpc_coro, prss_pieces, prss_share, prss_weight

Q = 2 ** 31 - 1          # a Mersenne prime: products of two residues fit in int64
LAMBDA = (3, -3, 1)      # Lagrange coefficients at 0 for the points 1, 2, 3 (degree <= 2)
MASK_BITS = 60           # a dealt bit travels as d + α, α uniform below 2^60 (hides d to 2^-60)


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


def _send(rt, rows: np.ndarray):
    """Start a round that sends rows[j] to party j (our own row stays); ``_received`` ends it.
    Residues mod Q travel as 4-byte words."""
    return exchange(rt, [r.astype("<u4").tobytes() for r in rows]), rows


async def _received(pending) -> np.ndarray:
    """Row j: what party j sent us in the round ``pending``."""
    sent, rows = pending
    sent = await sent
    return np.stack([rows[j] if s is None
                     else np.frombuffer(s, dtype="<u4").astype(np.int64).reshape(rows.shape[1:])
                     for j, s in enumerate(sent)])


def _reshare(rt, x: np.ndarray):
    """Start resharing: degree-1 shares of the values whose degree <= 2 shares are x."""
    return _send(rt, _deal(x))


async def _reshared(pending) -> np.ndarray:
    return _recombine(await _received(pending))


async def _mul(rt, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return await _reshared(_reshare(rt, a * b % Q))


async def _open(rt, x: np.ndarray) -> np.ndarray:
    """The values whose degree <= 2 shares are x."""
    return _recombine(await _received(_send(rt, np.stack([x] * 3))))


def _without(j: int) -> tuple:
    """The PRSS key subset of the two parties other than j (mod 3)."""
    return tuple(i for i in range(3) if i != j % 3)


def _weight_q(rt, subset: tuple) -> int:
    """f_S(pid + 1) mod Q (1 at 0, 0 at the party outside S): as prss_weight, in Q."""
    (out,) = [j for j in range(3) if j not in subset]
    x = rt.pid + 1
    return (out + 1 - x) * pow(out + 1, -1, Q) % Q


def _prss_q(rt, n: int, zero: bool = False) -> np.ndarray:
    """Shares of n PRSS values uniform mod Q (two 62-bit draws per key, within 2^-90), or
    (``zero``) of n PRSS sharings of 0 of degree 2: Σ_S z_S·x·f_S(x), uniformly random
    among the degree-2 sharings of 0 given any one party's shares."""
    total = np.zeros(n, dtype=np.int64)
    hi, lo = prss_pieces(rt, 62, n), prss_pieces(rt, 62, n)
    x = rt.pid + 1 if zero else 1
    for subset in hi:  # 2^62 = 1 mod Q
        weight = _weight_q(rt, subset) * x % Q
        total = (total + (hi[subset] % Q + lo[subset] % Q) % Q * weight) % Q
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
    per = -(-n // 3)                   # comparisons of each group
    me, grid = rt.pid, (per, width)
    # group j: comparisons [j·per, (j+1)·per), bits d dealt by j, b from the key of k and m
    own = np.unpackbits(np.frombuffer(os.urandom(-(-per * width // 8)), dtype=np.uint8))
    own = own[:per * width].astype(np.int64).reshape(grid)
    dealt_q = _send(rt, _deal(own))
    bits, masks = prss_pieces(rt, 1, per * width), prss_pieces(rt, MASK_BITS, per * width)

    def b_of(j):  # group j's PRSS bits, where we hold their key (k and m do)
        return bits[_without(j)].reshape(grid) if _without(j) in bits else None

    def alpha_of(j):  # group j's masks, from the key of j and m (m = j + 2)
        return masks[_without(j + 1)].reshape(grid)

    powers = np.array([1 << i for i in range(l - 1, -1, -1)], dtype=object)

    def packed(x):  # (Σ 2^i x_i over r's bits, the sign bit's x), as Python ints
        return np.concatenate([x[:, :l].astype(object) @ powers, x[:, l].astype(object)])

    # we deal d for our group and send k = me + 1 our bits under the masks m shares with us
    sent = await exchange(rt, [(own + alpha_of(me)).astype("<i8").tobytes()
                               if j == (me + 1) % 3 else b"" for j in range(3)])
    hidden = np.frombuffer(sent[(me - 1) % 3], dtype="<i8").reshape(grid)
    # Σ 2^i d_i b_i = Σ 2^i (d_i + α_i) b_i (k's) − Σ 2^i α_i b_i (m's), each dealt in p
    as_k, as_m = (me - 1) % 3, (me + 1) % 3
    mine = np.concatenate([packed(own), packed(hidden * b_of(as_k)),
                           packed(alpha_of(as_m) * b_of(as_m))])
    dealt_p = rt.input(field.array(mine), senders=None)
    r_divl = prss_share(rt, field, 1 << max(0, ((1 << k) // 3).bit_length() - 1), n)

    # in Q: every bit, by one product (in the same round as the dealing in p)
    d_q = (await _received(dealt_q)).reshape(3 * per, width)
    b_q = np.zeros((3, per, width), dtype=np.int64)
    for j in range(3):
        if (b := b_of(j)) is not None:
            b_q[j] = b * _weight_q(rt, _without(j)) % Q
    b_q = b_q.reshape(3 * per, width)
    r_q = ((d_q + b_q - 2 * await _reshared(_reshare(rt, d_q * b_q % Q))) % Q)[:n]
    # in p: r = Σ 2^i (d_i + b_i − 2 d_i b_i), and the sign bit, per group
    dealt = [x[0].value.reshape(3, 2 * per) for x in await rt.gather(dealt_p)]
    groups = []
    for j in range(3):
        b = b_of(j)
        b_p = 0 if b is None else packed(b) * prss_weight(rt, field, _without(j))
        cross = dealt[(j + 1) % 3][1] - dealt[(j + 2) % 3][2]
        groups.append(dealt[j][0] + b_p - 2 * cross)
    groups = np.stack(groups)                    # (3, 2·per): r then the sign bit
    r_modl = groups[:, :per].reshape(-1)[:n]
    sign_p = groups[:, per:].reshape(-1)[:n]

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
    masked = await _open(rt, (terms[0] * rho + _prss_q(rt, 2 * n, zero=True).reshape(2, n)) % Q)
    zero = np.all(masked == 0, axis=0).astype(object)

    h = (1 - 2 * zero) * (2 * sign_p - 1) + 3
    z = (c - a_r + h * (1 << (l - 1))) * pow(1 << l, -1, p)
    return field.array(z).reshape(shape)
