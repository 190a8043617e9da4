"""Contract calls a signing policy can read: decode `data` into the function and its
arguments, for ERC-20 tokens and for the settlement contract (contracts/OptionSettlement.vy;
its table here is checked against the compiled ABI in tests/test_settlement_policy.py).

Only canonical ABI encodings are accepted (decoded with eth-abi, then re-encoded and compared
byte for byte), so trailing bytes, dirty padding or a second reading of the same call are
refused: what the policy checks is exactly what the token contract will execute.

eth-abi and eth-utils are imported by the functions that use them, not with the module, and
the selector tables (SELECTORS, SETTLEMENT_SELECTORS) are made on first use: every node and
coordinator imports this module (the signing policy does), most of them never read calldata,
and the two libraries take about a third of a second to load.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

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


_SELECTOR_TABLES = {"SELECTORS": FUNCTIONS, "SETTLEMENT_SELECTORS": SETTLEMENT_FUNCTIONS}


@cache
def _selectors(table: str) -> dict[bytes, str]:
    """selector: name of each function of the table _SELECTOR_TABLES[table], made once."""
    return {_selector(name, types): name for name, (_, types) in _SELECTOR_TABLES[table].items()}


def __getattr__(name: str) -> dict[bytes, str]:
    """SELECTORS and SETTLEMENT_SELECTORS (selector: function name), made on first use."""
    if name not in _SELECTOR_TABLES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return _selectors(name)


def _selector(name: str, types) -> bytes:
    from eth_utils import function_signature_to_4byte_selector  # lazy: see module doc
    return function_signature_to_4byte_selector(f"{name}({','.join(types)})")


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
    return _decode(data, FUNCTIONS, _selectors("SELECTORS"),
                   "an ERC-20 transfer, approve or transferFrom")


def decode_settlement(data: bytes) -> Call:
    """Decode a call of OptionSettlement's list_series / open_position / settle / withdraw,
    or raise CalldataError."""
    return _decode(data, SETTLEMENT_FUNCTIONS, _selectors("SETTLEMENT_SELECTORS"),
                   "a settlement contract function (" + ", ".join(SETTLEMENT_FUNCTIONS) + ")")


def encode_call(functions: dict, name: str, args: dict) -> bytes:
    """The canonical calldata of function `name` of the table `functions` with `args` (by
    argument name), which the decoder above reads back exactly."""
    from eth_abi import encode  # lazy: see module doc
    names, types = functions[name]
    if set(args) != set(names):
        raise CalldataError(f"{name} takes {', '.join(names) or 'no arguments'}, not"
                            f" {', '.join(sorted(args)) or 'none'}")
    return _selector(name, types) + encode(types, [args[n] for n in names])


def _decode(data: bytes, functions: dict, known: dict[bytes, str], what: str) -> Call:
    # lazy: see module doc
    from eth_abi import decode, encode
    from eth_abi.exceptions import DecodingError
    from eth_utils import to_checksum_address
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
