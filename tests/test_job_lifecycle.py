"""The job-kind lifecycle (mpc_nodes.jobs.kind): what every registered kind declares, what
each session kind's plan hands the engine, and the order and count of the hooks through the
node daemon's own code path -- party0 of a fresh cluster directory as a Node whose bus is a
queue: requests and starts go in through Node.on_message, votes and results come out of its
publish."""

from __future__ import annotations

import asyncio
import inspect
import pickle
import secrets
import time
from pathlib import Path

import pytest

import protocols.aggregate
import protocols.diagnostics
from keyshare import KeyMeta
from protocols.secp256k1 import hex_point, mul_base
from mpc_nodes import governance
from mpc_nodes.config import load_node_config, load_roster, resolve
from mpc_nodes.deploy.cluster import init_cluster
from mpc_nodes.jobs import registry
from mpc_nodes.jobs.ecdsa import binding
from mpc_nodes.jobs.kind import LocalKind, LocalStep, MpcSession, NodeJob, SessionKind, _Params
from mpc_nodes.node.context import NodeContext
from mpc_nodes.node.daemon import Node
from mpc_nodes.node.session import SessionError, SessionRun, SessionSpec, run_session
from mpc_nodes.pki import load_identity, read_passphrase
from mpc_nodes.wire import topics
from mpc_nodes.wire.envelope import seal
from mpc_nodes.wire.messages import JobRequest, JobStart
from tests.cluster_harness import eth_policy
from tests.test_faults import transfer

KEY = "lifecycle-key"


@pytest.fixture(scope="module")
def cluster_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lifecycle") / "cluster"
    init_cluster(out, 3, 1, security="semi-honest")  # the protocols planned below are its own
    return out


# -- what every kind declares ------------------------------------------------------------

def test_every_kind_runs_either_a_session_or_a_local_step():
    for name, kind in registry.KINDS.items():
        assert isinstance(kind, SessionKind) != isinstance(kind, LocalKind), name
        assert kind.name == name


def test_a_kind_without_its_work_cannot_be_made():
    class NoPlan(SessionKind):
        name = "no-plan"

    class NoLocalWork(LocalKind):
        name = "no-local-work"

    for incomplete in (NoPlan, NoLocalWork):
        with pytest.raises(TypeError, match="abstract"):
            incomplete()


def test_only_a_kind_that_seals_its_outputs_names_a_recipient():
    price = registry.kind_for("price")
    params = {"underlying": "ETH", "spot": 2000.0, "rate": 0.01, "is_call": [True],
              "strikes": [2000.0], "expiries": [0.5]}
    assert price.sealed_to(price.parse(params)) is None
    assert price.sealed_to(price.parse(params | {"reveal": "coordinator",
                                                 "recipient": "desk"})) == "desk"
    aggregate = registry.kind_for("aggregate")
    assert aggregate.sealed_to(aggregate.parse({"input": "eth_vol_30d"})) is None


# -- what each session kind hands the engine ---------------------------------------------

@pytest.fixture(scope="module")
def ctx(cluster_dir) -> NodeContext:
    """party0's context, with a committed ECDSA key and a policy that lets it sign."""
    config_path = cluster_dir / "party0" / "node.yaml"
    config = load_node_config(config_path)
    roster = load_roster(resolve(config_path, config.roster))
    ctx = NodeContext(roster, roster.parties[0], config, config_path,
                      read_passphrase(config.shares_passphrase_source, config_path))
    shares = [7, 8, 9]  # not a real sharing: plan checks only its own share
    meta = KeyMeta(key_id=KEY, scheme="ecdsa-secp256k1", curve="secp256k1",
                   cluster_id=roster.cluster_id, n=3, t=1, party_index=0, epoch=0,
                   public_key=hex_point(mul_base(5)),
                   verification_shares=[hex_point(mul_base(s)) for s in shares])
    ctx.keystore.stage(meta, shares[0])
    ctx.keystore.promise(KEY, 0, meta.sharing)
    ctx.keystore.commit(KEY, 0, meta.sharing)
    ctx.path(config.policy).write_text(eth_policy(transfer(0)["to"]))
    return ctx


PRICE = {"underlying": "ETH", "spot": 2000.0, "rate": 0.01, "is_call": [True, False],
         "strikes": [1800.0, 2200.0], "expiries": [0.25, 0.5]}
PRESIGNATURE = "0123456789abcdef"


@pytest.mark.parametrize("kind_name, params, protocol", [
    ("aggregate", {"input": "eth_vol_30d"}, "protocols.aggregate.aggregate"),
    ("ping", {"rounds": 3}, "protocols.diagnostics.rounds"),
    ("keygen", {"key_id": "new-ecdsa"}, "protocols.ecdsa.keygen"),
    ("keygen", {"key_id": "new-frost", "scheme": "frost-ed25519"}, "protocols.ed25519_dkg.keygen"),
    ("sign", {"key_id": KEY, "tx": transfer(0)}, "protocols.ecdsa.sign"),
    ("sign", {"key_id": KEY, "tx": transfer(0), "presignature": PRESIGNATURE},
     "protocols.ecdsa.sign_presigned"),
    ("presign", {"key_id": KEY, "count": 2}, "protocols.ecdsa.presign"),
    ("refresh", {"key_id": KEY, "epoch": 1}, "protocols.ecdsa.refresh"),
    ("price", PRICE, "protocols.pricing.price"),
])
def test_a_session_kind_plans_a_protocol_function_that_pickles_by_reference(
        ctx, kind_name, params, protocol):
    kind = registry.kind_for(kind_name)
    parsed = kind.parse(params)
    parties = list(ctx.roster.parties)
    if parsed.model_dump().get("presignature"):
        ctx.presignatures.add(KEY, PRESIGNATURE, 0, binding(parties), {"k": "placeholder"})
    step = kind.plan(ctx, NodeJob(parsed, kind.prepare(ctx, parsed), parties))
    assert isinstance(step, MpcSession)
    function = step.protocol
    assert inspect.iscoroutinefunction(function)
    assert f"{function.__module__}.{function.__qualname__}" == protocol
    assert pickle.loads(pickle.dumps(function)) is function  # by reference, not by value


async def some_coroutine(rt):
    return None


@pytest.mark.parametrize("function", [some_coroutine, protocols.aggregate.secfxp_type])
async def test_the_engine_runs_nothing_but_protocol_coroutines(function):
    spec = SessionSpec(session_id="ab" * 32, my_pid=0, peers=[], bind_host="127.0.0.1",
                       bind_port=0, tls_cert="", tls_key="", tls_passphrase=b"", ca_pem="",
                       protocol=function)
    with pytest.raises(SessionError, match="refusing to run"):
        await run_session(spec)


# -- through the daemon ------------------------------------------------------------------

class CountParams(_Params):
    seal_to: str | None = None


class Counting(LocalKind[CountParams, object]):
    """Records each hook call with the job it was handed."""

    name = "count"
    params_model = CountParams

    def __init__(self):
        self.calls: list[tuple[str, NodeJob | None]] = []

    def min_parties(self, roster):
        return 1

    def sealed_to(self, params):
        return params.seal_to

    def prepare(self, ctx, params):
        self.calls.append(("prepare", None))
        return object()

    def check_vote(self, ctx, job):
        self.calls.append(("check_vote", job))

    def plan(self, ctx, job):
        self.calls.append(("plan", job))
        return LocalStep()

    def run_locally(self, ctx, job):
        self.calls.append(("run_locally", job))
        return {"ran": True}

    def complete(self, ctx, job, output):
        self.calls.append(("complete", job))
        return output | {"completed": True}


class CountingSession(SessionKind[CountParams, None]):
    """A session kind whose plan is checked as the engine receives it."""

    name = "count-session"
    params_model = CountParams

    def min_parties(self, roster):
        return 1

    def plan(self, ctx, job):
        return MpcSession(protocols.diagnostics.rounds, [3], threshold=0, timeout=999.0)

    def complete(self, ctx, job, output):
        return {"protocol_said": output}


class FakeEngine:
    """Records the session specs it is given; each "runs" in 0.25 + 0.5 s."""

    def __init__(self):
        self.specs: list[SessionSpec] = []

    async def run(self, spec: SessionSpec) -> SessionRun:
        self.specs.append(spec)
        return SessionRun({"rounds": 3}, 0.25, 0.5)


class NodeHarness:
    """party0 as a Node whose bus is a queue (see the module docstring)."""

    def __init__(self, cluster_dir: Path):
        self.node = Node(cluster_dir / "party0" / "node.yaml")
        self.cluster = self.node.roster.cluster_id
        cdir = cluster_dir / "coordinator"
        self.key = load_identity(cdir / "identity.key", (cdir / "passphrase").read_bytes().strip())
        self.published: asyncio.Queue = asyncio.Queue()
        self.node.bus.publish = self._publish

    async def _publish(self, topic, payload, retain=False, timeout=30.0):
        await self.published.put((topic, payload))

    async def _send(self, message) -> str:
        topic = topics.jobs(self.cluster)
        sealed = seal(self.key, "coordinator/coordinator", self.cluster, topic, message)
        await self.node.on_message(topic, sealed.raw)
        return sealed.payload_digest

    async def _next(self, leaf: str):
        topic, raw = await asyncio.wait_for(self.published.get(), 30)
        assert topic == topics.node(self.cluster, "party0", leaf)
        return raw, self.node.verifier.open(raw, topic).message

    async def run(self, kind: str, params: dict):
        """Request a job; if party0 accepts, start it with party0 alone.  (vote, result)"""
        now = time.time()
        request = JobRequest(job_id=secrets.token_hex(16), kind=kind, params=params,
                             coordinator="coordinator", issued_at=now, expires_at=now + 60,
                             **governance.request_binding(self.node.roster))
        digest = await self._send(request)
        raw_vote, vote = await self._next("votes")
        if not vote.accept:
            return vote, None
        executor = asyncio.ensure_future(self.node._executor())
        try:
            await self._send(JobStart(job_id=request.job_id, request_digest=digest,
                                      votes=[raw_vote.decode()]))
            return vote, (await self._next("results"))[1]
        finally:
            executor.cancel()
            await asyncio.gather(executor, return_exceptions=True)

    def close(self) -> None:
        self.node.replay.close()
        self.node.records.close()


@pytest.fixture
def harness(cluster_dir):
    h = NodeHarness(cluster_dir)
    yield h
    h.close()


@pytest.fixture
def counting(monkeypatch) -> Counting:
    kind = Counting()
    monkeypatch.setitem(registry.KINDS, kind.name, kind)
    return kind


async def test_prepare_runs_once_per_job_and_every_later_hook_gets_its_result(harness,
                                                                              counting):
    vote, result = await harness.run("count", {})
    assert vote.accept and result.ok, (vote, result)
    assert result.output == {"ran": True, "completed": True}
    assert [hook for hook, _ in counting.calls] == ["prepare", "check_vote", "plan",
                                                    "run_locally", "complete"]
    jobs = [job for _, job in counting.calls[1:]]
    assert len({id(job.prepared) for job in jobs}) == 1
    assert all(job.params == CountParams() for job in jobs)
    assert jobs[0].participants == []  # the vote comes before any start
    assert all([p.name for p in job.participants] == ["party0"] for job in jobs[1:])

    await harness.run("count", {})  # a second job prepares again, once
    assert [hook for hook, _ in counting.calls].count("prepare") == 2


async def test_the_engine_gets_the_planned_protocol_function_and_its_settings(harness,
                                                                             monkeypatch):
    monkeypatch.setitem(registry.KINDS, CountingSession.name, CountingSession())
    harness.node.engine = engine = FakeEngine()
    vote, result = await harness.run(CountingSession.name, {})
    assert result.ok, result
    assert result.output == {"protocol_said": {"rounds": 3}}
    assert (result.timings["connect_s"], result.timings["mpc_s"]) == (0.25, 0.5)
    [spec] = engine.specs
    assert spec.protocol is protocols.diagnostics.rounds
    assert (spec.args, spec.threshold, spec.session_timeout) == ([3], 0, 999.0)
    assert spec.my_pid == 0 and [p.name for p in spec.peers] == ["party0"]


async def test_outputs_sealed_to_another_coordinator_are_refused_before_prepare(harness,
                                                                               counting):
    vote, _ = await harness.run("count", {"seal_to": "mallory"})
    assert not vote.accept
    assert vote.reason == ("outputs are sealed only to the requesting coordinator"
                           " (coordinator), not to mallory")
    assert counting.calls == []
    vote, result = await harness.run("count", {"seal_to": "coordinator"})
    assert vote.accept and result.ok


async def test_a_price_sealed_to_another_coordinator_is_refused(harness):
    vote, _ = await harness.run("price", PRICE | {"reveal": "coordinator",
                                                  "recipient": "mallory"})
    assert not vote.accept
    assert vote.reason == ("outputs are sealed only to the requesting coordinator"
                           " (coordinator), not to mallory")
