"""Item 9: smaller gaps.

- t = 0: every party would hold the whole key (and see every input alone); `mpcnet init`
  refuses it, and a node whose roster says t = 0 refuses to start.
- Foreign aborts: a second roster coordinator publishes job_abort for the first one's job,
  while the job waits to start and while its session runs; the parties ignore it and the
  job succeeds.
"""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mpc_nodes import governance, pki
from mpc_nodes.deploy.cluster import amend_roster
from mpc_nodes.onboarding import create_operator
from mpc_nodes.wire import topics
from mpc_nodes.config import (ConfigError, CoordinatorInfo, dump_yaml, load_coordinator_config,
                              load_roster)
from mpc_nodes.client.coordinator import Coordinator, JobOutcome
from mpc_nodes.wire.messages import JobAbort, JobRequest, JobStart
from tests.cluster_harness import LocalCluster, wait_until


def mpcnet(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "mpc_nodes.cli.app", *args], capture_output=True,
                          text=True, timeout=timeout)


# -- t = 0 -------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_init_refuses_threshold_zero(tmp_path):
    run = mpcnet("init", "--parties", "3", "--threshold", "0", "--out", str(tmp_path / "c"))
    assert run.returncode == 2, run.stdout
    assert "t must be at least 1" in run.stderr and "whole key" in run.stderr
    assert not (tmp_path / "c").exists()


@pytest.mark.timeout(60)
def test_a_node_refuses_a_roster_with_threshold_zero(tmp_path):
    assert mpcnet("init", "-n", "3", "-t", "1", "--out", str(tmp_path / "c")).returncode == 0
    path = tmp_path / "c" / "roster.yaml"
    roster = yaml.safe_load(path.read_text())
    roster["threshold"] = 0  # an edited roster: every party would hold the whole key
    path.write_text(yaml.safe_dump(roster))
    with pytest.raises(ConfigError, match="roster.yaml: .*t must be at least 1"):
        load_roster(path)
    run = mpcnet("node", "--config", str(tmp_path / "c" / "party0" / "node.yaml"))
    assert run.returncode == 2 and "t must be at least 1" in run.stderr


# -- aborts from another coordinator ----------------------------------------------------

def add_coordinator(cluster: LocalCluster, name: str) -> Path:
    """A second roster coordinator: its own identity key, broker login and config."""
    out = cluster.dir / name
    out.mkdir(mode=0o700)
    passphrase = pki.new_passphrase().encode()
    pki.write_private(out / "passphrase", passphrase + b"\n")
    bundle = create_operator(out, name, "coordinator", passphrase)
    config = load_coordinator_config(cluster.dir / "coordinator" / "coordinator.yaml")
    dump_yaml(out / "coordinator.yaml", config.model_copy(update={"name": name}))
    roster = load_roster(cluster.dir / "roster.yaml")  # its next version, signed by all
    cluster.roster = amend_roster(cluster.dir, coordinators=[
        *roster.coordinators, CoordinatorInfo(name=name, identity_key=bundle.identity_key,
                                              tls_cert=bundle.tls_cert)])
    return out / "coordinator.yaml"


async def abort_seen(cluster: LocalCluster, parties, job_id: str) -> None:
    """Each party has logged what it did with the foreign abort (ignored it, or obeyed)."""
    for i in parties:
        await wait_until(lambda: any(job_id[:8] in line and "coordinator2" in line
                                     for line in cluster.log(i).splitlines()),
                         30, f"party{i} handles the abort")


async def job_with_foreign_abort(cluster: LocalCluster, c: Coordinator, other: Coordinator,
                                 running: bool) -> JobOutcome:
    """`c` runs a ping job step by step; `other` aborts it before it starts (running=False)
    or while party0 and party1 are in its session, waiting for party2 (running=True)."""
    now = time.time()
    request = JobRequest(job_id=os.urandom(16).hex(), kind="ping", params={"rounds": 5},
                         coordinator=c.config.name, issued_at=now, expires_at=now + 120,
                         **governance.request_binding(c.roster))
    raw, digest = c.seal_for_jobs(request)
    jobs = topics.jobs(cluster.roster.cluster_id)
    abort = other.seal_for_jobs(JobAbort(job_id=request.job_id,
                                         reason="coordinator2 cancels this job"))[0]
    c._votes[request.job_id], c._results[request.job_id] = asyncio.Queue(), asyncio.Queue()
    await c.bus.publish(jobs, raw)
    votes = await c._collect_votes(request.job_id, digest, 10.0)
    outcome = JobOutcome(request.job_id, "ping", request.params, ok=False,
                         participants=[p.name for p in cluster.roster.parties])
    assert set(votes) == set(outcome.participants) and all(m.accept for _, m, _ in votes.values())
    start = c.seal_for_jobs(JobStart(job_id=request.job_id, request_digest=digest, votes=[
        votes[name][2].decode() for name in outcome.participants]))[0]
    if not running:
        await other.bus.publish(jobs, abort)
        await abort_seen(cluster, range(3), request.job_id)
        await c.bus.publish(jobs, start)
    else:
        party2 = cluster.nodes[2].pid
        os.killpg(party2, signal.SIGSTOP)  # party0 and party1 will wait for it in the session
        try:
            await c.bus.publish(jobs, start)
            for i in (0, 1):
                await cluster.wait_audited(i, "start", request.job_id)
            await other.bus.publish(jobs, abort)
            await abort_seen(cluster, (0, 1), request.job_id)
        finally:
            os.killpg(party2, signal.SIGCONT)
    results = await c._collect_results(request.job_id, digest, outcome.participants, 30.0)
    c._judge(outcome, results)
    return outcome


@pytest.mark.e2e
@pytest.mark.timeout(180)
async def test_only_the_requesting_coordinator_can_abort_a_job(make_cluster):
    cluster = make_cluster(start=False, connect_timeout_s=60.0)
    second = add_coordinator(cluster, "coordinator2")
    cluster.start()
    async with cluster.coordinator() as c, Coordinator(second, cluster.broker_url) as other:
        await cluster.wait_online(c)
        await cluster.wait_online(other)
        pending = await job_with_foreign_abort(cluster, c, other, running=False)
        assert pending.ok, pending.error
        # every engine is warm now: the abort below reaches a session that runs
        running = await job_with_foreign_abort(cluster, c, other, running=True)
        assert running.ok, running.error
    for i in range(3):
        assert "ignored an abort from coordinator2" in cluster.log(i)
