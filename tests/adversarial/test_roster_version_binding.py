"""Requests are bound to the roster: a job request carries the version and digest of the
roster its coordinator holds, and a node refuses one made under another roster, naming both.
The attack: a request signed under version 1 (kept, not sent) is replayed after the operators
moved to version 2; and a coordinator left on version 1 asks for a job."""

from __future__ import annotations

import pytest

from mpc_nodes import governance
from mpc_nodes.deploy.cluster import amend_roster
from mpc_nodes.wire.messages import JobRequest
from tests.adversarial.harness import CuriousCoordinator, solicit_votes


def test_the_reason_names_both_rosters(tmp_path):
    from mpc_nodes.deploy.cluster import init_cluster
    v1 = init_cluster(tmp_path / "c", parties=3, threshold=1)
    v2 = amend_roster(tmp_path / "c", limits=v1.limits.model_copy(update={"vol_spread_limit": 0.3}))
    assert governance.binding_mismatch(v2, **_args(v2)) is None
    reason = governance.binding_mismatch(v2, **_args(v1))
    assert "roster version 1" in reason and "holds roster version 2" in reason
    forked = v2.model_copy(update={"limits": v1.limits})  # same number, other contents
    assert "another roster of version 2" in governance.binding_mismatch(v2, **_args(forked))
    with pytest.raises(ValueError):  # a request without the binding does not parse
        JobRequest(job_id="0" * 32, kind="ping", params={}, coordinator="c", issued_at=0.0,
                   expires_at=1.0)


def _args(roster) -> dict:
    binding = governance.request_binding(roster)
    return {"version": binding["roster_version"], "digest": binding["roster_digest"]}


@pytest.mark.e2e
@pytest.mark.timeout(90)
async def test_a_request_made_under_an_old_roster_is_refused_after_an_update(make_cluster):
    cluster = make_cluster(parties=3, threshold=1)
    async with cluster.coordinator() as stale:
        await cluster.wait_online(stale)
        old = CuriousCoordinator(stale, cluster)
        assert (await old.run("ping", {"rounds": 2})).ok  # version 1: accepted
        kept, raw, digest = old.request("ping", {"rounds": 2}, ttl=120)  # signed, not sent
        assert kept.roster_version == 1

        for i in range(3):  # the operators move to version 2 (quorum-signed), nodes restart
            cluster.stop_node(i)
            await cluster.wait_offline(stale, f"party{i}")
        cluster.roster = amend_roster(cluster.dir, limits=cluster.roster.limits.model_copy(
            update={"vol_spread_limit": 0.3}))
        for i in range(3):
            cluster.start_node(i)
        await cluster.wait_online(stale)

        votes = await solicit_votes(stale, raw, kept.job_id, digest, timeout=10)
        assert set(votes) == {p.name for p in cluster.roster.parties}
        for vote in votes.values():
            assert not vote.accept
            assert "made under roster version 1" in vote.reason
            assert "holds roster version 2" in vote.reason

        refused = await old.run("ping", {"rounds": 2})  # the stale coordinator's new request
        assert not refused.ok
        assert all("holds roster version 2" in v.reason for v in refused.votes)

    async with cluster.coordinator() as current:  # one holding version 2 is served
        await cluster.wait_online(current)
        assert current.roster.version == 2
        assert (await current.run_job("ping", {"rounds": 2})).ok
