"""Threshold ECDSA (secp256k1) secure with abort against t actively malicious parties, with
the sender of a bad signature share named and left out (issue 13; ``security: malicious``).

Runs on ``protocols.active.Checked`` at the key's roster points, so the stored shares x_j are
used as they are (no re-sharing into the session).  A presignature:

1. k and u: shared random values, each the sum of one dealt by every party;
2. R = k·G: every party publishes k_j·G, checked to lie on one degree-t polynomial;
3. w = k·u (checked product), opened (it is masked by u), and k⁻¹ = u·w⁻¹ locally;
4. v = k⁻¹·x (checked product);
5. the batch check of both products, then every party publishes K_j = (k⁻¹)_j·G and
   W_j = v_j·G, checked to lie on degree-t polynomials.

After step 5, K_j and W_j are the true commitments to every party's shares: the honest
parties' shares fix the polynomials, and the checks fix everyone's points to them.  To sign a
digest z with R's x-coordinate r, each party sends s_j = z·(k⁻¹)_j + r·v_j.  If the m shares
lie on one degree-t polynomial they are all true (the t+1 honest ones fix it); otherwise every
party checks s_j·G = z·K_j + r·W_j for each sender: a share that fails names its sender, and s
is interpolated from t+1 shares that pass (the honest parties' always do), so a bad signature
share neither stops the signature nor is ever used.  A deviation before that point (a wrong
re-shared product, opened share or published point) aborts the session without a name: with
2t+1 parties one wrong share among t+1 honest ones cannot be told apart (docs/SECURITY.md).

Published to the session's parties (never to the coordinator): R, K = k⁻¹·G and
W = k⁻¹·x·G per presignature, and each party's points of them.
"""

from __future__ import annotations

import coincurve
import numpy as np

from .active import Checked, Deviation
from .ecdsa import SigningError, finish, parse_digest, xy
from .secp256k1 import N, hex_point, mul, mul_base, point
from .shamir import lagrange_coefficients


async def presign(rt, share: int, points: list[int], count: int,
                  names: list[str] | None = None) -> list[dict]:
    """``count`` presignatures among the session parties (>= 2t+1, at their roster points):
    R, this party's shares of k⁻¹ and k⁻¹·x, and every party's commitments K_j and W_j."""
    if not 0 < count <= 1000:
        raise ValueError(f"presignature count {count} outside 1..1000")
    s = Checked(rt, N, points, names)
    s.prepare_check()
    ku = await s.deal_random(2 * count)
    k, u = ku[:count], ku[count:]
    nonce_points, product = s.publish(k), s.mul(k, u)
    w = await s.open(await product)
    if np.any(w == 0):  # k or u is 0: probability 2^-255 per presignature
        raise SigningError("a nonce or its mask is zero; run the job again")
    kinv = u * np.array([pow(int(x), -1, N) for x in w], dtype=object) % N
    v = await s.mul(kinv, np.full(count, share % N, dtype=object))
    nonce_points = await nonce_points
    await s.verify()
    commitments = await s.publish(np.concatenate([kinv, v]))
    xs = s.points
    result = []
    for i in range(count):
        R = s.in_exponent([row[i] for row in nonce_points], xs, 0)
        result.append({"R": hex_point(R), "kinv": int(kinv[i]), "kinv_x": int(v[i]),
                       "points": list(xs),
                       "K": [hex_point(row[i]) for row in commitments],
                       "W": [hex_point(row[count + i]) for row in commitments]})
    return result


async def sign_presigned(rt, presignature: dict, public_key: str, digest_hex: str,
                         names: list[str] | None = None) -> dict:
    """The online phase: every party sends its share of s; each share is checked against
    the sender's commitments, and s is made from t+1 that pass.  The result names the
    session indices of the parties whose share failed (``excluded``)."""
    digest = parse_digest(digest_hex)
    s = Checked(rt, N, presignature["points"], names)
    R = point(presignature["R"])
    r = xy(R)[0] % N
    z = int.from_bytes(digest, "big") % N
    mine = (z * presignature["kinv"] + r * presignature["kinv_x"]) % N
    shares = [None if got is None else int(got[0])
              for got in await s.broadcast(np.array([mine], dtype=object))]
    if _on_one_polynomial(s, shares):  # every share is the true one: the t+1 honest fix it
        good = list(range(s.m))
    else:  # someone sent a bad share: check each against its sender's commitments
        good = [j for j in range(s.m) if shares[j] is not None and
                _share_ok(shares[j], presignature["K"][j], presignature["W"][j], z, r)]
    excluded = [j for j in range(s.m) if j not in good]
    if len(good) < s.t + 1:
        raise Deviation(f"too few valid signature shares ({len(good)} of {s.m}, {s.t + 1}"
                        f" needed); invalid: {', '.join(s.names[j] for j in excluded)}",
                        excluded)
    base = good[:s.t + 1]
    lam = lagrange_coefficients([s.points[j] for j in base], 0, N)
    total = sum(c * shares[j] for c, j in zip(lam, base)) % N
    out = finish(public_key, digest, R, total)
    out["excluded"] = excluded
    return out


def _on_one_polynomial(s: Checked, shares: list) -> bool:
    """Whether all m signature shares lie on one polynomial of degree t (field arithmetic
    only: the commitments are checked only when this fails, to name who sent a bad one)."""
    if any(v is None for v in shares):
        return False
    xs = s.points[:s.t + 1]
    return all(sum(c * v for c, v in zip(lagrange_coefficients(xs, s.points[j], N),
                                         shares[:s.t + 1])) % N == shares[j]
               for j in range(s.t + 1, s.m))


async def sign(rt, share: int, points: list[int], public_key: str, digest_hex: str,
               names: list[str] | None = None) -> dict:
    """ECDSA signature of a 32-byte digest: one presignature, then its online phase, in one
    session."""
    parse_digest(digest_hex)  # a bad digest is refused before any MPC
    (presignature,) = await presign(rt, share, points, 1, names)
    return await sign_presigned(rt, presignature, public_key, digest_hex, names)


def _share_ok(sent: int, K: str, W: str, z: int, r: int) -> bool:
    """Whether a party's signature share s_j satisfies s_j·G = z·K_j + r·W_j."""
    if not 0 < sent < N:
        return False
    try:
        expected = coincurve.PublicKey.combine_keys([mul(point(K), z), mul(point(W), r)]
                                                    if z else [mul(point(W), r)])
    except ValueError:  # the point at infinity: no share matches it
        return False
    return mul_base(sent).format() == expected.format()
