"""`key-reshare` under `security: malicious` on real clusters (issue 13): it runs end to end,
and an old holder whose engine deals dishonestly — a sub-share off its commitments, commitments
that do not deal its share, different commitments to different parties — makes the job fail
with the reason (naming the dealer where that is proven), nothing is committed, and the key
still signs at its old epoch (libsecp256k1 and eth-account check every signature).  The
deviations inside the protocol, party by party: tests/adversarial/test_reshare_dealers.py."""

import signal

import pytest

from mpc_nodes.jobs.reshare import held_key, record
from tests.test_e2e_keys import keygen, tx, verified_by_others, with_policies

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

CHEAT_ENGINE = "tests.adversarial.reshare_cheats"

FAILS = {  # the cheat -> what the job's error says (session index 2 is the cheater)
    "sub-share": "dealer 2 sent new parties [1] sub-shares that do not match its commitments",
    "commitments": "dealers [2] sent commitments that are malformed or do not deal",
    "equivocate": "received other commitments from dealer 2 than this party did",
}


def start_cheating_dealer(cluster, i: int):
    """(Re)start party i with an engine whose resharings deal as the returned directory's
    ``cheat`` file says (tests/adversarial/reshare_cheats.py)."""
    cluster.stop_node(i, signal.SIGKILL)
    dir = cluster.dir / f"party{i}-reshare-cheat"
    dir.mkdir(exist_ok=True)
    cluster.nodes[i] = cluster._spawn(
        ["--config", str(cluster.dir / f"party{i}" / "node.yaml"), "--broker",
         cluster.node_broker_url, "--engine-worker", CHEAT_ENGINE],
        cluster.dir / f"party{i}" / "node.log", module="tests.adversarial.lying_node",
        env={"MPCNET_RESHARE_CHEAT_DIR": str(dir)})
    return dir


async def reshare_in_place(c, key_id: str):
    """A resharing of the key among the same parties (new shares, same key), as
    `reshare_key` runs it for a committee change."""
    epoch, key, _ = await held_key(c, key_id)
    return epoch, await c.run_job("key-reshare", {"key_id": key_id, "epoch": epoch + 1,
                                                  "key": key.model_dump()})


async def test_reshare_runs_under_malicious_and_a_cheating_dealer_changes_nothing(make_cluster):
    cluster = with_policies(make_cluster(parties=3, threshold=1, security="malicious"))
    cheat = start_cheating_dealer(cluster, 2)
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        key = await keygen(c, "vault-r")

        epoch, moved = await reshare_in_place(c, "vault-r")  # the cheater deals honestly
        assert moved.ok, moved.error
        assert moved.output["public_key"] == key["public_key"]
        record(c, "vault-r", moved.output)
        nonce = 0
        signed = await c.run_job("sign", {"key_id": "vault-r", "tx": tx(nonce)})
        assert signed.ok, signed.error
        verified_by_others(signed.output, tx(nonce))
        committed = epoch + 1

        for how, reason in FAILS.items():
            (cheat / "cheat").write_text(how)
            _, failed = await reshare_in_place(c, "vault-r")
            assert not failed.ok, how
            assert reason in failed.error, (how, failed.error)
            status = await c.run_job("key-status", {"key_id": "vault-r"})
            for state in status.party_outputs.values():  # the old epoch stays in force
                assert state["committed"] == committed, (how, state)
            (cheat / "cheat").unlink()
            nonce += 1
            signed = await c.run_job("sign", {"key_id": "vault-r", "tx": tx(nonce)})
            assert signed.ok, (how, signed.error)
            verified_by_others(signed.output, tx(nonce))
            assert signed.output["address"] == key["address"]
