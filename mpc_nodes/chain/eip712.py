"""Marks as EIP-712 typed data: one option series' price report, signed by the network's
oracle key and verified on-chain with one `ecrecover` (contracts/mark_typed_data.vy hashes
it the same way; docs/SETTLEMENT.md has the schema).

The hashing here follows the EIP-712 rules directly rather than calling eth-account, so
tests can check each against the other and both against the contract.

Scales: spot, price and the Greeks are integers with 18 decimals (`WAD`, 1e18 is 1.0),
rounded half to even from the decimal form of the float (`to_fixed`); prices in quote
units, delta per unit of the underlying, gamma per quote unit, vega per 1.0 of
volatility, theta per year. Without Greeks (`has_greeks` false) they are all zero.

eth-abi and eth-utils are imported by the functions that use them, not with the module:
every node imports it (the sign-mark job does), most of them never sign a mark, and the two
take about a third of a second to load.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Annotated

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from mpc_nodes.models import StrictTypedModel
from mpc_nodes.node.volsurface import UNDERLYING

WAD = 10**18
DOMAIN_NAME = "mpcnet mark"
DOMAIN_VERSION = "1"
DOMAIN_FIELDS = (("name", "string"), ("version", "string"), ("chainId", "uint256"),
                 ("verifyingContract", "address"))
MARK_FIELDS = (("underlying", "string"), ("series_id", "bytes32"), ("spot", "uint256"),
               ("price", "int256"), ("has_greeks", "bool"), ("delta", "int256"),
               ("gamma", "int256"), ("vega", "int256"), ("theta", "int256"),
               ("job_id", "bytes32"), ("valuation_time", "uint256"),
               ("inputs_hash", "bytes32"))
GREEKS = ("delta", "gamma", "vega", "theta")

Word = Annotated[bytes, Field(min_length=32, max_length=32)]
Uint256 = Annotated[int, Field(ge=0, lt=2**256)]
Int256 = Annotated[int, Field(ge=-2**255, lt=2**255)]


class MarkError(ValueError):
    """A mark or domain that cannot be encoded; the message names the field."""


def _validated(model: type[BaseModel], fields: dict):
    try:
        return model(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise MarkError(f"{model.__name__} field {'.'.join(map(str, first['loc'])) or '-'}:"
                        f" {first['msg']}") from None


class Domain(StrictTypedModel):
    """Where a mark is valid: the chain and the verifying contract (name and version fixed)."""

    chain_id: int = Field(ge=1, lt=2**256)
    verifying_contract: str

    @field_validator("verifying_contract")
    @classmethod
    def _address(cls, value: str) -> str:
        from eth_utils import is_address, to_checksum_address  # lazy: see module doc
        if not is_address(value):
            raise ValueError("not an address")
        return to_checksum_address(value)

    @classmethod
    def of(cls, chain_id: int, verifying_contract: str) -> "Domain":
        return _validated(cls, {"chain_id": chain_id, "verifying_contract": verifying_contract})

    def as_eip712(self) -> dict:
        return {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": self.chain_id,
                "verifyingContract": self.verifying_contract}

    def separator(self) -> bytes:
        return _hash_struct("EIP712Domain", DOMAIN_FIELDS, self.as_eip712())

    def as_abi(self) -> tuple:
        """The domain as the contracts' `Domain` struct argument."""
        return DOMAIN_NAME, DOMAIN_VERSION, self.chain_id, self.verifying_contract


class Mark(StrictTypedModel):
    """One option series' mark: the fields of the EIP-712 `Mark` type, scaled (module doc)."""

    underlying: str = Field(pattern=UNDERLYING.pattern)
    series_id: Word
    spot: Uint256
    price: Int256
    has_greeks: bool
    delta: Int256 = 0
    gamma: Int256 = 0
    vega: Int256 = 0
    theta: Int256 = 0
    job_id: Word
    valuation_time: Uint256
    inputs_hash: Word

    @model_validator(mode="after")
    def _greeks_only_if_asked(self) -> "Mark":
        if not self.has_greeks and any(getattr(self, g) for g in GREEKS):
            raise ValueError("Greeks are set but has_greeks is false")
        return self

    @classmethod
    def of(cls, **fields) -> "Mark":
        return _validated(cls, fields)

    def as_eip712(self) -> dict:
        return {name: getattr(self, name) for name, _ in MARK_FIELDS}

    def struct_hash(self) -> bytes:
        return _hash_struct("Mark", MARK_FIELDS, self.as_eip712())

    def as_abi(self) -> tuple:
        """The mark as the contracts' `Mark` struct argument."""
        return tuple(getattr(self, name) for name, _ in MARK_FIELDS)


def _encode_type(name: str, fields) -> bytes:
    return f"{name}({','.join(f'{t} {n}' for n, t in fields)})".encode()


def _hash_struct(name: str, fields, values: dict) -> bytes:
    """EIP-712 hashStruct for structs of atomic and string fields (all these types have)."""
    from eth_abi import encode  # lazy: see module doc
    from eth_utils import keccak
    types, words = ["bytes32"], [keccak(_encode_type(name, fields))]
    for field, kind in fields:
        value = values[field]
        if kind == "string":
            types.append("bytes32")
            words.append(keccak(value.encode()))
        else:
            types.append(kind)
            words.append(value)
    return keccak(encode(types, words))


def mark_digest(domain: Domain, mark: Mark) -> bytes:
    """The 32 bytes the oracle signs: keccak256(0x1901 || domain separator || hashStruct)."""
    from eth_utils import keccak  # lazy: see module doc
    return keccak(b"\x19\x01" + domain.separator() + mark.struct_hash())


def typed_data(domain: Domain, mark: Mark) -> dict:
    """The mark as an EIP-712 document (eth-account's `full_message`, eth_signTypedData_v4)."""
    return {"types": {"EIP712Domain": [{"name": n, "type": t} for n, t in DOMAIN_FIELDS],
                      "Mark": [{"name": n, "type": t} for n, t in MARK_FIELDS]},
            "primaryType": "Mark", "domain": domain.as_eip712(), "message": mark.as_eip712()}


def to_fixed(value) -> int:
    """`value` (a float, int, decimal string or Decimal) scaled by 1e18, rounded half to
    even; a float enters as its shortest decimal form, so 0.1 becomes exactly 1e17."""
    if isinstance(value, bool):
        raise MarkError("a boolean is not a number to scale")
    try:
        number = Decimal(repr(value) if isinstance(value, float) else value)
    except (InvalidOperation, TypeError, ValueError):
        raise MarkError(f"{value!r} is not a number") from None
    if not number.is_finite():
        raise MarkError(f"{value!r} is not a finite number")
    return int((number * WAD).to_integral_value(rounding=ROUND_HALF_EVEN))


def series_id(underlying: str, strike: int, expiry: int, is_call: bool) -> bytes:
    """A series' id from its terms (strike scaled by 1e18, expiry in Unix seconds), as
    OptionSettlement.series_id computes it: keccak256(abi.encode(keccak256(underlying),
    strike, expiry, is_call))."""
    from eth_abi import encode  # lazy: see module doc
    from eth_utils import keccak
    if not UNDERLYING.match(underlying):
        raise MarkError(f"underlying {underlying!r} is not a valid underlying name")
    return keccak(encode(["bytes32", "uint256", "uint256", "bool"],
                         [keccak(underlying.encode()), strike, expiry, is_call]))


def job_id_word(job_id: str) -> bytes:
    """An mpcnet job id (32 hex digits, 16 bytes) as a bytes32: its bytes, then zeros."""
    if len(job_id) != 32 or any(c not in "0123456789abcdef" for c in job_id):
        raise MarkError(f"job id {job_id!r} is not 32 lower-case hex digits")
    return bytes.fromhex(job_id).ljust(32, b"\0")


def signature_abi(signature: bytes) -> tuple[int, bytes, bytes]:
    """A 65-byte r || s || v signature as the contracts' `Signature` struct (v, r, s)."""
    if len(signature) != 65:
        raise MarkError(f"a signature has 65 bytes, not {len(signature)}")
    return signature[64], signature[:32], signature[32:64]
