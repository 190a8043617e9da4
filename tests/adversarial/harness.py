"""Harnesses of the adversarial suite, both on the real node and coordinator code.

- `curious`: a coordinator with the roster coordinator's real identity key that may send
  any signed request, start or abort it likes (`CuriousCoordinator`).
- `start_liar(cluster, i, hook_source)`: party i runs as a lying node
  (tests/adversarial/lying_node.py): a real node whose outgoing votes and results pass
  through a hook written by the test.
- `start_deviator(cluster, i)`: party i runs as a lying node whose MPC engine deviates inside
  the sessions the test arms (tests/adversarial/deviating_engine.py): `Deviator.arm`.
- `forge_for_jobs`: a jobs-topic envelope signed with any key in any sender's name;
  `solicit_votes`: the votes a sealed request draws, without starting the job.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import textwrap
import time

import pytest

from mpc_nodes import governance
from mpc_nodes.client.coordinator import Coordinator
from mpc_nodes.wire import topics
from mpc_nodes.wire.envelope import seal
from mpc_nodes.wire.messages import JobAbort, JobRequest, JobStart, Vote
from tests.cluster_harness import LocalCluster

DEVIATING_ENGINE = "tests.adversarial.deviating_engine"


def start_liar(cluster: LocalCluster, i: int, hook_source: str) -> None:
    """(Re)start party i as a lying node whose messages pass through `lie` in hook_source."""
    if i in cluster.nodes:
        cluster.stop_node(i, signal.SIGKILL)
    hook = cluster.dir / f"party{i}-lie.py"
    hook.write_text(textwrap.dedent(hook_source))
    cfg = cluster.dir / f"party{i}" / "node.yaml"
    cluster.nodes[i] = cluster._spawn(
        ["--config", str(cfg), "--broker", cluster.node_broker_url, "--hook", str(hook)],
        cluster.dir / f"party{i}" / "node.log", module="tests.adversarial.lying_node")


class Deviator:
    """Party `name` of a cluster, running a deviating engine controlled through `dir`."""

    def __init__(self, name: str, dir):
        self.name, self.dir = name, dir

    def arm(self, trial: str, seed: int, k) -> None:
        """The party's next session tampers its k-th message to a peer (k an int, or drawn
        from range(*k) with the seed); sessions after it are honest again."""
        (self.dir / "armed.json.tmp").write_text(json.dumps({"trial": trial, "seed": seed,
                                                             "k": k}))
        (self.dir / "armed.json.tmp").replace(self.dir / "armed.json")

    def disarm(self) -> bool:
        """Withdraw an arming no session took; whether there was one."""
        try:
            (self.dir / "armed.json").unlink()
            return True
        except FileNotFoundError:
            return False

    def records(self, trial: str) -> list[dict]:
        """What the engine logged of the trial's session ("tampered", "ended" events)."""
        path = self.dir / "log.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [r for r in map(json.loads, lines) if r["trial"] == trial]


def start_deviator(cluster: LocalCluster, i: int) -> Deviator:
    """(Re)start party i as a node whose MPC engine deviates in the sessions armed through
    the returned Deviator (its bus messages stay honest)."""
    if i in cluster.nodes:
        cluster.stop_node(i, signal.SIGKILL)
    dir = cluster.dir / f"party{i}-deviation"
    dir.mkdir(exist_ok=True)
    cfg = cluster.dir / f"party{i}" / "node.yaml"
    cluster.nodes[i] = cluster._spawn(
        ["--config", str(cfg), "--broker", cluster.node_broker_url,
         "--engine-worker", DEVIATING_ENGINE],
        cluster.dir / f"party{i}" / "node.log", module="tests.adversarial.lying_node",
        env={"MPCNET_DEVIATION_DIR": str(dir)})
    return Deviator(cluster.roster.parties[i].name, dir)


def forge_for_jobs(c: Coordinator, message, sender: str, key) -> tuple[bytes, str]:
    """`message` sealed for the jobs topic of c's cluster by `key` in the name of `sender`
    (a forgery unless that is the sender's key): (raw envelope, payload digest)."""
    sealed = seal(key, sender, c.roster.cluster_id, topics.jobs(c.roster.cluster_id), message)
    return sealed.raw, sealed.payload_digest


async def solicit_votes(c: Coordinator, raw_request: bytes, job_id: str, digest: str,
                        timeout: float = 3.0) -> dict[str, Vote]:
    """Publish a sealed request through c and return the votes it drew (to test the nodes'
    checks); the job is then aborted, never started."""
    jobs = topics.jobs(c.roster.cluster_id)
    c._votes[job_id] = asyncio.Queue()
    try:
        await c.bus.publish(jobs, raw_request)
        votes = await c._collect_votes(job_id, digest, timeout)
    finally:
        c._votes.pop(job_id, None)
    await c.bus.publish(jobs, c.seal_for_jobs(JobAbort(job_id=job_id,
                                                       reason="votes solicited only"))[0])
    return {name: m for name, (_, m, _) in votes.items()}


class CuriousCoordinator:
    """The real coordinator, driven by an attacker: any job, any subset, any sequence."""

    def __init__(self, coordinator, cluster: LocalCluster):
        self.c, self.cluster = coordinator, cluster

    async def run(self, kind: str, params: dict, participants: list[str] | None = None,
                  **kw):
        """Run a job restricted to `participants` (any subset the attacker likes)."""
        return await self.c.run_job(kind, params, only=participants, **kw)

    def request(self, kind: str, params: dict, ttl: float = 30.0) -> tuple[JobRequest, bytes, str]:
        """A signed request that is not sent: (message, raw envelope, digest)."""
        now = time.time()
        req = JobRequest(job_id=secrets.token_hex(16), kind=kind, params=params,
                         coordinator=self.c.config.name, issued_at=now, expires_at=now + ttl,
                         **governance.request_binding(self.c.roster))
        raw, digest = self.c.seal_for_jobs(req)
        return req, raw, digest

    async def votes(self, kind: str, params: dict, timeout: float = 3.0) -> dict[str, Vote]:
        """Every online party's vote on a request (the job is then aborted)."""
        req, raw, digest = self.request(kind, params)
        return await solicit_votes(self.c, raw, req.job_id, digest, timeout)

    async def publish(self, message) -> None:
        """Sign and publish any job-topic message (request, start, abort) as this coordinator."""
        await self.c.bus.publish(topics.jobs(self.cluster.roster.cluster_id),
                                 self.c.seal_for_jobs(message)[0])

    def start(self, job_id: str, digest: str, raw_votes: list[bytes]) -> JobStart:
        return JobStart(job_id=job_id, request_digest=digest,
                        votes=[v.decode() for v in raw_votes])


@pytest.fixture
def curious_factory():
    """`async with curious_factory(cluster) as cc:` gives a connected CuriousCoordinator."""
    import contextlib

    @contextlib.asynccontextmanager
    async def make(cluster: LocalCluster):
        async with cluster.coordinator() as c:
            await cluster.wait_online(c)
            yield CuriousCoordinator(c, cluster)
    return make
