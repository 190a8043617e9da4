"""The demo's chain step (issue 17) on an in-process EVM: deploy the mark verifier and the
settlement contract with the network's oracle and vault addresses, list a call and a put,
write positions, price, have the network sign each series' mark, settle with transactions
the vault key signs through every operator's policy, and check every balance against
payoffs computed here from the series' terms.  Needs the `chain` extra (make demo has it)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from protocols.domain import EXPIRY_MIN

from mpc_nodes.client import Client, JobFailed
from mpc_nodes.jobs.options_csv import OptionBook

SPOT = 3000
SERIES = [(True, 2800), (False, 2900)]  # a call in the money, a put out of it, at SPOT
CONTRACT_SIZE, CAP, QUANTITY, MAX_MARK_AGE = 10**15, 5 * 10**17, 2, 600
WAD = 10**18


def _policy(local_chain_id: int, verifier: str, settlement: str) -> str:
    """The demo's devnet rules, plus this chain: its settlement contract and marks."""
    from mpc_nodes.cli.demo import DEMO_RECIPIENT
    return f"""version: 2
chain_ids: [31337, {local_chain_id}]
eth:
  recipients: ["{DEMO_RECIPIENT}"]
  max_fee_wei: 10000000000000000
  max_per_tx_wei: 2000000000000000000
  daily_cap_wei: 20000000000000000000
contracts:
  - {{chain_id: {local_chain_id}, address: "{settlement}",
      functions: [list_series, open_position, settle, withdraw]}}
typed_data:
  - {{name: "mpcnet mark", version: "1", chain_id: {local_chain_id},
      verifying_contract: "{verifier}", primary_types: [Mark], keys: [demo-oracle]}}
"""


def payoff(is_call: bool, strike: int, spot: int) -> int:
    """Wei per contract: min(intrinsic value × contract size, cap)."""
    return min(max(spot - strike if is_call else strike - spot, 0) * CONTRACT_SIZE, CAP)


async def chain_step(cluster_dir: Path, broker: str, console, err) -> bool:
    from mpc_nodes.chain import contracts
    from mpc_nodes.chain.evm_local import LocalChain
    try:
        async with Client.connect(cluster_dir, broker) as net:
            oracle = (await net.keygen(key_id="demo-oracle")).address
            vault = (await net.keygen(key_id="demo-chain-vault")).address
            chain = LocalChain()
            deployer, holders = chain.accounts[0], chain.accounts[1:1 + len(SERIES)]
            verifier = chain.deploy(contracts.load("OracleMarkVerifier"), oracle,
                                    sender=deployer)
            settlement = chain.deploy(contracts.load("OptionSettlement"), verifier.address,
                                      vault, MAX_MARK_AGE, sender=deployer)
            chain.transfer(deployer, vault, 10 * WAD)
            for party in sorted(cluster_dir.glob("party*")):
                (party / "policy.yaml").write_text(_policy(chain.chain_id, verifier.address,
                                                           settlement.address))
            console.print(f"on an in-process EVM (py-evm, chain {chain.chain_id}): verifier"
                          f" with oracle {oracle}, settlement contract with vault {vault}"
                          " (both threshold keys)")

            async def vault_call(function, args=None, **options):
                done = await net.settle("demo-chain-vault", settlement.address, function,
                                        args, rpc=chain, **options)
                return chain.receipt(done.submitted).fee

            expiry = chain.next_block_time() + 8
            for (is_call, strike), holder in zip(SERIES, holders):
                terms = {"underlying": "ETH", "strike": strike * WAD, "expiry": expiry,
                         "is_call": is_call}
                await vault_call("list_series", terms | {"contract_size": CONTRACT_SIZE,
                                                         "cap": CAP})
                sid = settlement.call("series_id", "ETH", strike * WAD, expiry, is_call)
                await vault_call("open_position", {"series_id": sid, "holder": holder,
                                                   "quantity": QUANTITY},
                                 value=QUANTITY * CAP)
            console.print(f"the vault (network-signed transactions) listed {len(SERIES)}"
                          f" series and wrote {QUANTITY} contracts of each; waiting for expiry")
            await asyncio.sleep(max(0.0, expiry - time.time()))
            book = OptionBook(is_call=[c for c, _ in SERIES],
                              strikes=[float(k) for _, k in SERIES],
                              expiries=[EXPIRY_MIN] * len(SERIES), quantities=None)
            priced = await net.price(book, "ETH", SPOT, 0.03, sign_eip712="demo-oracle",
                                     chain_id=chain.chain_id,
                                     verifying_contract=verifier.address,
                                     series=[{"strike": k * WAD, "expiry": expiry,
                                              "is_call": c} for c, k in SERIES])
            console.print(f"{len(priced.marks)} EIP-712 marks threshold-signed by the oracle"
                          f" key (job {priced.outcome.job_id[:8]}), each rebuilt by every"
                          " signer from its own record")
            chain.set_next_block_time(max(chain.next_block_time(),
                                          priced.marks[0].typed_data["message"]
                                          ["valuation_time"] + 5))
            before = {h: chain.balance(h) for h in holders}
            for mark in priced.marks:
                await vault_call("settle", mark=mark)
            table = Table(title="settled on-chain")
            for col in ("series", "holder", "payoff / contract", "credited", "check"):
                table.add_column(col, justify="right")
            ok = True
            for (is_call, strike), holder in zip(SERIES, holders):
                owed = QUANTITY * payoff(is_call, strike, SPOT)
                credited = settlement.call("credit", holder)
                fee = settlement.transact("withdraw", sender=holder).fee if credited else 0
                match = credited == owed and chain.balance(holder) == before[holder] + owed - fee
                ok &= match
                table.add_row(f"{'call' if is_call else 'put'} {strike}", holder[:10] + "…",
                              f"{payoff(is_call, strike, SPOT) / WAD:g} ETH",
                              f"{credited / WAD:g} ETH",
                              "ok" if match else "MISMATCH")
            vault_credit = settlement.call("credit", vault)
            expected = sum(QUANTITY * CAP for _ in SERIES) - sum(
                QUANTITY * payoff(c, k, SPOT) for c, k in SERIES)
            vault_before = chain.balance(vault)
            fee = await vault_call("withdraw")
            ok &= vault_credit == expected and chain.balance(vault) == (vault_before + expected
                                                                        - fee)
            ok &= chain.balance(settlement.address) == 0
            console.print(table)
            console.print(f"the vault withdrew the collateral left, {vault_credit / WAD:g} ETH"
                          f" (expected {expected / WAD:g}); balances checked to the wei against"
                          f" payoffs computed here; the contract holds"
                          f" {chain.balance(settlement.address)} wei")
            return ok
    except JobFailed as exc:
        refusals = "; ".join(f"{v.party}: {v.reason}" for v in exc.outcome.votes
                             if not v.accept)
        err.print(f"[red]chain step failed: {escape(str(exc))}[/] [dim]{escape(refusals)}[/]")
        return False
