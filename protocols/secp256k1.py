"""secp256k1 arithmetic on public values (coincurve / libsecp256k1), interpolation in the
exponent over the group order (coefficients from protocols.shamir), and ECDSA checks.  No MPC in here: the protocols use it on opened values
and on each party's own share."""

from __future__ import annotations

import coincurve
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from protocols.shamir import lagrange_coefficients

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141  # group order
HALF_N = N // 2


class CurveError(ValueError):
    """A point, scalar or signature is invalid."""


def point(hex_or_bytes) -> coincurve.PublicKey:
    data = bytes.fromhex(hex_or_bytes) if isinstance(hex_or_bytes, str) else hex_or_bytes
    try:
        return coincurve.PublicKey(data)
    except (ValueError, TypeError) as exc:
        raise CurveError(f"not a secp256k1 point: {exc}") from None


def hex_point(p: coincurve.PublicKey) -> str:
    return p.format(compressed=True).hex()


def mul_base(k: int) -> coincurve.PublicKey:
    """k·G for 0 < k < n."""
    if not 0 < k % N:
        raise CurveError("scalar is zero modulo n")
    return coincurve.PublicKey.from_secret((k % N).to_bytes(32, "big"))


def mul(p: coincurve.PublicKey, k: int) -> coincurve.PublicKey:
    return p.multiply((k % N).to_bytes(32, "big"))


def lagrange_at_zero(points: list[int]) -> list[int]:
    """Coefficients λ_j with f(0) = Σ λ_j f(x_j) over the group order, for distinct nonzero x_j."""
    return lagrange_coefficients(points, 0, N)


def interpolate_points(points: list[int], values: list[coincurve.PublicKey]) -> coincurve.PublicKey:
    """Σ λ_j·V_j: the group element at 0 of the degree-(k-1) 'polynomial in the exponent'."""
    lam = lagrange_at_zero(points)
    return coincurve.PublicKey.combine_keys([mul(v, c) for v, c in zip(values, lam)])


def check_verification_shares(vshares: list[str], threshold: int, public_key: str) -> None:
    """All x_j·G (at points 1..n) lie on one degree-t polynomial whose value at 0 is the key.

    Checked by interpolating from points 1..t plus each further point in turn.  A failure
    does not say which share is wrong: the share that fails to fit may be an honest party's
    (a dealer's wrong share to it made it so), so the error names none."""
    pts = [point(v) for v in vshares]
    base = list(range(1, threshold + 1))
    for j in range(threshold + 1, len(pts) + 1):
        got = interpolate_points(base + [j], [pts[i - 1] for i in base] + [pts[j - 1]])
        if hex_point(got) != public_key:
            raise CurveError(f"the verification shares lie on no degree-{threshold} polynomial"
                             f" through the public key: a party dealt or published a wrong"
                             f" share")


def verify(public_key: str, digest: bytes, r: int, s: int) -> bool:
    """libsecp256k1 verification (which also rejects high-s)."""
    der = encode_dss_signature(r, s)
    return point(public_key).verify(der, digest, hasher=None)


def recovery_consistent(public_key: str, digest: bytes, r: int, s: int, y_parity: int) -> bool:
    """The recoverable signature (r, s, yParity) recovers exactly this public key."""
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([y_parity])
    recovered = coincurve.PublicKey.from_signature_and_message(sig, digest, hasher=None)
    return hex_point(recovered) == public_key
