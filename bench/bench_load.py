"""The network's own throughput under concurrent coordinators: jobs/s and p50/p95 latency of
ping and aggregate jobs on a local 3-party cluster, from N coordinator tasks in one process,
from the same N spread over several processes, and (--cli) from N `mpcnet` CLI processes,
whose start-up (about a second of CPU each) is what the issue's 1.1 jobs/s measured.

    python bench/bench_load.py [--concurrency 16] [--jobs-per-task 5] [--processes 4] [--cli]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

from _cluster import local_cluster, online_coordinator, pct

from mpc_nodes.client.coordinator import Coordinator

KINDS = {"ping": {"rounds": 5}, "aggregate": {"input": "eth_vol_30d"}}


async def _tasks(cluster_dir: Path, broker: str, kind: str, tasks: int, jobs: int,
                 start_at: float) -> list[tuple[float, float, bool]]:
    """`tasks` coordinators (one bus connection each) in this process, each running `jobs`
    jobs back to back from wall-clock time `start_at`; (start, latency, ok) of each job."""
    config = cluster_dir / "coordinator" / "coordinator.yaml"
    coordinators = [Coordinator(config, broker) for _ in range(tasks)]
    for c in coordinators:
        await c.__aenter__()
    try:
        for c in coordinators:
            while len(c.online()) < c.roster.n:
                await c.status(wait=0.2)
        await asyncio.sleep(max(0.0, start_at - time.time()))

        async def worker(c):
            done = []
            for _ in range(jobs):
                t = time.time()
                o = await c.run_job(kind, KINDS[kind])
                done.append((t, time.time() - t, o.ok))
            return done
        return [x for part in await asyncio.gather(*map(worker, coordinators)) for x in part]
    finally:
        for c in coordinators:
            await c.__aexit__(None, None, None)


def _process(args) -> list[tuple[float, float, bool]]:
    return asyncio.run(_tasks(*args))


def _cli_job(cluster_dir: Path, broker: str, kind: str) -> tuple[float, float, bool]:
    extra = ["ping", "--rounds", "5"] if kind == "ping" else ["aggregate", "--input",
                                                               "eth_vol_30d"]
    t = time.time()
    run = subprocess.run([sys.executable, "-m", "mpc_nodes.cli.app", *extra, "--dir",
                          str(cluster_dir), "--broker", broker, "--json"], capture_output=True)
    return t, time.time() - t, run.returncode == 0


def _summary(label: str, results: list[tuple[float, float, bool]]) -> dict:
    ok = [r for r in results if r[2]]
    span = max(t + d for t, d, _ in results) - min(t for t, _, _ in results)
    lat = [d for _, d, _ in ok]
    return {"mode": label, "jobs": len(results), "failed": len(results) - len(ok),
            "jobs_per_s": len(ok) / span, "p50_s": pct(lat, .5) if lat else float("nan"),
            "p95_s": pct(lat, .95) if lat else float("nan")}


def measure(cluster_dir: Path, broker: str, kind: str, n: int, jobs: int, processes: int,
            cli: bool) -> list[dict]:
    rows = []
    start = time.time() + 2.0
    rows.append(_summary(f"{n} coordinators in 1 process",
                         asyncio.run(_tasks(cluster_dir, broker, kind, n, jobs, start))))
    per = [n // processes + (i < n % processes) for i in range(processes)]
    start = time.time() + 5.0 + processes  # every process connected and waiting by then
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        parts = pool.map(_process, [(cluster_dir, broker, kind, k, jobs, start) for k in per])
    rows.append(_summary(f"{n} coordinators in {processes} processes",
                         [x for part in parts for x in part]))
    if cli:
        async def run_cli():
            async def one():
                return [await asyncio.to_thread(_cli_job, cluster_dir, broker, kind)
                        for _ in range(jobs)]
            return [x for part in await asyncio.gather(*(one() for _ in range(n))) for x in part]
        rows.append(_summary(f"{n} CLI processes (one per job)", asyncio.run(run_cli())))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--jobs-per-task", type=int, default=5)
    ap.add_argument("--processes", type=int, default=4)
    ap.add_argument("--kinds", default="ping,aggregate")
    ap.add_argument("--cli", action="store_true", help="also N concurrent mpcnet CLI calls")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0]
    table = {}
    with local_cluster(3) as (cluster_dir, broker):
        async def warm():
            async with online_coordinator(cluster_dir, broker) as c:
                for kind in KINDS:
                    await c.run_job(kind, KINDS[kind])
        asyncio.run(warm())
        for kind in args.kinds.split(","):
            table[kind] = measure(cluster_dir, broker, kind, args.concurrency,
                                  args.jobs_per_task, args.processes, args.cli)
    if args.json:
        print(json.dumps({"date": started, "cpus": os.cpu_count(), "load": load,
                          "results": table}, indent=2))
        return
    print(f"bench_load {started}: 3 parties, embedded broker, {os.cpu_count()} CPUs,"
          f" load average {load:.1f} at start; {args.jobs_per_task} jobs per coordinator")
    for kind, rows in table.items():
        print(f"\n{kind} {KINDS[kind]}")
        print(f"{'':40}{'jobs/s':>8}{'p50 s':>8}{'p95 s':>8}{'failed':>8}")
        for r in rows:
            print(f"{r['mode']:40}{r['jobs_per_s']:8.2f}{r['p50_s']:8.2f}{r['p95_s']:8.2f}"
                  f"{r['failed']:8d}")
        base = rows[0]["jobs_per_s"]
        for r in rows[1:]:
            print(f"  {r['mode']} / one process = {r['jobs_per_s'] / base:.2f}x throughput")


if __name__ == "__main__":
    main()
