"""EIP-1559 settlement transactions: parse and validate the JSON a coordinator sends, compute
the digest the parties sign, and assemble the signed raw transaction.

Encoding is eth-account's (typed transactions, RLP); nothing is hand-rolled here.  Nonces
follow EIP-2681 (below 2**64 - 1) and addresses EIP-55 (a mixed-case address must carry a
correct checksum; all lower or all upper case is taken as unchecksummed).

eth-account and eth-utils are imported by the functions that use them, not with the module:
every node and coordinator imports it (the signing policy does), most of them never handle a
transaction, and the two take about half a second to load.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_UINT256 = 2**256 - 1
MAX_NONCE = 2**64 - 2  # EIP-2681: a nonce is below 2**64 - 1
FIELDS = {"chainId", "nonce", "to", "value", "data", "gas", "gasLimit", "maxFeePerGas",
          "maxPriorityFeePerGas", "accessList", "type"}


class EvmError(ValueError):
    """A transaction is malformed; the message names the field."""


@dataclass(frozen=True)
class Transaction:
    """A validated EIP-1559 transaction and its signing digest."""

    fields: dict  # eth-account's dict form, normalised
    digest: bytes

    @property
    def chain_id(self) -> int:
        return self.fields["chainId"]

    @property
    def nonce(self) -> int:
        return self.fields["nonce"]

    @property
    def to(self) -> str | None:
        return self.fields.get("to")

    @property
    def value(self) -> int:
        return self.fields["value"]

    @property
    def data(self) -> bytes:
        return bytes.fromhex(self.fields["data"][2:])

    @property
    def max_fee(self) -> int:
        """The most this transaction can pay in fees: gas × maxFeePerGas, in wei."""
        return self.fields["gas"] * self.fields["maxFeePerGas"]


def checked_address(value, what: str = "address") -> str:
    """The checksummed form of a 20-byte hex address; EvmError unless it is one and, if it
    mixes cases, its EIP-55 checksum is right (a typo must not pass as another address)."""
    # lazy: see module doc
    from eth_utils import is_checksum_address, is_hex_address, to_checksum_address
    if not (isinstance(value, str) and value.startswith("0x") and is_hex_address(value)):
        raise EvmError(f"{what} is not an address: {value!r}")
    digits = value[2:]
    if digits != digits.lower() and digits != digits.upper() and not is_checksum_address(value):
        raise EvmError(f"{what} {value} has a wrong EIP-55 checksum (mixed case must checksum;"
                       f" write it all in lower case to skip the checksum)")
    return to_checksum_address(value)


def _uint(tx: dict, name: str, required: bool = True, default: int = 0) -> int:
    if name not in tx:
        if required:
            raise EvmError(f"field {name} is required")
        return default
    raw = tx[name]
    try:
        if isinstance(raw, bool):
            raise ValueError
        value = (int(raw, 16) if raw.lower().startswith("0x") else int(raw, 10)) \
            if isinstance(raw, str) else int(raw) if isinstance(raw, int) else None
        if value is None:
            raise ValueError
    except ValueError:
        raise EvmError(f"field {name} must be an integer (number, decimal or 0x-hex string),"
                       f" got {raw!r}") from None
    if not 0 <= value <= MAX_UINT256:
        raise EvmError(f"field {name} out of range: {value}")
    return value


def parse_transaction(tx: dict) -> Transaction:
    """Validate an EIP-1559 transaction JSON object and compute its signing digest."""
    from eth_account.typed_transactions import TypedTransaction  # lazy: see module doc
    if not isinstance(tx, dict):
        raise EvmError("a transaction must be a JSON object")
    unknown = set(tx) - FIELDS
    if unknown:
        raise EvmError(f"unknown field(s): {', '.join(sorted(unknown))}")
    if "type" in tx and _uint(tx, "type") != 2:
        raise EvmError("only EIP-1559 (type 2) transactions are supported")
    if "gas" in tx and "gasLimit" in tx:
        raise EvmError("give gas or gasLimit, not both")
    fields = {"type": 2, "chainId": _uint(tx, "chainId"), "nonce": _uint(tx, "nonce"),
              "maxPriorityFeePerGas": _uint(tx, "maxPriorityFeePerGas"),
              "maxFeePerGas": _uint(tx, "maxFeePerGas"),
              "gas": _uint(tx, "gas" if "gas" in tx else "gasLimit"),
              "value": _uint(tx, "value", required=False)}
    if fields["chainId"] == 0:
        raise EvmError("field chainId must be positive")
    if fields["nonce"] > MAX_NONCE:
        raise EvmError(f"field nonce must be below 2**64 - 1 (EIP-2681), got {fields['nonce']}")
    if fields["maxPriorityFeePerGas"] > fields["maxFeePerGas"]:
        raise EvmError("maxPriorityFeePerGas exceeds maxFeePerGas")
    to = tx.get("to")
    if to is None or to == "":
        raise EvmError("field to is required (contract creation is not a settlement)")
    fields["to"] = checked_address(to, "field to")
    data = tx.get("data", "0x")
    if not isinstance(data, str) or not data.startswith("0x") or len(data) % 2:
        raise EvmError("field data must be a 0x-prefixed hex string of whole bytes")
    try:
        bytes.fromhex(data[2:])
    except ValueError:
        raise EvmError("field data is not hex") from None
    fields["data"] = data.lower()
    access = tx.get("accessList", [])
    if not isinstance(access, list):
        raise EvmError("field accessList must be a list")
    fields["accessList"] = access
    try:
        typed = TypedTransaction.from_dict(fields)
    except Exception as exc:  # eth-account validates further (e.g. access list entries)
        raise EvmError(f"invalid transaction: {exc}") from None
    return Transaction(fields, bytes(typed.hash()))


def signed_transaction(tx: Transaction, r: int, s: int, y_parity: int) -> tuple[bytes, bytes]:
    """(raw signed transaction, transaction hash) for signature (r, s, yParity)."""
    from eth_account.typed_transactions import TypedTransaction  # lazy: see module doc
    from eth_utils import keccak  # lazy: see module doc
    typed = TypedTransaction.from_dict({**tx.fields, "v": y_parity, "r": r, "s": s})
    raw = bytes(typed.encode())
    return raw, keccak(raw)


def transaction_sender(raw: bytes) -> str:
    """The checksummed address whose key signed the raw signed transaction `raw`."""
    from eth_account import Account  # lazy: see module doc
    return Account.recover_transaction(raw)
