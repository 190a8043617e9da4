"""The pricing protocol timed from inside the parties (after a barrier), for bench_pricing."""

import time

from protocols.pricing import price


async def timed(rt, vols, public):
    await rt.barrier()
    start = time.perf_counter()
    result = await price(rt, vols, public)
    return {"seconds": time.perf_counter() - start, "breached": len(result["breached"])}
