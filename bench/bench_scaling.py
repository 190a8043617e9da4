"""How aggregate, ECDSA signing and pricing scale with the number of parties (n = 3, 5, 7,
t = (n-1)//2), each with a ratio against n = 3 measured in the same run, and where the time
goes.

- aggregate (median of the parties' private inputs) and ECDSA sign: end to end through a
  local cluster per n (embedded TLS broker, real node processes), p50 over N jobs after a
  warm-up, split into the bus (votes, results), MPC session set-up (TLS links) and the MPC
  protocol;
- price: MPC throughput of 1,000 options with Greeks (real party processes on loopback, time
  inside the protocol, after a barrier), exact median and secure mean, with each party's
  CPU time; then a second run with party 0 under cProfile counting CPU time, whose CPU is
  split by the leaf functions that spend it.  The rest of the wall time is spent waiting:
  for peers' messages, and for the 2 cores that all n processes share.

    python bench/bench_scaling.py [--parties 3 5 7] [--jobs 20] [--options 1000]
"""

from __future__ import annotations

import argparse
import asyncio

import numpy as np
from _cluster import local_cluster, online_coordinator, pct
from _profiled_pricing import GROUPS
from bench_ecdsa import RECIPIENT, tx
from bench_pricing import public

from tests.cluster_harness import eth_policy
from tests.mpc_harness import run_parties

from mpc_nodes.jobs.ecdsa import check_signature


async def end_to_end(cluster_dir, broker, jobs: int) -> dict:
    """p50 (s) of aggregate and sign jobs: total, bus, session set-up and MPC protocol."""
    async with online_coordinator(cluster_dir, broker) as c:
        key = await c.run_job("keygen", {"key_id": "bench-key"})
        assert key.ok, key.error

        async def run(kind, params):
            await c.run_job(kind, params(-1))  # warm-up
            rows = []
            for i in range(jobs):
                o = await c.run_job(kind, params(i))
                assert o.ok, (o.error, [v.__dict__ for v in o.votes])
                if kind == "sign":
                    assert check_signature(o.output) is None
                connect = max(t["connect_s"] for t in o.party_timings.values())
                mpc = max(t["mpc_s"] for t in o.party_timings.values())
                total = o.timings["total_s"]
                rows.append((total, total - connect - mpc, connect, mpc))
            return [pct([r[k] for r in rows], 0.5) for k in range(4)]
        return {"aggregate": await run("aggregate", lambda i: {"input": "eth_vol_30d"}),
                "sign": await run("sign", lambda i: {"key_id": "bench-key", "tx": tx(i + 1)})}


def allow_transfers(cluster_dir) -> None:
    for pdir in cluster_dir.glob("party*"):
        (pdir / "policy.yaml").write_text(eth_policy(RECIPIENT))


def price(parties: int, m: int, method: str) -> dict:
    """Options/s and CPU of a run of m options, and party 0's CPU split from a second run."""
    pub, vols = public(m, method)
    rng = np.random.default_rng(7)
    per_party = [list(vols * (1 + rng.uniform(-0.05, 0.05, m))) for _ in range(parties)]
    timed, split = (run_parties("bench._profiled_pricing:profiled",
                                [[v, pub, profile] for v in per_party], timeout=7200)
                    for profile in (False, True))
    wall = max(r["seconds"] for r in timed)
    return {"rate": m / wall, "wall": wall, "cpu": timed[0]["cpu"],
            "cpu_all": sum(r["cpu"] for r in timed), "groups": split[0]["groups"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parties", type=int, nargs="+", default=[3, 5, 7])
    ap.add_argument("--jobs", type=int, default=20, help="aggregate and sign jobs per n")
    ap.add_argument("--options", type=int, default=1000, help="options per pricing run")
    args = ap.parse_args()
    e2e, prices = {}, {}
    for n in args.parties:
        with local_cluster(n, prepare=allow_transfers) as (cluster_dir, broker):
            e2e[n] = asyncio.run(end_to_end(cluster_dir, broker, args.jobs))
        prices[n] = {method: price(n, args.options, method) for method in ("median", "mean")}
        print(f"measured n = {n}", flush=True)

    base = args.parties[0]
    ms = lambda x: f"{1000 * x:7.1f}"  # noqa: E731
    print(f"\nend to end, p50 over {args.jobs} jobs (ms); ratio = p50 / p50 at n = {base}")
    print(f"{'':22}{'n':>3} {'p50':>7} {'ratio':>6}   {'bus':>7} {'set-up':>7} {'MPC':>7}")
    for kind in ("aggregate", "sign"):
        for n in args.parties:
            total, bus, connect, mpc = e2e[n][kind]
            print(f"{kind:22}{n:3} {ms(total)} {total / e2e[base][kind][0]:5.1f}x"
                  f"   {ms(bus)} {ms(connect)} {ms(mpc)}")

    print(f"\nprice, {args.options:,} options with Greeks, MPC throughput; ratio = time / time at"
          f" n = {base}; CPU = party 0's CPU s, all = every party's")
    print(f"{'':22}{'n':>3} {'opt/s':>7} {'ratio':>6} {'wall s':>7} {'CPU s':>6} {'all':>6}")
    for method, label in (("median", "exact median"), ("mean", "secure mean")):
        for n in args.parties:
            r = prices[n][method]
            ratio = r["wall"] / prices[base][method]["wall"]
            print(f"{label:22}{n:3} {r['rate']:7.1f} {ratio:5.1f}x {r['wall']:7.1f}"
                  f" {r['cpu']:6.1f} {r['cpu_all']:6.1f}")

    print("\nwhere party 0's CPU goes (% of its profiled CPU), and the wall time it waits")
    names = [name for name, _ in GROUPS] + ["other"]
    for method in ("median", "mean"):
        for n in args.parties:
            r = prices[n][method]
            total = sum(r["groups"].values()) or 1.0
            shares = ", ".join(f"{name} {100 * r['groups'][name] / total:.0f}%" for name in names)
            print(f"  {method:6} n={n}: {shares}; waiting {max(0.0, r['wall'] - r['cpu']):.1f} s"
                  f" of {r['wall']:.1f} s")


if __name__ == "__main__":
    main()
