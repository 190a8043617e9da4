"""Honest outcomes (issue 11, items 1 and 5): a job's outcome is what the parties did.

A party that restarts mid-job is named at once, a signature that exists is reported as made
(and verified with eth-account here), a result lost to a broker restart is recovered from
the parties' durable records (`mpcnet job show`), and jobs sent right after a broker outage
wait for the parties to reconnect instead of failing.  Real processes throughout."""

import asyncio
import json
import signal
import subprocess
import sys
import time

import pytest
from eth_account import Account

from tests.cluster_harness import ROOT, _env
from tests.conftest import RESTARTABLE_BROKERS
from tests.faultproxy import FaultProxy
from tests.test_faults import KEY_POLICY, transfer

pytestmark = pytest.mark.e2e


def with_policies(cluster):
    for i in range(cluster.roster.n):
        (cluster.dir / f"party{i}" / "policy.yaml").write_text(KEY_POLICY)
    return cluster


async def keygen(c) -> str:
    made = await c.run_job("keygen", {"key_id": "vault-1"})
    assert made.ok, made.error
    return made.output["address"]


def job_id_of(c) -> str:
    return next(iter(c._results))  # the one job this coordinator follows


async def started(c, kind, params, **kw):
    """Run a job in the background; return (task, job id) once its start is published."""
    event = asyncio.Event()
    task = asyncio.ensure_future(c.run_job(
        kind, params, progress=lambda text: "started with" in text and event.set(), **kw))
    await asyncio.wait_for(event.wait(), 60)
    return task, job_id_of(c)


HOLD_RESULT = """
import logging, time
def lie(leaf, message, node):
    if leaf == "results" and message.ok and "raw" in (message.output or {}):
        logging.getLogger("hook").warning("holding back the result of job %s", message.job_id)
        time.sleep(120)  # the signature is made; this party dies before it reports
    return message
"""


@pytest.mark.timeout(180)
async def test_a_signature_made_before_a_party_dies_is_reported_as_made(make_cluster):
    """party2 has the signature but is killed before it reports, and restarts at once: the
    coordinator learns from the restarted node that it lost the job, and reports the
    survivors' signature (verified) with a note naming party2 — not "no result" after the
    result timeout."""
    from tests.adversarial.harness import start_liar
    cluster = with_policies(make_cluster(parties=3, threshold=1))
    start_liar(cluster, 2, HOLD_RESULT)
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        vault = await keygen(c)
        task, job_id = await started(c, "sign", {"key_id": "vault-1", "tx": transfer(0)},
                                     result_timeout=600.0)
        await cluster.wait_log(2, f"holding back the result of job {job_id}", 60)
        cluster.stop_node(2, signal.SIGKILL)
        killed = time.monotonic()
        cluster.start_node(2)  # an honest node again, a new boot
        outcome = await asyncio.wait_for(task, 60)  # far below the result timeout
        print(f"\nsigner killed after the signature, restarted: ok with a note"
              f" {time.monotonic() - killed:.1f}s after the kill")
        assert outcome.ok, outcome.error
        assert Account.recover_transaction(bytes.fromhex(outcome.output["raw"])) == vault
        assert outcome.output["address"] == vault
        assert set(outcome.party_notes) == {"party2"}
        assert "restarted during the job" in outcome.party_notes["party2"], outcome.party_notes
        # the record agrees: asked afterwards, party2 says it lost the job, the others done
        shown = await c.show_job(job_id)
        assert shown.ok and shown.output == outcome.output
        assert shown.party_states == {"party0": "done", "party1": "done", "party2": "lost"}


@pytest.mark.timeout(180)
async def test_a_party_restarted_mid_session_fails_the_job_at_once_naming_it(make_cluster):
    cluster = make_cluster(parties=3, threshold=1)
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        task, job_id = await started(c, "ping", {"rounds": 10_000}, result_timeout=600.0)
        await cluster.wait_audited(1, "start", job_id)  # it has started the job
        cluster.stop_node(1, signal.SIGKILL)
        killed = time.monotonic()
        cluster.start_node(1)
        outcome = await asyncio.wait_for(task, 60)  # far below the result timeout
        print(f"\nparty restarted mid-session: failed naming it"
              f" {time.monotonic() - killed:.1f}s after the kill")
        assert not outcome.ok
        # named as restarted if it was back before the survivors' failures were all in,
        # else as gone from the bus (its will): either way at once, not at the timeout
        assert any(w in outcome.party_errors["party1"] for w in (
            "restarted during the job", "went offline during the job")), outcome.party_errors
        assert "party1" in outcome.error


@pytest.mark.timeout(240)
@pytest.mark.parametrize("broker", RESTARTABLE_BROKERS)
async def test_job_show_recovers_results_the_broker_lost(make_cluster, broker):
    """The coordinator goes away after the start; the parties sign and publish; the broker
    restarts and loses every retained result.  `mpcnet job show` asks the parties, which
    republish their stored signed results, and reports the signature (verified)."""
    cluster = with_policies(make_cluster(parties=3, threshold=1, broker=broker))
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        vault = await keygen(c)
        task, job_id = await started(c, "sign", {"key_id": "vault-1", "tx": transfer(0)})
        task.cancel()  # the coordinator process that asked is gone
        await asyncio.gather(task, return_exceptions=True)
    for i in range(3):
        await cluster.wait_log(i, f"job {job_id[:8]}: result published (ok)", 60)
    cluster.stop_broker()
    cluster.start_broker()
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
    asked = time.monotonic()
    shown = subprocess.run(
        [sys.executable, "-m", "mpc_nodes.cli.app", "job", "show", job_id, "--dir",
         str(cluster.dir), "--broker", cluster.broker_url, "--json"],
        capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=60)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    print(f"\njob show after a broker restart: {time.monotonic() - asked:.1f}s (CLI process)")
    outcome = json.loads(shown.stdout)
    assert outcome["ok"] and outcome["kind"] == "sign"
    assert outcome["party_states"] == {"party0": "done", "party1": "done", "party2": "done"}
    assert Account.recover_transaction(bytes.fromhex(outcome["output"]["raw"])) == vault


@pytest.mark.timeout(240)
@pytest.mark.parametrize("broker", RESTARTABLE_BROKERS)
async def test_results_lost_with_the_broker_reach_the_coordinator_following_the_job(
        make_cluster, broker):
    """The coordinator hears nothing while the parties publish their results; then the broker
    restarts, losing them.  After it reconnects, the coordinator asks the parties and gets
    the results again, instead of waiting out the result timeout."""
    cluster = with_policies(make_cluster(parties=3, threshold=1, broker=broker))
    proxy = FaultProxy(int(cluster.broker_url.rpartition(":")[2]))
    try:
        scheme = cluster.broker_url.rpartition(":")[0]
        from mpc_nodes.client.coordinator import Coordinator
        async with Coordinator(cluster.dir / "coordinator" / "coordinator.yaml",
                               f"{scheme}:{proxy.port}") as c:
            await cluster.wait_online(c)
            vault = await keygen(c)
            task, job_id = await started(c, "sign", {"key_id": "vault-1", "tx": transfer(0)},
                                         result_timeout=600.0)
            proxy.blackhole = True
            for i in range(3):
                await cluster.wait_log(i, f"job {job_id[:8]}: result published (ok)", 60)
            cluster.stop_broker()
            proxy.blackhole = False
            cluster.start_broker()
            back = time.monotonic()
            outcome = await asyncio.wait_for(task, 90)
            print(f"\nresults lost with the broker: outcome {time.monotonic() - back:.1f}s"
                  f" after the broker was back")
            assert outcome.ok, outcome.error
            assert Account.recover_transaction(bytes.fromhex(outcome.output["raw"])) == vault
    finally:
        proxy.close()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("broker,outage", [
    pytest.param("embedded", 1.0, id="embedded-1s"),
    pytest.param("embedded", 20.0, id="embedded-20s"),
    pytest.param(*RESTARTABLE_BROKERS[1].values[:1], 20.0, id="mosquitto-20s",
                 marks=RESTARTABLE_BROKERS[1].marks)])
async def test_jobs_right_after_a_broker_outage_succeed(make_cluster, broker, outage):
    cluster = with_policies(make_cluster(parties=3, threshold=1, broker=broker))
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        vault = await keygen(c)
        cluster.stop_broker()
        await asyncio.sleep(outage)  # the fault itself: the broker is down this long
        cluster.start_broker()
        back = time.monotonic()
        jobs = [("sign", {"key_id": "vault-1", "tx": transfer(0)}),
                ("aggregate", {"input": "eth_vol_30d"}), ("ping", {"rounds": 2}),
                ("sign", {"key_id": "vault-1", "tx": transfer(1)})]
        for kind, params in jobs:
            outcome = await c.run_job(kind, params)
            assert outcome.ok, f"{kind}: {outcome.error}"
            assert len(outcome.participants) == 3, outcome.participants
            if kind == "sign":
                assert Account.recover_transaction(
                    bytes.fromhex(outcome.output["raw"])) == vault
            if kind == "sign" and params["tx"]["nonce"] == 0:
                print(f"\nbroker down {outage:g}s: first job (sign) done"
                      f" {time.monotonic() - back:.1f}s after the broker was back")
