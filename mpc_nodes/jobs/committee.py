"""Which parties hold a key, and at which Shamir points.

A key's sharing belongs to the committee it was made for (keygen) or moved to (resharing):
the holders named in its KeyMeta, in point order, point = position + 1.  That committee can
differ from the roster in force: after a roster update the key keeps signing with its holders
until `key-reshare` moves it to the new roster's parties and threshold.  Files from before
resharing name no holders; theirs are the roster's parties.
"""

from __future__ import annotations

from keyshare import KeyMeta

from mpc_nodes.config import PartyInfo, Roster
from mpc_nodes.node.context import JobRejected


def holders(meta: KeyMeta, roster: Roster) -> list[str]:
    """The parties holding this sharing, in point order."""
    return recorded_holders(meta.holders, meta.n, roster)


def recorded_holders(recorded: list[str], n: int, roster: Roster) -> list[str]:
    """The holders a share file or a ledger record names, or for one from before resharing
    (it names none) the roster's first n parties."""
    return list(recorded) or [p.name for p in roster.parties][:n]


def point(meta: KeyMeta, roster: Roster, name: str) -> int:
    """`name`'s Shamir point in this sharing; JobRejected if it holds none."""
    committee = holders(meta, roster)
    if name not in committee:
        raise JobRejected(f"{name} holds no share of key {meta.key_id} (its holders:"
                          f" {', '.join(committee)})")
    return committee.index(name) + 1


def points(meta: KeyMeta, roster: Roster, participants: list[PartyInfo]) -> list[int]:
    """The participants' points, in session order; JobRejected naming any non-holder."""
    committee = holders(meta, roster)
    if strangers := [p.name for p in participants if p.name not in committee]:
        raise JobRejected(f"{', '.join(strangers)} hold no share of key {meta.key_id} (its"
                          f" holders: {', '.join(committee)}; mpcnet keys reshare moves it"
                          f" to the roster's parties)")
    return [committee.index(p.name) + 1 for p in participants]


def own_verification_share(meta: KeyMeta, roster: Roster, name: str) -> str:
    """The verification share published for `name`'s share."""
    return meta.verification_shares[point(meta, roster, name) - 1]


def is_current(meta: KeyMeta, roster: Roster) -> bool:
    """Whether the key is shared among exactly the roster's parties at its threshold."""
    return (holders(meta, roster) == [p.name for p in roster.parties]
            and meta.t == roster.threshold)


def require_current(meta: KeyMeta, roster: Roster) -> None:
    """JobRejected unless the key is shared as the roster says (for jobs that need every
    party at its roster point: refresh, resharing's successor)."""
    if not is_current(meta, roster):
        raise JobRejected(
            f"key {meta.key_id} is shared {meta.t}-of-{meta.n} among"
            f" {', '.join(holders(meta, roster))}, not as roster version {roster.version} says"
            f" ({roster.threshold}-of-{roster.n}); move it first: mpcnet keys reshare --key"
            f" {meta.key_id}")
