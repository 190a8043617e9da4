"""Item 7: no identity can take over another's bus session, and a node that stops hearing
the bus says so.

The attacker is a roster member (party1's operator) with its own valid certificate: it
connects to the broker under party0's client id, which on a broker that does not bind ids
to certificates disconnects party0 (Mosquitto) or silently drops its subscriptions while
its connection stays up (amqtt).  Deafness is then provoked the way a broker can still
cause it: an ACL that stops delivering to the node, on a private Mosquitto.
"""

import asyncio
import json

import aiomqtt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mpc_nodes.wire import client_ids, mosquitto
from mpc_nodes.config import load_node_config, parse_broker_url
from mpc_nodes.client.coordinator import Coordinator
from tests.cluster_harness import http_get, mosquitto_binary, wait_until
from tests.test_broker_acl import TLS_BROKERS, login

pytestmark = pytest.mark.e2e
JOB = ("ping", {"rounds": 2})  # an MPC session of every party that votes, on no private input
needs_mosquitto = pytest.mark.skipif(mosquitto_binary() is None,
                                     reason="no mosquitto binary installed")



def metrics_port(cluster, i: int) -> int:
    return load_node_config(cluster.dir / f"party{i}" / "node.yaml").metrics_port


async def bus_connections(cluster, i: int) -> float:
    _, text = await asyncio.to_thread(http_get, metrics_port(cluster, i), "/metrics")
    return next(s.value for f in text_string_to_metric_families(text) for s in f.samples
                if s.name == "mpcnet_bus_connections_total")


async def health(cluster, i: int) -> tuple[int, dict]:
    status, body = await asyncio.to_thread(http_get, metrics_port(cluster, i), "/healthz")
    return status, json.loads(body)


async def claim(url: str, cluster, cert: str, client_id: str, c: Coordinator):
    """Connect with `cert` as `client_id` and, while holding the connection, run a job; a
    refused connection runs the job right after.  Returns (refused, outcome)."""
    _, host, port = parse_broker_url(url)
    try:
        async with aiomqtt.Client(host, port, tls_context=login(cluster, cert),
                                  identifier=client_id, timeout=10) as mallory:
            await mallory.subscribe(f"mpcnet/{cluster.roster.cluster_id}/#", qos=1)
            return False, await c.run_job(*JOB)
    except aiomqtt.MqttError:
        return True, await c.run_job(*JOB)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("broker", TLS_BROKERS)
async def test_a_party_cannot_take_over_another_partys_session(make_cluster, broker):
    # 4 parties: a job can run even while the attacker's own party1 is disturbed (on
    # Mosquitto the attacker's connection is renamed to party1's own id)
    cluster = make_cluster(parties=4, threshold=1, broker=broker)
    cid = cluster.roster.cluster_id
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        before = await bus_connections(cluster, 0)
        # party0's id as the node sends it, and its certificate name (the id Mosquitto
        # gives a client once ids are bound to certificates)
        for victim_id in (client_ids.node_id(cid, "party0"), "party0"):
            refused, outcome = await claim(cluster.broker_url, cluster, "party1", victim_id, c)
            if broker == "embedded" or victim_id == "party0":
                assert refused, f"party1's certificate was let in as {victim_id!r}"
            assert outcome.ok, outcome.error
            assert "party0" in outcome.participants, (victim_id, outcome.participants)
        # party0 was never disconnected nor made deaf, and says it is healthy
        assert await bus_connections(cluster, 0) == before
        status, body = await health(cluster, 0)
        assert status == 200 and body["bus"] == "connected", body
        await cluster.wait_online(c)
        assert (await c.run_job(*JOB)).ok


@pytest.mark.timeout(240)
@needs_mosquitto
async def test_the_coordinator_listener_lets_no_party_claim_a_session(make_cluster):
    """Mosquitto's optional coordinator listener keeps client-chosen ids (several processes
    of one coordinator at once); a party's certificate there still cannot reach a party's
    session."""
    cluster = make_cluster(parties=4, threshold=1, broker="mosquitto-tls")
    cid = cluster.roster.cluster_id
    coord_url = cluster.coordinator_broker_url
    config = cluster.dir / "coordinator" / "coordinator.yaml"
    async with Coordinator(config, coord_url) as c, Coordinator(config, coord_url) as c2:
        await cluster.wait_online(c)
        await cluster.wait_online(c2)
        before = await bus_connections(cluster, 0)
        for victim_id in ("party0", client_ids.node_id(cid, "party0")):
            refused, outcome = await claim(coord_url, cluster, "party1", victim_id, c)
            if victim_id == "party0":
                assert refused, "party1's certificate was let in as 'party0'"
            assert outcome.ok and "party0" in outcome.participants, outcome.error
        # two processes of one coordinator work side by side on this listener
        first, second = await asyncio.gather(
            c.run_job(*JOB),
            c2.run_job(*JOB))
        assert first.ok and second.ok, (first.error, second.error)
        assert await bus_connections(cluster, 0) == before


def _acl_without_reading(acl: str, party: str) -> str:
    """The generated ACL with `party`'s read rule removed (writes still allowed)."""
    out, section = [], None
    for line in acl.splitlines():
        if line.startswith("user "):
            section = line.split()[1]
        if section == party and line.startswith("topic read"):
            continue
        out.append(line)
    return "\n".join(out) + "\n"


@pytest.mark.timeout(240)
@needs_mosquitto
async def test_a_deaf_node_reports_it_in_health_and_status(make_cluster):
    cluster = make_cluster(parties=3, threshold=1, broker="mosquitto-tls")
    acl_file = cluster.dir / "mosquitto" / "acl"
    generated = acl_file.read_text()
    assert generated == mosquitto.acl(cluster.roster)
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        assert (await health(cluster, 0))[0] == 200

        # the broker stops delivering to party0: its connection stays up, it hears nothing
        acl_file.write_text(_acl_without_reading(generated, "party0"))
        cluster.broker_proc.send_signal(1)  # SIGHUP: Mosquitto reloads its ACL

        async def unhealthy():
            status, body = await health(cluster, 0)
            return body if status == 503 else None
        body = await wait_until(unhealthy, 60, "party0's /healthz turning unhealthy", 0.2)
        assert body["bus"] == "deaf" and "heartbeat" in body["bus_error"], body

        async def deaf_in_status():
            return (await c.status(wait=0.2))["party0"].state == "deaf"
        await wait_until(deaf_in_status, 60, "party0's presence saying deaf", 0.2)
        assert "party0" not in c.online()

        # reading allowed again: the node hears its heartbeat and is healthy and online
        acl_file.write_text(generated)
        cluster.broker_proc.send_signal(1)

        async def healthy():
            status, body = await health(cluster, 0)
            return status == 200 and body["bus"] == "connected"
        await wait_until(healthy, 60, "party0's /healthz recovering", 0.2)
        await cluster.wait_online(c, timeout=60)
        outcome = await c.run_job(*JOB)
        assert outcome.ok and "party0" in outcome.participants, outcome.error
