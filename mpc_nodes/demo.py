"""`mpcnet demo`: the whole main job, end to end, on this machine."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import yaml
from rich.table import Table

from .cluster import init_cluster, start_supervisor, wait_for_state
from .coordinator import Coordinator


def _inputs(cluster_dir: Path, name: str) -> list[float]:
    return [yaml.safe_load((d / "inputs.yaml").read_text())[name]
            for d in sorted(cluster_dir.glob("party*"), key=lambda p: int(p.name[5:]))]


async def _jobs(cluster_dir: Path, broker: str, console, err) -> bool:
    async with Coordinator(cluster_dir / "coordinator" / "coordinator.yaml", broker) as c:
        deadline = time.monotonic() + 60
        while len(c.online()) < c.roster.n and time.monotonic() < deadline:
            await c.status(wait=0.2)
        if len(c.online()) < c.roster.n:
            err.print("[red]not every party came online; see party*/node.log[/]")
            return False
        table = Table(title=f"cluster {c.roster.cluster_id}")
        for col in ("party", "state", "mpc address", "code digest"):
            table.add_column(col)
        for p in c.roster.parties:
            pres = c.presence[p.name]
            table.add_row(p.name, f"[green]{pres.state}[/]", f"{p.host}:{p.mpc_port}",
                          pres.code_digest[:16])
        console.print(table)

        ok = True
        for name, method in (("eth_vol_30d", "median"), ("eth_vol_30d", "mean"),
                             ("btc_vol_30d", "median")):
            values = _inputs(cluster_dir, name)
            outcome = await c.run_job("aggregate", {"input": name, "method": method})
            expected = statistics.median(values) if method == "median" else statistics.mean(values)
            if not outcome.ok:
                err.print(f"[red]{method} of {name} failed: {outcome.error}[/]")
                ok = False
                continue
            got = outcome.output["value"]
            match = abs(got - expected) < 1e-6
            ok &= match
            console.print(f"{method:6} of {name}: [bold]{got:.6f}[/] from"
                          f" {len(outcome.participants)} parties in"
                          f" {1000 * outcome.timings['total_s']:.0f} ms"
                          f"  (plaintext check {expected:.6f}: {'ok' if match else 'MISMATCH'})")

        outcome = await c.run_job("aggregate", {"input": "sol_vol_30d", "method": "median"})
        reasons = "; ".join(f"{v.party}: {v.reason}" for v in outcome.votes if not v.accept)
        console.print(f"a job no party can serve is refused, with reasons: [dim]{reasons}[/]")
        ok &= not outcome.ok and bool(reasons)
        return ok


DEMO_RECIPIENT = "0x00000000000000000000000000000000000dEaD1"


def _allow_demo_settlements(cluster_dir: Path) -> None:
    """Each operator's policy for the demo: one recipient on a local devnet chain."""
    for pdir in cluster_dir.glob("party*"):
        (pdir / "policy.yaml").write_text(f"""chain_ids: [31337]
recipients: ["{DEMO_RECIPIENT}"]
allow_plain_transfers: true
max_value_wei: 1000000000000000000
daily_cap_wei: 2000000000000000000
""")


async def _settlement(cluster_dir: Path, broker: str, console, err) -> bool:
    """Distributed key generation, then a settlement transaction signed by the parties."""
    from .cli_keys import check_signature
    async with Coordinator(cluster_dir / "coordinator" / "coordinator.yaml", broker) as c:
        await c.status()
        key = await c.run_job("keygen", {"key_id": "demo-vault"})
        if not key.ok:
            err.print(f"[red]keygen failed: {key.error}[/]")
            return False
        console.print(f"threshold key demo-vault: {key.output['t'] + 1}-of-{key.output['n']},"
                      f" vault address [bold]{key.output['address']}[/] (no party holds the key)")
        tx = {"chainId": 31337, "nonce": 0, "to": DEMO_RECIPIENT, "value": 10**17, "data": "0x",
              "gas": 21000, "maxFeePerGas": 2 * 10**9, "maxPriorityFeePerGas": 10**9}
        signed = await c.run_job("sign", {"key_id": "demo-vault", "tx": tx})
        problem = check_signature(signed.output) if signed.ok else signed.error
        if problem:
            err.print(f"[red]signing failed: {problem}[/]")
            return False
        console.print(f"settlement of 0.1 ETH signed in {1000 * signed.timings['total_s']:.0f} ms:"
                      f" tx {signed.output['hash'][:18]}…, verified by eth-account and"
                      " libsecp256k1")
        replay = await c.run_job("sign", {"key_id": "demo-vault", "tx": tx})
        console.print(f"signing the same nonce again is refused by every party's policy:"
                      f" [dim]{replay.votes[0].reason}[/]")
        return not replay.ok


def run_demo(cluster_dir: Path, parties: int, threshold: int, broker: str | None,
             console, err) -> bool:
    console.rule("mpcnet demo")
    roster = init_cluster(cluster_dir, parties, threshold, broker=broker)
    console.print(f"1. created cluster [bold]{roster.cluster_id}[/]: {parties} parties, threshold"
                  f" {threshold}, CA, identities and TLS certificates in {cluster_dir}")
    values = _inputs(cluster_dir, "eth_vol_30d")
    console.print("2. each operator's private 30-day ETH vol (read here from their own files for"
                  " the demo; in the network they only ever leave as secret shares): "
                  + ", ".join(f"{v:.4f}" for v in values))
    _allow_demo_settlements(cluster_dir)
    pid = start_supervisor(cluster_dir, broker)
    state = wait_for_state(cluster_dir, pid)
    console.print(f"3. started the {'external' if broker else 'embedded TLS'} broker at"
                  f" {state.broker} and {parties} node processes")
    ok = asyncio.run(_jobs(cluster_dir, state.broker, console, err))
    ok = asyncio.run(_settlement(cluster_dir, state.broker, console, err)) and ok
    console.rule("[green]demo passed[/]" if ok else "[red]demo failed[/]")
    return ok
