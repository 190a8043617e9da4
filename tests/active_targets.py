"""Test-only protocols on protocols.active, run in real party processes by tests/test_active.py:
honest runs, and runs where one party deviates at a chosen message (a lying engine of its own,
as a patched node would be).  A Deviation is returned as {"deviation": ..., "culprits": ...}
so that the test sees what every party concluded.  A session that deviated cannot end
cleanly (the parties stopped at different messages), so these targets print their result and
leave the process at once (``_done``), as a node's session would stop its links."""

from __future__ import annotations

import asyncio
import json
import os

from protocols import active, aggregate_active, ecdsa_active
from protocols.secp256k1 import N

NAMES = ["alice", "bob", "carol", "dave", "erin"]


class LyingSession(active.Checked):
    """A party that changes the last byte of one value (a field element or a curve point) in
    what it sends to every peer in its ``at``-th round (counted over the sessions that share
    ``rounds``, a one-element list); with ``error``, it adds that to the last field element
    instead (mod p), so that an error that got through could not pass for a rounding."""

    def __init__(self, rt, p, points, at: int, names=None, rounds: list | None = None,
                 error: int | None = None):
        super().__init__(rt, p, points, names)
        self.rounds, self.at, self.error = rounds if rounds is not None else [0], at, error

    def _exchange(self, outgoing):
        if self.rounds[0] == self.at:
            outgoing = [self._changed(o) if o else o for o in outgoing]
        self.rounds[0] += 1
        return super()._exchange(outgoing)

    def _changed(self, message: bytes) -> bytes:
        if self.error is None or len(message) % self.width:  # (a round's signal: no values)
            return bytes(message[:-1]) + bytes([(message[-1] + 1) % 256])
        values = self._decode(message, len(message) // self.width, self.me)
        values[-1] = (int(values[-1]) + self.error) % self.p  # (int64 in a small field)
        return self._encode(values)


async def _done(rt, liar: int | None, run) -> None:
    """Await ``run`` (a coroutine), print its result, a Deviation as a dict, or that it waited
    in vain (a liar whose peers stopped gives up after 12 s, anyone else after 20 s), and exit
    the party process without MPyC's shutdown."""
    try:
        result = await asyncio.wait_for(run, 12 if rt.pid == liar else 20)
    except active.Deviation as exc:
        result = {"deviation": str(exc), "culprits": list(exc.culprits)}
    except asyncio.TimeoutError:
        result = {"timeout": True}
    print(json.dumps(result), flush=True)
    os._exit(0)


def _lying_if(rt, liar, at, *modules, error: int | None = None):
    """In party ``liar``, make ``modules`` run their sessions as LyingSession, counting rounds
    over all of them."""
    if rt.pid == liar:
        rounds = [0]
        for module in modules:
            module.Checked = lambda rt_, p, pts, names=None: LyingSession(
                rt_, p, pts, at, names, rounds, error)


async def products(rt, count: int, liar: int | None = None, at: int = -1) -> None:
    """Shared random a and b, c = a·b checked, then a, b and c opened."""
    points = list(range(1, len(rt.parties) + 1))
    s = LyingSession(rt, N, points, at) if rt.pid == liar else active.Checked(rt, N, points)

    async def run():
        ab = await s.deal_random(2 * count)
        a, b = ab[:count], ab[count:]
        c = await s.mul(a, b)
        await s.verify()
        opened = [await s.open(v) for v in (a, b, c)]
        return {"values": [[int(x) for x in v] for v in opened]}
    await _done(rt, liar, run())


async def presign_with_lie(rt, share: int, points: list[int], count: int, liar: int,
                           at: int) -> None:
    """ecdsa_active.presign where party ``liar`` changes its ``at``-th round."""
    _lying_if(rt, liar, at, ecdsa_active)

    async def run():
        return {"presignatures": await ecdsa_active.presign(rt, share, points, count)}
    await _done(rt, liar, run())


async def sign_with_bad_share(rt, presignature: dict, public_key: str, digest: str,
                              liars: list[int]) -> None:
    """ecdsa_active.sign_presigned where the ``liars`` send a wrong signature share."""
    if rt.pid in liars:
        presignature = dict(presignature, kinv=(presignature["kinv"] + 1) % N)
    await _done(rt, None, ecdsa_active.sign_presigned(rt, presignature, public_key, digest,
                                                      NAMES[:len(rt.parties)]))


async def aggregate_with_lie(rt, value: float, method: str, liar: int | None = None,
                             at: int = -1, dealt_bit: int | None = None) -> None:
    """aggregate_active.aggregate where party ``liar`` changes its ``at``-th round, or deals
    ``dealt_bit`` as its top input bit (not a bit unless 0 or 1)."""
    if dealt_bit is None:
        _lying_if(rt, liar, at, aggregate_active)
    elif rt.pid == liar:
        class BadBits(active.Checked):
            def deal(self, values):
                values = values.copy()
                values[0] = dealt_bit
                return super().deal(values)
        aggregate_active.Checked = BadBits

    async def run():
        return {"value": await aggregate_active.aggregate(rt, value, method,
                                                          NAMES[:len(rt.parties)])}
    await _done(rt, liar, run())


async def price_with_lie(rt, vols: list, public: dict, liar: int, at: int,
                         error: int | None = None) -> None:
    """pricing_active.price where party ``liar`` changes its ``at``-th round (the secure
    evaluation's sessions included; ``error``: as LyingSession's)."""
    from protocols import pricing_active, pricing_secure_active
    _lying_if(rt, liar, at, pricing_active, pricing_secure_active, error=error)
    await _done(rt, liar, pricing_active.price(rt, vols, public, NAMES[:len(rt.parties)]))


async def count_rounds(rt, target: str, *args) -> int:
    """The rounds party 0 sends in an honest run of ``target`` (protocols.module:function),
    counted over its checked sessions: how far a liar's ``at`` can reach."""
    import importlib
    module_name, function = target.split(":")
    module = importlib.import_module(module_name)
    rounds = [0]
    for name in ("protocols.pricing_active", "protocols.pricing_secure_active"):
        importlib.import_module(name).Checked = \
            lambda rt_, p, pts, names=None: LyingSession(rt_, p, pts, -1, names, rounds)
    await getattr(module, function)(rt, *args)
    return rounds[0]
