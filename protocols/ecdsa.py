"""Threshold ECDSA on secp256k1 over MPyC: dealer-free key generation, signing from stored
Shamir shares, presignatures, and share refresh.

Shares are values of a degree-t polynomial over Z_n at roster points x = index + 1.  Key
generation and refresh run among all n parties with MPyC's threshold set to the cluster's t,
so the session points are the roster points.  Signing runs among any m' >= 2t+1 parties:
each turns its stored share into an additive one with the Lagrange coefficient for the
signing set and re-shares it inside MPC (threshold (m'-1)//2 >= t).  Group elements of
secret scalars are opened "in the exponent": each party publishes (its share)·G, and the
point is interpolated with Lagrange coefficients — this reveals k·G or x·G, nothing more.
Every signature is checked against the public key before it is returned.
"""

from __future__ import annotations

import secrets

from .secp256k1 import (HALF_N, N, CurveError, check_verification_shares, hex_point,
                        interpolate_points, lagrange_at_zero, mul_base, point,
                        recovery_consistent, verify)


class SigningError(RuntimeError):
    """A signature could not be produced or did not verify; nothing was released."""


def _secfld(rt):
    return rt.SecFld(N)


async def _share_value(rt, x) -> int:
    return int((await rt.gather(x)).value)


async def _in_exponent(rt, share: int):
    """Open s·G for the secret s of which `share` is this party's session share."""
    mine = mul_base(share).format(compressed=True) if share % N else b""
    published = await rt.transfer(mine)
    if any(not p for p in published):
        raise SigningError("a party's share is zero; run the job again")
    points = [point(p) for p in _points(published, "a nonce share point")]
    return interpolate_points([p.pid + 1 for p in rt.parties], points)


async def _random_shared(rt):
    """A secret uniformly random in Z_n (random if any one party is honest)."""
    secfld = _secfld(rt)
    return rt.sum(rt.input(secfld(secrets.randbelow(N)), senders=None))


def _points(published: list, what: str = "a verification share") -> list[bytes]:
    """The points the session parties published (each over its own authenticated link);
    CurveError naming the first party whose bytes are no secp256k1 point."""
    for pid, data in enumerate(published):
        try:
            point(data if isinstance(data, bytes) else b"")
        except CurveError:
            raise CurveError(f"session party {pid} (point {pid + 1}) sent {what} that is no"
                             f" secp256k1 point") from None
    return published


def _verification_shares(published: list) -> list[str]:
    """The verification shares the session parties published, as hex (``_points``)."""
    return [p.hex() for p in _points(published)]


async def keygen(rt) -> dict:
    """Among all n parties (MPyC threshold = cluster t): a random key x, never revealed.

    Returns this party's share, the compressed public key and every party's verification
    share x_j·G (index j-1 for point j)."""
    x = await _random_shared(rt)
    share = await _share_value(rt, x)
    vshares = _verification_shares(await rt.transfer(mul_base(share).format(compressed=True)))
    pts = [point(v) for v in vshares[:rt.threshold + 1]]
    public_key = hex_point(interpolate_points(list(range(1, rt.threshold + 2)), pts))
    check_verification_shares(vshares, rt.threshold, public_key)
    return {"share": share, "public_key": public_key, "verification_shares": vshares}


async def refresh(rt, share: int, public_key: str) -> dict:
    """Among all n parties: add a fresh degree-t sharing of zero.  Same key, new shares;
    old and new shares do not combine."""
    secfld = _secfld(rt)
    zero = rt.sum(rt.input(secfld(0), senders=None))
    new = (share + await _share_value(rt, zero)) % N
    vshares = _verification_shares(await rt.transfer(mul_base(new).format(compressed=True)))
    check_verification_shares(vshares, rt.threshold, public_key)
    return {"share": new, "verification_shares": vshares}


def _session_key(rt, share: int, roster_points: list[int]):
    """Re-share a stored roster share into this session: one input round."""
    if len(roster_points) != len(rt.parties):
        raise ValueError("one roster point per session party is required")
    lam = lagrange_at_zero(roster_points)[rt.pid]
    secfld = _secfld(rt)
    return rt.sum(rt.input(secfld(lam * share % N), senders=None))


def finish(public_key: str, digest: bytes, R, s: int) -> dict:
    """Low-s normalisation (EIP-2), recovery id, and verification before release."""
    rx, ry = xy(R)
    if rx >= N:
        raise SigningError("nonce point x >= n (probability ~2^-128): sign again")
    r, y_parity = rx % N, ry & 1
    if s == 0 or r == 0:
        raise SigningError("degenerate signature: sign again")
    if s > HALF_N:
        s, y_parity = N - s, y_parity ^ 1
    if not (verify(public_key, digest, r, s) and
            recovery_consistent(public_key, digest, r, s, y_parity)):
        raise SigningError("the joint signature does not verify against the public key;"
                           " not released")
    return {"r": r, "s": s, "y_parity": y_parity}


def xy(R) -> tuple[int, int]:
    raw = R.format(compressed=False)
    return int.from_bytes(raw[1:33], "big"), int.from_bytes(raw[33:], "big")


def parse_digest(digest_hex: str) -> bytes:
    digest = bytes.fromhex(digest_hex)
    if len(digest) != 32:
        raise ValueError("the message digest must be 32 bytes")
    return digest


async def sign(rt, share: int, roster_points: list[int], public_key: str,
               digest_hex: str) -> dict:
    """ECDSA signature of a 32-byte digest among the session parties (>= 2t+1 of them)."""
    digest = parse_digest(digest_hex)
    x = _session_key(rt, share, roster_points)
    k = await _random_shared(rt)
    R = await _in_exponent(rt, await _share_value(rt, k))
    r = xy(R)[0] % N
    z = int.from_bytes(digest, "big") % N
    s = int((await rt.output((1 / k) * (x * r + z))).value)
    return finish(public_key, digest, R, s)


async def presign(rt, share: int, roster_points: list[int], count: int) -> list[dict]:
    """Precompute `count` presignatures: R opened, this party's shares of k^-1 and k^-1·x.

    The shares belong to this session's evaluation points: they can only be used by a
    session of exactly the same parties in the same order."""
    if not 0 < count <= 1000:
        raise ValueError(f"presignature count {count} outside 1..1000")
    x = _session_key(rt, share, roster_points)
    result = []
    for _ in range(count):
        k = await _random_shared(rt)
        R = await _in_exponent(rt, await _share_value(rt, k))
        kinv = 1 / k
        kinv_x = kinv * x
        result.append({"R": hex_point(R), "kinv": await _share_value(rt, kinv),
                       "kinv_x": await _share_value(rt, kinv_x)})
    return result


async def sign_presigned(rt, presignature: dict, public_key: str, digest_hex: str) -> dict:
    """The online phase: s_i = z·(k^-1)_i + r·(k^-1 x)_i locally, then one opening."""
    digest = parse_digest(digest_hex)
    R = point(presignature["R"])
    r = xy(R)[0] % N
    z = int.from_bytes(digest, "big") % N
    secfld = _secfld(rt)
    s_share = (z * presignature["kinv"] + r * presignature["kinv_x"]) % N
    s = int((await rt.output(secfld(secfld.field(s_share)))).value)
    return finish(public_key, digest, R, s)
