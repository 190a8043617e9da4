"""A crash during a resharing never strands a key (issue 12): five parties raise their roster's
threshold from 1 to 2, and `mpcnet reshare` moves a 1-of-5 key to 2-of-5 while party2 is
SIGKILLed in the session (nothing staged anywhere yet) or right after it committed the new
epoch (the others may not have; the old epoch is still on disk).  After the restart the key
signs at once -- with the old sharing or the new one, the coordinator finishing or rolling
back the change on the parties' signed votes -- and the next `reshare` completes the move;
every signature is checked by libsecp256k1 and eth-account."""

import asyncio

import pytest

from mpc_nodes.deploy.cluster import amend_roster
from mpc_nodes.jobs.ecdsa import sign_transaction
from mpc_nodes.jobs.reshare import reshare_key
from tests.test_crash_refresh import kill_at
from tests.test_e2e_keys import tx, verified_by_others, with_policies

pytestmark = pytest.mark.e2e

MOMENTS = [("key-reshare", "start"),  # in the session: nothing staged on any party
           ("key-commit", "result")]  # committed here; others maybe not; old epoch on disk


async def signs(c, nonce: int) -> dict:
    """A signature by vault-1, whichever sharing is in force (the coordinator repairs an
    unfinished change first, as `mpcnet sign` does)."""
    signed = await sign_transaction(c, "vault-1", tx(nonce))
    assert signed.ok, signed.error
    verified_by_others(signed.output, tx(nonce))
    return signed.output


@pytest.mark.timeout(240)
@pytest.mark.parametrize("kind,event", MOMENTS, ids=[f"{k}-{e}" for k, e in MOMENTS])
async def test_a_party_killed_during_a_reshare_never_strands_the_key(make_cluster, kind, event):
    cluster = with_policies(make_cluster(parties=5, threshold=1))
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        key = (await c.run_job("keygen", {"key_id": "vault-1"})).output
        assert key and key["committed"] and key["t"] == 1
    cluster.roster = amend_roster(cluster.dir, threshold=2)  # signed by every operator
    for i in range(5):  # one after another: five starting at once on two cores may not
        cluster.stop_node(i)  # vote on the first job within its 5 s
        cluster.start_node(i)
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        assert (await signs(c, 0))["address"] == key["address"]  # the old sharing, roster v2
        since = len(cluster.audit_events(2))
        running = asyncio.ensure_future(reshare_key(c, "vault-1"))
        await kill_at(cluster, 2, kind, event, since)
        outcome = await running
        assert not outcome.ok, "the resharing cannot finish without party2"
        cluster.start_node(2)
        await cluster.wait_online(c)
        assert (await signs(c, 1))["address"] == key["address"]  # old or new: never neither
        moved = await reshare_key(c, "vault-1")
        assert moved.ok, moved.error
        assert moved.output["t"] == 2 and moved.output["public_key"] == key["public_key"]
        status = await c.run_job("key-status", {"key_id": "vault-1"})
        for name, state in status.party_outputs.items():  # one epoch, 2-of-5, everywhere
            assert list(state["epochs"]) == [str(state["committed"])], (name, state)
            assert state["key"]["t"] == 2 and state["promised"] == {}, (name, state)
        assert (await signs(c, 2))["address"] == key["address"]
