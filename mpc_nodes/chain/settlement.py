"""Settlement transactions: calls of the settlement contract (contracts/OptionSettlement.vy)
as the EIP-1559 transactions the network's vault key signs.

The calldata is the canonical encoding of `mpc_nodes.jobs.calldata.SETTLEMENT_FUNCTIONS`,
the very table each node's policy decodes it with; a signed mark becomes `settle`'s
arguments with `settle_args`.
"""

from __future__ import annotations

from mpc_nodes.chain.eip712 import Domain, Mark, signature_abi
from mpc_nodes.jobs.calldata import SETTLEMENT_FUNCTIONS, encode_call

GAS = 2_000_000  # settling a series of 64 positions takes about 1.9 M (docs/SETTLEMENT.md)
MAX_FEE_PER_GAS = 2 * 10**9
MAX_PRIORITY_FEE_PER_GAS = 10**9


def settlement_transaction(chain_id: int, nonce: int, contract: str, function: str,
                           args: dict, value: int = 0, gas: int = GAS,
                           max_fee_per_gas: int = MAX_FEE_PER_GAS,
                           max_priority_fee_per_gas: int = MAX_PRIORITY_FEE_PER_GAS) -> dict:
    """The transaction (the JSON form `sign` takes) calling `function` with `args` (by
    argument name) on the settlement contract at `contract`."""
    if function not in SETTLEMENT_FUNCTIONS:
        raise ValueError(f"the settlement contract has no function {function!r}; it has"
                         f" {', '.join(SETTLEMENT_FUNCTIONS)}")
    data = encode_call(SETTLEMENT_FUNCTIONS, function, args)
    return {"type": 2, "chainId": chain_id, "nonce": nonce, "to": contract, "value": value,
            "gas": gas, "maxFeePerGas": max_fee_per_gas,
            "maxPriorityFeePerGas": max_priority_fee_per_gas, "data": "0x" + data.hex()}


def mark_of_typed_data(doc: dict) -> tuple[Domain, Mark]:
    """The domain and mark of an EIP-712 mark document (bytes32 fields in 0x hex)."""
    domain = Domain.of(doc["domain"]["chainId"], doc["domain"]["verifyingContract"])
    message = {k: bytes.fromhex(v[2:]) if isinstance(v, str) and k != "underlying" else v
               for k, v in doc["message"].items()}
    return domain, Mark.of(**message)


def settle_args(typed_data: dict, digest: bytes, signature: bytes) -> dict:
    """`settle`'s arguments for a signed mark."""
    domain, mark = mark_of_typed_data(typed_data)
    return {"domain": domain.as_abi(), "mark": mark.as_abi(), "digest": digest,
            "signature": signature_abi(signature)}
