"""Each node's /metrics (Prometheus) and /healthz endpoints, scraped from a running cluster."""

import asyncio
import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mpc_nodes.config import load_node_config
from mpc_nodes.jobs.frost import frost_keygen
from tests.cluster_harness import http_get, wait_until

pytestmark = pytest.mark.e2e


def samples(text):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def health_becomes(port, wanted, timeout=30.0):
    """Poll /healthz until it answers `wanted`; return that answer."""
    async def answer():
        status, body = await asyncio.to_thread(http_get, port, "/healthz")
        return (status, body) if status == wanted else None
    return await wait_until(answer, timeout, f"/healthz answering {wanted}", 0.1)


@pytest.mark.timeout(90)
async def test_metrics_and_health_follow_the_node(make_cluster):
    cluster = make_cluster(parties=3, threshold=1)
    ports = [load_node_config(cluster.dir / f"party{i}" / "node.yaml").metrics_port
             for i in range(3)]
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        assert (await c.run_job("aggregate", {"input": "eth_vol_30d"})).ok
        assert not (await c.run_job("aggregate", {"input": "missing"})).ok
        assert (await c.run_job("keygen", {"key_id": "vault-1"})).ok
        assert (await c.run_job("presign", {"key_id": "vault-1", "count": 3})).ok
        assert (await frost_keygen(c, "oracle-1")).ok
        assert (await c.run_job("frost-preprocess", {"key_id": "oracle-1", "count": 4})).ok
    for port in ports:
        status, body = await asyncio.to_thread(http_get, port, "/metrics")
        assert status == 200
        m = samples(body)
        assert m[("mpcnet_jobs_total", (("kind", "aggregate"), ("outcome", "ok")))] == 1
        assert m[("mpcnet_votes_total", (("decision", "reject"), ("kind", "aggregate")))] == 1
        assert m[("mpcnet_policy_rejections_total", (("kind", "aggregate"),))] == 1
        assert m[("mpcnet_mpc_session_seconds_count", (("kind", "aggregate"),))] == 1
        assert m[("mpcnet_bus_connected", ())] == 1
        assert m[("mpcnet_presignatures_left", (("key_id", "vault-1"),))] == 3
        assert m[("mpcnet_frost_nonces_left", (("key_id", "oracle-1"),))] == 4
        assert m[("mpcnet_bus_connections_total", ())] >= 1
        status, body = await asyncio.to_thread(http_get, port, "/healthz")
        assert status == 200 and json.loads(body)["bus"] == "connected"
    assert (await asyncio.to_thread(http_get, ports[0], "/nope"))[0] == 404

    cluster.stop_broker()
    status, body = await health_becomes(ports[0], 503)
    assert status == 503 and json.loads(body)["bus"] == "disconnected"
    cluster.start_broker()
    assert (await health_becomes(ports[0], 200))[0] == 200
    m = samples((await asyncio.to_thread(http_get, ports[0], "/metrics"))[1])
    assert m[("mpcnet_bus_connections_total", ())] >= 2
