"""ERC-20 calls a signing policy can read: decode `data` into the function and its arguments.

Only canonical ABI encodings are accepted (decoded with eth-abi, then re-encoded and compared
byte for byte), so trailing bytes, dirty padding or a second reading of the same call are
refused: what the policy checks is exactly what the token contract will execute.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

FUNCTIONS = {  # name: (argument names, ABI types)
    "transfer": (("to", "amount"), ("address", "uint256")),
    "approve": (("spender", "amount"), ("address", "uint256")),
    "transferFrom": (("from", "to", "amount"), ("address", "address", "uint256")),
}
SELECTORS = {function_signature_to_4byte_selector(f"{name}({','.join(types)})"): name
             for name, (_, types) in FUNCTIONS.items()}


class CalldataError(ValueError):
    """The calldata is not a canonical call of a known ERC-20 function."""


@dataclass(frozen=True)
class Call:
    """A decoded ERC-20 call: function name and arguments (addresses checksummed)."""

    function: str
    args: dict

    @property
    def amount(self) -> int:
        return self.args["amount"]


def decode_erc20(data: bytes) -> Call:
    """Decode ERC-20 transfer / approve / transferFrom calldata, or raise CalldataError."""
    name = SELECTORS.get(bytes(data[:4]))
    if name is None:
        raise CalldataError(f"function selector 0x{bytes(data[:4]).hex()} is not an ERC-20"
                            f" transfer, approve or transferFrom")
    names, types = FUNCTIONS[name]
    body = bytes(data[4:])
    try:
        values = decode(types, body)
    except DecodingError:
        raise CalldataError(f"{name} arguments do not decode") from None
    if encode(types, values) != body:
        raise CalldataError(f"{name} arguments are not canonically encoded (trailing bytes or"
                            f" non-zero padding)")
    return Call(name, {n: to_checksum_address(v) if t == "address" else v
                       for n, t, v in zip(names, types, values)})
