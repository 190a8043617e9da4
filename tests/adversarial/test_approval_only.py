"""An approval-only vote counts in the policy quorum and nowhere else.

A party that holds no share of a key (it joined after the key was made and the key is not yet
reshared; here party3, whose share is gone) checks a signing request against its own policy,
reserves, and votes ACCEPT with `participates = false`.  The signature needs its approval
(the quorum is every party) but is made by the holders alone.  A coordinator that names the
approver as a participant anyway, in a start carrying every signed vote, is refused by every
participant before any session runs; a republished request draws the same approval.
"""

from __future__ import annotations

import asyncio
import shutil

import pytest

from mpc_nodes.wire import topics
from mpc_nodes.wire.messages import JobStart
from tests.adversarial.test_policy_bypass import POLICY, raw_votes, tx
from tests.test_e2e_keys import verified_by_others

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

HOLDERS = ["party0", "party1", "party2"]


async def test_an_approver_without_a_share_counts_in_the_quorum_but_never_takes_part(
        make_cluster, curious_factory):
    cluster = make_cluster(parties=4, threshold=1, start=False)
    for i in range(4):
        (cluster.dir / f"party{i}" / "policy.yaml").write_text(POLICY)
    cluster.start()
    async with curious_factory(cluster) as cc:
        assert (await cc.run("keygen", {"key_id": "vault-1"})).ok
        shutil.rmtree(cluster.dir / "party3" / "data" / "keys" / "vault-1")

        signed = await cc.run("sign", {"key_id": "vault-1", "tx": tx(0)})
        assert signed.ok, signed.error
        verified_by_others(signed.output, tx(0))
        assert signed.participants == HOLDERS
        votes = {v.party: v for v in signed.votes}
        assert votes["party3"].accept and not votes["party3"].participates
        assert "holds no share of key vault-1" in votes["party3"].reason
        assert all(votes[p].participates for p in HOLDERS)

        req, digest, votes = await raw_votes(cc, "sign", {"key_id": "vault-1", "tx": tx(1)})
        assert len(votes) == 4 and all(m.accept for _, m, _ in votes.values())
        await cc.publish(JobStart(job_id=req.job_id, request_digest=digest,
                                  votes=[raw.decode() for _, _, raw in votes.values()],
                                  participants=[*HOLDERS, "party3"]))
        results = await cc.c._collect_results(req.job_id, digest, HOLDERS, 30.0)
        assert set(results) == set(HOLDERS)
        assert all(not r.ok and "participants that only approved" in r.error
                   for r in results.values()), results

        # a request republished (its votes lost to a bus outage) draws the same approval,
        # not a refusal as a replay
        req, raw, digest = cc.request("sign", {"key_id": "vault-1", "tx": tx(2)})
        cc.c._votes[req.job_id] = asyncio.Queue()
        jobs = topics.jobs(cluster.roster.cluster_id)
        await cc.c.bus.publish(jobs, raw)
        first = await cc.c._collect_votes(req.job_id, digest, 5.0)
        await cc.c.bus.publish(jobs, raw)
        again = await cc.c._collect_votes(req.job_id, digest, 5.0)
        assert first["party3"][2] == again["party3"][2]  # the very same signed vote
        assert again["party3"][1].accept and not again["party3"][1].participates
