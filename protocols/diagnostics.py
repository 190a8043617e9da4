"""Diagnostic protocols: exercise a session without touching private data."""

from __future__ import annotations

MAX_ROUNDS = 100_000


async def rounds(rt, count: int) -> dict:
    """Run `count` sequential secure multiplications, each followed by an opening.

    Every iteration is one communication round, so the session's duration divided by
    `count` is the round latency between the parties (what `mpcnet ping` reports).
    """
    if not 0 < count <= MAX_ROUNDS:
        raise ValueError(f"round count {count} outside 1..{MAX_ROUNDS}")
    secint = rt.SecInt(32)
    x = secint(1)
    for _ in range(count):
        x = x * secint(1)
        await rt.output(x)
    return {"rounds": count, "value": int(await rt.output(x))}
