"""The roster's security mode (issue 13): `security: malicious` or `semi-honest`, signed with the
roster, changed by a roster update like any other field; under `malicious` every node refuses,
at its vote, an MPC job kind whose protocol is not secure against malicious parties, and the
coordinator refuses to ask for one; `status` and `ping` show the mode in force."""

from __future__ import annotations

import hashlib
import json
import secrets
import signal
import statistics
import subprocess
import sys
import time

import pytest
import yaml

from mpc_nodes import governance
from mpc_nodes.client.coordinator import Coordinator, CoordinatorError
from mpc_nodes.config import ConfigError, Roster, load_roster
from mpc_nodes.deploy.cluster import (ClusterError, _local_identities, amend_roster, init_cluster,
                                      sign_locally)
from mpc_nodes.jobs.aggregate import PingParams
from mpc_nodes.jobs.kind import LocalKind, SessionKind
from mpc_nodes.jobs.registry import KINDS
from mpc_nodes.node.context import JobRejected
from mpc_nodes.node.daemon import Node
from mpc_nodes.onboarding import next_version
from mpc_nodes.wire.envelope import seal
from mpc_nodes.wire.messages import JobRequest
from tests.cluster_harness import wait_until
from tests.test_e2e_cluster import private_inputs

SESSION_KINDS = sorted(n for n, k in KINDS.items() if isinstance(k, SessionKind))
LOCAL_KINDS = sorted(n for n, k in KINDS.items() if isinstance(k, LocalKind))


def mpcnet(*args, timeout=90):
    return subprocess.run([sys.executable, "-m", "mpc_nodes.cli.app", *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def malicious(tmp_path):
    """A 3-party one-machine cluster directory whose roster says security: malicious."""
    init_cluster(tmp_path / "c", 3, 1, security="malicious")
    return tmp_path / "c"


# -- the roster field --------------------------------------------------------------------

def test_both_modes_load_and_new_clusters_default_to_malicious(tmp_path, malicious):
    """New rosters are malicious unless asked otherwise; the field's own default stays
    semi-honest, what a roster document without it means (the test below)."""
    assert load_roster(malicious / "roster.yaml").security == "malicious"
    assert "security: malicious" in (malicious / "roster.yaml").read_text()
    assert init_cluster(tmp_path / "d", 3, 1).security == "malicious"
    assert init_cluster(tmp_path / "e", 3, 1, security="semi-honest").security == "semi-honest"
    assert Roster.model_fields["security"].default == "semi-honest"


def test_a_bad_mode_is_refused_naming_the_value(tmp_path, malicious):
    raw = yaml.safe_load((malicious / "roster.yaml").read_text())
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**raw, "security": "paranoid"}))
    with pytest.raises(ConfigError, match=r"bad.yaml: security: .*'paranoid' is not a security"
                                          r" mode: give one of malicious, semi-honest"):
        load_roster(tmp_path / "bad.yaml")
    with pytest.raises(ClusterError, match="'paranoid' is not a security mode"):
        init_cluster(tmp_path / "x", 3, 1, security="paranoid")
    assert not (tmp_path / "x").exists()  # refused before anything was written


def test_a_roster_from_before_the_field_loads_semi_honest_and_its_signatures_still_verify(
        tmp_path):
    """A roster file without `security`, signed over its contents as they were before the
    field existed (no `security` key in the signed JSON), is still accepted."""
    init_cluster(tmp_path / "c", 3, 1, security="semi-honest")
    raw = yaml.safe_load((tmp_path / "c" / "roster.yaml").read_text())
    assert raw.pop("security", None) in (None, "semi-honest")
    loaded = load_roster_from(tmp_path, {**raw, "signatures": []})
    body = loaded.model_dump(mode="json", exclude={"signatures", "security"})
    old_digest = hashlib.sha256(governance.DOMAIN + json.dumps(
        body, sort_keys=True, separators=(",", ":")).encode()).digest()
    keys = dict(_local_identities(tmp_path / "c"))
    signatures = [{"signer": name, "signature": key.sign(old_digest).hex()}
                  for name, key in keys.items()]
    old = load_roster_from(tmp_path, {**raw, "signatures": signatures})
    assert old.security == "semi-honest"
    assert governance.roster_digest(old) == old_digest
    governance.check_first(old)


def load_roster_from(tmp_path, raw: dict):
    path = tmp_path / "roster.old.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_roster(path)


def test_the_mode_is_signed_and_a_roster_update_changes_it(malicious):
    v1 = load_roster(malicious / "roster.yaml")
    flipped = v1.model_copy(update={"security": "semi-honest"})
    assert governance.roster_digest(flipped) != governance.roster_digest(v1)
    with pytest.raises(governance.RosterTrustError, match="lacks a valid signature"):
        governance.check_first(flipped)  # the operators signed malicious, not this

    unsigned = next_version(v1, security="semi-honest")
    assert unsigned.security == "semi-honest" and unsigned.version == 2
    assert next_version(v1).security == "malicious"  # kept unless changed
    v2 = amend_roster(malicious, security="semi-honest")  # quorum-signed, checked
    governance.check_update(v1, v2)
    assert v2.security == "semi-honest"
    v3 = sign_locally(malicious, next_version(v2, security="malicious"))
    governance.check_update(v2, v3)


# -- which kinds run under malicious -------------------------------------------------------

def test_under_malicious_only_active_secure_mpc_kinds_run(malicious):
    roster = load_roster(malicious / "roster.yaml")
    semi = roster.model_copy(update={"security": "semi-honest"})
    for name in LOCAL_KINDS:  # no MPC session: the mode does not apply
        assert KINDS[name].refused_under(roster) is None, name
    for name in SESSION_KINDS:
        kind = KINDS[name]
        assert kind.refused_under(semi) is None, name
        reason = kind.refused_under(roster)
        assert (reason is None) == kind.active_secure, name
        if reason:
            assert f"job kind {name!r} is refused" in reason
            assert "security: malicious" in reason and "security: semi-honest" in reason
            assert "issue 13" in reason and "version 1" in reason
    assert KINDS["ping"].refused_under(roster) is None  # no private data: ping always runs
    assert Unhardened().refused_under(roster) is not None  # a kind not (yet) hardened


class Unhardened(SessionKind):
    """A job kind whose protocol is secure against semi-honest parties only (every kind of
    mpcnet's own is hardened now; the guard stays for the next one)."""

    name = "unhardened"
    params_model = PingParams

    def plan(self, ctx, job):
        raise AssertionError("never planned: refused at the vote")


@pytest.fixture
def unhardened(monkeypatch):
    monkeypatch.setitem(KINDS, Unhardened.name, Unhardened())


async def test_a_node_under_malicious_votes_no_on_a_kind_not_hardened(malicious, unhardened):
    node = Node(malicious / "party0" / "node.yaml")
    coordinator = dict(_local_identities(malicious))["coordinator"]

    def request(kind: str, params: dict):
        now = time.time()
        req = JobRequest(job_id=secrets.token_hex(16), kind=kind, params=params,
                         coordinator="coordinator", issued_at=now, expires_at=now + 30,
                         **governance.request_binding(node.roster))
        raw = seal(coordinator, "coordinator/coordinator", node.roster.cluster_id,
                   node.jobs_topic, req).raw
        return node.verifier.open(raw, node.jobs_topic)

    with pytest.raises(JobRejected, match="job kind 'unhardened' is refused: the roster"
                                          r" \(version 1\) says security: malicious"):
        await node._check_request(request("unhardened", {"rounds": 2}))
    kind, _ = await node._check_request(request("ping", {"rounds": 2}))
    assert kind.name == "ping"


async def test_the_coordinator_refuses_to_ask_for_a_refused_kind(malicious, unhardened):
    c = Coordinator(malicious / "coordinator" / "coordinator.yaml")
    with pytest.raises(CoordinatorError, match="job kind 'unhardened' is refused"):
        await c.run_job("unhardened", {"rounds": 2})  # fails before the bus


def test_cli_init_and_roster_update_set_the_mode(tmp_path):
    made = mpcnet("init", "-n", "3", "-t", "1", "--out", str(tmp_path / "c"), "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["security"] == "malicious"  # the default
    assert load_roster(tmp_path / "c" / "roster.yaml").security == "malicious"
    for command in (["init"], ["roster", "assemble"], ["demo"]):
        assert "[default: malicious]" in " ".join(mpcnet(*command, "--help").stdout.split())
    semi = mpcnet("init", "-n", "3", "-t", "1", "--out", str(tmp_path / "s"),
                  "--security", "semi-honest", "--json")
    assert json.loads(semi.stdout)["security"] == "semi-honest"
    bad = mpcnet("init", "-n", "3", "-t", "1", "--out", str(tmp_path / "d"),
                 "--security", "paranoid")
    assert bad.returncode == 2 and "'paranoid' is not one of" in bad.stderr
    update = mpcnet("roster", "update", "--current", str(tmp_path / "c" / "roster.yaml"),
                    "--security", "semi-honest", "--out", str(tmp_path / "v2.yaml"))
    assert update.returncode == 0, update.stderr
    assert "version 2 (security semi-honest)" in update.stdout
    assert load_roster(tmp_path / "v2.yaml").security == "semi-honest"


# -- end to end ----------------------------------------------------------------------------

@pytest.mark.e2e
@pytest.mark.timeout(180)
async def test_a_malicious_cluster_runs_checked_aggregates_and_shows_its_mode(make_cluster):
    cluster = make_cluster(parties=3, threshold=1, security="malicious")
    names = {p.name for p in cluster.roster.parties}
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        eth, btc = private_inputs(cluster, "eth_vol_30d"), private_inputs(cluster, "btc_vol_30d")
        for name, method, want in (("eth_vol_30d", "median", statistics.median(eth)),
                                   ("btc_vol_30d", "mean", statistics.fmean(btc))):
            outcome = await c.run_job("aggregate", {"input": name, "method": method})
            assert outcome.ok, outcome.error  # the checked protocol (aggregate_active)
            assert outcome.output["value"] == pytest.approx(want, abs=1e-9)

    where = ["--dir", str(cluster.dir), "--broker", cluster.broker_url, "--json"]
    status = json.loads(mpcnet("status", *where).stdout)
    assert (status["security"], status["roster_version"]) == ("malicious", 1)
    assert {(p["security"], p["roster_version"]) for p in status["parties"]} == {("malicious", 1)}
    ping = mpcnet("ping", "--rounds", "2", *where)
    assert ping.returncode == 0, ping.stderr
    pinged = json.loads(ping.stdout)
    assert pinged["ok"] and pinged["security"] == "malicious" and pinged["roster_version"] == 1
    human = mpcnet("status", *where[:-1])
    assert "security: malicious (roster version 1)" in human.stdout, human.stdout

    # the operators change the mode by a roster update; each node takes it on SIGHUP and
    # announces it, and aggregate runs
    cluster.roster = amend_roster(cluster.dir, security="semi-honest")
    for proc in cluster.nodes.values():
        proc.send_signal(signal.SIGHUP)  # reload the roster
    for i in range(3):
        await cluster.wait_log(i, "runs with roster version 2")
    async with cluster.coordinator() as c:
        await wait_until(lambda: {(n, p.roster_version, p.security) for n, p in c.presence.items()}
                         == {(n, 2, "semi-honest") for n in names}, 30,
                         lambda: f"every party announcing version 2: {c.presence}")
        outcome = await c.run_job("aggregate", {"input": "eth_vol_30d"})
        assert outcome.ok, outcome.error
