"""Fault injection with real processes: latency and cuts on MPC and broker links (a TCP fault
proxy of our own), hung and restarted parties, broker restarts mid-job, and a soak of mixed
jobs with random restarts.  Every case asserts its expected outcome."""

import asyncio
import os
import random
import re
import signal
import statistics
import time

import pytest
import yaml

from mpc_nodes.node.audit import verify_cluster, verify_log
from mpc_nodes.jobs.ecdsa import check_signature

pytestmark = pytest.mark.e2e


def inputs(cluster, name, parties=None):
    parties = range(cluster.roster.n) if parties is None else parties
    return [yaml.safe_load((cluster.dir / f"party{i}" / "inputs.yaml").read_text())[name]
            for i in parties]


def audit_paths(cluster):
    return {f"party{i}": cluster.dir / f"party{i}" / "data" / "audit.log"
            for i in range(cluster.roster.n)}


def results_recorded(cluster, job_id):
    """How many times each node recorded a result for job_id."""
    counts = {}
    for name, path in audit_paths(cluster).items():
        events = verify_log(path).events
        counts[name] = sum(1 for e in events if e["event"] == "result" and e["job_id"] == job_id)
    return counts


@pytest.mark.timeout(120)
async def test_100ms_latency_on_every_mpc_link(make_cluster):
    cluster = make_cluster(parties=3, threshold=1, mpc_proxy=True)
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        fast = await c.run_job("ping", {"rounds": 5})
        assert fast.ok, fast.error
        for proxy in cluster.mpc_proxies.values():
            proxy.delay_s = 0.100
        slow = await c.run_job("ping", {"rounds": 5})
        assert slow.ok, slow.error
        round_ms = [1000 * t["mpc_s"] / 5 for t in slow.party_timings.values()]
        assert min(round_ms) >= 90, round_ms  # every round now crosses a 100 ms link
        agg = await c.run_job("aggregate", {"input": "eth_vol_30d"})
        assert agg.ok, agg.error
        assert agg.output["value"] == pytest.approx(statistics.median(inputs(cluster,
                                                                             "eth_vol_30d")))
        print(f"\n100 ms links: ping round {statistics.median(round_ms):.0f} ms, aggregate"
              f" {1000 * agg.timings['total_s']:.0f} ms end to end")


@pytest.mark.timeout(120)
async def test_cut_mpc_link_mid_job_fails_cleanly(make_cluster):
    cluster = make_cluster(parties=3, threshold=1, mpc_proxy=True)
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        before = cluster.sessions_connected()
        job = asyncio.ensure_future(c.run_job("ping", {"rounds": 10_000}))
        await cluster.wait_in_session(before)
        cluster.mpc_proxies[2].cut()
        outcome = await job
        assert not outcome.ok
        assert all("lost connection" in e for e in outcome.party_errors.values()), outcome
        assert (await c.run_job("ping", {"rounds": 3})).ok


@pytest.mark.timeout(120)
async def test_hung_party_times_out_then_recovers(make_cluster):
    cluster = make_cluster(parties=3, threshold=1, session_timeout_s=4.0)
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        before = cluster.sessions_connected()
        job = asyncio.ensure_future(c.run_job("ping", {"rounds": 10_000}))
        await cluster.wait_in_session(before)
        victim = cluster.nodes[2]
        os.killpg(victim.pid, signal.SIGSTOP)  # alive but silent: no crash to detect
        stopped_at = time.monotonic()
        outcome = await job
        detected = time.monotonic() - stopped_at
        os.killpg(victim.pid, signal.SIGCONT)
        assert not outcome.ok
        errors = [outcome.party_errors[n] for n in ("party0", "party1")]
        # the first survivor to time out ends the session for the other one too
        assert any("did not finish within 4s" in e for e in errors), errors
        assert all("did not finish" in e or "lost connection" in e for e in errors), errors
        assert detected < 15, detected
        print(f"\nhung party (SIGSTOP, session timeout 4 s): job failed after {detected:.2f}s")
        await cluster.wait_online(c)
        assert (await c.run_job("ping", {"rounds": 3})).ok


@pytest.mark.timeout(120)
async def test_party_restarted_mid_job(make_cluster):
    cluster = make_cluster(parties=3, threshold=1)
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        before = cluster.sessions_connected()
        job = asyncio.ensure_future(c.run_job("ping", {"rounds": 10_000}))
        await cluster.wait_in_session(before)
        cluster.stop_node(1, signal.SIGKILL)
        cluster.start_node(1)
        outcome = await job
        assert not outcome.ok and outcome.party_errors
        await cluster.wait_online(c)
        again = await c.run_job("aggregate", {"input": "eth_vol_30d"})
        assert again.ok and len(again.participants) == 3, again.error
        # the restarted node refuses to run the interrupted job again (replay guard)
        assert results_recorded(cluster, outcome.job_id)["party1"] == 0


@pytest.mark.timeout(150)
async def test_broker_restarted_during_a_job(make_cluster):
    cluster = make_cluster(parties=3, threshold=1)
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        before = cluster.sessions_connected()
        job = asyncio.ensure_future(c.run_job("ping", {"rounds": 3000}))
        await cluster.wait_in_session(before)
        assert not job.done()
        dropped = cluster.bus_drops()
        cluster.stop_broker()
        await cluster.wait_bus_dropped(dropped)  # every node saw it go before it comes back
        cluster.start_broker()
        outcome = await job
        assert outcome.ok, outcome.error  # MPC went on; results crossed the new broker
        assert set(results_recorded(cluster, outcome.job_id).values()) == {1}  # not run twice
        await cluster.wait_online(c)
        assert (await c.run_job("aggregate", {"input": "eth_vol_30d"})).ok


@pytest.mark.timeout(120)
async def test_broker_link_cut_between_jobs(make_cluster):
    cluster = make_cluster(parties=3, threshold=1, broker_proxy=True)
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        assert (await c.run_job("ping", {"rounds": 2})).ok
        cluster.broker_proxy.cut()
        for i in range(3):  # reconnected, presence announced again
            await cluster.wait_log(i, "(connection 2)")
        await cluster.wait_online(c)
        assert (await c.run_job("ping", {"rounds": 2})).ok
    assert all("connection 2" in cluster.log(i) for i in range(3))


async def soak(cluster, jobs: int, seed: int) -> dict:
    """Mixed jobs back to back while one party is restarted at random points."""
    rng = random.Random(seed)
    outcomes = {"ok": 0, "failed": 0}
    for i in range(cluster.roster.n):
        (cluster.dir / f"party{i}" / "policy.yaml").write_text(KEY_POLICY)
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        assert (await c.run_job("keygen", {"key_id": "soak-key"})).ok
        for n in range(jobs):
            if rng.random() < 0.1:
                victim = rng.randrange(cluster.roster.n)
                cluster.stop_node(victim, rng.choice([signal.SIGKILL, signal.SIGTERM]))
                cluster.start_node(victim)
            kind, params = rng.choice([("aggregate", {"input": "eth_vol_30d"}),
                                       ("aggregate", {"input": "btc_vol_30d", "method": "mean"}),
                                       ("ping", {"rounds": rng.randint(1, 50)}),
                                       ("sign", {"key_id": "soak-key", "tx": transfer(n)}),
                                       # one aggregation per private input (SECURITY.md,
                                       # attack 1): the surfaces are priced at the median
                                       ("price", SOAK_PRICES)])
            outcome = await c.run_job(kind, params, vote_timeout=3.0, result_timeout=30.0)
            if outcome.ok:
                outcomes["ok"] += 1
                assert outcome.output is not None
                if kind == "sign":
                    assert check_signature(outcome.output) is None
                if kind == "price":
                    assert len(outcome.output["values"]["price"]) == 3
            else:
                outcomes["failed"] += 1
                assert outcome.error, "a failure must say why"
            if rng.random() < 0.1:
                await cluster.wait_online(c)
        await cluster.wait_online(c)  # and once all are back, the cluster works normally
        assert (await c.run_job("price", SOAK_PRICES)).ok
    reports, disagreements = verify_cluster(audit_paths(cluster))
    assert all(r.ok for r in reports.values()) and not disagreements
    share_files_intact(cluster)
    return outcomes


@pytest.mark.timeout(240)
async def test_soak_short(make_cluster):
    cluster = make_cluster(parties=3, threshold=1)
    outcomes = await soak(cluster, jobs=25, seed=7)
    assert outcomes["ok"] >= 10, outcomes
    print(f"\nsoak (25 jobs): {outcomes}")


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_soak_200_jobs(make_cluster):
    cluster = make_cluster(parties=3, threshold=1)
    outcomes = await soak(cluster, jobs=200, seed=int(time.time()))
    # n = 3, t = 1: every job needs all three parties, so each restart fails the jobs sent
    # while that node starts again; what matters is that every job ended cleanly
    assert outcomes["ok"] >= 50, outcomes
    print(f"\nsoak (200 jobs): {outcomes}")


SOAK_PRICES = {"underlying": "ETH", "spot": 3000.0, "rate": 0.03, "is_call": [True, False, True],
               "strikes": [2800.0, 3000.0, 3300.0], "expiries": [0.1, 0.5, 1.0], "greeks": True}

KEY_POLICY = """version: 2
chain_ids: [11155111]
eth:
  recipients: ["0x1111111111111111111111111111111111111111"]
  max_fee_wei: 1000000000000000
  max_per_tx_wei: 1000000000000000
  daily_cap_wei: 1000000000000000000
"""


def transfer(nonce):
    return {"chainId": 11155111, "nonce": nonce, "to": "0x1111111111111111111111111111111111111111",
            "value": 1, "data": "0x", "gas": 21000, "maxFeePerGas": 10**10,
            "maxPriorityFeePerGas": 10**9}


def share_files_intact(cluster):
    """Every stored share of every party still decrypts and validates."""
    from keyshare import KeyStore
    for i in range(cluster.roster.n):
        pdir = cluster.dir / f"party{i}"
        store = KeyStore(pdir / "data" / "keys", (pdir / "passphrase").read_bytes().strip(),
                         cluster.roster.cluster_id, i)
        for key_id in store.key_ids():
            store.load(key_id)
            for epoch in store.epochs(key_id):  # older and staged ones too
                store.load(key_id, epoch)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("job", ["keygen", "sign", "refresh"])
async def test_party_killed_during_key_jobs(make_cluster, job):
    """With 100 ms links the key jobs last long enough to kill a party in the middle."""
    cluster = make_cluster(parties=4, threshold=1, mpc_proxy=True, start=False)
    cluster.set_limits(policy_quorum=3)  # signing goes on with a party down
    cluster.start()
    for i in range(4):
        (cluster.dir / f"party{i}" / "policy.yaml").write_text(KEY_POLICY)
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        if job != "keygen":
            assert (await c.run_job("keygen", {"key_id": "vault-1"})).ok
        for proxy in cluster.mpc_proxies.values():
            proxy.delay_s = 0.1
        params = {"keygen": {"key_id": "vault-2"},
                  "sign": {"key_id": "vault-1", "tx": transfer(0)},
                  "refresh": {"key_id": "vault-1", "epoch": 1}}[job]
        started = asyncio.Event()
        running = asyncio.ensure_future(c.run_job(
            job, params, progress=lambda text: "started with" in text and started.set()))
        await asyncio.wait_for(started.wait(), 30)
        # the kill's moment is the test's choice, not a condition awaited: 0.15 s after the
        # start, into set-up or the protocol (both last seconds here).  Killed once every
        # peer reached party3's port instead, the others wait out their 10 s connect timeout.
        await asyncio.sleep(0.15)
        assert not running.done()
        cluster.stop_node(3, signal.SIGKILL)
        outcome = await running
        assert not outcome.ok and "no result" in outcome.party_errors["party3"]
        # survivors fail promptly during set-up or the protocol — or, if party3 died only in
        # the closing handshake after the outputs were opened, all of them keep the result
        survivors = [e for n, e in outcome.party_errors.items() if n != "party3"]
        assert all(any(w in e for w in ("lost connection", "could not connect",
                                        "during set-up")) for e in survivors), \
            outcome.party_errors
        assert len(survivors) in (0, 3), outcome.party_errors
        share_files_intact(cluster)
        for proxy in cluster.mpc_proxies.values():
            proxy.delay_s = 0.0
        await cluster.wait_offline(c, "party3")
        if job == "keygen":  # keygen needs every party: back with all four
            cluster.start_node(3)
            await cluster.wait_online(c)
            after = await c.run_job("keygen", {"key_id": "vault-3"})
        else:  # the key still signs with the three parties left (2t+1 = 3)
            after = await c.run_job("sign", {"key_id": "vault-1", "tx": transfer(1)})
        assert after.ok, after.error



@pytest.mark.timeout(120)
async def test_an_aborted_job_stops_its_sessions_at_once(make_cluster):
    """The coordinator aborts a job that failed; a participant still in its session (e.g.
    waiting out its connect timeout for a party that died) stops instead of holding up the
    next job."""
    from mpc_nodes.wire import topics
    from mpc_nodes.wire.messages import JobAbort
    cluster = make_cluster(parties=3, threshold=1)
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        started = asyncio.Event()
        before = cluster.sessions_connected()
        running = asyncio.ensure_future(c.run_job(
            "ping", {"rounds": 10_000},
            progress=lambda text: "started with" in text and started.set()))
        await asyncio.wait_for(started.wait(), 30)
        await cluster.wait_in_session(before)
        job_id = next(iter(c._results))
        await c.bus.publish(topics.jobs(cluster.roster.cluster_id),
                            c.seal_for_jobs(JobAbort(job_id=job_id, reason="operator"))[0])
        outcome = await running
        assert not outcome.ok
        # each party reports its own view: the abort, or — when a peer's engine stopped on
        # the abort before this party read it (seen under load) — that peer leaving
        aborted = "aborted: the job failed elsewhere (operator)"
        views = {n: outcome.party_errors[n] for n in ("party0", "party1", "party2")}
        assert any(aborted in e for e in views.values()), views
        assert all(aborted in e or re.search(r"lost connection to party\d", e)
                   for e in views.values()), views
        after = await c.run_job("ping", {"rounds": 2})  # on fresh engines, at once
        assert after.ok, after.error


@pytest.mark.timeout(120)
async def test_an_aborted_job_queued_behind_another_never_runs(make_cluster):
    """An abort that reaches a node while the job waits behind another is kept: the job
    fails with the reason when its turn comes, instead of running anyway."""
    from mpc_nodes.wire import topics
    from mpc_nodes.wire.messages import JobAbort
    cluster = make_cluster(parties=3, threshold=1)
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        started = {"long": asyncio.Event(), "queued": asyncio.Event()}

        def run(name, rounds):
            return asyncio.ensure_future(c.run_job(
                "ping", {"rounds": rounds},
                progress=lambda text: "started with" in text and started[name].set()))
        long = run("long", 10_000)
        await asyncio.wait_for(started["long"].wait(), 30)
        long_id = next(iter(c._results))
        queued = run("queued", 2)
        await asyncio.wait_for(started["queued"].wait(), 30)
        queued_id = next(j for j in c._results if j != long_id)
        jobs = topics.jobs(cluster.roster.cluster_id)
        for job_id in (queued_id, long_id):
            await c.bus.publish(jobs, c.seal_for_jobs(JobAbort(job_id=job_id,
                                                               reason="operator"))[0])
        outcome = await queued
        assert not outcome.ok
        assert all("aborted: the job failed elsewhere (operator)" in outcome.party_errors[n]
                   for n in ("party0", "party1", "party2")), outcome.party_errors
        assert not (await long).ok
