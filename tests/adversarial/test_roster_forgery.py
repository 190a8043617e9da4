"""Forged rosters are refused: a first roster missing one operator's signature, an update
signed by too few current parties, an update counting a removed operator's signature, an old
version replayed, an operator added without its own signature; a node refuses to start with
any of them, and its TLS trusts only the roster's pinned certificates."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from mpc_nodes import governance, pki
from mpc_nodes.config import ConfigError, dump_yaml, load_roster
from mpc_nodes.deploy.cluster import _local_identities, amend_roster, init_cluster, sign_locally
from mpc_nodes.node.audit import AuditLog, verify_log
from mpc_nodes.node.held_roster import adopt
from mpc_nodes.onboarding import create_operator, next_version


@pytest.fixture
def cluster(tmp_path):
    init_cluster(tmp_path / "c", parties=5, threshold=1)  # n - t = 4 signatures per update
    return tmp_path / "c"


def keys(cluster):
    return dict(_local_identities(cluster))


def signed_by(roster, keys, names):
    for name in names:
        roster = governance.sign(roster, name, keys[name])
    return roster


def test_a_first_roster_missing_one_signature_is_refused(cluster):
    roster = load_roster(cluster / "roster.yaml")
    governance.check_first(roster)  # mpcnet init: every operator signed
    partial = roster.model_copy(update={"signatures": [
        s for s in roster.signatures if s.signer != "party3"]})
    with pytest.raises(governance.RosterTrustError, match="party3"):
        governance.accept(None, partial)
    forged = roster.model_copy(update={"threshold": 2, "parties": roster.parties})
    with pytest.raises(governance.RosterTrustError):  # contents changed after signing
        governance.accept(None, forged)


def test_updates_need_the_current_quorum_and_a_new_version(cluster):
    current, k = load_roster(cluster / "roster.yaml"), keys(cluster)
    update = next_version(current, remove=["party4"])
    with pytest.raises(governance.RosterTrustError, match="signed by 3 .* needs 4"):
        governance.accept(current, signed_by(update, k, ["party0", "party1", "party2"]))
    good = signed_by(update, k, ["party0", "party1", "party2", "party3"])
    assert governance.accept(current, good) == good
    # party4 is out: in the next update its signature counts for nothing
    later = next_version(good, threshold=1)
    with pytest.raises(governance.RosterTrustError, match="signed by 2"):
        governance.accept(good, signed_by(later, k, ["party4", "party0", "party1"]))
    # the old version replayed against a node holding the new one
    with pytest.raises(governance.RosterTrustError, match="does not follow"):
        governance.accept(good, sign_locally(cluster, current))
    skipped = signed_by(later.model_copy(update={"version": 4}), k, ["party0", "party1",
                                                                       "party2", "party3"])
    with pytest.raises(governance.RosterTrustError, match="does not follow"):
        governance.accept(good, skipped)


def test_an_operator_is_added_only_with_its_own_signature(cluster, tmp_path):
    current, k = load_roster(cluster / "roster.yaml"), keys(cluster)
    bundle = create_operator(tmp_path / "eve", "eve", "node", b"eve's", "127.0.0.1", 7999)
    update = signed_by(next_version(current, add=[bundle]), k, list(k))
    with pytest.raises(governance.RosterTrustError, match="eve without"):
        governance.accept(current, update)
    eve = pki.load_identity(tmp_path / "eve" / "identity.key", b"eve's")
    assert governance.accept(current, governance.sign(update, "eve", eve))


def test_a_node_refuses_a_forged_roster_and_records_every_change(cluster, tmp_path):
    audit = AuditLog(tmp_path / "audit.log")
    first = load_roster(cluster / "roster.yaml")
    adopt(tmp_path, first, audit)
    second = amend_roster(cluster, limits=first.limits.model_copy(
        update={"max_request_ttl_s": 300.0}))
    assert adopt(tmp_path, second, audit) == second
    for forged in (first,  # replayed
                   second.model_copy(update={"version": 3})):  # unsigned next version
        with pytest.raises(ConfigError, match="refusing the roster"):
            adopt(tmp_path, forged, audit)
    report = verify_log(tmp_path / "audit.log")
    entries = [e for e in report.events if e["event"] == "roster"]
    assert report.ok
    assert [(e["version"], e["previous"]) for e in entries] == [(1, None), (2, 1)]


def test_the_node_process_refuses_an_unsigned_roster(cluster):
    roster = load_roster(cluster / "roster.yaml")
    dump_yaml(cluster / "roster.yaml", roster.model_copy(update={"signatures": [
        s for s in roster.signatures if s.signer != "coordinator"]}))
    run = subprocess.run([sys.executable, "-m", "mpc_nodes.cli.app", "node", "--config",
                          str(cluster / "party0" / "node.yaml")], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 2 and "refusing the roster" in run.stderr
    assert "coordinator" in run.stderr


async def _handshake(server_dir, client_dir, trusted: str) -> bool:
    """Whether a client with client_dir's key and cert completes mutual TLS with a server
    trusting only `trusted` (the server writes one byte once it accepted the client)."""
    server = await asyncio.start_server(
        lambda r, w: (w.write(b"x"), w.close()), "127.0.0.1", 0,
        ssl=pki.server_context(server_dir / "tls.crt", server_dir / "tls.key", b"pw", trusted))
    async with server:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.sockets[0].getsockname()[1], server_hostname="a",
            ssl=pki.client_context(client_dir / "tls.crt", client_dir / "tls.key", b"pw",
                                   trusted))
        got = await reader.read(1)
        writer.close()
        return got == b"x"


async def test_tls_trusts_exactly_the_pinned_certificates(tmp_path):
    pinned = {n: create_operator(tmp_path / n, n, "node", b"pw", "127.0.0.1", 7000)
              for n in ("a", "b")}
    create_operator(tmp_path / "mallory", "b", "node", b"pw", "127.0.0.1", 7000)  # claims b
    trusted = "".join(b.tls_cert for b in pinned.values())
    assert await _handshake(tmp_path / "a", tmp_path / "b", trusted)
    assert not await _handshake(tmp_path / "a", tmp_path / "mallory", trusted)
    removed = pinned["a"].tls_cert  # b removed from the roster: its certificate is refused
    assert not await _handshake(tmp_path / "a", tmp_path / "b", removed)
