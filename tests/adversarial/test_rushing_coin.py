"""A rushing party that learns the batch check's coin before it has sent all its products.

The attack: three parties (t = 1) multiply checked values over GF(2^31 − 1) as the pricing
engine does, the check's coins dealt ahead (``prepare_check``).  Party 2 sends its
re-share of the products to party 0 only and holds back the one it owes party 1.  Party 0,
whose products are complete, starts the check and sends its share of the coin α; with its
own share party 2 opens α (t + 1 shares).  Only now does it send party 1 its re-share,
changed so that three products carry errors e with Σ αₖ·eₖ = 0 in GF(p²) (a cross product:
three errors in GF(p) cancel two equations), and it moves its own shares to match.  The
honest parties' shares then define products that are wrong by e, and the check, whose
claim is Σ αₖ·(aₖbₖ − cₖ) = 0, passes: before the fix every honest party opened wrong
products.  Now no party sends its share of a coin before a round in which every party says
its products are in (``Checked._settled``): party 0 waits for party 1, which waits for the
held re-share, so party 2 learns nothing before it must send, gives up after a while and
sends it unchanged; every product is right.
"""

import asyncio
import json

import numpy as np
import pytest

from protocols import active
from protocols.mpyc_seam import mpc_coro
from protocols.secp256k1 import N
from protocols.shamir import lagrange_coefficients
from tests.active_targets import _done
from tests.mpc_harness import run_parties

pytestmark = [pytest.mark.heavy, pytest.mark.timeout(120)]

FIELDS = {"M31": active.M31, "secp256k1 order": N}  # the halving check, Chida's check
POINTS = [1, 2, 3]
FIRST, HELD, RUSHER = 0, 1, 2  # party 0 opens the coin first; party 1 waits for party 2
GIVE_UP_S = 3.0


@mpc_coro
async def _exchange(rt, outgoing: list, hold=None, peek=None):
    """mpyc_seam.exchange, except that the message to party HELD is handed to ``hold`` (with
    its round's label) instead of sent, and ``peek`` is called with party FIRST's message as
    soon as it arrives."""
    await rt.returnType(asyncio.Future)
    for pid, data in enumerate(outgoing):
        if pid == HELD and hold is not None:
            hold(rt._program_counter[0], data)
        elif pid != rt.pid:
            rt._send_message(pid, data)
    received = [None if pid == rt.pid else rt._receive_message(pid)
                for pid in range(len(rt.parties))]
    if peek is not None:  # (a message already here is bytes, else a future)
        first = received[FIRST]
        if isinstance(first, asyncio.Future):
            first.add_done_callback(lambda f: peek(f.result()))
        else:
            peek(first)
    return await rt.gather(received)


class Rusher(active.Checked):
    """Party 2: holds back its product re-share to party 1 until it has opened the check's
    first coin from party 0's share, then sends it with errors that cancel under α."""

    stage = "start"  # "product": the next round re-shares the products; "check": verifying
    products = None  # our shares of the products: the very array the check holds
    held = coin_share = None
    struck = False

    @property
    def coin_size(self) -> int:
        """Field elements in a share of the check's first coin: a pair in GF(p²) for M31, a
        seed per repetition (one) in a large field."""
        return 2 if self.small else self.reps

    def _exchange(self, outgoing):
        if self.stage == "product":
            self.stage = "holding"
            asyncio.get_running_loop().call_later(GIVE_UP_S, self._release, [])
            return _exchange(self.rt, outgoing, hold=self._hold)
        if self.stage == "check" and len(outgoing[FIRST]) == self.coin_size * self.width:
            self.stage = "coin"  # the check's first opening of that size: its coin
            self.coin_share = self._decode(outgoing[FIRST], self.coin_size, self.me)
            return _exchange(self.rt, outgoing, peek=self._strike)
        return super()._exchange(outgoing)

    def _hold(self, label, data) -> None:
        self.held = (label, data)

    def _release(self, errors: list) -> None:
        """Send party 1 the held re-share, moved so that the first products become wrong by
        ``errors``.  Party 1's share of product k moves by λ₂·δₖ; the honest parties' line
        (points 1 and 2) then moves by e = −λ₂·δₖ at 0 and by −2e at our point 3."""
        if self.held is None:
            return
        (label, data), self.held = self.held, None
        values = self._decode(data, len(data) // self.width, self.me)
        inverse = pow(int(self.to_zero[RUSHER]), -1, self.p)
        for k, e in enumerate(errors):
            values[k] = (int(values[k]) - e * inverse) % self.p
        self.rt.parties[HELD].protocol.send(label, self._encode(values))

    def _strike(self, first_share: bytes) -> None:
        """Party 0's share of the coin arrived while we hold party 1's re-share: open it,
        pick errors with Σ αₖ·eₖ = 0 (M31: three in GF(p), x × y for α = x + iy; a large
        field: two, (α₁, −α₀)), move our own shares of those products to match, and send."""
        if self.held is None:
            return
        p = self.p
        shares = np.stack([self._decode(first_share, self.coin_size, FIRST), self.coin_share])
        seed = active.combine(lagrange_coefficients([POINTS[FIRST], POINTS[RUSHER]], 0, p),
                              shares, p)
        if self.small:
            x, y = ([int(v) for v in row] for row in self.alpha(seed, len(self.products))[:, :3])
            errors = [(x[(k + 1) % 3] * y[(k + 2) % 3] - x[(k + 2) % 3] * y[(k + 1) % 3]) % p
                      for k in range(3)]
        else:
            alpha = self.coefficients(int(seed[0]), len(self.products))
            errors = [int(alpha[1]), -int(alpha[0]) % p]
        for k, e in enumerate(errors):
            self.products[k] = (int(self.products[k]) - 2 * e) % p
        self.struck = True
        self._release(errors)


async def products(rt, field: str, count: int, rush: bool) -> None:
    """Checked products of dealt random values over ``field`` (FIELDS), the check's material
    dealt ahead as the engines deal it; a, b and c opened.  Party 2 rushes if ``rush``."""
    p = FIELDS[field]
    s = Rusher(rt, p, POINTS) if rush and rt.pid == RUSHER else active.Checked(rt, p, POINTS)

    async def run():
        s.prepare_check()
        ab = await s.deal_random(2 * count)
        a, b = ab[:count], ab[count:]
        rusher = s if isinstance(s, Rusher) else None
        if rusher:
            rusher.stage = "product"
        c = await s.mul(a, b)
        if rusher:
            rusher.stage, rusher.products = "check", c
        await s.verify()
        opened = [await s.open(v) for v in (a, b, c)]
        return {"values": [[int(x) for x in v] for v in opened],
                "struck": bool(getattr(s, "struck", False))}
    await _done(rt, None, run())


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("rush", [False, True])
def test_a_rushing_party_cannot_fit_its_products_to_the_check_coin(field, rush):
    results = run_parties(f"{__name__}:products", [[field, 12, rush] for _ in range(3)])
    assert not results[RUSHER]["struck"], "the rusher opened the coin while it held a re-share"
    for r in results[:RUSHER]:
        a, b, c = r["values"]
        assert c == [x * y % FIELDS[field] for x, y in zip(a, b)], json.dumps(r)
