"""Shamir arithmetic that a deviating party cannot bend unseen: secure with abort against up
to t actively malicious parties among m >= 2t+1 (honest majority; issue 13).

A ``Checked`` session holds degree-t Shamir shares over a prime field at given share points
(the key's roster points, so stored key shares are used as they are) and offers:

- ``deal``: every party deals sharings of values of its own (random values, zero sharings);
- ``mul``: GRR multiplication (each party re-shares its local degree-2t product), with the
  factors and the product kept for the batch check;
- ``open``: every party sends its share to every party, and each checks that all m shares
  lie on one polynomial of the sharing's degree before it takes the value;
- ``verify``: the batch check of every product since the last check (Chida, Genkin, Hamada,
  Ikarashi, Kikuchi, Lindell and Nof, CRYPTO 2018, with the randomised copies made at the
  check): for a secret random ρ and public random αₖ chosen after all products, the parties
  open T = Σ αₖ·(ρaₖ)·bₖ − ρ·Σ αₖ·cₖ, computed locally as a degree-2t sharing (masked by a
  dealt degree-2t sharing of zero), and require T = 0;
- ``publish``: each party sends s·G for its share s, and each checks that the m points lie on
  one degree-t polynomial "in the exponent".

Why it holds (docs/SECURITY.md, "Active security"): with at least t+1 honest parties, the
honest shares alone fix every sharing, so whatever a deviating party sends turns into an
additive error on a product (GRR is secure up to additive attacks), or a share that lies off
the honest polynomial of an opening or a publication, which every honest party sees.  If some
product carries an error eₖ, T = Σ αₖ·e'ₖ·bₖ − ρ·Σ αₖ·eₖ + e'' for the errors e' of the
copies and e'' of the opening, which is 0 only if Σ αₖ·eₖ = 0 (probability 1/p over α) or ρ
takes one value (1/p: ρ is never opened and no t parties know it): cheating passes one check
with probability at most 2/p, below 2^-250 for the secp256k1 and Ed25519 orders.  In a field
below 2^31 (numpy int64 arithmetic, for bitwise work) the check runs ``reps`` times with
independent ρ and α, enough for 2^-40: twice for 2^31 − 1 (2^-60).

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
CHEAT_BITS = 40   # the batch check lets cheating pass with probability below 2^-CHEAT_BITS


class Deviation(RuntimeError):
    """A party deviated from the protocol: the session stops and releases nothing computed
    after it.  ``culprits`` holds the session indices of the parties identified, when the
    check can tell who it was (an inconsistent opening among 2t+1 parties cannot)."""

    def __init__(self, reason: str, culprits=()):
        super().__init__(reason)
        self.culprits = tuple(sorted(culprits))


def keystream(nbytes: int) -> bytes:
    """nbytes from ChaCha20 under a fresh random key (OpenSSL: GB/s, where os.urandom is a
    system call of a few hundred MB/s; a pricing session draws hundreds of MB)."""
    cipher = Cipher(algorithms.ChaCha20(os.urandom(32), os.urandom(16)), mode=None)
    return cipher.encryptor().update(bytes(nbytes))


def uniform(p: int, count: int, stream: bytes | None = None) -> np.ndarray:
    """count integers uniform in range(p), from ``stream`` (bytes enough: ``stream_bytes``)
    or fresh randomness: for M31 exactly (31-bit draws, the one value p redrawn), int64;
    otherwise each within 2^-64 (64 bits more than p, reduced), Python ints."""
    if stream is None:
        stream = keystream(stream_bytes(p, count)) if p == M31 else \
            os.urandom(stream_bytes(p, count))
    if p == M31:
        drawn = np.frombuffer(stream, dtype="<u4").astype(np.int64) & M31
        values, spare = drawn[:count].copy(), drawn[count:][drawn[count:] != M31]
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
    """Σ cⱼ·rows[j] mod p, reduced term by term (no int64 overflow for M31)."""
    total = 0
    for c, row in zip(coefficients, rows):
        total = total + int(c) * row % p
    return total % p


def dot(x: np.ndarray, y: np.ndarray, p: int) -> int:
    """Σ xᵢ·yᵢ mod p (term by term reduced: no int64 overflow for M31 below 2^32 terms)."""
    return int((x * y % p).sum()) % p


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
        self.reps = -(-CHEAT_BITS // (p.bit_length() - 2))  # 2/p per check
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

    def _decode(self, data: bytes | None, count: int, sender: int) -> np.ndarray:
        if data is None or len(data) != count * self.width:
            raise Deviation(f"{self.names[sender]} sent {0 if data is None else len(data)} bytes where"
                            f" {count} field elements ({count * self.width} bytes) were due",
                            [sender])
        if self.small:
            values = np.frombuffer(data, dtype="<u4").astype(np.int64)
            if np.any(values >= self.p):
                raise Deviation(f"{self.names[sender]} sent a value outside the field",
                                [sender])
            return values
        limbs = np.frombuffer(data, dtype=">u8").reshape(count, self.limbs)
        values = np.zeros(count, dtype=object)
        for k in range(self.limbs):
            values = (values << 64) | limbs[:, k].astype(object)
        if np.any(values >= self.p):
            raise Deviation(f"{self.names[sender]} sent a value outside the field", [sender])
        return values

    def _send_rows(self, rows: np.ndarray):
        """Start a round that sends rows[j] to party j; the coroutine returns the (m, n) array
        whose row j came from party j (our own row is ours); Deviation for a malformed one."""
        count = rows.shape[1]
        sent = self._exchange([b"" if j == self.me else self._encode(rows[j])
                               for j in range(self.m)])

        async def received():
            got = await sent
            return np.stack([rows[j] if j == self.me else self._decode(got[j], count, j)
                             for j in range(self.m)])
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
        coefficients = uniform(p, degree * n).reshape(degree, n) if degree else None
        # int64 Horner sums stay below p·degree·x^degree: reduce at the end if that fits
        wide = self.small and p * degree * max(self.points) ** degree >= 1 << 62
        shares = np.empty((self.m, n), dtype=self.dtype)
        for j, x in enumerate(self.points):
            acc = np.zeros(n, dtype=self.dtype)
            for k in range(degree - 1, -1, -1):
                acc = (acc + coefficients[k]) * x
                if wide:
                    acc = acc % p
            shares[j] = (acc + (values if constant else 0)) % p
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
        """Start multiplying (elementwise, GRR); the coroutine returns our shares of a·b.
        ``checked``: the product goes into the next ``verify`` (False only for the check's
        own randomised copies)."""
        a, b = np.broadcast_arrays(self.array(a), self.array(b))
        shape, a, b = a.shape, a.ravel(), b.ravel()  # kept for the check: callers never
        reshared = self._send_rows(self._split(a * b % self.p, self.t))  # change them
        self._in_flight += checked

        async def product():
            c = combine(self.to_zero, await reshared, self.p)
            if checked:
                self._triples.append((a, b, c))
                self._in_flight -= 1
            return c.reshape(shape)
        return product()

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

    def prepare_check(self) -> None:
        """Start dealing what the next ``verify`` needs (it depends on no product), unless
        that is under way: called beside a session's round, it saves ``verify`` a round."""
        if self._check_material is None:  # (tasks: one left unused at the end is no error)
            self._check_material = (asyncio.ensure_future(self.deal_random(2 * self.reps)),
                                    asyncio.ensure_future(self.deal_zero(self.reps, 2 * self.t)))

    def record(self, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
        """Keep for the next ``verify`` a product made outside ``mul``: c a degree-t sharing
        of a·b (elementwise, flat arrays), e.g. opened masked and unmasked with public values."""
        self._triples.append((self.array(a), self.array(b), self.array(c)))

    async def verify(self) -> None:
        """Check every product since the last check (module docstring), ``reps`` times with
        independent ρ and α; Deviation if one is wrong.  Three rounds: shared randomness, the
        randomised copies with the coin, and the opening of T.  Every product started must
        have been awaited: one still in flight would escape the check."""
        if self._in_flight:
            raise RuntimeError(f"{self._in_flight} checked products are still in flight:"
                               f" await them before the check")
        if not self._triples:
            return
        a = np.concatenate([t[0] for t in self._triples])
        b = np.concatenate([t[1] for t in self._triples])
        c = np.concatenate([t[2] for t in self._triples])
        self._triples = []
        p, reps = self.p, self.reps
        if self._check_material is None:
            self.prepare_check()
        rho_seed, mask = self._check_material
        self._check_material = None
        rho_seed = await rho_seed
        rho, seed = rho_seed[:reps], rho_seed[reps:]
        copies = self.mul(rho[:, None], a[None, :], checked=False)
        coin = self.open(seed)
        rho_a, coin_values = await copies, await coin
        mask = await mask
        t_shares = []
        for i in range(reps):
            alpha = self.coefficients(int(coin_values[i]), len(a))
            t_shares.append((dot(alpha * rho_a[i] % p, b, p)
                             - int(rho[i]) * dot(alpha, c, p) + int(mask[i])) % p)
        totals = await self.open(self.array(t_shares), degree=2 * self.t)
        if np.any(totals != 0):
            raise Deviation("the multiplication check failed: a party changed a product"
                            " (a re-shared value or a share it held)")

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
