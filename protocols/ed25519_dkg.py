"""Dealer-free key generation for FROST(Ed25519, SHA-512) over MPyC.

Run among all n parties in roster order with MPyC's threshold set to the cluster's t: each
party inputs a random element of Z_L (L, the ed25519 group order) and the key is their sum,
random if any one party is honest.  MPyC evaluates its sharing polynomials at x = pid + 1
(``mpyc.thresha.random_split``), so a party's share is the FROST signing share of
identifier pid + 1 — the same points as the ECDSA shares.  Each party then publishes its
verification share sk_i·G and checks that all of them lie on one degree-t polynomial; the
group public key is that polynomial at 0 "in the exponent".  The key is never revealed.

Shares are returned as ``int``; the FROST scalar is ``share.to_bytes(32, "little")``.
"""

from __future__ import annotations

import secrets

from .frost import L, group_public_key, verification_share


def scalar(share: int) -> bytes:
    """A stored share (int) as a FROST scalar: 32 bytes, little-endian."""
    if not 0 <= share < L:
        raise ValueError("share out of range for the ed25519 scalar field")
    return share.to_bytes(32, "little")


async def keygen(rt) -> dict:
    """This party's share, the RFC 8032 group public key and every verification share
    (index j-1 for identifier j), all hex; raises FrostError if the shares are inconsistent."""
    secfld = rt.SecFld(L)
    x = rt.sum(rt.input(secfld(secrets.randbelow(L)), senders=None))
    share = int((await rt.gather(x)).value)
    published = await rt.transfer(verification_share(scalar(share)))
    public_key = group_public_key({p.pid + 1: published[p.pid] for p in rt.parties},
                                  degree=rt.threshold)
    return {"share": share, "public_key": public_key.hex(),
            "verification_shares": [v.hex() for v in published]}
