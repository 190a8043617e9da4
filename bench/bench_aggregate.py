"""End-to-end latency of an aggregate job: request to verified result, p50/p95 over N jobs,
split into bus, session set-up and MPC time; with the same run's bare MQTT round trip and
plaintext median as baselines.

    python bench/bench_aggregate.py [--jobs 50] [--parties 3] [--broker mqtt://127.0.0.1:1883]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

from _cluster import local_cluster, online_coordinator, pct

from mpc_nodes.config import load_roster
from mpc_nodes.pki import client_context
from mpc_nodes.wire import topics
from mpc_nodes.wire.bus import Bus
from mpc_nodes.wire.client_ids import coordinator_id


async def mqtt_round_trip(url: str, cluster_dir: Path, n: int = 50) -> list[float]:
    """Publish-to-receive time of a small QoS 1 message through the same broker, as the
    coordinator (its certificate and a client id of its own, mpc_nodes.wire.client_ids) on the
    jobs topic, the one topic it may publish to: the nodes drop and audit these messages as
    not signed, which is harmless in this throwaway cluster."""
    got: asyncio.Queue = asyncio.Queue()

    async def handler(topic, payload):
        await got.put(payload)
    cdir = cluster_dir / "coordinator"
    roster = load_roster(cluster_dir / "roster.yaml")
    name = roster.coordinators[0].name
    topic = topics.jobs(roster.cluster_id)
    tls = (client_context(cdir / "tls.crt", cdir / "tls.key",
                          (cdir / "passphrase").read_bytes().strip(), roster.ca_cert)
           if url.startswith("mqtts") else None)
    bus = Bus(url, coordinator_id(roster.cluster_id, name), tls, [topic], handler)
    task = asyncio.ensure_future(bus.run())
    await bus.wait_connected(10)
    times = []
    for i in range(n):
        t = time.perf_counter()
        await bus.publish(topic, b"%d" % i)
        await got.get()
        times.append(time.perf_counter() - t)
    task.cancel()
    return times


async def run(cluster_dir: Path, broker: str, jobs: int) -> None:
    async with online_coordinator(cluster_dir, broker) as c:
        await c.run_job("aggregate", {"input": "eth_vol_30d"})  # warm-up
        totals, votes, runs, connects, mpcs = [], [], [], [], []
        for i in range(jobs):
            o = await c.run_job("aggregate", {"input": "eth_vol_30d"})
            if not o.ok:
                raise SystemExit(f"job {i} failed: {o.error}")
            totals.append(o.timings["total_s"])
            votes.append(o.timings["vote_s"])
            runs.append(o.timings["run_s"])
            connects.append(max(t["connect_s"] for t in o.party_timings.values()))
            mpcs.append(max(t["mpc_s"] for t in o.party_timings.values()))
        rtt = await mqtt_round_trip(broker, cluster_dir)
    values = [0.5, 0.6, 0.7] * 1000
    t = time.perf_counter()
    for _ in range(100):
        statistics.median(values[: c.roster.n])
    plain = (time.perf_counter() - t) / 100

    ms = lambda x: f"{1000 * x:8.2f}"  # noqa: E731
    print(f"aggregate (median) with {c.roster.n} parties via {broker}, {jobs} jobs")
    print(f"{'':28}{'p50 ms':>8} {'p95 ms':>8}")
    for label, xs in (("end to end", totals), ("  vote phase (bus)", votes),
                      ("  start to results", runs), ("    session set-up (TLS)", connects),
                      ("    MPC protocol", mpcs)):
        print(f"{label:28}{ms(pct(xs, .5))} {ms(pct(xs, .95))}")
    bus_share = [r - cn - m for r, cn, m in zip(runs, connects, mpcs)]
    print(f"{'    bus + node overhead':28}{ms(pct(bus_share, .5))} {ms(pct(bus_share, .95))}")
    print(f"baseline: MQTT round trip p50 {ms(pct(rtt, .5)).strip()} ms; job / RTT ="
          f" {pct(totals, .5) / pct(rtt, .5):.0f}x")
    print(f"baseline: plaintext median {plain * 1e6:.2f} us; job / plaintext ="
          f" {pct(totals, .5) / plain:.0f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=50)
    ap.add_argument("--parties", type=int, default=3)
    ap.add_argument("--broker", help="external broker URL (default: embedded amqtt with TLS)")
    args = ap.parse_args()
    with local_cluster(args.parties, args.broker) as (cluster_dir, broker):
        asyncio.run(run(cluster_dir, broker, args.jobs))


if __name__ == "__main__":
    main()
