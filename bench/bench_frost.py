"""FROST(Ed25519) threshold signing through the whole network path (coordinator → bus → nodes,
two rounds → verified signature): keygen time, signing latency p50/p95 with a breakdown per
round and the CPU per signature of the cluster's processes by role; 2-of-3 and 3-of-5.
Beside it, in the same cluster and alternating with it: signing from preprocessed
commitments (one job, frost-sign) and the preprocessing time per commitment.  In the same
run: the in-process round time (commit, sign, share verification and aggregation without
the bus) and single-key Ed25519 signing with PyNaCl.

    python bench/bench_frost.py [--sigs 50] [--broker URL]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time

from _cluster import cluster_cpu, cpu_per_job, local_cluster, online_coordinator, pct
from nacl.signing import SigningKey

from protocols import frost

from mpc_nodes.jobs.frost import MAX_PREPROCESS, frost_keygen, frost_sign, preprocess

SETS = [(3, 1), (5, 2)]  # (parties, t): 2-of-3 and 3-of-5


async def measure(cluster_dir, broker, sigs: int) -> dict:
    async with online_coordinator(cluster_dir, broker) as c:
        keygen = []
        for key_id in ("bench-cold", "bench-key"):  # the first also warms the engines up
            t = time.perf_counter()
            outcome = await frost_keygen(c, key_id)
            assert outcome.ok, outcome.error
            keygen.append(time.perf_counter() - t)
        await frost_sign(c, "bench-key", b"warm-up", pool=False)
        t, left = time.perf_counter(), sigs + 1
        while left:
            made = await preprocess(c, "bench-key", min(left, MAX_PREPROCESS))
            assert made.ok, made.error
            left -= made.output["count"]
        per_commitment = (time.perf_counter() - t) / (sigs + 1)
        assert (await frost_sign(c, "bench-key", b"warm-up"))["preprocessed"]
        rows, pooled, cpu, cpu_pooled = [], [], {}, {}
        for i in range(sigs):  # alternating: the same load on both
            for pool, into, cpu_into in ((False, rows, cpu), (True, pooled, cpu_pooled)):
                before = cluster_cpu()
                r = await frost_sign(c, "bench-key", f"report {i}".encode(), pool=pool)
                assert not r["excluded"] and r["preprocessed"] == pool, r
                into.append(r["timings"])
                for role, s in cpu_per_job(before, cluster_cpu(), sigs).items():
                    cpu_into[role] = cpu_into.get(role, 0.0) + s
    return {"keygen": keygen, "rows": rows, "cpu": cpu, "pooled": pooled,
            "cpu_pooled": cpu_pooled, "per_commitment": per_commitment}


def in_process(parties: int, t: int, rounds: int = 200) -> list[float]:
    """Both rounds and aggregation for t+1 signers in one process, no bus."""
    coeffs = [secrets.randbelow(frost.L) for _ in range(t + 1)]
    shares = {i: (sum(a * i**k for k, a in enumerate(coeffs)) % frost.L).to_bytes(32, "little")
              for i in range(1, parties + 1)}
    vshares = {i: frost.verification_share(s) for i, s in shares.items()}
    pk = frost.group_public_key(vshares, degree=t)
    signers, times = list(range(1, t + 2)), []
    for k in range(rounds):
        msg = f"report {k}".encode()
        t0 = time.perf_counter()
        round_one = {i: frost.commit(i, shares[i]) for i in signers}
        clist = [round_one[i][1] for i in signers]
        z = {i: frost.sign(i, shares[i], pk, round_one[i][0], msg, clist) for i in signers}
        assert all(frost.verify_share(c.identifier, vshares[c.identifier], c, z[c.identifier],
                                      msg, clist, pk) for c in clist)
        frost.aggregate(clist, msg, pk, z)
        times.append(time.perf_counter() - t0)
    return times


def baseline(n: int = 5000) -> float:
    key = SigningKey.generate()
    t = time.perf_counter()
    for i in range(n):
        key.sign(i.to_bytes(8, "big"))
    return (time.perf_counter() - t) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sigs", type=int, default=50)
    ap.add_argument("--broker", help="external broker URL (default: embedded amqtt with TLS)")
    args = ap.parse_args()
    single = baseline()
    ms = lambda x: f"{1000 * x:7.1f}"  # noqa: E731
    print(f"baseline: PyNaCl single-key Ed25519 signing {single * 1e6:.1f} us")
    for n, t in SETS:
        local = in_process(n, t)
        with local_cluster(n, args.broker, threshold=t) as (cluster_dir, broker):
            r = asyncio.run(measure(cluster_dir, broker, args.sigs))
        rows = r["rows"]
        print(f"\n{t + 1}-of-{n}, {args.sigs} signatures, via {broker}")
        print(f"  keygen, end to end          {ms(r['keygen'][1])} ms;"
              f" first job after start {ms(r['keygen'][0]).strip()} ms")
        print(f"{'':30}{'p50 ms':>8} {'p95 ms':>8}")
        for label, xs in (("  sign, end to end", [x["total_s"] for x in rows]),
                          ("    round one (commit job)", [x["frost-commit_s"] for x in rows]),
                          ("    round two (sign job)", [x["frost-sign_s"] for x in rows]),
                          ("    verify shares+aggregate", [x["aggregate_s"] for x in rows]),
                          ("  in process, no bus", local)):
            print(f"{label:30}{ms(pct(xs, .5))} {ms(pct(xs, .95))}")
        pooled = r["pooled"]
        for label, xs in (("  preprocessed, end to end", [x["total_s"] for x in pooled]),
                          ("    the one sign job", [x["frost-sign_s"] for x in pooled]),
                          ("    verify shares+aggregate", [x["aggregate_s"] for x in pooled])):
            print(f"{label:30}{ms(pct(xs, .5))} {ms(pct(xs, .95))}")
        print(f"  preprocessing, per commitment {ms(r['per_commitment']).strip()} ms"
              f" (batches of up to {MAX_PREPROCESS} per party)")
        for label, cpu in (("two rounds", r["cpu"]), ("preprocessed", r["cpu_pooled"])):
            print(f"  CPU per signature, {label:13}{1000 * sum(cpu.values()):7.1f} ms ("
                  + ", ".join(f"{role} {1000 * s:.1f}" for role, s in sorted(cpu.items())
                              if s) + ")")
        p50 = pct([x["total_s"] for x in rows], .5)
        p50_pooled = pct([x["total_s"] for x in pooled], .5)
        print(f"  sign p50 / single-key       {p50 / single:,.0f}x two rounds,"
              f" {p50_pooled / single:,.0f}x preprocessed;"
              f" preprocessed / two rounds {p50_pooled / p50:.2f}")


if __name__ == "__main__":
    main()
