"""A flood of malformed and hostile messages leaves every node healthy."""

import json

import aiomqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpc_nodes.wire import client_ids, topics
from mpc_nodes.config import parse_broker_url
from mpc_nodes.pki import client_context
from tests.conftest import BROKERS

pytestmark = pytest.mark.e2e

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10),
                                                                      children, max_size=4),
    max_leaves=12)


def envelope_like(payload):
    return json.dumps({"v": 1, "sender": "coordinator/coordinator",
                       "payload": json.dumps(payload), "sig": "00" * 64}).encode()


payloads = st.one_of(
    st.binary(max_size=512),
    json_values.map(lambda v: json.dumps(v).encode()),
    json_values.map(envelope_like),
    st.fixed_dictionaries({"type": st.sampled_from(["job_request", "job_start", "vote", "result",
                                                    "presence", "job_abort"])},
                          optional={"job_id": st.text(max_size=40), "params": json_values,
                                    "votes": st.lists(st.text(max_size=60), max_size=3)}
                          ).map(envelope_like),
    st.just(b"{" * 10_000),
    st.just(b"x" * (5 * 1024 * 1024)),
)


def generate(n: int) -> list[bytes]:
    found: list[bytes] = []

    @settings(max_examples=n, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(payloads)
    def collect(p):
        found.append(p)

    collect()
    return found


@pytest.mark.timeout(150)
@pytest.mark.parametrize("broker", BROKERS)
async def test_malformed_message_flood_leaves_nodes_healthy(make_cluster, broker):
    cluster = make_cluster(parties=3, threshold=1, broker=broker)
    flood = generate(300)
    tls, host, port = parse_broker_url(cluster.broker_url)
    # the flood comes from an insider: the coordinator's own broker login (on the embedded
    # broker only roster certificates may connect, and only a coordinator may publish jobs)
    cdir = cluster.dir / "coordinator"
    ctx = client_context(cdir / "tls.crt", cdir / "tls.key",
                         (cdir / "passphrase").read_bytes().strip(),
                         cluster.roster.ca_cert) if tls else None
    cid = cluster.roster.cluster_id
    targets = [topics.jobs(cid)] + [topics.node(cid, f"party{i}", "votes") for i in range(3)]
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        async with aiomqtt.Client(host, port, tls_context=ctx,
                                  identifier=client_ids.coordinator_id(cid, "coordinator")) as mallory:
            for i, payload in enumerate(flood):
                await mallory.publish(targets[i % len(targets)], payload, qos=1)
        # the job's request queues behind the flood: its votes mean every node read it all
        outcome = await c.run_job("aggregate", {"input": "eth_vol_30d"})
        assert all(p.poll() is None for p in cluster.nodes.values()), "a node died"
        assert outcome.ok, outcome.error
        assert c.online() == {"party0", "party1", "party2"}
    for i in range(3):
        log = cluster.log(i)
        assert "rejected message" in log
        assert "Traceback" not in log
