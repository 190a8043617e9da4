"""Shamir arithmetic that a deviating party cannot bend unseen: secure with abort against up
to t actively malicious parties among m >= 2t+1 (honest majority; issue 13).

A ``Checked`` session holds degree-t Shamir shares over a prime field at given share points
(the key's roster points, so stored key shares are used as they are) and offers:

- ``deal``: every party deals sharings of values of its own (random values, zero sharings);
- ``mul``: GRR multiplication (each party re-shares its local degree-2t product), with the
  factors and the product kept for the batch check; ``inner``: Σⱼ aⱼ·bⱼ the same way, one
  re-share for the whole sum (a selection by one-hot indicators costs one product, not m);
- ``open``: every party sends its share to every party, and each checks that all m shares
  lie on one polynomial of the sharing's degree before it takes the value;
- ``verify``: the batch check of every product since the last check (below);
- ``publish``: each party sends s·G for its share s, and each checks that the m points lie on
  one degree-t polynomial "in the exponent".

Why it holds (docs/SECURITY.md, "Active security"): with at least t+1 honest parties, the
honest shares alone fix every sharing, so whatever a deviating party sends turns into an
additive error on a product or a re-shared value (GRR is secure up to additive attacks), or
a share that lies off the honest polynomial of an opening or a publication, which every
honest party sees.  The batch check, for products cₖ = Σⱼ aⱼₖ·bⱼₖ + eₖ:

- in a large field (Chida, Genkin, Hamada, Ikarashi, Kikuchi, Lindell and Nof, CRYPTO 2018,
  with the randomised copies made at the check): for a secret random ρ and public random αₖ
  chosen after all products, the parties make a copy ρ·aⱼₖ of every factor and open
  T = Σ αₖ·Σⱼ (ρaⱼₖ)·bⱼₖ − ρ·Σ αₖ·cₖ, a local degree-2t sharing masked by a dealt one of
  zero.  With errors e' on the copies and e'' on the opening, T = Σ αₖ·Σⱼ e'ⱼₖ·bⱼₖ −
  ρ·Σ αₖ·eₖ + e'', which is 0 only if Σ αₖ·eₖ = 0 (probability 1/p over α) or ρ takes one
  value (1/p: ρ is never opened and no t parties know it): at most 2/p, below 2^-250 for
  the secp256k1 and Ed25519 orders;
- in M31 = 2^31 − 1 (numpy int64, for bitwise work), where 2/p would be 2^-30, without a copy
  of every product: the coins live in GF(p²) = GF(p)[i]/(i² + 1) (p ≡ 3 mod 4), and the
  claims are halved as in the sublinear checks of Boyle, Gilboa, Ishai and Nof (CCS 2019)
  and Goyal and Song (2020).  A coin α (opened after all products) makes them one claim
  Σ u·v = w with u = α∘a, v = b, w = Σ αₖ·cₖ, false if some eₖ ≠ 0 except with
  probability 1/p².  A halving: f and g are the lines through the two halves of u and of v
  (at 0 and 1), so h = Σ f·g has degree 2 and h(0) + h(1) = Σ u·v; the parties re-share
  their local h(0) and h(2) (each with an error of the adversary's choosing), take
  h(1) = w − h(0), open a coin r (once every honest party has them) and go on with
  Σ f(r)·g(r) = h(r).  If the claim was false, the h they hold is not Σ f·g whatever the
  errors (their sums at 0 and 1 differ), and a nonzero polynomial of degree 2 vanishes at r
  with probability 2/p².  At FINAL terms the large-field check above ends it with ρ in
  GF(p²) (1/p²: one claim, α not needed).  With at most HALVINGS halvings cheating passes
  with probability at most (2 + 2·HALVINGS)/p² < 2^-55.  The work is linear in the products
  but local: 4 re-shared values and three rounds per halving, 2·FINAL for the last copy.

A coin binds what was sent before it only once every honest party holds that: with t+1
honest parties, the honest shares fix a value when the last of them has its message, and t
shares and one honest party's open a coin.  A rushing party could otherwise withhold what
it owes one honest party, learn the coin from another's share and then send what fits it.
So no party sends its share of a coin before a round (``_settled``) in which every party
says that all it checks has arrived; a coin dealt afresh after the values has that round
in its dealing.

Nothing is opened but coins and T; a check's failure raises ``Deviation`` before any
output.  ``reps`` repetitions of a 1/p check reach 2^-CHEAT_BITS (``bitwise.check_bits``).

A deviation raises ``Deviation`` at every honest party that sees it; nothing computed after
it is released.  Messages that cannot be parsed name their sender (the links between parties
are mutually authenticated TLS).  Run its tests with ``pytest tests/test_active.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os

import coincurve
import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from protocols.shamir import lagrange_coefficients

POINT_BYTES = 33  # a compressed secp256k1 point
M31 = 2 ** 31 - 1  # the small field: numpy int64 arithmetic (a product of two residues fits)
SMALL = 1 << 31
CHEAT_BITS = 40   # a check lets cheating pass with probability below 2^-CHEAT_BITS
FINAL = 4096      # M31's batch check halves its inner product down to this many terms
HALVINGS = 40     # coins dealt for as many halvings: 2^40·FINAL products per check at most
BLOCK = 1 << 15   # terms a halving works on at once: small temporaries, no fresh pages


class Deviation(RuntimeError):
    """A party deviated from the protocol: the session stops and releases nothing computed
    after it.  ``culprits`` holds the session indices of the parties identified, when the
    check can tell who it was (an inconsistent opening among 2t+1 parties cannot)."""

    def __init__(self, reason: str, culprits=()):
        super().__init__(reason)
        self.culprits = tuple(sorted(culprits))


def keystream(nbytes: int, key: bytes | None = None) -> bytes:
    """nbytes from ChaCha20 under ``key`` (32 bytes), by default a fresh random one (OpenSSL:
    GB/s, where os.urandom is a system call of a few hundred MB/s; a pricing session draws
    hundreds of MB)."""
    nonce = os.urandom(16) if key is None else bytes(16)
    cipher = Cipher(algorithms.ChaCha20(key or os.urandom(32), nonce), mode=None)
    return cipher.encryptor().update(bytes(nbytes))


def uniform(p: int, count: int, stream: bytes | None = None) -> np.ndarray:
    """count integers uniform in range(p), from ``stream`` (bytes enough: ``stream_bytes``)
    or fresh randomness: for M31 exactly (31-bit draws, the one value p redrawn), int64;
    otherwise each within 2^-64 (64 bits more than p, reduced), Python ints."""
    if stream is None:
        stream = keystream(stream_bytes(p, count)) if p == M31 else \
            os.urandom(stream_bytes(p, count))
    if p == M31:
        drawn = np.frombuffer(stream, dtype="<u4").astype(np.int64)
        drawn &= M31
        values, spare = drawn[:count], drawn[count:][drawn[count:] != M31]
        bad = np.flatnonzero(values == M31)  # probability 2^-31 each
        if len(bad) > len(spare):
            raise RuntimeError("ran out of spare random draws (probability below 2^-900)")
        values[bad] = spare[:len(bad)]
        return values
    if p < SMALL:
        raise ValueError("of the fields below 2^31 only 2^31 - 1 is supported")
    words = (p.bit_length() + 64 + 63) // 64
    raw = np.frombuffer(stream[:8 * words * count], dtype=np.uint64).reshape(words, count)
    value = raw[0].astype(object)
    for w in raw[1:]:
        value = (value << 64) | w.astype(object)
    return value % p


def stream_bytes(p: int, count: int) -> int:
    """The random bytes ``uniform`` needs for count values (M31: 32 spare draws)."""
    if p == M31:
        return 4 * (count + 32)
    return 8 * ((p.bit_length() + 64 + 63) // 64) * count


def combine(coefficients, rows: np.ndarray, p: int) -> np.ndarray:
    """Σ cⱼ·rows[j] mod p, reduced term by term (no int64 overflow for M31), in place."""
    total = None
    for c, row in zip(coefficients, rows):
        term = row * int(c)
        term %= p
        if total is None:
            total = term
        else:
            total += term
    total %= p
    return total


def dot(x: np.ndarray, y: np.ndarray, p: int) -> int:
    """Σ xᵢ·yᵢ mod p (term by term reduced: no int64 overflow for M31 below 2^32 terms)."""
    return int((x * y % p).sum()) % p


# GF(p²) = GF(p)[i]/(i² + 1) for p = M31 (p ≡ 3 mod 4: −1 is no square), where M31's batch
# check draws its coins: an element is a pair (re, im) along the first axis; an array without
# that axis is real.

def ext_mul(x, y, p: int) -> tuple[int, int]:
    """x·y for two elements of GF(p²) (pairs of integers)."""
    x0, x1, y0, y1 = int(x[0]), int(x[1]), int(y[0]), int(y[1])
    return (x0 * y0 - x1 * y1) % p, (x0 * y1 + x1 * y0) % p


def ext_scale(x: np.ndarray, r, p: int) -> np.ndarray:
    """r·x for a vector x over GF(p²) or GF(p) and r in GF(p²): a pair of int64 vectors."""
    r0, r1 = int(r[0]), int(r[1])
    out = np.empty((2,) + x.shape[-1:], dtype=np.int64)
    if x.ndim == 1:
        np.multiply(x, r0, out=out[0])
        np.multiply(x, r1, out=out[1])
    else:  # each product below 2^62, their sum or difference within int64
        np.multiply(x[0], r0, out=out[0])
        out[0] -= x[1] * r1
        np.multiply(x[0], r1, out=out[1])
        out[1] += x[1] * r0
    out %= p
    return out


def ext_dot(x: np.ndarray, y: np.ndarray, p: int) -> tuple[int, int]:
    """Σ xᵢ·yᵢ for x a vector over GF(p²), y one over GF(p²) or GF(p) (below 2^31 terms;
    entries below p, or below 2p as uint64)."""
    if y.ndim == 1:
        sums = (x * y % p).sum(axis=-1)
        return int(sums[0]) % p, int(sums[1]) % p
    sums = [[int(s) for s in row] for row in (x[:, None] * y[None] % p).sum(axis=-1)]
    return (sums[0][0] - sums[1][1]) % p, (sums[0][1] + sums[1][0]) % p


def _halves(x: np.ndarray, half: int, start: int, end: int, p: int):
    """Terms start..end of x's lower half (its first ``half``) and their differences to the
    upper half's, plus p: in (0, 2p), uint64 (a zero term past the end of an odd count)."""
    low, high = x[..., start:end], x[..., half + start:half + end]
    if high.shape[-1] < end - start:
        high = np.concatenate([high, np.zeros(low.shape[:-1] + (1,), dtype=x.dtype)], axis=-1)
    d = high - low
    d += p
    return low, d.view(np.uint64)


def _line(x: np.ndarray, d: np.ndarray, r, p: int) -> np.ndarray:
    """x + r·(d − p) for r in GF(p²), x in [0, p) and d in (0, 2p) (``_halves``), both over
    GF(p) or both over GF(p²): a pair of vectors, computed in uint64 below 2^64 and reduced
    once (−r1 as p − r1)."""
    r0, r1 = np.uint64(int(r[0])), np.uint64(int(r[1]))
    out = np.empty((2,) + d.shape[-1:], dtype=np.uint64)
    if d.ndim == 1:
        np.multiply(d, r0, out=out[0])
        out[0] += x.view(np.uint64)
        np.multiply(d, r1, out=out[1])
    else:
        np.multiply(d[0], r0, out=out[0])
        out[0] += d[1] * np.uint64(p - int(r1))
        out[0] += x[0].view(np.uint64)
        np.multiply(d[0], r1, out=out[1])
        out[1] += d[1] * r0
        out[1] += x[1].view(np.uint64)
    out %= np.uint64(p)
    return out


class Checked:
    """A checked Shamir session over Z_p among ``rt``'s parties, party j holding its shares at
    ``points[j]`` (distinct, nonzero mod p), with the runtime's threshold t."""

    def __init__(self, rt, p: int, points: list[int], names: list[str] | None = None):
        self.rt, self.p = rt, p
        self.names = names or [f"session party {j}" for j in range(len(rt.parties))]
        self.m, self.t, self.me = len(rt.parties), rt.threshold, rt.pid
        if len(points) != self.m:
            raise ValueError("one share point per session party is required")
        if self.m < 2 * self.t + 1:
            raise ValueError(f"{self.m} parties cannot check threshold {self.t}: need 2t+1")
        self.points = [x % p for x in points]
        self.small = p < SMALL
        self.dtype = np.int64 if self.small else object
        self.limbs = -(-p.bit_length() // 64)  # a large field's element: 64-bit limbs
        self.width = 4 if p < SMALL else 8 * self.limbs  # bytes per element on the wire
        # repetitions of a check that passes cheating with 2/p: a large field's batch check,
        # bitwise.check_bits (M31's batch check works in GF(p²) instead)
        self.reps = -(-CHEAT_BITS // (p.bit_length() - 2))
        if self.small and p != M31:
            raise ValueError("of the fields below 2^31 only 2^31 - 1 is supported")
        self.to_zero = lagrange_coefficients(self.points, 0, p)
        self._triples: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._check_material = None  # ρ, the coin seeds and the masks of the next check
        self._in_flight = 0  # products started and not yet awaited (not yet in _triples)

    def array(self, values) -> np.ndarray:
        """``values`` as this field's arrays (int64 below 2^31, else Python ints)."""
        return np.asarray(values, dtype=self.dtype)

    # -- messages --------------------------------------------------------------------------

    def _exchange(self, outgoing: list[bytes]):
        """Start one round: outgoing[j] to party j; the future gives what each sent us."""
        from protocols.mpyc_seam import exchange  # here: a node imports this module for its
        return exchange(self.rt, outgoing)        # checks and never loads MPyC itself

    def _encode(self, values) -> bytes:
        if self.small:
            return np.ravel(values).astype("<u4").tobytes()
        values = np.ravel(np.asarray(values, dtype=object))  # big-endian, limb by limb
        shifts = [64 * (self.limbs - 1 - k) for k in range(self.limbs)]
        limbs = np.stack([((values >> k) & 0xFFFFFFFFFFFFFFFF).astype(np.uint64)
                          for k in shifts], axis=-1) if len(values) else np.zeros(0)
        return limbs.astype(">u8").tobytes()

    def _decode(self, data: bytes | None, count: int, sender: int,
                out: np.ndarray | None = None) -> np.ndarray:
        """The count field elements in ``data`` (into ``out`` if given, a row of an array
        that takes every party's); Deviation naming the sender if they are not."""
        if data is None or len(data) != count * self.width:
            raise Deviation(f"{self.names[sender]} sent {0 if data is None else len(data)} bytes where"
                            f" {count} field elements ({count * self.width} bytes) were due",
                            [sender])
        if self.small:
            values = np.frombuffer(data, dtype="<u4")
        else:
            limbs = np.frombuffer(data, dtype=">u8").reshape(count, self.limbs)
            values = np.zeros(count, dtype=object)
            for k in range(self.limbs):
                values = (values << 64) | limbs[:, k].astype(object)
        if np.any(values >= self.p):
            raise Deviation(f"{self.names[sender]} sent a value outside the field", [sender])
        if out is None:
            return values.astype(self.dtype, copy=False)
        out[...] = values
        return out

    def _send_rows(self, rows: np.ndarray):
        """Start a round that sends rows[j] to party j; the coroutine returns the (m, n) array
        whose row j came from party j (our own row is ours); Deviation for a malformed one."""
        count = rows.shape[1]
        sent = self._exchange([b"" if j == self.me else self._encode(rows[j])
                               for j in range(self.m)])

        async def received():
            got = await sent
            table = np.empty((self.m, count), dtype=self.dtype)
            for j in range(self.m):
                if j == self.me:
                    table[j] = rows[j]
                else:
                    self._decode(got[j], count, j, table[j])
            return table
        return received()

    def _send_all(self, values: np.ndarray):
        """Start a round that sends the same values to every party."""
        return self._send_rows(np.stack([values] * self.m))

    async def broadcast(self, values: np.ndarray) -> list[np.ndarray | None]:
        """Send our values to every party; what each party sent, None where it was malformed
        (for contributions checked one by one, where a bad one is left out, not fatal)."""
        values = self.array(values)
        got = await self._exchange([b"" if j == self.me else self._encode(values)
                                    for j in range(self.m)])
        received = []
        for j in range(self.m):
            try:
                received.append(values if j == self.me else self._decode(got[j], len(values), j))
            except Deviation:
                received.append(None)
        return received

    # -- sharing ---------------------------------------------------------------------------

    def _split(self, values: np.ndarray, degree: int, constant: bool = True) -> np.ndarray:
        """(m, n): shares at the session's points of random degree-``degree`` polynomials
        with these constant terms (``constant`` False: the values are ignored, terms 0)."""
        n, p = len(values), self.p
        shares = np.empty((self.m, n), dtype=self.dtype)
        if not degree:  # (a session of one party)
            shares[:] = values % p if constant else 0
            return shares
        coefficients = uniform(p, degree * n).reshape(degree, n)
        # int64 Horner sums stay below p·degree·x^degree: reduce at the end if that fits
        wide = self.small and p * degree * max(self.points) ** degree >= 1 << 62
        for j, x in enumerate(self.points):  # in place: fresh arrays cost page faults
            acc = coefficients[degree - 1] * x
            for k in range(degree - 2, -1, -1):
                acc += coefficients[k]
                acc *= x
                if wide:
                    acc %= p
            if constant:
                acc += values
            np.remainder(acc, p, out=shares[j])
        return shares

    def deal(self, values: np.ndarray):
        """Start dealing degree-t sharings of our ``values`` (every party deals as many);
        the coroutine returns (m, n): row j our shares of party j's values."""
        return self._send_rows(self._split(self.array(values), self.t))

    def deal_random(self, n: int):
        """Start making n shared random values (the sum of one dealt by each party: uniform
        and unknown to any t parties if one dealer is honest); the coroutine returns our
        shares."""
        dealt = self.deal(uniform(self.p, n))

        async def total():
            return (await dealt).sum(axis=0) % self.p
        return total()

    def deal_zero(self, n: int, degree: int):
        """Start making n shared zeros of ``degree`` (each party deals a random sharing of 0
        of that degree): masks that leave nothing of a degree-2t sharing but its value."""
        dealt = self._send_rows(self._split(np.zeros(n, dtype=self.dtype), degree,
                                            constant=False))

        async def total():
            return (await dealt).sum(axis=0) % self.p
        return total()

    # -- arithmetic ------------------------------------------------------------------------

    def mul(self, a: np.ndarray, b: np.ndarray, checked: bool = True):
        """Start multiplying (elementwise, broadcast, GRR); the coroutine returns our shares
        of a·b.  ``checked``: the product goes into the next ``verify`` (False only for the
        check's own randomised copies)."""
        a, b = np.broadcast_arrays(self.array(a), self.array(b))
        return self._products(a[None], b[None], checked)

    def inner(self, a: np.ndarray, b: np.ndarray):
        """Start Σⱼ a[j]·b[j] over the first axis (elementwise beyond it, broadcast); the
        coroutine returns our shares.  One re-share for the whole sum, where ``mul`` and a
        sum re-share every term; checked as one product (an inner product)."""
        a, b = np.broadcast_arrays(self.array(a), self.array(b))
        return self._products(a, b, True)

    def _products(self, a: np.ndarray, b: np.ndarray, checked: bool):
        """Σⱼ a[j]·b[j] (a and b of one shape): local products re-shared (GRR); a, b and the
        result are kept for the check (callers never change them: broadcast views)."""
        local = a * b
        local %= self.p
        local = local[0] if len(local) == 1 else local.sum(axis=0) % self.p
        reshared = self._reshare(local.ravel())
        self._in_flight += checked

        async def product():
            c = (await reshared).reshape(local.shape)
            if checked:
                self._triples.append((a, b, c))
                self._in_flight -= 1
            return c
        return product()

    def _reshare(self, local: np.ndarray):
        """Start turning our shares of degree-2t sharings (flat) into degree-t ones: each
        party re-shares its share, each combines what it gets at 0 (GRR)."""
        reshared = self._send_rows(self._split(local, self.t))

        async def shares():
            return combine(self.to_zero, await reshared, self.p)
        return shares()

    def open(self, x: np.ndarray, degree: int | None = None):
        """Start opening (every party sends its share to every party); the coroutine returns
        the values, once all m shares of each lie on one polynomial of ``degree`` (default t).
        A sharing of degree 2t among 2t+1 parties has no redundancy: open such values only
        under the batch check (``verify``)."""
        degree = self.t if degree is None else degree
        pending = self._send_all(self.array(x))

        async def values():
            shares = await pending
            base = list(range(degree + 1))
            xs = [self.points[j] for j in base]
            for j in range(degree + 1, self.m):
                at = lagrange_coefficients(xs, self.points[j], self.p)
                if np.any(combine(at, shares[base], self.p) != shares[j]):
                    raise Deviation("the shares of an opened value lie on no polynomial of"
                                    f" degree {degree}: a party sent a wrong share")
            return combine(lagrange_coefficients(xs, 0, self.p), shares[base], self.p)
        return values()

    async def _settled(self) -> None:
        """A round of empty messages, entered once everything this party is to check has
        arrived.  A coin opened after it was unknown to every party until each honest party
        held what the coin binds: t shares and one honest party's open a coin, so without
        it a rushing party withholds what it owes one honest party, learns the coin from
        another's share, and then sends what fits the coin (errors that cancel under α, an
        h that meets the true one at r): its value is fixed only once the last honest party
        has it.  A coin dealt afresh (``deal_random`` then ``open``) needs no such round:
        its dealing is one."""
        await self._exchange([b"" if j == self.me else b"\x01" for j in range(self.m)])

    def prepare_check(self) -> None:
        """Start dealing what the next ``verify`` needs (it depends on no product), unless
        that is under way: called beside a session's round, it saves ``verify`` a round.
        M31: random pairs for the coins and ρ in GF(p²) and a zero pair of degree 2t; else
        ρ and a seed per repetition and a zero of degree 2t each."""
        if self._check_material is None:  # (tasks: one left unused at the end is no error)
            randoms, zeros = (2 * (HALVINGS + 2), 2) if self.small else (2 * self.reps, self.reps)
            self._check_material = (asyncio.ensure_future(self.deal_random(randoms)),
                                    asyncio.ensure_future(self.deal_zero(zeros, 2 * self.t)))

    def record(self, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
        """Keep for the next ``verify`` a product made outside ``mul``: c a degree-t sharing
        of a·b (elementwise, flat arrays), e.g. opened masked and unmasked with public values."""
        self._triples.append((self.array(a)[None], self.array(b)[None], self.array(c)))

    async def verify(self) -> None:
        """Check every product since the last check (module docstring); Deviation if one is
        wrong.  Every product started must have been awaited: one still in flight would
        escape the check."""
        if self._in_flight:
            raise RuntimeError(f"{self._in_flight} checked products are still in flight:"
                               f" await them before the check")
        triples, self._triples = self._triples, []
        if not sum(a.size for a, _, _ in triples):
            return
        if self._check_material is None:
            self.prepare_check()
        randoms, zeros = self._check_material
        self._check_material = None
        await self._settled()  # the products are in at every honest party: now the coins
        if self.small:
            await self._verify_halving(triples, randoms, zeros)
        else:
            await self._verify_copies(triples, randoms, zeros)

    async def _verify_copies(self, triples: list, randoms, zeros) -> None:
        """The check with randomised copies of every product, ``reps`` times with independent
        ρ and α.  Three rounds: shared randomness, the copies with the coin, and T."""
        p, reps = self.p, self.reps
        a = np.concatenate([np.ravel(a) for a, _, _ in triples])
        b = np.concatenate([np.ravel(b) for _, b, _ in triples])
        c = np.concatenate([np.ravel(c) for _, _, c in triples])
        rho_seed = await randoms
        rho, seed = rho_seed[:reps], rho_seed[reps:]
        copies = self.mul(rho[:, None], a[None, :], checked=False)
        coin = self.open(seed)
        rho_a, coin_values = await copies, await coin
        mask = await zeros
        t_shares = []
        for i in range(reps):
            alpha = self.coefficients(int(coin_values[i]), len(c))
            spread, start = [], 0  # the coefficient of each inner product, on its terms
            for x, _, z in triples:
                spread.append(np.broadcast_to(alpha[start:start + z.size].reshape(z.shape),
                                              x.shape).ravel())
                start += z.size
            spread = np.concatenate(spread)
            t_shares.append((dot(spread * rho_a[i] % p, b, p)
                             - int(rho[i]) * dot(alpha, c, p) + int(mask[i])) % p)
        totals = await self.open(self.array(t_shares), degree=2 * self.t)
        if np.any(totals != 0):
            raise Deviation("the multiplication check failed: a party changed a product"
                            " (a re-shared value or a share it held)")

    async def _verify_halving(self, triples: list, randoms, zeros) -> None:
        """M31's check (module docstring): the products become one inner product over GF(p²)
        by a coin α, which coins r halve down to FINAL terms, checked with a randomised copy.
        Rounds: the coin α, two per halving (the re-shared values, then r), the copy and T."""
        p = self.p
        randoms = await randoms
        coins, rho = randoms[:-2].reshape(-1, 2), randoms[-2:]
        seed = await self.open(coins[0])
        u, v, w = self._inner_product(triples, seed)
        for coin in coins[1:]:
            if u.shape[-1] <= FINAL:
                break
            u, v, w = await self._halve(u, v, w, coin)
        if u.shape[-1] > FINAL:
            raise ValueError("too many products for one check: verify more often")
        copy = await self._reshare(ext_scale(u, rho, p).ravel())  # ρ·u, degree t
        rho_w = ext_mul(rho, w, p)
        t_share = ext_dot(copy.reshape(2, -1), v, p)
        mask = await zeros
        totals = await self.open(self.array([(t_share[0] - rho_w[0] + int(mask[0])) % p,
                                             (t_share[1] - rho_w[1] + int(mask[1])) % p]),
                                 degree=2 * self.t)
        if np.any(totals != 0):
            raise Deviation("the multiplication check failed: a party changed a product"
                            " (a re-shared value or a share it held)")

    def _inner_product(self, triples: list, seed: np.ndarray):
        """(u, v, w): claims cₖ = Σⱼ aⱼₖ·bⱼₖ made one, Σ u·v = w, with uⱼₖ = αₖ·aⱼₖ, v = b
        and w = Σ αₖ·cₖ for α in GF(p²) drawn from the opened seed (u a pair of vectors)."""
        p, total = self.p, sum(c.size for _, _, c in triples)
        alpha = self.alpha(seed, total)
        size = sum(a.size for a, _, _ in triples)
        u, v, w = np.empty((2, size), dtype=np.int64), np.empty(size, dtype=np.int64), (0, 0)
        at = start = 0
        for a, b, c in triples:  # in place: no copy of the products but u and v
            coefficient = alpha[:, start:start + c.size]
            np.multiply(coefficient.reshape((2, 1) + c.shape), a,
                        out=u[:, at:at + a.size].reshape((2,) + a.shape, copy=False))
            v[at:at + a.size].reshape(a.shape, copy=False)[...] = b
            term = ext_dot(coefficient, np.ravel(c), p)
            w = ((w[0] + term[0]) % p, (w[1] + term[1]) % p)
            at, start = at + a.size, start + c.size
        u %= p
        return u, v, w

    def alpha(self, seed: np.ndarray, total: int) -> np.ndarray:
        """M31's check: ``total`` coefficients in GF(p²) (a pair of vectors) from an opened
        coin (a pair)."""
        key = hashlib.sha256(b"mpcnet/active/alpha\x00" + seed.astype("<u4").tobytes())
        alpha = uniform(self.p, 2 * total, keystream(stream_bytes(self.p, 2 * total),
                                                     key.digest()))
        return alpha.reshape(2, total)

    async def _halve(self, u: np.ndarray, v: np.ndarray, w, coin: np.ndarray):
        """The claim Σ u·v = w on half as many terms: with f = u₀ + X·(u₁ − u₀) and g alike
        (the lines through the halves), h = Σ f·g has degree 2 and h(0) + h(1) = Σ u·v.  The
        parties re-share h(0) and h's top coefficient Σ (u₁ − u₀)·(v₁ − v₀), which with
        h(1) = w − h(0) fix h, and for an opened r in GF(p²) claim Σ f(r)·g(r) = h(r)."""
        p, half = self.p, (u.shape[-1] + 1) // 2  # an odd count: a zero term (0·0 adds 0)
        blocks = [(s, min(s + BLOCK, half)) for s in range(0, half, BLOCK)]
        local = [0, 0, 0, 0]
        for start, end in blocks:
            (u0, du), (v0, dv) = (_halves(x, half, start, end, p) for x in (u, v))
            terms = ext_dot(u0, v0, p) + ext_dot(du, dv, p)  # dᵤ·d_v ≡ (u₁ − u₀)·(v₁ − v₀)
            local = [(a + b) % p for a, b in zip(local, terms)]
        h0, top = (await self._reshare(np.array(local, dtype=np.int64))).reshape(2, 2)
        await self._settled()
        r = await self.open(coin)  # every honest party holds h: nobody knew r when it chose
        linear = ((w[0] - 2 * int(h0[0]) - int(top[0])) % p,  # h(1) − h(0) − top
                  (w[1] - 2 * int(h0[1]) - int(top[1])) % p)
        at_r = ext_mul(r, ext_mul(top, r, p), p)  # h(r) = h(0) + linear·r + top·r²
        term = ext_mul(linear, r, p)
        w = ((int(h0[0]) + term[0] + at_r[0]) % p, (int(h0[1]) + term[1] + at_r[1]) % p)
        u_next = u[:, :half]  # in place: a block reads only its own terms of either half
        v_next = v[:, :half] if v.ndim == 2 else np.empty((2, half), dtype=np.int64)
        for start, end in blocks:
            (u0, du), (v0, dv) = (_halves(x, half, start, end, p) for x in (u, v))
            u_next[:, start:end] = _line(u0, du, r, p)
            v_next[:, start:end] = _line(v0, dv, r, p)
        return u_next, v_next, w

    def coefficients(self, seed: int, n: int) -> np.ndarray:
        """n public coefficients uniform mod p (within 2^-64), from an opened random seed."""
        xof = hashlib.shake_256(b"mpcnet/active/alpha\x00" + seed.to_bytes(self.width, "big"))
        return uniform(self.p, n, xof.digest(stream_bytes(self.p, n)))

    # -- in the exponent (secp256k1) ---------------------------------------------------------

    def publish(self, shares: np.ndarray):
        """Start publishing s·G for each of our shares s (secp256k1, p = its order); the
        coroutine returns (m, n) coincurve points, row j party j's, once for each value the
        m points lie on one degree-t polynomial in the exponent."""
        shares = np.asarray(shares, dtype=object)
        if any(int(s) % self.p == 0 for s in shares):
            raise Deviation("a share is zero (probability 2^-256 for an honest party): run"
                            " the job again")
        mine = [coincurve.PublicKey.from_secret(int(s).to_bytes(32, "big")) for s in shares]
        n = len(mine)
        sent = self._exchange([b"" if j == self.me else
                               b"".join(q.format(compressed=True) for q in mine)
                               for j in range(self.m)])

        async def points():
            got = await sent
            table = [mine if j == self.me else self._points_from(got[j], n, j)
                     for j in range(self.m)]
            for v in range(n):
                column = [table[j][v] for j in range(self.m)]
                for j in range(self.t + 1, self.m):
                    try:
                        same = self.in_exponent(column[:self.t + 1], self.points[:self.t + 1],
                                                self.points[j]).format() == column[j].format()
                    except ValueError:  # the combination is the point at infinity
                        same = False
                    if not same:
                        raise Deviation("the published points lie on no degree-t polynomial:"
                                        " a party published a wrong commitment to its share")
            return table
        return points()

    def _points_from(self, data: bytes | None, n: int, sender: int) -> list:
        if data is None or len(data) != n * POINT_BYTES:
            raise Deviation(f"{self.names[sender]} sent a malformed list of points", [sender])
        try:
            return [coincurve.PublicKey(data[i:i + POINT_BYTES])
                    for i in range(0, len(data), POINT_BYTES)]
        except (ValueError, TypeError):
            raise Deviation(f"{self.names[sender]} sent a byte string that is no curve point",
                            [sender]) from None

    def in_exponent(self, values: list, xs: list[int], at: int):
        """Σ λⱼ·Vⱼ: the degree-(len(xs)-1) polynomial through (xⱼ, Vⱼ) in the exponent, at
        ``at``."""
        lam = lagrange_coefficients(xs, at, self.p)
        return coincurve.PublicKey.combine_keys(
            [v.multiply(c.to_bytes(32, "big")) for v, c in zip(values, lam) if c])
