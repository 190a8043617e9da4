"""Contract calls a signing policy can read: decode `data` into the function and its
arguments, for ERC-20 tokens and for the settlement contract (contracts/OptionSettlement.vy;
its table here is checked against the compiled ABI in tests/test_settlement_policy.py).

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
DOMAIN_ABI = "(string,string,uint256,address)"
MARK_ABI = ("(string,bytes32,uint256,int256,bool,int256,int256,int256,int256,bytes32,uint256,"
            "bytes32)")
SIGNATURE_ABI = "(uint8,bytes32,bytes32)"
SETTLEMENT_FUNCTIONS = {  # OptionSettlement's state-changing functions
    "list_series": (("underlying", "strike", "expiry", "is_call", "contract_size", "cap"),
                    ("string", "uint256", "uint256", "bool", "uint256", "uint256")),
    "open_position": (("series_id", "holder", "quantity"), ("bytes32", "address", "uint256")),
    "settle": (("domain", "mark", "digest", "signature"),
               (DOMAIN_ABI, MARK_ABI, "bytes32", SIGNATURE_ABI)),
    "withdraw": ((), ()),
}


def selectors(functions: dict) -> dict[bytes, str]:
    """Each function's 4-byte selector: name."""
    return {function_signature_to_4byte_selector(f"{name}({','.join(types)})"): name
            for name, (_, types) in functions.items()}


SELECTORS = selectors(FUNCTIONS)
SETTLEMENT_SELECTORS = selectors(SETTLEMENT_FUNCTIONS)


class CalldataError(ValueError):
    """The calldata is not a canonical call of a known function."""


@dataclass(frozen=True)
class Call:
    """A decoded call: function name and arguments (top-level addresses checksummed)."""

    function: str
    args: dict

    @property
    def amount(self) -> int:
        return self.args["amount"]


def decode_erc20(data: bytes) -> Call:
    """Decode ERC-20 transfer / approve / transferFrom calldata, or raise CalldataError."""
    return _decode(data, FUNCTIONS, SELECTORS, "an ERC-20 transfer, approve or transferFrom")


def decode_settlement(data: bytes) -> Call:
    """Decode a call of OptionSettlement's list_series / open_position / settle / withdraw,
    or raise CalldataError."""
    return _decode(data, SETTLEMENT_FUNCTIONS, SETTLEMENT_SELECTORS,
                   "a settlement contract function (" + ", ".join(SETTLEMENT_FUNCTIONS) + ")")


def encode_call(functions: dict, name: str, args: dict) -> bytes:
    """The canonical calldata of function `name` of the table `functions` with `args` (by
    argument name), which the decoder above reads back exactly."""
    names, types = functions[name]
    if set(args) != set(names):
        raise CalldataError(f"{name} takes {', '.join(names) or 'no arguments'}, not"
                            f" {', '.join(sorted(args)) or 'none'}")
    selector = function_signature_to_4byte_selector(f"{name}({','.join(types)})")
    return selector + encode(types, [args[n] for n in names])


def _decode(data: bytes, functions: dict, known: dict[bytes, str], what: str) -> Call:
    name = known.get(bytes(data[:4]))
    if name is None:
        raise CalldataError(f"function selector 0x{bytes(data[:4]).hex()} is not {what}")
    names, types = functions[name]
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
