"""The pricing protocol timed from inside the parties (after a barrier), for bench_scaling:
wall and CPU time of each party, and (``split``) party 0 under cProfile counting CPU time,
grouped by the leaf functions that spend it.  cProfile slows party 0 and so every party:
time a run without the split.  ``checked``: the checked engine (protocols.pricing_active,
which hands the secure evaluation to pricing_secure_active) instead of MPyC's
(protocols.pricing)."""

import cProfile
import pstats
import time
from pathlib import Path

from protocols import pricing, pricing_active

# (group, test on a pstats key (file, line, function)); the first match wins
GROUPS = (
    ("random draws (checked engine: ChaCha20, uniform)",
     lambda f, fn: (f.endswith("active.py") and fn in ("keystream", "uniform"))
     or "create_encryption_ctx" in fn or "CipherContext" in fn),
    ("PRSS (pseudorandom functions)",
     lambda f, fn: f.endswith("thresha.py") or "HASHXOF" in fn or "from_bytes" in fn
     or "numpy.fromiter" in fn or fn in ("_stream", "prss_pieces", "fast_prss_share")),
    ("three-party comparisons in the small field (compare3)",
     lambda f, fn: f.endswith("compare3.py")),
    ("square roots (random bits)",
     lambda f, fn: "powmod" in fn or (f.endswith("finfields.py") and fn == "<lambda>")
     or f.endswith("_function_base_impl.py")),
    ("Shamir dealing (products, inputs, dealt randomness)",
     lambda f, fn: fn in ("np_random_split", "_uniform") or "urandom" in fn or "astype" in fn),
    ("messages (pickle, sockets, event loop)",
     lambda f, fn: "pickle" in fn or "asyncio" in f or "socket" in fn or "bytearray" in fn
     or "asyncoro.py" in f),
    ("field arithmetic", lambda f, fn: f.endswith("finfields.py")),
    ("checked arithmetic (dealing, products, openings, batch check: the checked engine)",
     lambda f, fn: Path(f).name in ("active.py", "fixed_active.py", "bitwise.py")),
)
# the groups that only make randomness, which an offline phase could make ahead: a lower bound
# of the preprocessing share (Shamir dealing also reshares products, so it counts as online)
RANDOMNESS = ("random draws (checked engine: ChaCha20, uniform)",
              "PRSS (pseudorandom functions)", "square roots (random bits)")


def _grouped(profile: cProfile.Profile) -> dict[str, float]:
    totals = {name: 0.0 for name, _ in GROUPS} | {"other": 0.0}
    for (file, _, function), (_, _, tottime, _, _) in pstats.Stats(profile).stats.items():
        group = next((name for name, test in GROUPS if test(file, function)), "other")
        totals[group] += tottime
    return totals


async def profiled(rt, vols, public, split: bool, checked: bool = False):
    price = pricing_active.price if checked else pricing.price
    await rt.barrier()
    profile = cProfile.Profile(time.process_time) if split and rt.pid == 0 else None
    cpu, start = time.process_time(), time.perf_counter()
    if profile:
        profile.enable()
    await price(rt, vols, public)
    if profile:
        profile.disable()
    out = {"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu}
    return out | ({"groups": _grouped(profile)} if profile else {})
