"""`mpcnet demo`: the whole main job, end to end, on this machine (its jobs also run against a
cluster already running: `mpcnet demo-jobs`)."""

from __future__ import annotations

import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np
import yaml
from rich.markup import escape
from rich.table import Table

from mpc_nodes.cli.common import common_broker, console, err, styled
from mpc_nodes.client.coordinator import Coordinator
from mpc_nodes.config import SECURITY_MODES
from mpc_nodes.deploy.cluster import (init_cluster, party_dirs, start_supervisor, stop_cluster,
                                      wait_for_state)
from mpc_nodes.errors import UserError
from mpc_nodes.jobs.options_csv import OptionBook
from mpc_nodes.jobs.pricing import price_params
from mpc_nodes.node.volsurface import SurfaceBook
from mpc_nodes.onboarding import NEW_SECURITY


def _inputs(cluster_dir: Path, name: str) -> list[float]:
    """Every party's plaintext input `name`, from the party directories in `cluster_dir`."""
    values = []
    for d in sorted(cluster_dir.glob("party*"), key=lambda p: int(p.name[5:])):
        inputs = yaml.safe_load((d / "inputs.yaml").read_text())
        if name not in inputs:
            raise UserError(f"{d / 'inputs.yaml'} has no input {name!r}")
        values.append(inputs[name])
    return values


async def _jobs(cluster_dir: Path, broker: str, console, err, plaintext: bool = True,
                results: list | None = None) -> bool:
    """The demo's aggregate jobs; with `plaintext`, each checked against the parties' inputs
    in `cluster_dir` (a coordinator that cannot read them leaves the check to its caller,
    to whom `results` reports every value)."""
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
        # one aggregation per private input: a median and a mean of the same values would
        # together reveal them (docs/SECURITY.md, attack 1), so the nodes refuse the second
        for name, method in (("eth_vol_30d", "median"), ("btc_vol_30d", "mean")):
            outcome = await c.run_job("aggregate", {"input": name, "method": method})
            if results is not None:
                results.append({"input": name, "method": method, "ok": outcome.ok,
                                "value": outcome.output["value"] if outcome.ok else None,
                                "error": None if outcome.ok else outcome.error})
            if not outcome.ok:
                err.print(f"[red]{method} of {name} failed: {escape(outcome.error)}[/]")
                ok = False
                continue
            got = outcome.output["value"]
            check = ""
            if plaintext:
                values = _inputs(cluster_dir, name)
                expected = (statistics.median(values) if method == "median"
                            else statistics.mean(values))
                match = abs(got - expected) < 1e-6
                ok &= match
                check = f"  (plaintext check {expected:.6f}: {'ok' if match else 'MISMATCH'})"
            console.print(f"{method:6} of {name}: [bold]{got:.6f}[/] from"
                          f" {len(outcome.participants)} parties in"
                          f" {1000 * outcome.timings['total_s']:.0f} ms{check}")

        outcome = await c.run_job("aggregate", {"input": "eth_vol_30d", "method": "mean"})
        refused = [v for v in outcome.votes if not v.accept]
        console.print("a mean of the same ETH estimates, which with their median would reveal"
                      " them, is refused by every party:"
                      f" [dim]{escape(refused[0].reason) if refused else 'no reason'}[/]")
        ok &= not outcome.ok and len(refused) == c.roster.n

        outcome = await c.run_job("aggregate", {"input": "sol_vol_30d", "method": "median"})
        reasons = "; ".join(f"{v.party}: {v.reason}" for v in outcome.votes if not v.accept)
        console.print("a job no party can serve is refused, with reasons:"
                      f" [dim]{escape(reasons)}[/]")
        ok &= not outcome.ok and bool(reasons)
        if results is not None:
            results.append({"input": "sol_vol_30d", "method": "median", "ok": outcome.ok,
                            "refusals": reasons})
        return ok


DEMO_RECIPIENT = "0x00000000000000000000000000000000000DEaD1"  # EIP-55 checksummed


def _allow_demo_settlements(cluster_dir: Path) -> None:
    """Each operator's policy for the demo: one recipient on a local devnet chain."""
    for pdir in cluster_dir.glob("party*"):
        (pdir / "policy.yaml").write_text(f"""version: 2
chain_ids: [31337]
eth:
  recipients: ["{DEMO_RECIPIENT}"]
  max_fee_wei: 1000000000000000
  max_per_tx_wei: 1000000000000000000
  daily_cap_wei: 2000000000000000000
""")


async def _settlement(cluster_dir: Path, broker: str, console, err) -> bool:
    """Distributed key generation, then a settlement transaction signed by the parties."""
    from mpc_nodes.jobs.ecdsa import check_signature
    async with Coordinator(cluster_dir / "coordinator" / "coordinator.yaml", broker) as c:
        await c.status()
        key = await c.run_job("keygen", {"key_id": "demo-vault"})
        if not key.ok:
            err.print(f"[red]keygen failed: {escape(key.error)}[/]")
            return False
        console.print(f"threshold key demo-vault: {key.output['t'] + 1}-of-{key.output['n']},"
                      f" vault address [bold]{key.output['address']}[/] (no party holds the key)")
        tx = {"chainId": 31337, "nonce": 0, "to": DEMO_RECIPIENT, "value": 10**17, "data": "0x",
              "gas": 21000, "maxFeePerGas": 2 * 10**9, "maxPriorityFeePerGas": 10**9}
        signed = await c.run_job("sign", {"key_id": "demo-vault", "tx": tx})
        problem = check_signature(signed.output) if signed.ok else signed.error
        if problem:
            err.print(f"[red]signing failed: {escape(problem)}[/]")
            return False
        console.print(f"settlement of 0.1 ETH signed in {1000 * signed.timings['total_s']:.0f} ms:"
                      f" tx {signed.output['hash'][:18]}…, verified by eth-account and"
                      " libsecp256k1")
        other = {**tx, "value": 2 * 10**17}  # same nonce, another transaction
        replay = await c.run_job("sign", {"key_id": "demo-vault", "tx": other})
        console.print("another transaction with the same nonce is refused by every party's"
                      f" policy: [dim]{escape(replay.votes[0].reason)}[/]")
        return not replay.ok


DEMO_OPTIONS = OptionBook(is_call=[True, False, True, False],
                          strikes=[3000.0, 2700.0, 3600.0, 2400.0],
                          expiries=[30 / 365, 91 / 365, 0.5, 1.0], quantities=[10, -5, 4, 2])


async def _pricing(cluster_dir: Path, broker: str, console, err) -> bool:
    """Prices from the operators' private surfaces, checked against a plaintext evaluation
    at the median vol, then a price report signed with a FROST key and verified."""
    from protocols.bsm import bsm

    from mpc_nodes.jobs.frost import frost_keygen
    from mpc_nodes.jobs.price_report import verify_signed_report
    from mpc_nodes.jobs.pricing import run_price, sign_report
    book, spot = DEMO_OPTIONS, 3000.0
    vols = np.array([SurfaceBook(d / "data" / "surfaces").get("ETH")
                     .vol(book.strikes, book.expiries, spot) for d in party_dirs(cluster_dir)])
    plain = bsm(book.is_call, spot, book.strikes, book.expiries, 0.03, 0.0,
                np.median(vols, axis=0))["price"]
    params = price_params(book, "ETH", spot, 0.03, greeks=True)
    async with Coordinator(cluster_dir / "coordinator" / "coordinator.yaml", broker) as c:
        await c.status()
        outcome = await run_price(c, params)
        if not outcome.ok:
            err.print(f"[red]pricing failed: {escape(outcome.error)}[/]")
            return False
        got = outcome.output["values"]["price"]
        match = bool(np.allclose(got, plain, rtol=0, atol=1e-6 * spot))
        console.print("ETH options priced at the median of the operators' private surfaces"
                      f" in {1000 * outcome.timings['total_s']:.0f} ms: "
                      + ", ".join(f"{'C' if c_ else 'P'}{k:g} {p:.2f}" for c_, k, p
                                  in zip(book.is_call, book.strikes, got))
                      + f"  (plaintext check: {'ok' if match else 'MISMATCH'})")
        key = await frost_keygen(c, "demo-reports", purpose="reports")
        if not key.ok:
            err.print(f"[red]FROST keygen failed: {escape(key.error)}[/]")
            return False
        signed = await sign_report(c, "demo-reports", params, outcome)
        verify_signed_report(signed, key.output["public_key"])
        console.print(f"price report signed by {', '.join(signed['signers'])} with FROST key"
                      f" {signed['public_key'][:16]}…: Ed25519 signature verified by OpenSSL")
        return match


def run_demo(cluster_dir: Path, parties: int, threshold: int, broker: str | None,
             console, err, security: str = NEW_SECURITY) -> bool:
    console.rule("mpcnet demo")
    roster = init_cluster(cluster_dir, parties, threshold, broker=broker, security=security)
    console.print(f"1. created cluster [bold]{roster.cluster_id}[/]: {parties} parties, threshold"
                  f" {threshold}, security {roster.security}, CA, identities and TLS"
                  f" certificates in {cluster_dir}")
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
    ok = asyncio.run(_pricing(cluster_dir, state.broker, console, err)) and ok
    ok = asyncio.run(_settlement(cluster_dir, state.broker, console, err)) and ok
    from mpc_nodes.cli.demo_chain import chain_step  # (py-evm and vyper: the chain extra)
    ok = asyncio.run(chain_step(cluster_dir, state.broker, console, err)) and ok
    console.rule("[green]demo passed[/]" if ok else "[red]demo failed[/]")
    return ok


@click.command()
@click.option("--parties", "-n", type=int, default=3, show_default=True)
@click.option("--threshold", "-t", type=int, default=1, show_default=True)
@common_broker
@click.option("--security", type=click.Choice(SECURITY_MODES), default=NEW_SECURITY,
              show_default=True, help="the cluster's security mode (docs/OPERATOR.md)")
@click.option("--keep", is_flag=True, help="keep the temporary cluster directory")
def demo(parties, threshold, broker, security, keep):
    """Create a temporary cluster, start it, run joint computations, stop it."""
    workdir = Path(tempfile.mkdtemp(prefix="mpcnet-demo-"))
    try:
        ok = run_demo(workdir / "cluster", parties, threshold, broker, console, err, security)
    except UserError as exc:
        ok = False
        err.print(styled(("error:", "bold red"), " ", str(exc)))
    finally:
        stop_cluster(workdir / "cluster")
        if keep:
            console.print(f"cluster directory kept at {workdir / 'cluster'}", markup=False)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(0 if ok else 1)
