"""The pricing protocol timed from inside the parties (after a barrier), for bench_pricing."""

import time

from protocols.pricing import price


async def timed(rt, vols, public):
    await rt.barrier()
    start, cpu = time.perf_counter(), time.process_time()
    result = await price(rt, vols, public)
    return {"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu,
            "breached": len(result["breached"])}
