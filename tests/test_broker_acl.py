"""Certificate logins and the topic ACL, with real clients: on the embedded broker, and on the
real Mosquitto binary running the configuration mpc_nodes.wire.mosquitto generates."""

import asyncio

import aiomqtt
import pytest

from mpc_nodes.wire import client_ids, topics
from mpc_nodes import pki
from mpc_nodes.config import parse_broker_url
from tests.cluster_harness import mosquitto_binary, wait_until

pytestmark = pytest.mark.e2e


def login(cluster, who):
    d = cluster.dir / who
    cert = d / "tls.crt"
    return pki.client_context(cert, d / "tls.key", (d / "passphrase").read_bytes().strip(),
                              cluster.roster.ca_cert)


TLS_BROKERS = [pytest.param("embedded", id="embedded"),
               pytest.param("mosquitto-tls", id="mosquitto", marks=pytest.mark.skipif(
                   mosquitto_binary() is None, reason="no mosquitto binary installed"))]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("broker", TLS_BROKERS)
async def test_broker_enforces_certificates_and_topics(make_cluster, tmp_path, broker):
    cluster = make_cluster(parties=3, threshold=1, broker=broker, start=False)
    cluster.start_broker()
    _, host, port = parse_broker_url(cluster.broker_url)
    cid = cluster.roster.cluster_id

    # no certificate, or a certificate from another CA: refused at login.  Under TLS 1.3 the
    # broker's alert comes after the client's side of the handshake, so a refusal can show
    # only as a CONNACK that never comes: give up on it after 3 s (aiomqtt waits 10)
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(host, port, tls_context=pki.client_context(
                None, None, None, cluster.roster.ca_cert), identifier="anon", timeout=3):
            pass
    ca_key, ca_cert = pki.new_ca("other")
    key, cert = pki.issue_cert(ca_key, ca_cert, "party0", ["party0"], [], False, True)
    pki.write_key(tmp_path / "k", key, None)
    (tmp_path / "c").write_text(pki.cert_pem(cert))
    foreign = pki.client_context(tmp_path / "c", tmp_path / "k", None, cluster.roster.ca_cert)
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(host, port, tls_context=foreign, identifier="foreign",
                                  timeout=3):
            pass

    received = []  # client ids are bound to certificates (tests/adversarial/test_session_takeover)
    async with aiomqtt.Client(host, port, tls_context=login(cluster, "party2"),
                              identifier=client_ids.node_id(cid, "party2")) as watcher:
        await watcher.subscribe(f"mpcnet/{cid}/#", qos=1)

        async def collect():
            async for m in watcher.messages:
                received.append((str(m.topic), bytes(m.payload)))
        task = asyncio.ensure_future(collect())
        async with aiomqtt.Client(host, port, tls_context=login(cluster, "party1"),
                                  identifier=client_ids.node_id(cid, "party1")) as p1:
            await p1.publish(topics.node(cid, "party1", "status"), b"own", qos=1)
            await p1.publish(topics.node(cid, "party0", "status"), b"spoofed", qos=1)
            await p1.publish(topics.jobs(cid), b"fake job", qos=1)
            await p1.publish("elsewhere/x", b"outside", qos=1)
        async with aiomqtt.Client(host, port, tls_context=login(cluster, "coordinator"),
                                  identifier=client_ids.coordinator_id(cid, "coordinator")) as co:
            await co.publish(topics.jobs(cid), b"job", qos=1)
            await co.publish(topics.node(cid, "party2", "votes"), b"fake vote", qos=1)
            await co.publish(topics.jobs(cid), b"last", qos=1)  # after it, all was delivered
        await wait_until(lambda: (topics.jobs(cid), b"last") in received, 10, "the last message")
        task.cancel()
    assert sorted(received) == sorted([(topics.node(cid, "party1", "status"), b"own"),
                                       (topics.jobs(cid), b"job"), (topics.jobs(cid), b"last")])


@pytest.mark.timeout(90)
@pytest.mark.skipif(mosquitto_binary() is None, reason="no mosquitto binary installed")
async def test_full_jobs_through_generated_mosquitto_configuration(make_cluster):
    cluster = make_cluster(parties=3, threshold=1, broker="mosquitto-tls")
    conf = (cluster.dir / "mosquitto" / "mosquitto.conf").read_text()
    assert "require_certificate true" in conf and "use_identity_as_username true" in conf
    assert "use_username_as_clientid true" in conf
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        outcome = await c.run_job("aggregate", {"input": "eth_vol_30d"})
        assert outcome.ok, outcome.error
        assert (await c.run_job("keygen", {"key_id": "vault-1"})).ok
