"""How aggregate, ECDSA signing and pricing scale with the number of parties (n = 3, 5, 7,
t = (n-1)//2), under each security mode, each with a ratio against the first n in the same
mode and run, and where the time goes.

- end to end: per n a local cluster per mode, side by side (embedded TLS broker, real node
  processes), the jobs alternating between them (bench_security's recording); p50 over N jobs
  after a warm-up, split into the bus (the rest of the job: request, votes, start, results),
  session set-up (the slowest party's links), preprocessing and online MPC (the slowest
  party's MPC): aggregate (median); ECDSA sign; ECDSA sign with a presignature, whose
  preprocessing is a presign job's wall time per presignature (a job of N, at most 100) and
  whose online part is the signing session; price, a book of --e2e-options options with Greeks,
  whose MPC is split (~) by the preprocessing share of party 0's CPU profile below;
- price: MPC throughput of --options options with Greeks (real party processes on loopback,
  time inside the protocol, after a barrier), exact median and secure mean, on the engine a
  price job runs (MPyC's protocols.pricing under semi-honest, except the exact path from
  jobs.pricing.CHECKED_FROM parties; protocols.pricing_active, the checked engine,
  otherwise), with each party's CPU; then a second run with party 0 under cProfile counting
  CPU time, split by the leaf functions that spend it (_profiled_pricing.GROUPS): the groups
  that only make randomness (_profiled_pricing.RANDOMNESS) are the preprocessing, the rest
  online.  The rest of the wall time is spent waiting: for peers' messages, and for the 2
  cores that all n processes share.

    python bench/bench_scaling.py [--parties 3 5 7] [--security semi-honest malicious]
                                  [--jobs 20] [--price-jobs 3] [--options 1000]
                                  [--e2e-options 200] [--broker URL]
"""

from __future__ import annotations

import argparse
import asyncio

import numpy as np
from _cluster import clusters_by_mode, pct
from _profiled_pricing import GROUPS, RANDOMNESS
from bench_pricing import public
from bench_security import (KEY, KINDS, MODES, allow_all, presign_into, price_book, record,
                            run_ok, sides_of)
from bench_targets import PRESIGN_MOST, alternate, in_batches, priced, progress

from tests.mpc_harness import run_parties

from mpc_nodes.jobs.pricing import checked_engine

E2E = ("aggregate", "sign", "presigned sign", "price")


async def end_to_end(clusters: dict, jobs: int, price_jobs: int, m: int) -> dict:
    """Per mode: samples of each E2E kind and of a presign job ("presign", of `jobs`
    presignatures, at most a job's), the modes' jobs alternating."""
    async with sides_of(clusters) as sides:
        job = {"aggregate": KINDS["aggregate median"][1], "sign": KINDS["sign"][1],
               "presigned sign": KINDS["presigned sign"][1], "price": priced(price_book(m))}
        for side in sides:  # warm-up, not measured: engines, links, imports on the nodes
            await run_ok(side, "keygen", lambda s: s.c.run_job("keygen", {"key_id": KEY}))
            await run_ok(side, "presign", lambda s: presign_into(s, 1))
            for kind in E2E:
                await run_ok(side, "warm-up", job[kind] if kind != "price" else
                           priced(price_book(10)))
        count = min(jobs, PRESIGN_MOST)
        for side in sides:  # the presignatures that the presigned signs below use
            await record(side, "presign", lambda s: presign_into(s, count))
            await in_batches(side, "presign", presign_into, jobs - count, PRESIGN_MOST)
        for kind in E2E:
            await alternate(sides, kind, job[kind], price_jobs if kind == "price" else jobs)
        return {side.mode: side.samples | {"presign_count": count} for side in sides}


def price(parties: int, m: int, method: str, checked: bool) -> dict:
    """Options/s and CPU of a run of m options, and party 0's CPU split from a second run."""
    pub, vols = public(m, method)
    rng = np.random.default_rng(7)
    per_party = [list(vols * (1 + rng.uniform(-0.05, 0.05, m))) for _ in range(parties)]
    timed, split = (run_parties("bench._profiled_pricing:profiled",
                                [[v, pub, profile, checked] for v in per_party], timeout=7200)
                    for profile in (False, True))
    wall = max(r["seconds"] for r in timed)
    groups = split[0]["groups"]
    prep = sum(groups[name] for name in RANDOMNESS) / (sum(groups.values()) or 1.0)
    return {"rate": m / wall, "wall": wall, "cpu": timed[0]["cpu"], "checked": checked,
            "cpu_all": sum(r["cpu"] for r in timed), "groups": groups, "prep_share": prep}


def split_row(s: dict, presign: float | None = None, prep_share: float | None = None):
    """(p50 total, bus, set-up, preprocessing, online MPC) in seconds from a kind's samples;
    preprocessing: a presignature's cost, or the share of the MPC that makes randomness."""
    rows = [(w, w - c - m, c, m) for w, c, m in zip(s["wall"], s["connect"], s["mpc"])]
    total, bus, connect, mpc = (pct([r[k] for r in rows], .5) for k in range(4))
    if prep_share is not None:
        return total, bus, connect, mpc * prep_share, mpc * (1 - prep_share)
    return total, bus, connect, presign, mpc


def report(args, e2e: dict, prices: dict) -> None:
    base = args.parties[0]
    ms = lambda x: f"{1000 * x:8.1f}" if x is not None else f"{'-':>8}"  # noqa: E731
    print(f"\nend to end, p50 over {args.jobs} jobs ({args.price_jobs} for price, a book of"
          f" {args.e2e_options:,} options with Greeks), ms; ratio = p50 / p50 at n = {base} in"
          f" the same mode; prep: a presign job per presignature, or ~ the randomness share of"
          f" the MPC (party 0's profile below); CPU: the cluster's per job")
    print(f"{'':26}{'n':>3} {'p50':>8} {'ratio':>6}  {'bus':>8} {'set-up':>8} {'prep':>8}"
          f" {'online':>8} {'CPU ms':>8}")
    for mode in args.security:
        for kind in E2E:
            first = None
            for n in args.parties:
                s = e2e[n][mode][kind]
                presign = (pct(e2e[n][mode]["presign"]["wall"], .5)
                           / e2e[n][mode]["presign_count"] if kind == "presigned sign" else None)
                share = prices[n][mode]["median"]["prep_share"] if kind == "price" else None
                total, bus, connect, prep, online = split_row(s, presign, share)
                first = first or total
                print(f"{mode + ' ' + kind:26}{n:3} {ms(total)} {total / first:5.1f}x "
                      f" {ms(bus)} {ms(connect)} {'~' if share is not None else ' '}"
                      f"{ms(prep)[1:]} {ms(online)} {ms(sum(s['cpu']) / len(s['cpu']))}")

    print(f"\nprice, {args.options:,} options with Greeks, MPC throughput; ratio = time / time"
          f" at n = {base} in the same mode; CPU = party 0's CPU s (prep: the randomness share"
          f" of it, online: the rest), all = every party's")
    print(f"{'':26}{'n':>3} {'engine':>8} {'opt/s':>7} {'ratio':>6} {'wall s':>7} {'CPU s':>6}"
          f" {'prep':>6} {'online':>6} {'all':>6}")
    for mode in args.security:
        for method, label in (("median", "exact median"), ("mean", "secure mean")):
            first = prices[base][mode][method]["wall"]
            for n in args.parties:
                r = prices[n][mode][method]
                print(f"{mode + ' ' + label:26}{n:3} {'checked' if r['checked'] else 'MPyC':>8}"
                      f" {r['rate']:7.1f} {r['wall'] / first:5.1f}x {r['wall']:7.1f}"
                      f" {r['cpu']:6.1f} {r['cpu'] * r['prep_share']:6.2f}"
                      f" {r['cpu'] * (1 - r['prep_share']):6.2f} {r['cpu_all']:6.1f}")

    print("\nwhere party 0's CPU goes (% of its profiled CPU), and the wall time it waits")
    names = [name for name, _ in GROUPS] + ["other"]
    for mode in args.security:
        for method in ("median", "mean"):
            for n in args.parties:
                r = prices[n][mode][method]
                total = sum(r["groups"].values()) or 1.0
                shares = ", ".join(f"{name} {100 * r['groups'][name] / total:.0f}%"
                                   for name in names if r["groups"][name])
                print(f"  {mode} {method:6} n={n}: {shares}; waiting"
                      f" {max(0.0, r['wall'] - r['cpu']):.1f} s of {r['wall']:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parties", type=int, nargs="+", default=[3, 5, 7])
    ap.add_argument("--security", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--jobs", type=int, default=20, help="aggregate and sign jobs per n and mode")
    ap.add_argument("--price-jobs", type=int, default=3, help="price jobs per n and mode")
    ap.add_argument("--options", type=int, default=1000, help="options per pricing run")
    ap.add_argument("--e2e-options", type=int, default=200, help="options per price job")
    ap.add_argument("--broker", help="external broker URL (default: embedded amqtt with TLS)")
    args = ap.parse_args()
    e2e, prices = {}, {}
    for n in args.parties:
        progress(f"n = {n}: clusters ({', '.join(args.security)})")
        with clusters_by_mode(n, args.security, args.broker, allow_all) as clusters:
            e2e[n] = asyncio.run(end_to_end(clusters, args.jobs, args.price_jobs,
                                            args.e2e_options))
        prices[n] = {mode: {} for mode in args.security}
        runs: dict = {}  # (method, engine): the modes that run one engine share its run
        for method in ("median", "mean"):
            for mode in args.security:
                checked = checked_engine(mode, n, method)
                if (method, checked) not in runs:
                    progress(f"n = {n}: price, {method}, protocol alone, engine"
                             f" {'checked' if checked else 'MPyC'}")
                    runs[method, checked] = price(n, args.options, method, checked)
                prices[n][mode][method] = runs[method, checked]
    report(args, e2e, prices)


if __name__ == "__main__":
    main()
