"""Test-only protocols on protocols.active, run in real party processes by tests/test_active.py:
honest runs, and runs where one party deviates at a chosen message (a lying engine of its own,
as a patched node would be).  A Deviation is returned as {"deviation": ..., "culprits": ...}
so that the test sees what every party concluded.  A session that deviated cannot end
cleanly (the parties stopped at different messages), so these targets print their result and
leave the process at once (``_done``), as a node's session would stop its links."""

from __future__ import annotations

import asyncio
import functools
import json
import os

from protocols import active, ecdsa_active
from protocols.secp256k1 import N


class LyingSession(active.Checked):
    """A party that changes the last byte of one value (a field element or a curve point) in
    what it sends to every peer in its ``at``-th round."""

    def __init__(self, rt, p, points, at: int, names=None):
        super().__init__(rt, p, points, names)
        self.rounds, self.at = 0, at

    def _exchange(self, outgoing):
        if self.rounds == self.at:
            outgoing = [bytes(o[:-1]) + bytes([(o[-1] + 1) % 256]) if o else o for o in outgoing]
        self.rounds += 1
        return super()._exchange(outgoing)


def _session(rt, liar, at):
    points = list(range(1, len(rt.parties) + 1))
    if liar == rt.pid:
        return LyingSession(rt, N, points, at)
    return active.Checked(rt, N, points)


def _caught(exc: active.Deviation) -> dict:
    return {"deviation": str(exc), "culprits": list(exc.culprits)}


def _done(target):
    """Print the target's result (or that it waited 30 s in vain: a liar whose peers
    stopped) and exit the party process without MPyC's shutdown."""
    @functools.wraps(target)
    async def run(rt, *args):
        try:
            result = await asyncio.wait_for(target(rt, *args), 30)
        except asyncio.TimeoutError:
            result = {"timeout": True}
        print(json.dumps(result), flush=True)
        os._exit(0)
    return run


@_done
async def products(rt, count: int, liar: int | None = None, at: int = -1) -> dict:
    """Shared random a and b, c = a·b checked, then a, b and c opened."""
    s = _session(rt, liar, at)
    try:
        ab = await s.deal_random(2 * count)
        a, b = ab[:count], ab[count:]
        c = await s.mul(a, b)
        await s.verify()
        opened = [await s.open(v) for v in (a, b, c)]
        return {"values": [[int(x) for x in v] for v in opened]}
    except active.Deviation as exc:
        return _caught(exc)


@_done
async def presign_with_lie(rt, share: int, points: list[int], count: int, liar: int,
                           at: int) -> dict:
    """ecdsa_active.presign where party ``liar`` adds an error at its ``at``-th round."""
    original = active.Checked
    if rt.pid == liar:
        ecdsa_active.Checked = lambda rt_, p, pts, names=None: LyingSession(rt_, p, pts, at,
                                                                            names)
    try:
        return {"presignatures": await ecdsa_active.presign(rt, share, points, count)}
    except active.Deviation as exc:
        return _caught(exc)
    finally:
        ecdsa_active.Checked = original


@_done
async def sign_with_bad_share(rt, presignature: dict, public_key: str, digest: str,
                              liars: list[int]) -> dict:
    """ecdsa_active.sign_presigned where the ``liars`` send a wrong signature share."""
    if rt.pid in liars:
        presignature = dict(presignature, kinv=(presignature["kinv"] + 1) % N)
    try:
        return await ecdsa_active.sign_presigned(rt, presignature, public_key, digest,
                                                 names=["alice", "bob", "carol"][:len(rt.parties)])
    except active.Deviation as exc:
        return _caught(exc)
