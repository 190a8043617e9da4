"""Fixed-point arithmetic on a checked session (``protocols.active.Checked``): the operations
``pricing.secure_bsm`` needs (``fixedpoint.MpcOps`` gives the same on MPyC, semi-honest),
secure with abort against t actively malicious parties (issue 13).

Values are integers with an explicit binary scale, as in ``protocols.fixedpoint``, held as
numpy object arrays of this party's shares over a prime field of 140 bits (MPyC's field for
``SecInt(108)``, whose PRSS weights it uses), reduced when they are sent.  A truncation
opens a + r once, with r a PRSS mask of bounded pieces, as ``fixedpoint.trunc`` does; a
comparison opens a + r with r's low bits the XOR of the PRSS subsets' bits (bits by
construction, unknown to any t parties) and compares the opened low bits with them bitwise.
A truncated product opens the degree-2t product masked the same way and keeps the product,
unmasked with the public opening, for the batch check.

**Every opening is preceded by the batch check of every product so far** (``_open``).  The
check lets an opening go only when all values it depends on are correct, so what is opened is
the value the honest parties hold plus at most an error the adversary chose and knows, under
a mask as wide as the value's bound: nothing leaks.  Without it an error in a product could be
multiplied by a secret before the next opening, which would then open that secret times a
chosen error — beyond its mask.  The price is two rounds per opening layer (the copies with
the coin, and T), the check's material dealt ahead beside the previous layer.

The PRSS masks are bounded only if the honest parties hold the same PRSS keys:
``mpyc_seam.agree_prss_keys`` checks that once per runtime.
"""

from __future__ import annotations

import itertools

import numpy as np

from .active import Checked
from .bitwise import public_less_than
from .fixedpoint import check_bound, check_field, high_part, prss_subsets, truncation_mask
from .mpyc_seam import fast_prss_share, prss_pieces, prss_weight, prss_zero_share


class CheckedOps:
    """The secret arithmetic of ``pricing.secure_bsm`` on checked session ``s``, whose parties
    hold their shares at points 1..m (MPyC's, for the PRSS weights), over ``field``: the MPyC
    field of s's prime, as a secure integer type has it (for the PRSS draws; never made with
    ``SecFld``, which would mark MPyC's one class of that field unsigned for every type)."""

    def __init__(self, s: Checked, field):
        if s.points != list(range(1, s.m + 1)):
            raise ValueError("PRSS shares are at points 1..m: the session must use them")
        if field.modulus != s.p:
            raise ValueError("the field must be the session's")
        self.s, self.p, self.rt, self.field = s, s.p, s.rt, field
        self.e = prss_subsets(s.rt)  # how far a truncation may round up
        self.sec = s.rt.options.sec_param

    def stack(self, xs):
        return np.stack([np.asarray(x, dtype=object) for x in xs])

    def _flat(self, a) -> np.ndarray:
        return np.ravel(np.asarray(a, dtype=object)) % self.p

    async def open(self, x) -> np.ndarray:
        """The values of x (any shape) as signed integers, after the batch check of every
        product so far (module docstring)."""
        shape = np.shape(x)
        values = await self._open(self._flat(x))
        half = self.p // 2
        return np.array([int(v) - self.p if v > half else int(v) for v in values],
                        dtype=object).reshape(shape)

    async def _open(self, x: np.ndarray, degree: int | None = None) -> np.ndarray:
        await self.s.verify()
        self.s.prepare_check()  # the next check's material, dealt beside this opening
        return await self.s.open(x, degree)

    async def mul(self, a, b):
        """a·b exactly (no rescaling), checked."""
        a, b = np.broadcast_arrays(np.asarray(a, dtype=object), np.asarray(b, dtype=object))
        return await self.s.mul(a % self.p, b % self.p)

    def _check_field(self, l: int, bound: int | None, what: str) -> None:
        check_bound(bound, l, what)
        check_field(self.rt, self.p, l, "truncate" if what == "truncation" else "compare")

    async def trunc(self, a, f: int, l: int, bound: int | None):
        """floor(a / 2^f) + (0..e) for |a| <= bound < 2^(l-1): one checked opening."""
        self._check_field(l, bound, "truncation")
        shape, a = np.shape(a), self._flat(a)
        r, r_hi = truncation_mask(self.rt, self.field, f, l, a.size)
        c = await self._open((a + r + (1 << (l - 1))) % self.p)
        return ((high_part(c, f) - r_hi - (1 << (l - 1 - f))) % self.p).reshape(shape)

    async def mul_trunc(self, a, b, f: int, l: int, bound: int | None):
        """floor(a·b / 2^f) + (0..e) for |a·b| <= bound < 2^(l-1): the degree-2t product,
        masked by r and a PRSS sharing of zero, is opened (after the check of a and b), and
        a·b = opened − r is kept for the next check.  One round, as under semi-honest."""
        self._check_field(l, bound, "truncation")
        a, b = np.broadcast_arrays(np.asarray(a, dtype=object), np.asarray(b, dtype=object))
        shape, a, b = a.shape, self._flat(a), self._flat(b)
        r, r_hi = truncation_mask(self.rt, self.field, f, l, a.size)
        zero = prss_zero_share(self.rt, self.field, a.size).value
        offset = 1 << (l - 1)
        c = await self._open((a * b + r + offset + zero) % self.p, degree=2 * self.s.t)
        self.s.record(a, b, (c - offset - r) % self.p)
        return ((high_part(c, f) - r_hi - (1 << (l - 1 - f))) % self.p).reshape(shape)

    async def lt_zero(self, a, l: int, bound: int | None):
        """[a < 0] as 0/1 shares for |a| <= bound < 2^(l-1): x = a + 2^(l-1) is opened
        under r = Σ 2^i·b_i + 2^(l-1)·r_hi (b_i random bits, r_hi a PRSS draw of sec_param
        + 2 bits); x mod 2^(l-1) = c' − r' + 2^(l-1)·[c' < r'] for the opened low bits c',
        and [a >= 0] = (x − x mod 2^(l-1)) / 2^(l-1), an exact division."""
        self._check_field(l, bound, "comparison")
        k, p = l - 1, self.p
        shape, a = np.shape(a), self._flat(a)
        bits = (await self.random_bits(a.size * k)).reshape(a.size, k)
        r_low = sum(bits[:, i] << i for i in range(k)) % p
        r_hi = fast_prss_share(self.rt, self.field, 1 << (self.sec + 2), a.size).value
        c = await self._open((a + (1 << k) + r_low + (r_hi << k)) % p)
        low = np.array([int(v) & ((1 << k) - 1) for v in c], dtype=object)
        c_bits = np.array([[v >> i & 1 for i in range(k)] for v in low], dtype=object)
        borrow = await public_less_than(self.s, c_bits.reshape(a.size, k), bits)
        x_mod = low - r_low + (borrow << k)
        non_negative = (a + (1 << k) - x_mod) * pow(1 << k, -1, p) % p
        return ((1 - non_negative) % p).reshape(shape)

    async def random_bits(self, n: int) -> np.ndarray:
        """n shared random bits: the XOR of one PRSS bit per key subset (a subset's bit is
        known to its members only, and the subset of honest parties has one), in a tree of
        checked products.  C(m, t) − 1 products per bit: 2 for three parties."""
        p, m, t = self.p, self.s.m, self.s.t
        pieces = prss_pieces(self.rt, 1, n)
        bits = [pieces[S].astype(object) * prss_weight(self.rt, self.field, S) % p
                if S in pieces else np.zeros(n, dtype=object)
                for S in itertools.combinations(range(m), m - t)]
        while len(bits) > 1:
            half = len(bits) // 2
            x, y = np.stack(bits[:half]), np.stack(bits[half:2 * half])
            xy = await self.s.mul(x, y)
            bits = list((x + y - 2 * xy) % p) + bits[2 * half:]
        return bits[0]
