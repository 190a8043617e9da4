"""A coordinator that lies in a resharing request cannot move a key to another sharing.

`key-reshare` carries the key's public part: public key, threshold, holders, verification
shares and the new epoch.  A party new to the key takes it on the holders' signed votes, so
each holder must refuse any request whose public part is not exactly what it holds: another
public key (one whose secret the coordinator knows), a lower threshold, holders in another
order (shares dealt from the wrong points), a verification share swapped, a replayed epoch.
Each lie below is signed by the real coordinator key and sent to every party; every holder
refuses it and names what differs.  The honest request moves the key (here to the same
committee: a re-randomisation) and the key still signs, checked by libsecp256k1.
"""

from __future__ import annotations

import secrets

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mpc_nodes.jobs.ecdsa import ecdsa_keygen
from mpc_nodes.jobs.frost import frost_keygen, frost_sign
from mpc_nodes.jobs.reshare import held_key, record
from protocols import frost
from protocols.ed25519_dkg import scalar
from protocols.secp256k1 import hex_point, mul_base

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def _other_point(scheme: str) -> str:
    k = secrets.randbelow(2**250) + 1
    if scheme == "ecdsa-secp256k1":
        return hex_point(mul_base(k))
    return frost.verification_share(scalar(k)).hex()


LIES = {
    "public_key": lambda k: {**k, "public_key": _other_point(k["scheme"])},
    "t": lambda k: {**k, "t": 0},
    "holders": lambda k: {**k, "holders": [k["holders"][1], k["holders"][0], *k["holders"][2:]]},
    "verification_shares": lambda k: {**k, "verification_shares": [
        _other_point(k["scheme"]), *k["verification_shares"][1:]]},
}


async def _refused_everywhere(cc, key_id: str) -> tuple[int, dict]:
    """Every lie and a replayed or skipped epoch are refused by all three holders, naming
    what differs; returns the key's epoch and its honest public part."""
    epoch, key, _ = await held_key(cc.c, key_id)
    honest = {"key_id": key_id, "epoch": epoch + 1, "key": key.model_dump()}
    for field, lie in LIES.items():
        votes = await cc.votes("key-reshare", {**honest, "key": lie(key.model_dump())})
        assert len(votes) == 3, field
        for party, vote in votes.items():
            assert not vote.accept, (field, party)
            assert "not held here as requested" in vote.reason and field in vote.reason, \
                (field, vote.reason)
    await _refused(cc, {**honest, "epoch": epoch + 2},  # a skipped epoch
                   f"cannot reshare to epoch {epoch + 2}")
    return epoch, honest


async def _refused(cc, params: dict, why: str) -> None:
    votes = await cc.votes("key-reshare", params)
    assert len(votes) == 3
    assert all(not v.accept and why in v.reason for v in votes.values()), votes


async def test_every_holder_refuses_a_lie_about_an_ecdsa_key(shared_cluster, curious_factory):
    async with curious_factory(shared_cluster()) as cc:
        made = await ecdsa_keygen(cc.c, "reshare-lies-ecdsa")
        assert made.ok, made.error
        await _refused_everywhere(cc, "reshare-lies-ecdsa")


async def test_every_holder_refuses_a_lie_and_the_honest_request_moves_the_key(
        shared_cluster, curious_factory):
    key_id = "reshare-lies-frost"
    async with curious_factory(shared_cluster()) as cc:
        made = await frost_keygen(cc.c, key_id)
        assert made.ok, made.error
        epoch, honest = await _refused_everywhere(cc, key_id)

        moved = await cc.run("key-reshare", honest)  # to the same committee: new shares
        assert moved.ok, moved.error
        assert moved.output["public_key"] == honest["key"]["public_key"]
        assert moved.output["verification_shares"] != honest["key"]["verification_shares"]
        status = await cc.run("key-status", {"key_id": key_id})
        for state in status.party_outputs.values():  # committed, and the old shares gone
            assert state["committed"] == epoch + 1 and list(state["epochs"]) == [str(epoch + 1)]
        record(cc.c, key_id, moved.output)  # as reshare_key does
        await _refused(cc, honest, "verification_shares differ")  # replayed after the move
        message = b"signed with the reshared key"
        out = await frost_sign(cc.c, key_id, message)
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(out["public_key"])).verify(
            bytes.fromhex(out["signature"]), message)  # OpenSSL; raises if wrong
