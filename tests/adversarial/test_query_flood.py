"""A roster coordinator floods `job_query`: every id it asks about makes each party
republish a stored signed result and publish an answer.  Each coordinator has a budget of
job ids (mpc_nodes.node.daemon.QUERY_BURST at once, QUERY_RATE a second); the rest go
unanswered, and the node goes on serving jobs."""

import asyncio
import time

import pytest

from mpc_nodes.node.daemon import QUERY_BURST, QUERY_RATE
from mpc_nodes.wire.messages import JobQuery

QUERIES = 20  # of 64 ids each: 1,280 republished results per party without a budget


@pytest.mark.e2e
@pytest.mark.timeout(120)
async def test_a_query_flood_is_answered_within_the_budget_only(shared_cluster, curious_factory):
    cluster = shared_cluster()
    async with curious_factory(cluster) as cc:
        done = await cc.run("ping", {"rounds": 2})
        assert done.ok, done.error
        answers = cc.c._answers.setdefault(done.job_id, asyncio.Queue())
        t0 = time.monotonic()
        for _ in range(QUERIES):
            await cc.publish(JobQuery(job_ids=[done.job_id] * 64))
        await asyncio.sleep(3.0)  # the answers of a flood: none is awaited, all are counted
        elapsed = time.monotonic() - t0
        per_party: dict[str, int] = {}
        while not answers.empty():
            sender = answers.get_nowait().sender
            per_party[sender] = per_party.get(sender, 0) + 1
        allowed = QUERY_BURST + QUERY_RATE * elapsed + 1
        assert set(per_party) == {p.name for p in cluster.roster.parties}, per_party
        assert all(QUERY_BURST <= n <= allowed for n in per_party.values()), \
            (per_party, allowed)
        after = await cc.run("ping", {"rounds": 2})
        assert after.ok, after.error
