"""A new key's public part, checked before anyone relies on it.

Every verification share x_j·G must lie on one degree-t polynomial whose value at 0 is the
public key (in the exponent: secp256k1 with libsecp256k1, Ed25519 with libsodium), there
must be one per roster party, an ECDSA key's address must be its public key's, and a
party's own share must match its own verification share.  Every node checks this before it
saves its share, and the coordinator before it records the key: a party that reports
another key (say, one whose address it controls) is refused, and a single inconsistent
verification share is named.
"""

from __future__ import annotations

from protocols import frost
from protocols.ed25519_dkg import scalar
from protocols.secp256k1 import CurveError, hex_point, interpolate_points, mul_base, point

SCHEME = "ecdsa-secp256k1"
FROST_SCHEME = "frost-ed25519"


def eth_address(public_key: str) -> str:
    # imported here, not with the module: every node imports it, most never make an address,
    # and eth-keys (with eth-utils) takes about a third of a second to load
    from eth_keys import keys as eth_keys
    return eth_keys.PublicKey.from_compressed_bytes(bytes.fromhex(public_key)).to_checksum_address()


def _ecdsa_point(value: str):
    """A compressed secp256k1 point, exactly as hex_point writes it."""
    p = point(value)
    if hex_point(p) != value:
        raise CurveError("not a compressed point in lower-case hex")
    return p


def _frost_point(value: str) -> bytes:
    return frost.decode_element(bytes.fromhex(value))


def _ecdsa_consistent(pk: str, shares: dict, t: int) -> bool:
    """The shares (at their points) and pk (at 0) lie on one degree-t polynomial."""
    ids = sorted(shares)
    base = ids[:t]
    try:
        return all(hex_point(interpolate_points(base + [j], [shares[i] for i in base + [j]]))
                   == pk for j in ids[t:])
    except ValueError:  # a sum at infinity: not the public key
        return False


def _frost_consistent(pk: str, shares: dict[int, bytes], t: int) -> bool:
    try:
        return frost.group_public_key(shares, degree=t).hex() == pk
    except frost.FrostError:
        return False


def _own_share(scheme: str, share: int) -> str:
    if scheme == SCHEME:
        return hex_point(mul_base(share))
    return frost.verification_share(scalar(share)).hex()


def key_problem(key: dict, names: list[str], t: int,
                own: tuple[int, int] | None = None) -> str | None:
    """Why `key` (a keygen output: scheme, public_key, verification_shares, address, n, t)
    is not a consistent t-of-len(names) key of these parties, or None.  `own` is
    (roster index, share) of the checking party."""
    scheme, pk, vshares = key.get("scheme"), key.get("public_key"), key.get("verification_shares")
    n = len(names)
    if scheme not in (SCHEME, FROST_SCHEME):
        return f"unknown key scheme {scheme!r}"
    if (key.get("n"), key.get("t")) != (n, t):
        return f"key reported as {key.get('t')}-of-{key.get('n')}, the roster is {t}-of-{n}"
    if not isinstance(vshares, list) or len(vshares) != n:
        return f"{len(vshares) if isinstance(vshares, list) else 'no'} verification shares" \
               f" for {n} parties"
    decode = _ecdsa_point if scheme == SCHEME else _frost_point
    shares = {}
    for j, v in enumerate(vshares):
        try:
            shares[j + 1] = decode(v)
        except (CurveError, frost.FrostError, TypeError, ValueError):
            return f"{names[j]}'s verification share is not a valid point"
    try:
        decode(pk)
    except (CurveError, frost.FrostError, TypeError, ValueError):
        return "the public key is not a valid point"
    if scheme == SCHEME and key.get("address") != eth_address(pk):
        return "the address is not the public key's"
    consistent = _ecdsa_consistent if scheme == SCHEME else _frost_consistent
    if not consistent(pk, shares, t):
        culprits = [j for j in shares
                    if consistent(pk, {i: s for i, s in shares.items() if i != j}, t)]
        if len(culprits) == 1:
            return (f"{names[culprits[0] - 1]}'s verification share is not on the degree-{t}"
                    f" polynomial of the public key and the other shares")
        return f"the verification shares are not on one degree-{t} polynomial through the" \
               f" public key"
    if own is not None:
        index, share = own
        try:
            mine = _own_share(scheme, share)
        except (CurveError, frost.FrostError, ValueError):
            mine = None
        if mine != vshares[index]:
            return f"{names[index]}'s own share does not match its verification share"
    return None


def reported_key_problem(key: dict, roster) -> str | None:
    """The coordinator's check of the key the parties agreed on, before it records it."""
    return key_problem(key, [p.name for p in roster.parties], roster.threshold)
