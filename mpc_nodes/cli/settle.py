"""`mpcnet settle`: call the settlement contract in a transaction the network's vault key
signs through every approver's policy, and submit it to a JSON-RPC endpoint."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import click

from mpc_nodes.chain.settlement import GAS, MAX_FEE_PER_GAS, MAX_PRIORITY_FEE_PER_GAS
from mpc_nodes.cli.common import (call, common_broker, common_coord, common_dir, common_json,
                                  console, exits, print_json)
from mpc_nodes.client.results import SignedMark
from mpc_nodes.errors import UsageError
from mpc_nodes.jobs.calldata import SETTLEMENT_FUNCTIONS


def _mark(path: Path) -> SignedMark:
    """A signed mark from `price --sign-eip712 --marks FILE` (one of its list, or one)."""
    doc = json.loads(path.read_text())
    if isinstance(doc, list):
        if len(doc) != 1:
            raise UsageError(f"{path} holds {len(doc)} marks: give a file with one")
        doc = doc[0]
    try:
        return SignedMark(doc["key_id"], doc["signer"], doc["typed_data"],
                          bytes.fromhex(doc["digest"].removeprefix("0x")),
                          bytes.fromhex(doc["signature"].removeprefix("0x")), outcome=None)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise UsageError(f"{path} is not a signed mark: {exc}") from None


def _args(text: str | None) -> dict | None:
    """Arguments as a JSON object; bytes32 values as 0x hex."""
    if text is None:
        return None
    try:
        args = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--args is not JSON: {exc}") from None
    if not isinstance(args, dict):
        raise UsageError("--args is a JSON object of the function's arguments by name")
    return {k: bytes.fromhex(v[2:]) if isinstance(v, str) and len(v) == 66 else v
            for k, v in args.items()}


@click.command()
@common_dir
@click.option("--key", "key_id", required=True, help="the vault's ECDSA key")
@click.option("--contract", required=True, metavar="ADDRESS", help="the OptionSettlement")
@click.option("--function", type=click.Choice(list(SETTLEMENT_FUNCTIONS)), required=True)
@click.option("--args", "args_json", metavar="JSON",
              help='arguments by name, e.g. {"series_id": "0x…", "holder": "0x…",'
              ' "quantity": 2}')
@click.option("--mark", "mark_file", type=click.Path(path_type=Path, exists=True,
                                                     dir_okay=False),
              help="for settle: a signed mark (price --sign-eip712 --marks FILE)")
@click.option("--value", type=int, default=0, show_default=True, help="wei (open_position:"
              " the collateral)")
@click.option("--rpc", metavar="URL", help="JSON-RPC endpoint: chain id and nonce from it,"
              " the signed transaction submitted to it")
@click.option("--chain-id", type=int, help="without --rpc")
@click.option("--nonce", type=int, help="without --rpc")
@click.option("--gas", type=int, default=GAS, show_default=True)
@click.option("--max-fee-per-gas", type=int, default=MAX_FEE_PER_GAS, show_default=True)
@click.option("--max-priority-fee-per-gas", type=int, default=MAX_PRIORITY_FEE_PER_GAS,
              show_default=True)
@common_broker
@common_coord
@common_json
def settle(cluster_dir, key_id, contract, function, args_json, mark_file, value, rpc,
           chain_id, nonce, gas, max_fee_per_gas, max_priority_fee_per_gas, broker,
           coordinator, as_json):
    """Call the settlement contract in a transaction the vault key signs; submit it to --rpc
    (without it, print the signed raw transaction)."""
    with exits(as_json, also=(OSError,)):
        args, mark = _args(args_json), _mark(mark_file) if mark_file else None
    done = call(cluster_dir, coordinator, broker, as_json, lambda net: net.settle(
        key_id, contract, function, args, mark=mark, value=value, rpc=rpc,
        chain_id=chain_id, nonce=nonce, gas=gas, max_fee_per_gas=max_fee_per_gas,
        max_priority_fee_per_gas=max_priority_fee_per_gas))
    outcome = done.transaction.outcome
    if as_json:
        print_json(replace(outcome, output=done.as_dict()).as_dict())
    elif done.submitted:
        console.print(f"{function} sent from {done.transaction.address}: {done.submitted}",
                      markup=False)
    else:
        console.print("0x" + done.transaction.raw.hex(), markup=False)
