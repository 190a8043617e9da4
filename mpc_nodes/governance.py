"""Which rosters a node accepts: no key that one person holds decides who is in the network.

- A FIRST roster (a node that has accepted none) needs a valid signature of every operator it
  lists, parties and coordinators alike.
- The NEXT version needs signatures of at least `roster_update_quorum` (n - t, or stricter)
  parties of the roster the node holds now, with their keys as pinned there (a removed
  operator's signature, or a forger's, counts for nothing); every operator it adds or whose
  identity key it changes signs too (it holds the key the roster pins).  Versions go up by one:
  an older or the same version with other contents (a replay) is refused.

A signature covers the roster's SHA-256 digest: the canonical JSON of every field except the
signatures (and `security` when it is semi-honest, what a roster without it means), under a
domain tag.  Usage: `sign(roster, name, key)`, then `accept(held, offered)`.
"""

from __future__ import annotations

import hashlib
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_nodes.config import Roster, RosterSignature
from mpc_nodes.errors import UserError
from mpc_nodes.pki import identity_public, public_hex

DOMAIN = b"mpcnet roster v1\0"


class RosterTrustError(UserError, ValueError):
    """A roster is not signed by the operators who must sign it; the message names them."""


def roster_digest(roster: Roster) -> bytes:
    """What an operator signs: the roster without its signatures, canonically encoded.
    `security` is signed when it is "malicious"; a semi-honest roster is encoded without it,
    as rosters were before the field existed, so their signatures (and the requests bound to
    them) stay valid and mean what they meant."""
    body = roster.model_dump(mode="json", exclude={"signatures"})
    if body["security"] == "semi-honest":
        del body["security"]
    return hashlib.sha256(DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":"))
                          .encode()).digest()


def operators(roster: Roster) -> dict[str, str]:
    """Every operator the roster lists (parties and coordinators): name -> identity key."""
    return {**{p.name: p.identity_key for p in roster.parties},
            **{c.name: c.identity_key for c in roster.coordinators}}


def sign(roster: Roster, name: str, key: Ed25519PrivateKey) -> Roster:
    """The roster with `name`'s signature by `key` added (signing twice with one key adds it
    once).  `name` must be an operator of this roster or, for an update, of the roster it
    replaces: the caller checks the contents first (`mpcnet roster sign` shows them).  An
    operator the update re-keys signs with its new key and may sign with the key the current
    roster pins too, which counts towards the quorum."""
    digest = roster_digest(roster)
    signature = RosterSignature(signer=name, signature=key.sign(digest).hex())
    others = [s for s in roster.signatures if s != signature]
    return roster.model_copy(update={"signatures": [*others, signature]})


def valid_signers(roster: Roster, keys: dict[str, str]) -> set[str]:
    """Names in `keys` (name -> identity key) whose signature of the roster verifies."""
    digest, good = roster_digest(roster), set()
    for s in roster.signatures:
        if s.signer in keys:
            try:
                identity_public(keys[s.signer]).verify(bytes.fromhex(s.signature), digest)
                good.add(s.signer)
            except InvalidSignature:
                pass
    return good


def check_first(roster: Roster) -> None:
    """A first roster: every operator it lists has signed it."""
    missing = sorted(set(operators(roster)) - valid_signers(roster, operators(roster)))
    if missing:
        raise RosterTrustError(f"roster {roster.cluster_id} version {roster.version} lacks a"
                               f" valid signature of {', '.join(missing)}: a first roster needs"
                               f" every operator it lists")


def check_update(current: Roster, new: Roster) -> None:
    """`new` may replace `current`: same cluster, next version, signed by the quorum of
    `current`'s parties and by every operator it adds or re-keys."""
    where = f"roster {new.cluster_id} version {new.version}"
    if new.cluster_id != current.cluster_id:
        raise RosterTrustError(f"{where} is for another cluster than {current.cluster_id}")
    if new.version != current.version + 1:
        raise RosterTrustError(f"{where} does not follow the version this node holds"
                               f" ({current.version}): an update raises it by exactly one")
    held = {p.name: p.identity_key for p in current.parties}
    quorum = current.roster_update_quorum
    approvers = valid_signers(new, held)
    if len(approvers) < quorum:
        raise RosterTrustError(f"{where} is signed by {len(approvers)} of the current"
                               f" roster's parties ({', '.join(sorted(approvers)) or 'none'});"
                               f" it needs {quorum}")
    old = operators(current)
    newcomers = {n: k for n, k in operators(new).items() if old.get(n) != k}
    unsigned = sorted(set(newcomers) - valid_signers(new, newcomers))
    if unsigned:
        raise RosterTrustError(f"{where} adds or re-keys {', '.join(unsigned)} without"
                               f" their own signature")


def accept(held: Roster | None, offered: Roster) -> Roster:
    """The roster a node runs with when it holds `held` (None: none yet) and is offered
    `offered`; raises RosterTrustError when `offered` may not be used."""
    if held is None:
        check_first(offered)
    elif roster_digest(offered) != roster_digest(held):
        check_update(held, offered)
    return offered


def request_binding(roster: Roster) -> dict:
    """The fields that bind a job request to the roster its coordinator holds."""
    return {"roster_version": roster.version, "roster_digest": roster_digest(roster).hex()}


def binding_mismatch(held: Roster, version: int, digest: str) -> str | None:
    """Why a request made under roster `version`/`digest` may not run on a node holding
    `held` (None: it may)."""
    if digest == roster_digest(held).hex():
        return None
    made = f"version {version} ({digest[:16]})"
    if version == held.version:
        made = f"another roster of version {version} ({digest[:16]})"
    return (f"request made under roster {made}; this node holds roster version {held.version}"
            f" ({roster_digest(held).hex()[:16]}): the coordinator must use the roster the"
            f" nodes hold")


def signed_by(roster: Roster, key: Ed25519PrivateKey) -> str | None:
    """The operator name of `roster` (or None) whose pinned identity key is `key`'s."""
    mine = public_hex(key)
    return next((n for n, k in operators(roster).items() if k == mine), None)
