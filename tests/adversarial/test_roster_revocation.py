"""A removed operator is revoked at once: on SIGHUP a node takes the next roster version its
roster file holds (if the quorum signed it), without a restart.  From then on the removed
party's signed messages are refused, its certificate is no longer trusted on MPC links, jobs
accepted under the old version are dropped, and a coordinator still on the old version is
refused; the embedded broker, on SIGHUP, closes the removed party's connection and refuses
it.  A forged version, or one that removes the node itself, is not taken."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from mpc_nodes import governance
from mpc_nodes.config import dump_yaml, load_roster
from mpc_nodes.deploy.cluster import RunState, _local_identities, init_cluster, sign_locally
from mpc_nodes.jobs.kind import MpcSession
from mpc_nodes.node.daemon import Node
from mpc_nodes.onboarding import next_version
from mpc_nodes.wire import topics
from mpc_nodes.wire.envelope import EnvelopeError, seal
from mpc_nodes.wire.messages import JobAbort
from tests.cluster_harness import wait_until

REMOVED = "party3"


def version_2(cluster_dir, signers=None):
    """The next version of the first roster without party3, signed by every local operator
    (or `signers`), written to the roster file."""
    v1 = load_roster(cluster_dir / "party0" / "data" / "roster.accepted.yaml")
    v2 = next_version(v1, remove=[REMOVED])
    if signers is None:
        v2 = sign_locally(cluster_dir, v2)
    else:
        keys = dict(_local_identities(cluster_dir))
        for name in signers:
            v2 = governance.sign(v2, name, keys[name])
    dump_yaml(cluster_dir / "roster.yaml", v2)
    return v2


def from_removed(node: Node, cluster_dir) -> bytes:
    """A message signed by party3's own key, as it would send it."""
    key = dict(_local_identities(cluster_dir))[REMOVED]
    return seal(key, f"party/{REMOVED}", node.roster.cluster_id, node.jobs_topic,
                JobAbort(job_id="0" * 32, reason="still here")).raw


def audited_versions(party_dir) -> list[int]:
    lines = (party_dir / "data" / "audit.log").read_text().splitlines()
    return [e["version"] for e in map(json.loads, lines) if e.get("event") == "roster"]


@pytest.fixture
def cluster(tmp_path):
    init_cluster(tmp_path / "c", parties=4, threshold=1)  # n - t = 3 signatures per update
    return tmp_path / "c"


def test_a_node_takes_the_next_version_at_once_and_refuses_the_removed_party(cluster):
    node = Node(cluster / "party0" / "node.yaml")
    assert node.verifier.open(from_removed(node, cluster), node.jobs_topic).sender == REMOVED
    removed_cert = (cluster / REMOVED / "tls.crt").read_text()
    presignatures = node.ctx.presignatures
    v2 = version_2(cluster)

    node.reload_roster()
    assert node.roster.version == 2 and node.ctx.roster == v2
    with pytest.raises(EnvelopeError, match="unknown sender"):  # its votes, results, ...
        node.verifier.open(from_removed(node, cluster), node.jobs_topic)
    spec = node._session_spec(MpcSession(print, []), "ab" * 32, v2.parties)
    assert removed_cert.strip() not in spec.ca_pem  # MPC links no longer trust its certificate
    assert REMOVED not in [p.name for p in spec.peers]
    assert node.ctx.presignatures is not presignatures  # one-time secrets of v1: dropped
    assert audited_versions(cluster / "party0") == [1, 2]
    assert load_roster(cluster / "party0" / "data" / "roster.accepted.yaml") == v2


def test_a_forged_version_or_one_removing_the_node_itself_is_not_taken(cluster, caplog):
    node, removed = Node(cluster / "party0" / "node.yaml"), Node(cluster / REMOVED / "node.yaml")
    version_2(cluster, signers=["party0", "party1"])  # 2 of the 3 signatures it needs
    node.reload_roster()
    assert node.roster.version == 1 and "signed by 2" in caplog.text
    assert node.verifier.open(from_removed(node, cluster), node.jobs_topic).sender == REMOVED

    version_2(cluster)
    removed.reload_roster()
    assert removed.roster.version == 1 and "restart the node" in caplog.text
    assert audited_versions(cluster / REMOVED) == [1]


@pytest.mark.e2e
@pytest.mark.timeout(90)
async def test_sighup_revokes_a_removed_party_while_every_process_keeps_running(make_cluster):
    cluster = make_cluster(parties=4, threshold=1)
    async with cluster.coordinator() as stale:
        await cluster.wait_online(stale)
        assert (await stale.run_job("ping", {"rounds": 2})).ok
        version_2(cluster.dir)
        pids = {i: cluster.nodes[i].pid for i in range(4)}
        drops = cluster.bus_drops()
        for pid in [*pids.values(), cluster.broker_proc.pid]:
            os.kill(pid, signal.SIGHUP)
        for i in range(3):
            await cluster.wait_log(i, "runs with roster version 2")
        await cluster.wait_log(3, "roster not reloaded")  # party3 runs on, revoked:
        await wait_until(lambda: cluster.bus_drops()[3] > drops[3], 30,
                         "the broker closed party3's connection")  # the broker drops it
        assert {i: cluster.nodes[i].pid for i in range(4)} == pids  # nobody restarted
        assert cluster.broker_proc.poll() is None
        refused = await stale.run_job("ping", {"rounds": 2})  # a coordinator on version 1
        assert not refused.ok
        assert all("holds roster version 2" in v.reason for v in refused.votes
                   if v.party != REMOVED)

    async with cluster.coordinator() as current:
        await wait_until(lambda: {"party0", "party1", "party2"} <= current.online(), 30,
                         "the parties of version 2 online")
        done = await current.run_job("ping", {"rounds": 2})
        assert done.ok and sorted(done.participants) == ["party0", "party1", "party2"]


@pytest.mark.e2e
@pytest.mark.timeout(120)
async def test_sighup_to_cluster_up_revises_its_broker_and_every_node(tmp_path):
    cluster_dir = tmp_path / "c"
    init_cluster(cluster_dir, parties=4, threshold=1)
    up = subprocess.run([sys.executable, "-m", "mpc_nodes.cli.app", "cluster", "up", "--dir",
                         str(cluster_dir)], capture_output=True, text=True, timeout=90)
    try:
        assert up.returncode == 0, up.stderr
        version_2(cluster_dir)
        os.kill(RunState.load(cluster_dir).supervisor_pid, signal.SIGHUP)
        for name in ("party0", "party1", "party2"):  # each node took it (and audited it)
            await wait_until(lambda: audited_versions(cluster_dir / name) == [1, 2], 30,
                             f"{name} takes version 2")
        log = (cluster_dir / REMOVED / "node.log").read_text
        await wait_until(lambda: "roster not reloaded" in log(), 30, "party3 runs on, revoked")
        supervisor_log = (cluster_dir / "run" / "supervisor.log").read_text
        await wait_until(lambda: "certificate 'party3' is not in the roster" in supervisor_log(),
                         30, "the broker closes and refuses party3")
    finally:
        subprocess.run([sys.executable, "-m", "mpc_nodes.cli.app", "cluster", "down", "--dir",
                        str(cluster_dir)], capture_output=True, timeout=60)
