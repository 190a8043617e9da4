"""The embedded broker takes a new roster without a restart: a removed party's connection is
closed, it can no longer log in, and the others carry on.  Real clients, real TLS."""

import asyncio

import aiomqtt
import pytest

from mpc_nodes import pki
from mpc_nodes.config import parse_broker_url
from mpc_nodes.deploy.cluster import init_cluster
from mpc_nodes.deploy.supervisor import embedded_broker, roster_acl
from mpc_nodes.onboarding import next_version
from mpc_nodes.wire import client_ids, topics
from tests.cluster_harness import wait_until


def login(cluster_dir, roster, who):
    d = cluster_dir / who
    return pki.client_context(d / "tls.crt", d / "tls.key",
                              (d / "passphrase").read_bytes().strip(), roster.ca_cert)


@pytest.mark.timeout(60)
async def test_a_removed_party_is_disconnected_and_refused_at_once(tmp_path):
    v1 = init_cluster(tmp_path / "c", parties=4, threshold=1)
    cid, broker = v1.cluster_id, embedded_broker(tmp_path / "c")
    _, host, port = parse_broker_url(broker.url)
    await broker.start()
    try:
        received, closed = [], asyncio.Event()

        async def listen(client):
            try:
                async for m in client.messages:
                    received.append(bytes(m.payload))
            except aiomqtt.MqttError:
                closed.set()

        async with aiomqtt.Client(host, port, tls_context=login(tmp_path / "c", v1, "party3"),
                                  identifier=client_ids.node_id(cid, "party3")) as removed, \
                aiomqtt.Client(host, port, tls_context=login(tmp_path / "c", v1, "party0"),
                               identifier=client_ids.node_id(cid, "party0")) as kept:
            await removed.subscribe(f"mpcnet/{cid}/#", qos=1)
            task = asyncio.ensure_future(listen(removed))
            await kept.publish(topics.node(cid, "party0", "status"), b"before", qos=1)
            await wait_until(lambda: b"before" in received, 10, "party3 hears party0")

            closed_names = await broker.revise(roster_acl(next_version(v1, remove=["party3"])))
            assert closed_names == ["party3"]
            await wait_until(closed.is_set, 10, "party3's connection closed")
            await kept.publish(topics.node(cid, "party0", "status"), b"after", qos=1)
            task.cancel()
        assert b"after" not in received

        with pytest.raises(aiomqtt.MqttError):  # and it cannot come back
            async with aiomqtt.Client(host, port, timeout=3,
                                      tls_context=login(tmp_path / "c", v1, "party3"),
                                      identifier=client_ids.node_id(cid, "party3")):
                pass
        async with aiomqtt.Client(host, port, tls_context=login(tmp_path / "c", v1, "party0"),
                                  identifier=client_ids.node_id(cid, "party0")) as again:
            await again.publish(topics.node(cid, "party0", "status"), b"still in", qos=1)
    finally:
        await broker.stop()
