"""The adversarial harnesses themselves: a lying node with an honest hook is a normal party,
and one whose hook lies is seen to lie by the coordinator."""

import pytest

from tests.adversarial.harness import start_liar

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

HONEST = """
def lie(leaf, message, node):
    return message
"""

REJECT_ALL = """
def lie(leaf, message, node):
    if leaf == "votes":
        return message.model_copy(update={"accept": False, "reason": "the liar says no"})
    return message
"""


async def test_honest_hook_is_a_normal_party(make_cluster, curious_factory):
    cluster = make_cluster(start=False)
    cluster.start_broker()
    for i in (0, 2):
        cluster.start_node(i)
    start_liar(cluster, 1, HONEST)
    for i in range(3):
        (cluster.dir / f"party{i}" / "inputs.yaml").write_text(f"x: {i + 1}\n")
    async with curious_factory(cluster) as cc:
        out = await cc.run("aggregate", {"input": "x", "method": "median"})
        assert out.ok, out.error
        assert out.output["value"] == pytest.approx(2.0)


async def test_a_lying_vote_reaches_the_coordinator(make_cluster, curious_factory):
    cluster = make_cluster(start=False)
    cluster.start_broker()
    for i in (0, 2):
        cluster.start_node(i)
    start_liar(cluster, 1, REJECT_ALL)
    async with curious_factory(cluster) as cc:
        votes = await cc.votes("ping", {"rounds": 1})
        assert votes["party1"].accept is False and votes["party1"].reason == "the liar says no"
        assert votes["party0"].accept and votes["party2"].accept
