"""End to end: real node processes, a real broker (embedded amqtt, and Mosquitto when it
answers on 127.0.0.1:1883), the real coordinator."""

import asyncio
import json
import secrets
import shutil
import signal
import statistics
import time

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_nodes import governance
from mpc_nodes.node.codedigest import code_digest
from mpc_nodes.wire.messages import JobRequest
from mpc_nodes.pki import load_identity
from tests.adversarial.harness import forge_for_jobs, solicit_votes
from tests.cluster_harness import ROOT
from tests.conftest import BROKERS, RESTARTABLE_BROKERS

pytestmark = pytest.mark.e2e


def private_inputs(cluster, name):
    return [yaml.safe_load((cluster.dir / f"party{i}" / "inputs.yaml").read_text())[name]
            for i in range(cluster.roster.n)]


def request(c, kind="ping", params=None, ttl=30.0, issued=None):
    now = time.time() if issued is None else issued
    return JobRequest(job_id=secrets.token_hex(16), kind=kind, params=params or {"rounds": 2},
                      coordinator=c.config.name, issued_at=now, expires_at=now + ttl,
                      **governance.request_binding(c.roster))


@pytest.mark.timeout(90)
@pytest.mark.parametrize("broker", BROKERS)
async def test_aggregate_median_and_mean(shared_cluster, broker):
    cluster = shared_cluster(broker=broker)
    eth, btc = private_inputs(cluster, "eth_vol_30d"), private_inputs(cluster, "btc_vol_30d")
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        status = await c.status()
        assert {p.state for p in status.values()} == {"online"}
        assert {p.code_digest for p in status.values()} == {code_digest()}
        # one aggregation per private input (together a median and a mean of the same
        # inputs would reveal them: docs/SECURITY.md, attack 1)
        for name, method, expected in (("eth_vol_30d", "median", statistics.median(eth)),
                                       ("btc_vol_30d", "mean", statistics.mean(btc))):
            outcome = await c.run_job("aggregate", {"input": name, "method": method})
            assert outcome.ok, outcome.error
            assert outcome.participants == ["party0", "party1", "party2"]
            assert outcome.output["value"] == pytest.approx(expected, abs=1e-7)
            assert all(v.accept for v in outcome.votes)
        refused = await c.run_job("aggregate", {"input": "eth_vol_30d", "method": "mean"})
        assert not refused.ok
        assert all("bound to aggregation 'median'" in v.reason for v in refused.votes)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("broker", BROKERS)
async def test_node_rejections_are_signed_votes_with_reasons(make_cluster, broker):
    cluster = make_cluster(parties=3, threshold=1, broker=broker)
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)

        req = request(c, ttl=-1.0, issued=time.time() - 5)
        raw, digest = c.seal_for_jobs(req)
        votes = await solicit_votes(c, raw, req.job_id, digest)
        assert len(votes) == 3 and all(not v.accept and "expired" in v.reason
                                       for v in votes.values())

        req = request(c, ttl=3600 * 24)
        raw, digest = c.seal_for_jobs(req)
        votes = await solicit_votes(c, raw, req.job_id, digest)
        assert all(not v.accept and "lifetime exceeds" in v.reason for v in votes.values())

        req = request(c, kind="aggregate", params={"input": "no_such_input"})
        raw, digest = c.seal_for_jobs(req)
        votes = await solicit_votes(c, raw, req.job_id, digest)
        assert all(not v.accept and "no private input 'no_such_input'" in v.reason
                   for v in votes.values())

        req = request(c, kind="aggregate", params={"input": "eth_vol_30d", "method": "max"})
        raw, digest = c.seal_for_jobs(req)
        votes = await solicit_votes(c, raw, req.job_id, digest)
        assert all(not v.accept and "method" in v.reason for v in votes.values())

        # replay: the first copy is accepted, a second copy refused, also after a restart
        req = request(c)
        raw, digest = c.seal_for_jobs(req)
        first = await solicit_votes(c, raw, req.job_id, digest)
        assert all(v.accept for v in first.values())
        again = await solicit_votes(c, raw, req.job_id, digest)
        assert all(not v.accept and "replayed" in v.reason for v in again.values())
        assert cluster.stop_node(0) == 0  # SIGTERM: a clean exit
        await cluster.wait_offline(c, "party0")
        cluster.start_node(0)
        await cluster.wait_online(c)
        after_restart = await solicit_votes(c, raw, req.job_id, digest)
        assert not after_restart["party0"].accept and "replayed" in after_restart["party0"].reason


@pytest.mark.timeout(90)
@pytest.mark.parametrize("broker", BROKERS)
async def test_forged_and_unknown_coordinators_get_no_vote(shared_cluster, broker):
    cluster = shared_cluster(broker=broker)
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        mallory = Ed25519PrivateKey.generate()
        forged = [
            forge_for_jobs(c, request(c), c.sender, mallory),  # our name, wrong key
            forge_for_jobs(c, request(c), "coordinator/mallory", mallory),
        ]
        req = request(c)
        raw, digest = c.seal_for_jobs(req)
        outer = json.loads(raw)
        outer["payload"] = outer["payload"].replace('"rounds":2', '"rounds":3')  # tampered
        forged.append((json.dumps(outer).encode(), digest))
        # a genuine party key cannot request jobs either
        pdir = cluster.dir / "party1"
        party1_key = load_identity(pdir / "identity.key", (pdir / "passphrase").read_bytes().strip())
        forged.append(forge_for_jobs(c, request(c), "party/party1", party1_key))
        # no vote comes for any of them: wait out the silence once, for all at once
        votes = await asyncio.gather(*(solicit_votes(
            c, raw, json.loads(json.loads(raw)["payload"])["job_id"], digest, timeout=1.5)
            for raw, digest in forged))
        assert votes == [{}] * len(forged)
        outcome = await c.run_job("ping", {"rounds": 3})
        assert outcome.ok, outcome.error
    for i in range(3):
        log = cluster.log(i)
        assert "bad signature from coordinator/coordinator" in log
        assert "unknown sender 'coordinator/mallory'" in log
        assert "only coordinators publish jobs" in log


@pytest.mark.timeout(120)
@pytest.mark.parametrize("broker", BROKERS)
async def test_party_killed_mid_job_fails_everywhere_then_next_job_runs(make_cluster, broker):
    cluster = make_cluster(parties=4, threshold=1, broker=broker)
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        before = cluster.sessions_connected()
        job = asyncio.ensure_future(c.run_job("ping", {"rounds": 10_000}))
        await cluster.wait_in_session(before)
        assert not job.done(), "the job should still be running"
        killed_at = time.monotonic()
        cluster.stop_node(3, signal.SIGKILL)
        outcome = await job
        detected = time.monotonic() - killed_at
        assert not outcome.ok
        assert detected < 10.0, f"failure took {detected:.1f}s to surface"
        print(f"\nkilled party: job failed on all nodes {detected:.2f}s after SIGKILL")
        errors = outcome.party_errors
        # each survivor fails at once; it blames party3, or a survivor that dropped out first
        assert all("lost connection to party" in errors[n] for n in ("party0", "party1", "party2"))
        assert any("lost connection to party3" in errors[n] for n in ("party0", "party1", "party2"))
        assert "no result" in outcome.party_errors["party3"]

        await cluster.wait_offline(c, "party3")
        values = private_inputs(cluster, "eth_vol_30d")[:3]
        outcome = await c.run_job("aggregate", {"input": "eth_vol_30d"})
        assert outcome.ok, outcome.error
        assert outcome.participants == ["party0", "party1", "party2"]
        assert outcome.output["value"] == pytest.approx(statistics.median(values), abs=1e-7)

        cluster.start_node(3)
        await cluster.wait_online(c)
        outcome = await c.run_job("ping", {"rounds": 3})
        assert outcome.ok and len(outcome.participants) == 4


@pytest.mark.timeout(90)
async def test_too_few_parties_is_a_clean_failure(make_cluster):
    cluster = make_cluster(parties=3, threshold=1)
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        cluster.stop_node(2)
        await cluster.wait_offline(c, "party2")
        outcome = await c.run_job("aggregate", {"input": "eth_vol_30d"}, vote_timeout=5.0)
        assert not outcome.ok
        assert "only 2 of the 3 required parties accepted" in outcome.error
        cluster.start_node(2)
        await cluster.wait_online(c)
        outcome = await c.run_job("aggregate", {"input": "eth_vol_30d"})
        assert outcome.ok, outcome.error


@pytest.mark.timeout(90)
@pytest.mark.parametrize("broker", RESTARTABLE_BROKERS)
async def test_broker_unavailable_at_start(make_cluster, broker):
    cluster = make_cluster(parties=3, threshold=1, broker=broker, start=False)
    for i in range(3):
        cluster.start_node(i)
    await cluster.wait_log(0, "retrying")
    assert all(p.poll() is None for p in cluster.nodes.values()), "a node died without a broker"
    cluster.start_broker()
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        outcome = await c.run_job("ping", {"rounds": 3})
        assert outcome.ok, outcome.error


@pytest.mark.timeout(120)
@pytest.mark.parametrize("broker", RESTARTABLE_BROKERS)
async def test_broker_restart_between_jobs(make_cluster, broker):
    cluster = make_cluster(parties=3, threshold=1, broker=broker)
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        assert (await c.run_job("ping", {"rounds": 2})).ok
    dropped = cluster.bus_drops()
    cluster.stop_broker()
    await cluster.wait_bus_dropped(dropped)  # every node saw it go before it comes back
    cluster.start_broker()
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        outcome = await c.run_job("ping", {"rounds": 2})
        assert outcome.ok, outcome.error


@pytest.mark.timeout(90)
async def test_job_runs_only_when_code_digests_agree(make_cluster, tmp_path):
    """party2 runs a modified copy of protocols/: it is shown by status and the job is refused."""
    alt = tmp_path / "alt"
    shutil.copytree(ROOT / "protocols", alt / "protocols")
    with open(alt / "protocols" / "aggregate.py", "a") as f:
        f.write("\n# a local modification\n")
    cluster = make_cluster(parties=3, threshold=1, start=False)
    cluster.start_broker()
    cluster.start_node(0)
    cluster.start_node(1)
    cluster.start_node(2, pythonpath=alt)
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        digests = {name: p.code_digest for name, p in (await c.status()).items()}
        assert digests["party0"] == digests["party1"] == code_digest() != digests["party2"]
        outcome = await c.run_job("aggregate", {"input": "eth_vol_30d"})
        assert not outcome.ok and "parties run different protocol code" in outcome.error
