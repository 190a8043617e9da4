"""Fixed-point arithmetic on a checked session (``protocols.active.Checked``): the operations
``pricing.secure_bsm`` needs (``fixedpoint.MpcOps`` gives the same on MPyC, semi-honest),
secure with abort against t actively malicious parties (issue 13).

Values are integers with an explicit binary scale, as in ``protocols.fixedpoint``, held as
numpy object arrays of this party's shares over a prime field of 140 bits (MPyC's field for
``SecInt(108)``, whose PRSS weights it uses), reduced when they are sent.  A truncation
opens a + r once, with r a PRSS mask of bounded pieces, as ``fixedpoint.trunc`` does.  A
truncated product opens the degree-2t product masked the same way and keeps the product,
unmasked with the public opening, for the batch check.

A comparison opens a + r with r's low part the sum of one PRSS draw of k bits per key
subset, whose bits are PRSS bits: bits by construction, held in any field without a product.
Its bitwise work (how often the sum wrapped past 2^k) runs in a second checked session over
GF(2^31 − 1), on numpy int64, where a product costs a small part of one over the 140-bit
prime, and each bit of the result comes back by a bit d held in both fields (the XOR of one
PRSS bit per key subset, by the same checked products in each session, so that both hold
the one bit the honest parties' keys fix): bit XOR d is opened in the small field, after
its batch check, and XORed with d in the large one.  Per comparison that is (C(m, t) − 1)
products in the large field per bit of C(m, t): 4 at three parties, where comparing the
mask's bits there cost four per bit.

**Every opening is preceded by the batch check of every product so far** in its session
(``_open``).  The check lets an opening go only when all values it depends on are correct,
so what is opened is the value the honest parties hold plus at most an error the adversary
chose and knows, under a mask as wide as the value's bound: nothing leaks.  Without it an
error in a product could be multiplied by a secret before the next opening, which would
then open that secret times a chosen error — beyond its mask.  The price is two rounds per
opening layer (the copies with the coin, and T), the check's material dealt ahead beside
the previous layer.

The PRSS masks are bounded only if the honest parties hold the same PRSS keys:
``mpyc_seam.agree_prss_keys`` checks that once per runtime.
"""

from __future__ import annotations

import itertools

import numpy as np

from .active import M31, Checked
from .bitwise import carry_save, fold, pad, shifted_up, xor
from .fixedpoint import check_bound, check_field, high_part, prss_subsets, truncation_mask
from .mpyc_seam import fast_prss_share, prss_pieces, prss_zero_share


class CheckedOps:
    """The secret arithmetic of ``pricing.secure_bsm`` on checked session ``s``, whose parties
    hold their shares at points 1..m (MPyC's, for the PRSS weights), over ``field``: the MPyC
    field of s's prime, as a secure integer type has it (for the PRSS draws; never made with
    ``SecFld``, which would mark MPyC's one class of that field unsigned for every type)."""

    def __init__(self, s: Checked, field, small: Checked):
        if s.points != list(range(1, s.m + 1)) or small.points != s.points:
            raise ValueError("PRSS shares are at points 1..m: the sessions must use them")
        if field.modulus != s.p:
            raise ValueError("the field must be the session's")
        if small.p != M31:
            raise ValueError("the comparisons' bitwise session is over GF(2^31 - 1)")
        self.s, self.small, self.p, self.rt, self.field = s, small, s.p, s.rt, field
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
        """[a < 0] as 0/1 shares for |a| <= bound < 2^(l-1): x = a + 2^k, k = l − 1, is
        opened under T + 2^k·r_hi, T = Σ_S R_S the sum of one PRSS draw R_S of k bits per
        key subset (its bits are PRSS bits, held in both fields without a product) and r_hi
        a PRSS draw of sec_param + 2 bits.  For the opened low bits c', x mod 2^k = c' − T +
        2^k·w with w = ⌊(T + 2^k − 1 − c') / 2^k⌋ (at most C(m, t)), which the small session
        adds up from the bits (``_wraps``) and brings back bit by bit; then [a >= 0] =
        (x − x mod 2^k) / 2^k, an exact division."""
        self._check_field(l, bound, "comparison")
        k, p, n = l - 1, self.p, np.size(a)
        shape, a = np.shape(a), self._flat(a)
        width = len(self._subsets()).bit_length()  # bits of w
        self.small.prepare_check()  # dealt beside the opening of x
        d_large, d_small = await self.random_bits(width * n)  # to bring w's bits back
        large, small = self._prss_numbers(k, n)
        r_hi = fast_prss_share(self.rt, self.field, 1 << (self.sec + 2), n).value
        c = await self._open((a + (1 << k) + large + (r_hi << k)) % p)
        low = c & ((1 << k) - 1)
        complement = np.stack([((1 << k) - 1 - low) >> i & 1 for i in range(k)],
                              axis=-1).astype(np.int64)
        w_bits = await self._wraps(small, complement)
        w_bits = await self._to_large(w_bits.ravel(), d_small, d_large)
        w = sum(w_bits.reshape(width, n)[j] << j for j in range(width))
        x_mod = low - large + (w << k)
        non_negative = (a + (1 << k) - x_mod) * pow(1 << k, -1, p) % p
        return ((1 - non_negative) % p).reshape(shape)

    def _subsets(self) -> list[tuple]:
        """The PRSS key subsets, in MPyC's order (the parties that hold each key)."""
        m, t = self.s.m, self.s.t
        return list(itertools.combinations(range(m), m - t))

    def _prss_numbers(self, k: int, n: int):
        """Shares of n sums T = Σ_S R_S of one uniform k-bit PRSS draw per key subset: of T in
        the large field, and of every R_S's bits in the small one, shape (subsets, n, k)."""
        pieces = prss_pieces(self.rt, 1, n * k)
        q, large, small = self.small.p, 0, []
        for S in self._subsets():
            if S not in pieces:  # a key we do not hold: our shares of its draws are 0
                small.append(np.zeros((n, k), dtype=np.int64))
                continue
            bits = pieces[S].reshape(n, k)
            number = sum(bits[:, i].astype(object) << i for i in range(k))
            large = large + number * subset_weight(self.rt, self.p, S)
            small.append(bits * subset_weight(self.rt, q, S) % q)
        return np.asarray(large, dtype=object) % self.p, np.stack(small)

    async def _wraps(self, numbers, public):
        """The bits of ⌊U / 2^k⌋ (least significant first, shape (bits, n)) for U = Σ numbers +
        public: numbers the small session's bits of secret k-bit numbers (count, n, k), public
        0/1 bits (n, k).  Carry-save adders take the secret rows and the public one down to
        two, without a product for the public row beyond the one of the last two; the carry
        into bit k is folded, and the few bits above ripple."""
        s, q = self.small, self.small.p
        k, top = public.shape[-1], public.shape[-1] + len(numbers).bit_length()
        x, y = await carry_save(s, [pad(r, top) for r in numbers] + (
            [] if len(numbers) > 1 else [np.zeros(numbers.shape[1:-1] + (top,), dtype=np.int64)]))
        z = pad(public, top)  # x + y + z = sum + 2·majority, linear in z given x·y
        xy = await s.mul(x, y)
        u = xor(s, x, y, xy)
        x, y = (u + z - 2 * u * z) % q, shifted_up((xy + u * z) % q)
        xy = await s.mul(x, y)
        carry, _ = await fold(s, xy[..., :k], xor(s, x, y, xy)[..., :k])
        out = []
        for j in range(k, top):  # sum bit x ⊕ y ⊕ carry, carry on: x·y + (x ⊕ y)·carry
            u = xor(s, x[..., j], y[..., j], xy[..., j])
            uc = await s.mul(u, carry)
            out.append(xor(s, u, carry, uc))
            carry = (xy[..., j] + uc) % q
        return np.stack(out)

    async def _to_large(self, bit, d_small, d_large):
        """The large field's shares of ``bit`` (shares in the small field), by the bit d held
        in both: bit XOR d is opened in the small field after its batch check (it is uniform
        whatever bit is) and XORed with d in the large one."""
        q = self.small.p
        hidden = (bit + d_small - 2 * await self.small.mul(bit, d_small)) % q
        await self.small.verify()
        opened = (await self.small.open(hidden)).astype(object)
        return (opened + d_large - 2 * opened * d_large) % self.p

    async def random_bits(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """n shared random bits, as shares in the large field and in the small one: the XOR
        of one PRSS bit per key subset (a subset's bit is known to its members only, and the
        subset of honest parties has one), in a tree of checked products in each session on
        the same PRSS bits, so that both hold the same bits.  C(m, t) − 1 products per bit
        in each field: 2 for three parties."""
        pieces, subsets = prss_pieces(self.rt, 1, n), self._subsets()

        def shares(session, dtype):
            return [pieces[S].astype(dtype) * subset_weight(self.rt, session.p, S) % session.p
                    if S in pieces else np.zeros(n, dtype=dtype) for S in subsets]
        large, small = shares(self.s, object), shares(self.small, np.int64)
        while len(large) > 1:
            half = len(large) // 2
            trees = [(session, np.stack(bits[:half]), np.stack(bits[half:2 * half]))
                     for session, bits in ((self.s, large), (self.small, small))]
            products = [session.mul(x, y) for session, x, y in trees]  # one round for both
            large, small = [list((x + y - 2 * await xy) % session.p) + bits[2 * half:]
                            for (session, x, y), xy, bits
                            in zip(trees, products, (large, small))]
        return large[0], small[0]


def subset_weight(rt, p: int, subset: tuple) -> int:
    """f_S(pid + 1) mod p, f_S the degree-t polynomial that is 1 at 0 and 0 at every party
    outside S (``mpyc_seam.prss_weight``, for any prime: the small field has no MPyC type)."""
    x, weight = rt.pid + 1, 1
    for j in range(len(rt.parties)):
        if j not in subset:
            weight = weight * (j + 1 - x) * pow(j + 1, -1, p) % p
    return weight
