"""An in-process EVM chain (py-evm through eth-tester) to deploy and call contracts.

For tests, the gas bench and a local demo: funded accounts, a settable clock, calls and
transactions encoded from a contract's ABI, and a revert's reason as an exception a
program can test. Each transaction is mined in a block of its own.

    chain = LocalChain()
    verifier = chain.deploy(contracts.load("OracleMarkVerifier"), oracle, sender=chain.accounts[0])
    verifier.call("ORACLE")
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi import decode, encode
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import TransactionFailed
from eth_utils import (function_abi_to_4byte_selector, get_abi_input_types, get_abi_output_types,
                       to_bytes, to_checksum_address)
from hexbytes import HexBytes

from mpc_nodes.chain.contracts import Compiled

GAS_LIMIT = 10_000_000


class Reverted(Exception):
    """A call or transaction the EVM reverted; `reason` is the contract's message."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Receipt:
    tx_hash: str
    gas_used: int
    fee: int  # wei the sender paid for gas
    logs: list


class LocalChain:
    def __init__(self, fork=None):
        """`fork`: a py-evm VM class (eth.vm.forks) to run instead of py-evm's latest."""
        self.tester = EthereumTester(PyEVMBackend(
            vm_configuration=((0, fork),) if fork else None))

    @property
    def fork(self) -> str:
        return type(self.tester.backend.chain.get_vm()).__name__

    @property
    def chain_id(self) -> int:
        return self.tester.backend.chain.chain_id

    @property
    def accounts(self) -> list[str]:
        """Funded accounts whose keys the chain holds (it signs their transactions)."""
        return self.tester.get_accounts()

    def balance(self, address: str) -> int:
        return self.tester.get_balance(address)

    def next_block_time(self) -> int:
        """The timestamp the next transaction will see as block.timestamp."""
        return self.tester.get_block_by_number("pending")["timestamp"]

    def set_next_block_time(self, timestamp: int) -> None:
        """Move the clock forward so that the next transaction runs at `timestamp`."""
        self.tester.time_travel(timestamp)

    def deploy(self, compiled: Compiled, *args, sender: str, value: int = 0) -> "Contract":
        constructor = next((e for e in compiled.abi if e["type"] == "constructor"), None)
        data = compiled.bytecode + (encode(get_abi_input_types(constructor), args)
                                    if constructor else b"")
        receipt = self._send({"from": sender, "data": "0x" + data.hex(), "value": value})
        address = self.tester.get_transaction_receipt(receipt.tx_hash)["contract_address"]
        return Contract(self, address, compiled.abi)

    def transfer(self, sender: str, to: str, value: int) -> Receipt:
        """Send `value` wei from one of `accounts` to `to` (fund an address)."""
        return self._send({"from": sender, "to": to, "value": value, "gas": 21_000})

    def transaction_count(self, address: str) -> int:
        """The next nonce of `address` (mpc_nodes.chain.rpc.Endpoint)."""
        return self.tester.get_nonce(address)

    def send_raw_transaction(self, raw: bytes) -> str:
        """Mine a transaction signed elsewhere (the network's vault key); its hash.  A
        revert raises Reverted with the contract's reason (mpc_nodes.chain.rpc.Endpoint)."""
        tx = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
        self._dry_run({"from": Account.recover_transaction(raw),
                       "to": to_checksum_address(tx["to"]), "data": "0x" + tx["data"].hex(),
                       "value": tx["value"], "gas": tx["gas"]})
        tx_hash = self.tester.send_raw_transaction("0x" + raw.hex())
        self._mined(tx_hash)
        return tx_hash

    def receipt(self, tx_hash: str) -> Receipt:
        return self._mined(tx_hash)

    def _mined(self, tx_hash: str) -> Receipt:
        receipt = self.tester.get_transaction_receipt(tx_hash)
        if receipt["status"] != 1:
            raise Reverted("reverted when mined, though its dry run on the same state passed")
        return Receipt(tx_hash, receipt["gas_used"],
                       receipt["gas_used"] * receipt["effective_gas_price"], receipt["logs"])

    def _dry_run(self, tx: dict) -> bytes:
        """Run `tx` on the next block's state without keeping it; a revert raises Reverted."""
        try:
            return to_bytes(hexstr=self.tester.call(tx, "pending"))
        except TransactionFailed as exc:
            raise Reverted(str(exc)) from None

    def _send(self, tx: dict) -> Receipt:
        tx = {"gas": GAS_LIMIT, **tx}
        self._dry_run(tx)  # the reason of a revert, which a receipt does not carry
        return self._mined(self.tester.send_transaction(tx))


class Contract:
    """A deployed contract; functions are called by name with Python values in ABI order."""

    def __init__(self, chain: LocalChain, address: str, abi: list):
        self.chain, self.address = chain, address
        self._functions = {e["name"]: e for e in abi if e["type"] == "function"}

    def _calldata(self, fn: str, args) -> tuple[dict, str]:
        try:
            abi = self._functions[fn]
        except KeyError:
            raise ValueError(f"the contract has no function {fn!r}") from None
        data = function_abi_to_4byte_selector(abi) + encode(get_abi_input_types(abi), args)
        return abi, "0x" + data.hex()

    def call(self, fn: str, *args, sender: str | None = None):
        """The function's result on the next block's state (one value, or a tuple)."""
        abi, data = self._calldata(fn, args)
        out = self.chain._dry_run({"from": sender or self.chain.accounts[0],
                                   "to": self.address, "data": data})
        values = decode(get_abi_output_types(abi), out)
        return values[0] if len(values) == 1 else values

    def transact(self, fn: str, *args, sender: str, value: int = 0) -> Receipt:
        _, data = self._calldata(fn, args)
        return self.chain._send({"from": sender, "to": self.address, "data": data,
                                 "value": value})
