"""Item 5: a presignature (ECDSA) or a nonce (FROST, of round one or preprocessed) is used
once, even after its party's data volume is restored from a snapshot.

The attacker snapshots the data directory of one party, or of all three, after the one-time
secrets were made; signs once; restores the snapshot and restarts the restored parties; and
asks for a second signature with the same secret.  Two ECDSA signatures with the same r (or
two FROST signature shares over the same nonce commitment) give away the key.  Every attempt
must be refused at the vote with a reason that says why, and nothing is signed twice.
"""

from __future__ import annotations

import shutil
import signal

import coincurve
import pytest

from mpc_nodes.jobs.ecdsa import check_signature
from mpc_nodes.jobs.evm import parse_transaction
from protocols import frost
from tests.cluster_harness import eth_policy, wait_until, write_policies

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

RECIPIENT = "0x1111111111111111111111111111111111111111"
POLICY = eth_policy(RECIPIENT)
ONE, ALL = [0], [0, 1, 2]
RESTORED = [pytest.param(ONE, id="one-party"), pytest.param(ALL, id="all-parties")]
UNKNOWN = "unknown here (node restarted?)"


def tx(nonce: int) -> dict:
    return {"chainId": 11155111, "nonce": nonce, "to": RECIPIENT, "value": str(10**16),
            "data": "0x", "gas": 21000, "maxFeePerGas": 30 * 10**9,
            "maxPriorityFeePerGas": 10**9}


def snapshot(cluster, parties: list[int], where) -> None:
    """What an operator's volume snapshot holds: the whole data directory, taken live."""
    for i in parties:
        shutil.copytree(cluster.dir / f"party{i}" / "data", where / f"party{i}")


async def restore(cluster, cc, parties: list[int], where) -> None:
    """Put the snapshot back and restart the restored parties; wait until each is online
    again as a new process (a new boot id)."""
    boots = {i: cc.c.presence[f"party{i}"].boot_id for i in parties}
    for i in parties:
        cluster.stop_node(i, signal.SIGKILL)
        data = cluster.dir / f"party{i}" / "data"
        shutil.rmtree(data)
        shutil.copytree(where / f"party{i}", data)
        cluster.start_node(i)
    def back():
        return all((p := cc.c.presence.get(f"party{i}")) is not None and p.state == "online"
                   and p.boot_id != boots[i] for i in parties)
    await wait_until(back, 60, "restored parties online again as new processes")


def independently_verified(out: dict, transaction: dict) -> None:
    """libsecp256k1 (coincurve) on the digest, besides the coordinator's own checks."""
    assert check_signature(out) is None
    r, s = int(out["r"], 16), int(out["s"], 16)
    der = coincurve.ecdsa.cdata_to_der(coincurve.ecdsa.deserialize_compact(
        r.to_bytes(32, "big") + s.to_bytes(32, "big")))
    assert coincurve.PublicKey(bytes.fromhex(out["public_key"])).verify(
        der, parse_transaction(transaction).digest, hasher=None)


@pytest.mark.parametrize("restored", RESTORED)
async def test_a_restored_presignature_never_signs_twice(make_cluster, curious_factory,
                                                         tmp_path, restored):
    cluster = make_cluster(parties=3, threshold=1)
    write_policies(cluster, POLICY)
    async with curious_factory(cluster) as cc:
        assert (await cc.run("keygen", {"key_id": "vault-1"})).ok
        pre = await cc.run("presign", {"key_id": "vault-1", "count": 2})
        assert pre.ok, pre.error
        presig, signers = pre.output["ids"][0], pre.output["binding"].split(",")
        snapshot(cluster, restored, tmp_path / "snapshot")

        first = await cc.run("sign", {"key_id": "vault-1", "tx": tx(0), "presignature": presig},
                             participants=signers)
        assert first.ok, first.error
        independently_verified(first.output, tx(0))

        await restore(cluster, cc, restored, tmp_path / "snapshot")
        signatures = [first.output]
        for nonce in (1, 2):  # a different transaction each time, as the attacker would
            again = await cc.run("sign", {"key_id": "vault-1", "tx": tx(nonce),
                                          "presignature": presig}, participants=signers)
            if again.ok:
                signatures.append(again.output)
            votes = {v.party: v for v in again.votes}
            for i in range(3):
                vote = votes[f"party{i}"]
                assert not vote.accept
                assert (f"presignature {presig} {UNKNOWN}" if i in restored else
                        f"presignature {presig} was already used") in vote.reason, vote.reason
        assert len({s["r"] for s in signatures}) == len(signatures) == 1

        # the network still signs, with a fresh presignature or none
        fresh = await cc.run("sign", {"key_id": "vault-1", "tx": tx(3)})
        assert fresh.ok, fresh.error
        independently_verified(fresh.output, tx(3))
        assert fresh.output["r"] != first.output["r"]


def _commitments(outcome, names: list[str]) -> list[dict]:
    return [outcome.party_outputs[n] for n in names]


@pytest.mark.parametrize("restored", RESTORED)
async def test_a_restored_frost_nonce_never_signs_twice(make_cluster, curious_factory, tmp_path,
                                                        restored):
    cluster = make_cluster(parties=3, threshold=1)
    signers, request = ["party0", "party1"], "0a1b2c3d4e5f6071"
    async with curious_factory(cluster) as cc:
        key = await cc.run("keygen", {"key_id": "oracle-1", "scheme": "frost-ed25519"})
        assert key.ok, key.error
        pk = bytes.fromhex(key.output["public_key"])
        vshares = {i + 1: bytes.fromhex(v) for i, v in enumerate(key.output["verification_shares"])}
        committed = await cc.run("frost-commit", {"key_id": "oracle-1", "request": request},
                                 participants=signers)
        assert committed.ok, committed.error
        clist = _commitments(committed, signers)
        snapshot(cluster, restored, tmp_path / "snapshot")

        shares_by_commitment: dict[tuple, list[bytes]] = {}

        async def sign(message: bytes, commitments: list[dict]):
            outcome = await cc.run("frost-sign", {"key_id": "oracle-1", "request": request,
                                                  "message": message.hex(),
                                                  "commitments": commitments},
                                   participants=signers)
            parsed = [frost.SigningCommitment(c["identifier"], bytes.fromhex(c["hiding"]),
                                              bytes.fromhex(c["binding"])) for c in commitments]
            for c, name in zip(parsed, signers):
                if name in outcome.party_outputs:  # a share: checked with the RFC's own check
                    z = bytes.fromhex(outcome.party_outputs[name]["share"])
                    assert frost.verify_share(c.identifier, vshares[c.identifier], c, z,
                                              message, parsed, pk)
                    shares_by_commitment.setdefault((c.hiding, c.binding), []).append(z)
            return outcome

        first = await sign(b"eth-usd 3141.59", clist)
        assert first.ok, first.error

        await restore(cluster, cc, restored, tmp_path / "snapshot")
        # the attacker asks the restored parties for fresh commitments under the same request,
        # so that every signer it needs holds some nonce bound to it, then signs another
        # message with the old commitment of each restored party
        again = await cc.run("frost-commit", {"key_id": "oracle-1", "request": request},
                             participants=signers)
        assert again.ok, again.error
        mixed = [old if int(name[-1]) in restored else new
                 for old, new, name in zip(clist, _commitments(again, signers), signers)]
        second = await sign(b"eth-usd 9999.99", mixed)
        assert not second.ok
        votes = {v.party: v for v in second.votes}
        for name, commitment in zip(signers, mixed):
            if int(name[-1]) in restored:
                assert not votes[name].accept and UNKNOWN in votes[name].reason, votes[name]
        assert all(len(zs) == 1 for zs in shares_by_commitment.values()), \
            "a nonce commitment was used for two signature shares"

        # a signing whose commitment was lost is simply retried with fresh commitments
        retry = await cc.run("frost-commit", {"key_id": "oracle-1", "request": "0a1b2c3d4e5f6072"},
                             participants=signers)
        assert retry.ok, retry.error
        request = "0a1b2c3d4e5f6072"
        assert (await sign(b"eth-usd 9999.99", _commitments(retry, signers))).ok
        assert all(len(zs) == 1 for zs in shares_by_commitment.values())


@pytest.mark.parametrize("restored", RESTORED)
async def test_a_restored_or_replayed_preprocessed_nonce_never_signs_twice(
        make_cluster, curious_factory, tmp_path, restored):
    cluster = make_cluster(parties=3, threshold=1)
    signers = ["party0", "party1"]
    async with curious_factory(cluster) as cc:
        key = await cc.run("keygen", {"key_id": "oracle-1", "scheme": "frost-ed25519"})
        assert key.ok, key.error
        made = await cc.run("frost-preprocess", {"key_id": "oracle-1", "count": 2},
                            participants=signers)
        assert made.ok, made.error
        pre = {n: [{"identifier": made.party_outputs[n]["identifier"], **c}
                   for c in made.party_outputs[n]["commitments"]] for n in signers}
        clist = [pre[n][0] for n in signers]
        snapshot(cluster, restored, tmp_path / "snapshot")

        async def sign(message: bytes, commitments: list[dict], request: str,
                       preprocessed: bool = True):
            return await cc.run("frost-sign", {
                "key_id": "oracle-1", "request": request, "message": message.hex(),
                "commitments": commitments, "preprocessed": preprocessed},
                participants=signers)

        # a preprocessed nonce is not usable as round one of a request, and the attempt
        # burns none
        wrong = await sign(b"eth-usd 1.00", clist, "1111111111111111", preprocessed=False)
        assert not wrong.ok
        assert all("is bound to frost/preprocessed" in v.reason for v in wrong.votes
                   if v.party in signers)
        first = await sign(b"eth-usd 3141.59", clist, "2222222222222222")
        assert first.ok, first.error
        # replayed under another request and message: refused, nothing signed
        replay = await sign(b"eth-usd 0.01", clist, "3333333333333333")
        assert not replay.ok and not replay.party_outputs
        assert all("was already used" in v.reason for v in replay.votes if v.party in signers)

        await restore(cluster, cc, restored, tmp_path / "snapshot")
        again = await cc.run("frost-preprocess", {"key_id": "oracle-1", "count": 1},
                             participants=signers)  # each restored party holds some nonce
        assert again.ok, again.error
        second = await sign(b"eth-usd 9999.99", clist, "4444444444444444")
        assert not second.ok and not second.party_outputs
        votes = {v.party: v for v in second.votes}
        for i, name in enumerate(signers):
            assert not votes[name].accept
            assert (UNKNOWN if i in restored else "was already used") in votes[name].reason, \
                votes[name].reason
        # an unused preprocessed commitment of an unrestored party still signs, with fresh
        # ones of the restored parties
        fresh = {n: {"identifier": again.party_outputs[n]["identifier"],
                     **again.party_outputs[n]["commitments"][0]} for n in signers}
        mixed = [fresh[n] if i in restored else pre[n][1] for i, n in enumerate(signers)]
        assert (await sign(b"eth-usd 9999.99", mixed, "5555555555555555")).ok
