"""Cost of active security (issue 13): every MPC job kind allowed in both modes, run on two
local 3-party clusters (t=1) side by side in one run, one `security: semi-honest` and one
`security: malicious`, the jobs alternating between them (A/B interleaved, the order swapped
each round, so both see the same load).  Per kind: wall time per job p50/p90 (request to
verified result; keygen and refresh: to committed), the slowest party's MPC time, CPU per
job of the cluster's processes (bench/_cluster.cluster_cpu) and of its engines (the MPC), the
ratio malicious / semi-honest and the issue's target beside it.  Pricing likewise, fewer
rounds (each job takes seconds): a book of --options options with Greeks at the median through
the coordinator (as bench_pricing), options/s per mode; the variants (mean, portfolio, reveal
to the coordinator) are requested once each of the malicious cluster, and that they ran (or
why not) printed; the mean (the secure evaluation) is timed as a protocol alone, on
--mean-options options.  Then the protocols alone (no
bus), in 3 real party processes on loopback (tests/mpc_harness), timed inside the parties, to
separate MPC cost from bus cost: protocols.ecdsa against protocols.ecdsa_active, and
protocols.pricing against protocols.pricing_active on the same book and vols (both must
reveal the same rows).  --profile N: instead, cProfile one party
of protocols.pricing_active on N options and print where its CPU goes.

    python bench/bench_security.py [--rounds 20] [--sigs 20] [--price-rounds 3]
                                   [--options 10000] [--mean-options 1000] [--broker URL]
                                   [--json] [--profile N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _cluster, also in a party process

from _cluster import cluster_cpu, clusters_by_mode, online_coordinator, pct  # noqa: E402

from bench_pricing import SPOT, options, public  # noqa: E402

from protocols import ecdsa, ecdsa_active, pricing, pricing_active  # noqa: E402
from tests.cluster_harness import eth_policy  # noqa: E402
from tests.mpc_harness import run_parties  # noqa: E402

from mpc_nodes.jobs.ecdsa import check_signature  # noqa: E402
from mpc_nodes.jobs.frost import frost_keygen  # noqa: E402
from mpc_nodes.jobs.options_csv import OptionBook  # noqa: E402
from mpc_nodes.jobs.pricing import price_params, run_price  # noqa: E402
from mpc_nodes.jobs.registry import kind_for  # noqa: E402

MODES = ("semi-honest", "malicious")
RECIPIENT = "0x1111111111111111111111111111111111111111"
KEY = "bench-key"
# issue 13, "Cost": malicious / semi-honest <= 2x for ECDSA signing and aggregate, <= 3x for
# pricing (10,000 options); keygen and refresh run one protocol in both modes (no target)
TARGETS = {"sign": 2.0, "presign 1": 2.0, "presign 20": 2.0, "presigned sign": 2.0,
           "aggregate median": 2.0, "aggregate mean": 2.0, "price": 3.0}


def tx(nonce: int) -> dict:
    return {"chainId": 11155111, "nonce": nonce, "to": RECIPIENT, "value": 1, "data": "0x",
            "gas": 21000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9}


def allow_all(cluster_dir: Path) -> None:
    for pdir in cluster_dir.glob("party*"):
        (pdir / "policy.yaml").write_text(eth_policy(RECIPIENT))


@dataclass
class Side:
    """One cluster, its coordinator and what its jobs have used up (nonces, key ids, epochs,
    presignatures)."""

    mode: str
    c: object
    root: int  # the supervisor's pid: cluster_cpu of this cluster only
    jobs: int = 0
    epoch: int = 0
    pool: list = field(default_factory=list)  # (presignature id, binding)
    book: dict = field(default_factory=dict)  # price job parameters: the book priced
    samples: dict = field(default_factory=dict)

    def next(self) -> int:
        self.jobs += 1
        return self.jobs


@contextlib.asynccontextmanager
async def sides_of(clusters: dict):
    """A Side per cluster of `clusters` ({mode: (directory, broker URL, supervisor pid)}),
    each with a coordinator connected once every party is online."""
    async with contextlib.AsyncExitStack() as stack:
        yield [Side(mode, await stack.enter_async_context(online_coordinator(*where[:2])),
                    where[2]) for mode, where in clusters.items()]


async def presign_into(side: Side, count: int):
    """A presign job of `count`; its presignatures go to the side's pool."""
    o = await side.c.run_job("presign", {"key_id": KEY, "count": count})
    if o.ok:
        side.pool += [(pid, o.output["binding"].split(",")) for pid in o.output["ids"]]
    return o


async def _presigned(side: Side):
    pid, only = side.pool.pop()
    o = await side.c.run_job("sign", {"key_id": KEY, "tx": tx(side.next()), "presignature": pid},
                             only=only)
    return _signed(o)


def _signed(o):
    if o.ok and (problem := check_signature(o.output)):
        o.ok, o.error = False, problem
    return o


async def _signed_job(side: Side):
    return _signed(await side.c.run_job("sign", {"key_id": KEY, "tx": tx(side.next())}))


async def _refresh(side: Side):
    o = await side.c.run_job("refresh", {"key_id": "bench-refresh", "epoch": side.epoch + 1})
    side.epoch += o.ok
    return o


# label -> (job kind that decides whether the malicious roster allows it, coroutine of a side)
KINDS = {
    "sign": ("sign", _signed_job),
    "presign 1": ("presign", lambda s: presign_into(s, 1)),
    "presign 20": ("presign", lambda s: presign_into(s, 20)),
    "presigned sign": ("sign", _presigned),
    "keygen": ("keygen", lambda s: s.c.run_job("keygen", {"key_id": f"key-{s.next()}"})),
    "keygen FROST": ("keygen", lambda s: frost_keygen(s.c, f"frost-{s.next()}")),
    "refresh": ("refresh", _refresh),
    "aggregate median": ("aggregate", lambda s: s.c.run_job(
        "aggregate", {"input": "eth_vol_30d", "method": "median"})),
    "aggregate mean": ("aggregate", lambda s: s.c.run_job(
        "aggregate", {"input": "btc_vol_30d", "method": "mean"})),  # one input, one method
}
# measured in fewer rounds than KINDS (a job takes seconds)
PRICE = {"price": ("price", lambda s: run_price(s.c, s.book))}
# price variants beyond the median with every output revealed: each requested once of the
# malicious cluster, which would refuse (at the vote) what the checked protocols did not cover
PRICE_VARIANTS = {"mean": {"method": "mean", "underlying": "BTC"},  # (ETH's is the median's)
                  "portfolio": {"portfolio": True},
                 "reveal=coordinator": {"reveal": "coordinator"}}


def price_book(m: int) -> dict:
    """Price job parameters: bench_pricing's book of m options, Greeks, the median."""
    is_call, strikes, expiries, _ = options(m)
    return price_params(OptionBook(is_call, strikes, expiries, [1.0] * m), "ETH", SPOT, 0.03,
                        greeks=True)


async def run_ok(side: Side, label: str, job=None):
    """One job of this kind on this side (or `job(side)`, a coroutine of a JobOutcome, under
    this label); a failed one ends the bench, with its reasons."""
    o = await (job or (KINDS | PRICE)[label][1])(side)
    if not o.ok:
        raise SystemExit(f"{label} under {side.mode} failed: {o.error} ("
                         + "; ".join(f"{v.party}: {v.reason}" for v in o.votes
                                     if not v.accept) + ")")
    return o


async def record(side: Side, label: str, job=None) -> None:
    """Run one job of this kind on this side (or `job`, as `run_ok`) and record its wall time,
    the slowest party's MPC and session set-up time, and the cluster's CPU."""
    before = cluster_cpu(side.root)
    start = time.perf_counter()
    o = await run_ok(side, label, job)
    wall = time.perf_counter() - start
    after = cluster_cpu(side.root)
    s = side.samples.setdefault(label, {"wall": [], "mpc": [], "connect": [], "cpu": [],
                                        "engine_cpu": []})
    s["wall"].append(wall)
    for key in ("mpc", "connect"):  # the slowest party's
        s[key].append(max((t.get(f"{key}_s", 0.0) for t in o.party_timings.values()),
                          default=0.0))
    s["cpu"].append(sum(after.values()) - sum(before.values()))
    s["engine_cpu"].append(after.get("engine", 0.0) - before.get("engine", 0.0))


async def refused_variants(c) -> dict:
    """Each of PRICE_VARIANTS requested once (one option) of a malicious cluster: the reason
    its nodes refuse it (None: it ran)."""
    out = {}
    for label, change in PRICE_VARIANTS.items():
        o = await run_price(c, price_book(1) | change)
        out[label] = None if o.ok else next(
            (v.reason for v in o.votes if not v.accept), o.error)
    return out


async def measure(clusters: dict, rounds: int, price_rounds: int,
                  m: int) -> tuple[dict, dict, dict]:
    """Every kind allowed under both modes, `rounds` jobs per mode, then `price_rounds` price
    jobs of m options per mode, A/B alternating; returns (samples by mode, the kinds refused
    under malicious with why, the price variants refused under malicious with why)."""
    async with sides_of(clusters) as sides:
        malicious = sides[MODES.index("malicious")].c
        skipped = {label: why for label, (kind, _) in (KINDS | PRICE).items()
                   if (why := kind_for(kind).refused_under(malicious.roster))}
        labels = [label for label in KINDS if label not in skipped]
        for side in sides:  # warm-up, not measured: engines, links, imports on the nodes
            side.book = price_book(100)
            for job in ({"key_id": KEY}, {"key_id": "bench-refresh"}):
                o = await side.c.run_job("keygen", job)
                assert o.ok, o.error
            for label in labels + [label for label in PRICE if label not in skipped]:
                await run_ok(side, label)
            side.book = price_book(m)
        for r in range(rounds):
            for label in labels:
                for side in (sides if r % 2 == 0 else sides[::-1]):
                    await record(side, label)
        for r in range(price_rounds if "price" not in skipped else 0):
            for side in (sides if r % 2 == 0 else sides[::-1]):
                await record(side, "price")
        return ({side.mode: side.samples for side in sides}, skipped,
                await refused_variants(malicious))


async def timed_ecdsa(rt, mode: str, share: int, public_key: str, sigs: int) -> dict:
    """Party side of the protocol-alone figures: `sigs` signatures, presignatures of 1 and 20
    and presigned signatures with protocols.ecdsa (semi-honest) or ecdsa_active (malicious),
    each call timed (wall, CPU) from a point every party has reached."""
    proto = ecdsa_active if mode == "malicious" else ecdsa
    points = [p.pid + 1 for p in rt.parties]
    times: dict[str, list] = {}

    async def timed(label, call):
        await rt.transfer(0)  # every party is here
        start, cpu = time.perf_counter(), time.process_time()
        result = await call()
        times.setdefault(label, []).append((time.perf_counter() - start,
                                            time.process_time() - cpu))
        return result
    for i in range(sigs):
        digest = hashlib.sha256(b"bench %d" % i).hexdigest()
        await timed("sign", lambda: proto.sign(rt, share, points, public_key, digest))
        presig = (await timed("presign 1", lambda: proto.presign(rt, share, points, 1)))[0]
        await timed("presigned sign",
                    lambda: proto.sign_presigned(rt, presig, public_key, digest))
    await timed("presign 20", lambda: proto.presign(rt, share, points, 20))
    return times


def protocol_alone(rounds: int, sigs: int) -> dict:
    """Per mode and label: (wall of the slowest party, CPU summed over the parties) per call,
    the modes alternating over `rounds` runs of 3 party processes."""
    keys = run_parties("protocols.ecdsa:keygen", [[] for _ in range(3)], threshold=1)
    out: dict = {mode: {} for mode in MODES}
    for r in range(rounds):
        for mode in (MODES if r % 2 == 0 else MODES[::-1]):
            parties = run_parties("bench.bench_security:timed_ecdsa",
                                  [[mode, k["share"], k["public_key"], sigs] for k in keys],
                                  timeout=600)
            for label in parties[0]:
                calls = zip(*(p[label] for p in parties))  # one call: every party's (wall, cpu)
                out[mode].setdefault(label, []).extend(
                    (max(w for w, _ in call), sum(c for _, c in call)) for call in calls)
    return out


def pricing_inputs(m: int, method: str = "median") -> tuple[dict, list]:
    """The public book (bench_pricing's, Greeks) and 3 parties' vols within 5 %."""
    pub, vols = public(m, method)
    rng = np.random.default_rng(7)
    return pub, [list(vols * (1 + rng.uniform(-0.05, 0.05, m))) for _ in range(3)]


async def timed_price(rt, mode: str, vols: list, public: dict) -> dict:
    """Party side of the protocol-alone pricing: protocols.pricing (semi-honest) or
    pricing_active (malicious) timed (wall, CPU) from a barrier, the party's peak resident
    memory (MB), and a digest of what it revealed (both modes must reveal the same rows)."""
    proto = pricing_active if mode == "malicious" else pricing  # (it hands the mean over)
    await rt.barrier()
    start, cpu = time.perf_counter(), time.process_time()
    result = await proto.price(rt, vols, public)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    revealed = json.dumps([result["breached"], result["rows"]]).encode()
    return {"wall": wall, "cpu": cpu, "digest": hashlib.sha256(revealed).hexdigest()[:16],
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def pricing_alone(rounds: int, m: int, method: str = "median") -> dict:
    """Per mode: one [wall, CPU, peak MB] per party per run, the modes alternating over
    `rounds` runs of 3 party processes pricing the same m options; for the median (exact in
    both modes) a mode that revealed other rows ends the bench."""
    pub, vols = pricing_inputs(m, method)
    out: dict = {mode: [] for mode in MODES}
    digests = set()
    for r in range(rounds):
        for mode in (MODES if r % 2 == 0 else MODES[::-1]):
            parties = run_parties("bench.bench_security:timed_price",
                                  [[mode, v, pub] for v in vols], timeout=3600)
            digests |= {p["digest"] for p in parties}
            out[mode].append([[p["wall"], p["cpu"], p["rss_mb"]] for p in parties])
    if len(digests) > 1 and method == "median":
        raise SystemExit(f"the two pricing protocols revealed different rows: {digests}")
    return out


async def profiled_price(rt, vols: list, public: dict, top: int) -> dict:
    """protocols.pricing_active.price with party 0 under cProfile (CPU time): every party's
    wall and CPU, and party 0's `top` functions by own time and by cumulative time."""
    import cProfile
    import pstats
    await rt.barrier()
    profile = cProfile.Profile(time.process_time) if rt.pid == 0 else None
    start, cpu = time.perf_counter(), time.process_time()
    if profile:
        profile.enable()
    await pricing_active.price(rt, vols, public)
    if profile:
        profile.disable()
    out = {"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu}
    if profile:
        rows = [(f"{Path(f).name}:{line} {fn}", n, own, cum)
                for (f, line, fn), (_, n, own, cum, _) in pstats.Stats(profile).stats.items()]
        out["own"] = sorted(rows, key=lambda r: -r[2])[:top]
        out["cumulative"] = sorted(rows, key=lambda r: -r[3])[:top]
    return out


def profile_report(m: int, top: int = 25) -> None:
    pub, vols = pricing_inputs(m)
    parties = run_parties("bench.bench_security:profiled_price", [[v, pub, top] for v in vols],
                          timeout=3600)
    print(f"protocols.pricing_active, {m:,} options with Greeks, 3 parties, party 0 under"
          f" cProfile (CPU time; it slows every party): wall "
          + ", ".join(f"{p['wall']:.2f}" for p in parties) + " s, CPU "
          + ", ".join(f"{p['cpu']:.2f}" for p in parties) + " s")
    for key, title in (("own", "own time"), ("cumulative", "cumulative time")):
        print(f"\nparty 0, top {top} by {title}:\n{'ncalls':>9}{'own s':>9}{'cum s':>9}  function")
        for name, n, own, cum in parties[0][key]:
            print(f"{n:>9}{own:9.3f}{cum:9.3f}  {name}")


def _price_summary(samples: dict, alone: dict, m: int) -> dict:
    """Options/s per mode end to end (per job: m / wall) and the protocol alone (wall of the
    slowest party, CPU per party), with the ratios."""
    row: dict = {"options": m, "target": TARGETS["price"]}
    for mode in MODES:
        s = samples[mode].get("price")
        runs = alone.get(mode, [])
        walls = [max(w for w, _, _ in run) for run in runs]
        cpus = [c for run in runs for _, c, _ in run]
        row[mode] = {
            "jobs": len(s["wall"]) if s else 0,
            "wall_s": s["wall"] if s else [],
            "rate_p50": m / pct(s["wall"], .5) if s else None,
            "mpc_p50_s": pct(s["mpc"], .5) if s else None,
            "cpu_s": sum(s["cpu"]) / len(s["cpu"]) if s else None,
            "engine_cpu_s": sum(s["engine_cpu"]) / len(s["engine_cpu"]) if s else None,
            "alone_runs": len(runs), "alone_wall_s": walls,
            "alone_wall_p50_s": pct(walls, .5) if walls else None,
            "alone_cpu_per_party_s": sum(cpus) / len(cpus) if cpus else None,
            "alone_peak_mb": max((mb for run in runs for _, _, mb in run), default=None)}
    sh, mal = row["semi-honest"], row["malicious"]
    for key, ratio in (("rate_p50", "ratio_e2e"), ("mpc_p50_s", "ratio_mpc"),
                       ("cpu_s", "ratio_cpu"), ("alone_wall_p50_s", "ratio_alone_wall"),
                       ("alone_cpu_per_party_s", "ratio_alone_cpu"),
                       ("alone_peak_mb", "ratio_alone_peak_mb")):
        if sh[key] and mal[key]:
            row[ratio] = sh[key] / mal[key] if key == "rate_p50" else mal[key] / sh[key]
    return row


def _mean_summary(alone: dict, m: int) -> dict:
    """Options/s of the secure evaluation (the mean) per mode, protocol alone."""
    row: dict = {"options": m}
    for mode in MODES:
        walls = [max(w for w, _, _ in run) for run in alone[mode]]
        cpus = [c for run in alone[mode] for _, c, _ in run]
        row[mode] = {"runs": len(walls), "wall_s": walls, "rate_p50": m / pct(walls, .5),
                     "cpu_per_party_s": sum(cpus) / len(cpus),
                     "peak_mb": max(mb for run in alone[mode] for _, _, mb in run)}
    row["ratio_wall"] = row["semi-honest"]["rate_p50"] / row["malicious"]["rate_p50"]
    row["ratio_cpu"] = row["malicious"]["cpu_per_party_s"] / row["semi-honest"]["cpu_per_party_s"]
    return row


def summary(samples: dict, alone: dict, skipped: dict, price_alone: dict, m: int,
            price_refused: dict) -> dict:
    kinds = {}
    for label in (label for label in samples["semi-honest"] if label not in PRICE):
        row = {}
        for mode in MODES:
            s = samples[mode][label]
            row[mode] = {"jobs": len(s["wall"]), "p50_ms": 1000 * pct(s["wall"], .5),
                         "p90_ms": 1000 * pct(s["wall"], .9),
                         "mpc_p50_ms": 1000 * pct(s["mpc"], .5),
                         "cpu_ms": 1000 * sum(s["cpu"]) / len(s["cpu"]),
                         "engine_cpu_ms": 1000 * sum(s["engine_cpu"]) / len(s["engine_cpu"])}
        row["ratio_p50"] = row["malicious"]["p50_ms"] / row["semi-honest"]["p50_ms"]
        row["ratio_cpu"] = row["malicious"]["cpu_ms"] / row["semi-honest"]["cpu_ms"]
        row["target"] = TARGETS.get(label)
        kinds[label] = row
    protocol = {}
    for label in alone["semi-honest"]:
        row = {}
        for mode in MODES:
            walls = [w for w, _ in alone[mode][label]]
            row[mode] = {"calls": len(walls), "p50_ms": 1000 * pct(walls, .5),
                         "p90_ms": 1000 * pct(walls, .9),
                         "cpu_ms": 1000 * sum(c for _, c in alone[mode][label]) / len(walls)}
        row["ratio_p50"] = row["malicious"]["p50_ms"] / row["semi-honest"]["p50_ms"]
        row["ratio_cpu"] = row["malicious"]["cpu_ms"] / row["semi-honest"]["cpu_ms"]
        row["target"] = TARGETS.get(label)
        protocol[label] = row
    return {"jobs": kinds, "protocol": protocol, "refused": skipped,
            "price": _price_summary(samples, price_alone, m), "price_refused": price_refused}


def report(result: dict) -> None:
    print(f"bench_security {result['date']}, commit {result['commit']}: 3 parties (t=1) per"
          f" cluster, {result['cpus']} CPUs, load average {result['load'][0]:.1f} at start,"
          f" {result['load'][1]:.1f} at end; {result['rounds']} rounds"
          f" ({result['price_rounds']} for price), A/B interleaved")
    head = (f"{'':18}{'semi-honest p50/p90':>20}{'malicious p50/p90':>19}{'ratio':>7}"
            f"{'target':>8}{'CPU ms sh/mal':>15}{'ratio':>7}")
    target = lambda row: f"<={row['target']:g}x" if row["target"] else "-"  # noqa: E731

    def line(label, row, extra=""):
        sh, mal = row["semi-honest"], row["malicious"]
        print(f"{label:18}{sh['p50_ms']:11.1f} /{sh['p90_ms']:6.1f} ms{mal['p50_ms']:9.1f} /"
              f"{mal['p90_ms']:6.1f} ms{row['ratio_p50']:6.2f}x{target(row):>8}"
              f"{sh['cpu_ms']:8.1f} /{mal['cpu_ms']:6.1f}{row['ratio_cpu']:6.2f}x{extra}")
    print(f"\nthrough the network (wall per job, cluster CPU per job; keygen/refresh to"
          f" committed)\n{head}{'  MPC p50 sh/mal, engine CPU sh/mal':>36}")
    for label, row in result["jobs"].items():
        sh, mal = row["semi-honest"], row["malicious"]
        line(label, row, f"   {sh['mpc_p50_ms']:6.1f} /{mal['mpc_p50_ms']:6.1f} ms,"
                         f" {sh['engine_cpu_ms']:6.1f} /{mal['engine_cpu_ms']:6.1f} ms")
    for label, why in result["refused"].items():
        print(f"{label}: refused under malicious ({why})")
    print(f"\nprotocol alone (3 party processes on loopback, no bus; wall of the slowest"
          f" party, CPU summed over the parties, per call)\n{head}")
    for label, row in result["protocol"].items():
        line(label, row)
    price_report(result["price"], result["price_refused"])
    mean = result["price_mean"]
    sh, mal = mean["semi-honest"], mean["malicious"]
    print(f"\nprice, {mean['options']:,} options with Greeks, mean (the secure evaluation), 3"
          f" parties, protocol alone: semi-honest (protocols.pricing) {sh['rate_p50']:,.0f}"
          f" options/s, malicious (protocols.pricing_secure_active) {mal['rate_p50']:,.0f}/s:"
          f" {mean['ratio_wall']:.2f}x wall, {mean['ratio_cpu']:.2f}x CPU per party; peak"
          f" memory {sh['peak_mb']:.0f} / {mal['peak_mb']:.0f} MB")


def price_report(row: dict, refused: dict) -> None:
    sh, mal = row["semi-honest"], row["malicious"]
    ratio = lambda key: f"{row[key]:6.2f}x" if key in row else "     -"  # noqa: E731
    print(f"\nprice, {row['options']:,} options with Greeks, median, 3 parties: malicious"
          f" (protocols.pricing_active) against semi-honest (protocols.pricing), target"
          f" <={row['target']:g}x\n{'':34}{'semi-honest':>13}{'malicious':>13}{'ratio':>8}")
    if sh["jobs"]:
        walls = lambda s: "/".join(f"{w:.1f}" for w in s["wall_s"])  # noqa: E731
        print(f"{'end to end, options/s (p50)':34}{sh['rate_p50']:13,.0f}{mal['rate_p50']:13,.0f}"
              f"{ratio('ratio_e2e')}   jobs: {walls(sh)} s, {walls(mal)} s")
        print(f"{'  MPC of the slowest party, p50 s':34}{sh['mpc_p50_s']:13.2f}"
              f"{mal['mpc_p50_s']:13.2f}{ratio('ratio_mpc')}")
        print(f"{'  cluster CPU per job, s':34}{sh['cpu_s']:13.2f}{mal['cpu_s']:13.2f}"
              f"{ratio('ratio_cpu')}   (engines {sh['engine_cpu_s']:.2f}, "
              f"{mal['engine_cpu_s']:.2f})")
    if sh["alone_runs"]:
        print(f"{'protocol alone: wall p50 s':34}{sh['alone_wall_p50_s']:13.2f}"
              f"{mal['alone_wall_p50_s']:13.2f}{ratio('ratio_alone_wall')}   runs: "
              + "/".join(f"{w:.2f}" for w in sh["alone_wall_s"]) + " s, "
              + "/".join(f"{w:.2f}" for w in mal["alone_wall_s"]) + " s")
        print(f"{'  CPU per party, s':34}{sh['alone_cpu_per_party_s']:13.2f}"
              f"{mal['alone_cpu_per_party_s']:13.2f}{ratio('ratio_alone_cpu')}")
        print(f"{'  peak memory of a party, MB':34}{sh['alone_peak_mb']:13.0f}"
              f"{mal['alone_peak_mb']:13.0f}{ratio('ratio_alone_peak_mb')}")
    for label, why in refused.items():
        print(f"price, {label}: " + (f"refused under malicious ({why})" if why
                                     else "ran under malicious"))


def git_commit() -> str:
    root = Path(__file__).resolve().parent.parent
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--",
                            "protocols", "mpc_nodes", "keyshare"],
                           capture_output=True, text=True).stdout.strip()
    return head + (" + uncommitted changes" if dirty else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20, help="jobs per kind and mode")
    ap.add_argument("--sigs", type=int, default=20,
                    help="signatures per party run of the protocol-alone part (2 runs per mode)")
    ap.add_argument("--price-rounds", type=int, default=3,
                    help="price jobs per mode, and runs per mode of the pricing protocols alone")
    ap.add_argument("--options", type=int, default=10_000, help="options per price job")
    ap.add_argument("--mean-options", type=int, default=1_000,
                    help="options of the mean's protocol-alone runs (its checked path is slow)")
    ap.add_argument("--broker", help="external broker URL (default: embedded amqtt with TLS)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--profile", type=int, metavar="N",
                    help="only profile one party of protocols.pricing_active on N options")
    args = ap.parse_args()
    if args.profile:
        return profile_report(args.profile)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0]
    with clusters_by_mode(3, MODES, args.broker, allow_all) as clusters:
        samples, skipped, price_refused = asyncio.run(
            measure(clusters, args.rounds, args.price_rounds, args.options))
    alone = protocol_alone(2, args.sigs)
    price_alone = pricing_alone(args.price_rounds, args.options)
    mean_alone = pricing_alone(args.price_rounds, args.mean_options, "mean")
    result = {"date": started, "commit": git_commit(), "cpus": os.cpu_count(),
              "load": [load, os.getloadavg()[0]], "rounds": args.rounds,
              "price_rounds": args.price_rounds,
              **summary(samples, alone, skipped, price_alone, args.options, price_refused),
              "price_mean": _mean_summary(mean_alone, args.mean_options)}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        report(result)


if __name__ == "__main__":
    main()
