"""Outputs revealed to the coordinator only: each party seals its Shamir shares of the
outputs to the coordinator's identity (X25519 from its Ed25519 key, libsodium sealed box),
and the coordinator opens and reconstructs them, checking that every share lies on one
polynomial of the session's degree, so a corrupted share is detected rather than used.
"""

from __future__ import annotations

import base64
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.bindings import crypto_sign_ed25519_pk_to_curve25519
from nacl.exceptions import CryptoError
from nacl.public import PublicKey, SealedBox
from nacl.signing import SigningKey

from protocols.shamir import interpolate


class OutputShareError(ValueError):
    """Shares that cannot be opened or do not reconstruct consistently."""


def seal_share(share: dict, recipient_identity_hex: str) -> str:
    """Encrypt this party's share record to the coordinator's Ed25519 identity key; the
    values travel as fixed-width bytes (a third of their decimal size)."""
    width = (share["modulus"].bit_length() + 7) // 8
    packed = b"".join(v.to_bytes(width, "big") for v in share["values"])
    record = {k: v for k, v in share.items() if k != "values"} | {"width": width}
    plaintext = json.dumps(record).encode() + b"\n" + packed
    pk = PublicKey(crypto_sign_ed25519_pk_to_curve25519(bytes.fromhex(recipient_identity_hex)))
    return base64.b64encode(SealedBox(pk).encrypt(plaintext)).decode()


def open_share(sealed: str, identity: Ed25519PrivateKey) -> dict:
    seed = identity.private_bytes_raw()
    box = SealedBox(SigningKey(seed).to_curve25519_private_key())
    try:
        header, packed = box.decrypt(base64.b64decode(sealed, validate=True)).split(b"\n", 1)
        record = json.loads(header)
        width = record.pop("width")
        if not isinstance(width, int) or width < 1 or len(packed) % width:
            raise ValueError("malformed values")
    except (CryptoError, ValueError, KeyError, AttributeError) as exc:
        raise OutputShareError(f"cannot open an output share: {exc}") from None
    return record | {"values": [int.from_bytes(packed[i:i + width], "big")
                                for i in range(0, len(packed), width)]}


def reconstruct(shares: dict[str, dict]) -> list[int]:
    """Signed integers from the parties' share records {party: {point, modulus, degree,
    values}}; every share beyond degree+1 must agree, else OutputShareError names it."""
    records = sorted(shares.items(), key=lambda kv: kv[1]["point"])
    p, degree = records[0][1]["modulus"], records[0][1]["degree"]
    size = len(records[0][1]["values"])
    for name, r in records:
        if (r["modulus"], r["degree"], len(r["values"])) != (p, degree, size):
            raise OutputShareError(f"{name}'s share has a different field, degree or size")
    if len(records) < degree + 1:
        raise OutputShareError(f"{len(records)} shares cannot open a degree-{degree} sharing")
    xs = [r["point"] for _, r in records]
    if len(set(xs)) != len(xs) or any(x % p == 0 for x in xs):
        raise OutputShareError(f"the shares' points are not distinct and nonzero: {xs}")
    base_xs, base = xs[:degree + 1], [r["values"] for _, r in records[:degree + 1]]
    for name, r in records[degree + 1:]:
        if interpolate(base_xs, base, r["point"], p) != [v % p for v in r["values"]]:
            raise OutputShareError(f"the output shares are inconsistent (checked against"
                                   f" {name}'s): a party sent a corrupted share")
    return [v - p if v > p // 2 else v for v in interpolate(base_xs, base, 0, p)]


def from_limbs(flat: list[int], record: dict) -> list[int]:
    """Values from reconstructed limbs (low limbs, then high ones) of a share record with
    ``limb_bits`` and ``offset`` (protocols.pricing_active): high·2^bits + low − offset; a
    limb outside its bits can only be the selected party's own dealing, and is refused."""
    bits, half = record["limb_bits"], len(flat) // 2
    low, high = flat[:half], flat[half:]
    if any(not 0 <= v < 1 << bits for v in flat):
        raise OutputShareError(f"a reconstructed output limb is outside {bits} bits: the"
                               f" selected party dealt an output outside its range")
    return [(h << bits) + lo - record["offset"] for lo, h in zip(low, high)]
