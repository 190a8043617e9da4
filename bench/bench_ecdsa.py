"""Threshold ECDSA through the whole network path (coordinator → bus → nodes → MPC → verified
result): keygen time, signing latency p50/p95 with and without a presignature, each split
into the vote phase (request published → every vote in), start → every result verified, and
within that the session set-up (slowest party; links are warm after the first job) and the
MPC; CPU per job of the cluster's processes by role (steadier than wall time on a shared
machine); signatures per second back to back; 3 and 5 parties.  Baseline in the same run:
single-key signing with coincurve (libsecp256k1).

    python bench/bench_ecdsa.py [--sigs 50] [--parties 3 5] [--broker URL]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import coincurve
from _cluster import cluster_cpu, cpu_per_job, local_cluster, online_coordinator, pct

from mpc_nodes.jobs.ecdsa import check_signature
from tests.cluster_harness import eth_policy

RECIPIENT = "0x1111111111111111111111111111111111111111"
POLICY = eth_policy(RECIPIENT)  # version 2, as every node requires


def tx(nonce: int) -> dict:
    return {"chainId": 11155111, "nonce": nonce, "to": RECIPIENT, "value": 1, "data": "0x",
            "gas": 21000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9}


def allow_all(cluster_dir):
    for pdir in cluster_dir.glob("party*"):
        (pdir / "policy.yaml").write_text(POLICY)


async def measure(cluster_dir, broker, sigs: int) -> dict:
    async with online_coordinator(cluster_dir, broker) as c:
        keygen = []
        for key_id in ("bench-cold", "bench-key"):  # the first also warms the engines up
            t = time.perf_counter()
            key = await c.run_job("keygen", {"key_id": key_id})
            assert key.ok, key.error
            keygen.append((time.perf_counter() - t,
                           max(t["mpc_s"] for t in key.party_timings.values())))
        nonce, full, full_mpc, online, online_mpc = 0, [], [], [], []
        phases = {"vote": [], "run": [], "connect": [], "online_vote": [], "online_run": []}

        async def sign(**extra):
            nonce_ = extra.pop("nonce")
            o = await c.run_job("sign", {"key_id": "bench-key", "tx": tx(nonce_), **extra},
                                only=extra.get("only_set"))
            assert o.ok and check_signature(o.output) is None, o.error
            return o
        await sign(nonce=nonce)  # warm-up: the first signature imports eth-account on a node
        nonce += 1
        cpu = cluster_cpu()
        for _ in range(sigs):
            o = await sign(nonce=nonce)
            nonce += 1
            full.append(o.timings["total_s"])
            full_mpc.append(max(t["mpc_s"] for t in o.party_timings.values()))
            phases["vote"].append(o.timings["vote_s"])
            phases["run"].append(o.timings["run_s"])
            phases["connect"].append(max(t["connect_s"] for t in o.party_timings.values()))
        phases["cpu"] = cpu_per_job(cpu, cluster_cpu(), sigs)
        pre = await c.run_job("presign", {"key_id": "bench-key", "count": sigs})
        assert pre.ok, pre.error
        cpu = cluster_cpu()
        for pid in pre.output["ids"]:
            o = await c.run_job("sign", {"key_id": "bench-key", "tx": tx(nonce),
                                         "presignature": pid},
                                only=pre.output["binding"].split(","))
            assert o.ok and check_signature(o.output) is None, o.error
            nonce += 1
            online.append(o.timings["total_s"])
            online_mpc.append(max(t["mpc_s"] for t in o.party_timings.values()))
            phases["online_vote"].append(o.timings["vote_s"])
            phases["online_run"].append(o.timings["run_s"])
        phases["online_cpu"] = cpu_per_job(cpu, cluster_cpu(), len(pre.output["ids"]))
        t = time.perf_counter()
        batch = 20
        for _ in range(batch):
            await sign(nonce=nonce)
            nonce += 1
        rate = batch / (time.perf_counter() - t)
    return {"keygen": keygen, "full": full, "full_mpc": full_mpc, "online": online,
            "online_mpc": online_mpc, "rate": rate, **phases}


def baseline(n: int = 2000) -> float:
    key = coincurve.PrivateKey()
    digest = bytes(32)
    t = time.perf_counter()
    for _ in range(n):
        key.sign_recoverable(digest, hasher=None)
    return (time.perf_counter() - t) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sigs", type=int, default=50)
    ap.add_argument("--parties", type=int, nargs="+", default=[3, 5])
    ap.add_argument("--broker", help="external broker URL (default: embedded amqtt with TLS)")
    args = ap.parse_args()
    single = baseline()
    ms = lambda x: f"{1000 * x:7.1f}"  # noqa: E731
    print(f"baseline: coincurve single-key signing {single * 1e6:.1f} us")
    for n in args.parties:
        with local_cluster(n, args.broker, prepare=allow_all) as (cluster_dir, broker):
            r = asyncio.run(measure(cluster_dir, broker, args.sigs))
        print(f"\n{n} parties (t={(n - 1) // 2}), {args.sigs} signatures, via {broker}")
        (cold, cold_mpc), (warm, warm_mpc) = r["keygen"]
        print(f"  keygen, end to end          {ms(warm)} ms (MPC {ms(warm_mpc).strip()} ms);"
              f" first job after start {ms(cold).strip()} ms")
        print(f"{'':30}{'p50 ms':>8} {'p95 ms':>8}")
        for label, xs in (("  sign, end to end", r["full"]),
                          ("    request -> all votes", r["vote"]),
                          ("    start -> all results", r["run"]),
                          ("      session set-up", r["connect"]),
                          ("      MPC", r["full_mpc"]),
                          ("  presigned, end to end", r["online"]),
                          ("    request -> all votes", r["online_vote"]),
                          ("    start -> all results", r["online_run"]),
                          ("      MPC (online)", r["online_mpc"])):
            print(f"{label:30}{ms(pct(xs, .5))} {ms(pct(xs, .95))}")
        for label, cpu in (("sign", r["cpu"]), ("presigned", r["online_cpu"])):
            print(f"  CPU per {label + ' job':16} {1000 * sum(cpu.values()):7.1f} ms ("
                  + ", ".join(f"{role} {1000 * s:.1f}" for role, s in sorted(cpu.items())
                              if s) + ")")
        print(f"  signatures/s back to back   {r['rate']:7.1f}"
              f"   (single key: {1 / single:,.0f}/s, ratio {1 / single / r['rate']:,.0f}x)")
        print(f"  sign p50 / single-key       {pct(r['full'], .5) / single:,.0f}x")


if __name__ == "__main__":
    main()
