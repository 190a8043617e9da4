"""Secret random field elements and bits whose cost per party grows linearly in the number of
parties, for sessions where MPyC's pseudorandom secret sharing (PRSS) is too costly.

PRSS needs no communication, but each party evaluates a pseudorandom function for each of
the C(n-1, t) sets of parties it shares a key with: 2 for 3 parties, 6 for 5, 20 for 7, 70
for 9.  A random bit as MPyC draws it also takes a PRSS sharing of zero of degree 2t (t
draws per set), so at 7 parties one bit costs a party 80 PRF outputs.

Here every party deals Shamir sharings of its own uniform field elements, and each block of
n dealt sharings is turned into n - t random sharings by a public Vandermonde matrix
(Damgård and Nielsen, "Scalable and unconditionally secure multiparty computation", CRYPTO
2007): at least n - t of the dealt values come from parties outside any coalition of t, and
any n - t columns of the matrix are independent, so the extracted values are uniform and
unknown to any t parties (passive security, as the rest of the session).  Per value a party
deals 1/(n - t) of a sharing (n shares of a degree-t polynomial), receives fewer than two
shares and combines n: work linear in n, and one round.  A bit is then MPyC's square-root
construction on such a value r: open r² (one multiplication, one opening) and take
(r/√(r²) + 1)/2, which is 0 or 1 with probability 1/2 each, independently of r².

Run its tests with ``pytest tests/test_randomness.py`` (party processes on loopback).
"""

from __future__ import annotations

from asyncio import Future

import numpy as np

from protocols.active import uniform
from protocols.mpyc_seam import mpc_coro, reshare


def extraction_matrix(m: int, t: int, p: int) -> np.ndarray:
    """The (m - t) x m Vandermonde matrix [(j + 1)^i mod p]: any m - t of its columns are
    linearly independent (distinct nonzero points, p > m)."""
    points = np.arange(1, m + 1, dtype=object)
    return np.array([[pow(int(x), i, p) for x in points] for i in range(m - t)], dtype=object)


@mpc_coro
async def random_elements(rt, field, n: int):
    """This party's shares (a ``field.array``) of n uniform secret elements of ``field``.

    One round: every party deals ceil(n / (m - t)) sharings of its own uniform values, and
    each party applies the extraction matrix to the m shares it holds of each block."""
    await rt.returnType(Future)
    if not n:
        return field.array(np.zeros(0, dtype=object))
    m, t, p = len(rt.parties), rt.threshold, field.modulus
    per_party = -(-n // (m - t))
    dealt = await rt.input(field.array(uniform(p, per_party)), senders=None)
    shares = np.stack([d[0].value for d in dealt])  # (m, per_party): row j dealt by party j
    extracted = (extraction_matrix(m, t, p) @ shares) % p  # (m - t, per_party)
    return field.array(extracted.reshape(-1)[:n])


@mpc_coro
async def random_bits(rt, field, n: int):
    """This party's shares (a ``field.array``) of n uniform secret bits in ``field`` (an odd
    prime field): (r/√(r²) + 1)/2 for uniform secret r, with r² opened.  Every party derives
    the same root of the same opened square, so the sign of r is the bit; a draw with r = 0
    (probability 1/p) is drawn again."""
    await rt.returnType(Future)
    if not n:
        return field.array(np.zeros(0, dtype=object))
    p = field.modulus
    r = await random_elements(rt, field, n)
    squares = (await rt.output(await reshare(rt, r * r))).value
    drawn = squares != 0
    bits = np.empty(n, dtype=object)
    inverse_roots = field.array(squares[drawn]).sqrt(INV=True).value
    bits[drawn] = (r.value[drawn] * inverse_roots + 1) * ((p + 1) >> 1) % p
    if not drawn.all():
        bits[~drawn] = (await random_bits(rt, field, int(np.count_nonzero(~drawn)))).value
    return field.array(bits)
