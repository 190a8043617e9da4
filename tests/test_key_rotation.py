"""An operator rotates its identity and TLS keys (docs/OPERATOR.md, "Rotating an operator's
keys"): `operator rotate` makes new keys beside the ones in use and a rotation bundle, `roster
update --rotate` re-keys the operator in place, the quorum and the operator's new key sign it,
and `operator rotate --finish` switches the files once a roster the node accepts pins them,
crash-safely.  Also: `roster update` changes limits and the update quorum."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat

import pytest
import yaml
from click.testing import CliRunner

from mpc_nodes import governance, pki
from mpc_nodes.cli.app import main
from mpc_nodes.client.api import Client
from mpc_nodes.config import load_roster
from mpc_nodes.node.held_roster import HELD
from mpc_nodes.onboarding import IN_USE, NEXT, PREVIOUS, finish_rotation, load_bundle

OPERATORS = {"alice": ("node", 7001), "bob": ("node", 7002), "carol": ("node", 7003),
             "desk": ("coordinator", None)}


def mpcnet(*args, name: str | None = None, ok: bool = True):
    env = {"OP_PASSPHRASE": f"secret of {name}"} if name else {}
    result = CliRunner().invoke(main, [str(a) for a in args], env=env)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def sign(roster, directory, name):
    mpcnet("roster", "sign", "--roster", roster, "--dir", directory, "--passphrase-env",
           "OP_PASSPHRASE", name=name)


def rotate(directory, name, *args, ok: bool = True):
    return mpcnet("operator", "rotate", "--dir", directory, "--passphrase-env", "OP_PASSPHRASE",
                  *args, name=name, ok=ok)


@pytest.fixture
def network(tmp_path):
    """Each operator's directory and the first roster, signed by every operator."""
    dirs = {}
    for name, (role, port) in OPERATORS.items():
        dirs[name] = tmp_path / name
        where = ["--host", "127.0.0.1", "--mpc-port", port] if port else []
        mpcnet("operator", "init", "--dir", dirs[name], "--name", name, "--role", role, *where,
               "--passphrase-env", "OP_PASSPHRASE", name=name)
    _, broker = pki.self_signed_cert("mpcnet-broker", ["localhost"], ["127.0.0.1"], True, False)
    (tmp_path / "broker.crt").write_text(pki.cert_pem(broker))
    roster = tmp_path / "roster.yaml"
    mpcnet("roster", "assemble", *[a for n in OPERATORS for a in ("--bundle",
                                                                  dirs[n] / "bundle.yaml")],
           "--cluster-id", "rotating", "-t", "1", "--broker-cert", tmp_path / "broker.crt",
           "--out", roster)
    for name in OPERATORS:
        sign(roster, dirs[name], name)
    return dirs, roster


def contents(directory) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def test_rotate_makes_new_keys_beside_the_ones_in_use(network):
    dirs, _ = network
    bob = dirs["bob"]
    before = contents(bob)
    result = rotate(bob, "bob")
    new = load_bundle(bob / NEXT.bundle)  # signed by the new identity key
    assert new.identity_key in result.output
    old = load_bundle(bob / "bundle.yaml")
    assert (new.name, new.role, new.host, new.mpc_port) == ("bob", "node", "127.0.0.1", 7002)
    assert new.identity_key != old.identity_key and new.tls_cert != old.tls_cert
    assert {n: b for n, b in contents(bob).items() if n in before} == before  # untouched
    for key in (NEXT.identity, NEXT.tls_key):
        assert stat.S_IMODE((bob / key).stat().st_mode) == 0o600
        assert b"ENCRYPTED PRIVATE KEY" in (bob / key).read_bytes()
    assert pki.public_hex(pki.load_identity(bob / NEXT.identity, b"secret of bob")) == (
        new.identity_key)
    # a second rotation waits for this one; a wrong passphrase makes nothing
    again = rotate(bob, "bob", ok=False)
    assert again.exit_code == 2 and "holds new keys already" in again.output
    wrong = mpcnet("operator", "rotate", "--dir", dirs["carol"], "--passphrase-env",
                   "OP_PASSPHRASE", name="bob", ok=False)
    assert wrong.exit_code == 2 and "cannot decrypt" in wrong.output
    assert not (dirs["carol"] / NEXT.identity).exists()


def test_a_rotation_needs_the_quorum_and_the_new_key(network, tmp_path):
    dirs, v1 = network
    rotate(dirs["bob"], "bob")
    v2 = tmp_path / "roster-v2.yaml"
    mpcnet("roster", "update", "--current", v1, "--rotate", dirs["bob"] / NEXT.bundle,
           "--out", v2)
    old, new = load_roster(v1), load_roster(v2)
    bundle = load_bundle(dirs["bob"] / NEXT.bundle)
    assert new.version == 2 and new.signatures == []
    assert [p.name for p in new.parties] == [p.name for p in old.parties]  # same place
    bob = new.party("bob")
    assert (bob.index, bob.identity_key, bob.tls_cert) == (1, bundle.identity_key,
                                                           bundle.tls_cert)
    assert bob.model_copy(update={"identity_key": old.party("bob").identity_key,
                                  "tls_cert": old.party("bob").tls_cert}) == old.party("bob")
    assert new.model_copy(update={"version": 1, "parties": old.parties}) == old.model_copy(
        update={"signatures": []})  # nothing else changed

    verify = ("roster", "verify", "--roster", v2, "--current", v1)
    sign(v2, dirs["alice"], "alice")
    sign(v2, dirs["carol"], "carol")  # the quorum (n - t = 2), but not bob's new key
    refused = mpcnet(*verify, ok=False)
    assert refused.exit_code == 2 and "re-keys bob without their own signature" in refused.output
    with pytest.raises(governance.RosterTrustError, match="bob without"):
        governance.accept(old, load_roster(v2))
    sign(v2, dirs["bob"], "bob")  # with the new key and the one in use
    assert yaml.safe_load(mpcnet(*verify).output)["signers"] == ["alice", "bob", "carol"]

    # bob's key in use counts towards the quorum: alice and bob suffice, alice alone not
    keys = {n: pki.load_identity(dirs[n] / "identity.key", f"secret of {n}".encode())
            for n in OPERATORS}
    new_bob = pki.load_identity(dirs["bob"] / NEXT.identity, b"secret of bob")
    unsigned = load_roster(v2).model_copy(update={"signatures": []})
    with_bob = governance.sign(governance.sign(unsigned, "bob", new_bob), "bob", keys["bob"])
    assert governance.accept(old, governance.sign(with_bob, "alice", keys["alice"]))
    with pytest.raises(governance.RosterTrustError, match="signed by 1 .* needs 2"):
        governance.accept(old, governance.sign(governance.sign(unsigned, "bob", new_bob),
                                               "alice", keys["alice"]))


def test_roster_update_refuses_rotations_that_are_not_one(network, tmp_path):
    dirs, v1 = network
    out = tmp_path / "v2.yaml"
    same = mpcnet("roster", "update", "--current", v1, "--rotate", dirs["bob"] / "bundle.yaml",
                  "--out", out, ok=False)
    assert same.exit_code == 2 and "identity key roster version 1 pins already" in same.output
    mpcnet("operator", "init", "--dir", tmp_path / "dave", "--name", "dave", "--host",
           "127.0.0.1", "--mpc-port", 7004, "--passphrase-env", "OP_PASSPHRASE", name="dave")
    stranger = mpcnet("roster", "update", "--current", v1, "--rotate",
                      tmp_path / "dave" / "bundle.yaml", "--out", out, ok=False)
    assert stranger.exit_code == 2 and "lists no node dave (--add adds one)" in stranger.output
    rotate(dirs["bob"], "bob")
    both = mpcnet("roster", "update", "--current", v1, "--rotate", dirs["bob"] / NEXT.bundle,
                  "--remove", "bob", "--out", out, ok=False)
    assert both.exit_code == 2 and "both removed and re-keyed" in both.output
    assert not out.exists()


def test_finish_switches_only_to_keys_an_accepted_roster_pins(network, tmp_path):
    dirs, v1 = network
    bob = dirs["bob"]
    rotate(bob, "bob")
    old_files, new_files = contents(bob), {n: (bob / n).read_bytes() for n in NEXT}
    v2 = tmp_path / "roster-v2.yaml"
    mpcnet("roster", "update", "--current", v1, "--rotate", bob / NEXT.bundle, "--out", v2)

    usage = rotate(bob, "bob", "--finish", "--roster", v2, ok=False)
    assert usage.exit_code == 2 and "--current" in usage.output
    unsigned = rotate(bob, "bob", "--finish", "--roster", v2, "--current", v1, ok=False)
    assert unsigned.exit_code == 2 and "not switching keys" in unsigned.output
    stale = rotate(bob, "bob", "--finish", "--roster", v1, "--current", v1, ok=False)
    assert stale.exit_code == 2 and "does not pin the identity key" in stale.output
    assert contents(bob) == old_files  # nothing moved

    for name in ("alice", "carol", "bob"):
        sign(v2, dirs[name], name)
    done = rotate(bob, "bob", "--finish", "--roster", v2, "--current", v1)
    assert "now uses the keys roster version 2 pins" in done.output
    for new, in_use, previous in zip(NEXT, IN_USE, PREVIOUS):
        assert (bob / in_use).read_bytes() == new_files[new]
        assert (bob / previous).read_bytes() == old_files[in_use]  # kept to go back
        assert not (bob / new).exists()
    again = rotate(bob, "bob", "--finish", "--roster", v2, "--current", v1)
    assert "nothing to move" in again.output
    # the node's keys and the roster agree again: a node holding v1 accepts v2 and runs on them
    roster = load_roster(v2)
    identity = pki.load_identity(bob / "identity.key", b"secret of bob")
    assert governance.accept(load_roster(v1), roster).party("bob").identity_key == (
        pki.public_hex(identity))
    # the next rotation starts from the new keys
    rotate(bob, "bob")
    assert load_bundle(bob / NEXT.bundle).identity_key != roster.party("bob").identity_key


async def test_the_new_tls_certificate_is_the_one_the_new_roster_pins(network, tmp_path):
    """Mutual TLS as MPC links and the broker make it: bob's new key and certificate are
    accepted by a peer trusting the new roster's pins and refused under the old one's, and
    bob's old certificate is refused under the new one's."""
    dirs, v1 = network
    bob, alice = dirs["bob"], dirs["alice"]
    rotate(bob, "bob")
    v2 = tmp_path / "roster-v2.yaml"
    mpcnet("roster", "update", "--current", v1, "--rotate", bob / NEXT.bundle, "--out", v2)
    for name in ("alice", "carol", "bob"):
        sign(v2, dirs[name], name)
    rotate(bob, "bob", "--finish", "--roster", v2, "--current", v1)
    old, new = load_roster(v1).peer_certs_pem, load_roster(v2).peer_certs_pem
    assert load_roster(v2).party("bob").tls_cert == (bob / "tls.crt").read_text()
    assert await handshake(alice, "alice", (bob, "tls.crt", "tls.key"), new)
    assert not await handshake(alice, "alice", (bob, "tls.crt", "tls.key"), old)
    assert not await handshake(alice, "alice", (bob, PREVIOUS.tls_cert, PREVIOUS.tls_key), new)


async def handshake(server_dir, server_name, client, trusted: str) -> bool:
    """Whether `client` (directory, certificate, key: bob's) completes mutual TLS with a
    server holding server_dir's certificate and trusting only `trusted`."""
    server = await asyncio.start_server(
        lambda r, w: (w.write(b"x"), w.close()), "127.0.0.1", 0,
        ssl=pki.server_context(server_dir / "tls.crt", server_dir / "tls.key",
                               f"secret of {server_name}".encode(), trusted))
    directory, cert, key = client
    async with server:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.sockets[0].getsockname()[1], server_hostname=server_name,
            ssl=pki.client_context(directory / cert, directory / key, b"secret of bob",
                                   trusted))
        try:
            return await reader.read(1) == b"x"
        except OSError:  # the server refused the certificate
            return False
        finally:
            writer.close()


def test_an_interrupted_finish_leaves_a_usable_key_and_completes_when_run_again(
        network, tmp_path, monkeypatch):
    """Interrupted before every rename it makes: the in-use names always hold a key that
    opens, and running the finish again completes it."""
    dirs, v1 = network
    rotate(dirs["bob"], "bob")
    v2 = tmp_path / "roster-v2.yaml"
    mpcnet("roster", "update", "--current", v1, "--rotate", dirs["bob"] / NEXT.bundle,
           "--out", v2)
    for name in ("alice", "carol", "bob"):
        sign(v2, dirs[name], name)
    held, offered = load_roster(v1), load_roster(v2)
    new_key = offered.party("bob").identity_key
    real_replace, step = os.replace, 0
    while True:
        bob = tmp_path / f"bob-{step}"
        shutil.copytree(dirs["bob"], bob)
        calls = 0

        def crash(src, dst):
            nonlocal calls
            if calls == step:
                raise OSError("power lost")
            calls += 1
            real_replace(src, dst)

        monkeypatch.setattr(os, "replace", crash)
        try:
            finish_rotation(bob, b"secret of bob", offered, held)
            completed = True
        except OSError:
            completed = False
        monkeypatch.setattr(os, "replace", real_replace)
        if completed:
            break
        pki.load_identity(bob / "identity.key", b"secret of bob")  # opens, old or new
        assert finish_rotation(bob, b"secret of bob", offered, held) is not None
        assert pki.public_hex(pki.load_identity(bob / "identity.key", b"secret of bob")) == (
            new_key)
        assert not any((bob / n).exists() for n in NEXT)
        step += 1
    assert step == 2 * len(NEXT)  # a link kept and a rename per file, each interrupted


# -- roster update: limits and the update quorum -------------------------------------------

def test_roster_update_changes_limits_and_the_update_quorum(network, tmp_path):
    dirs, v1 = network
    v2 = tmp_path / "v2.yaml"
    mpcnet("roster", "update", "--current", v1, "--limit", "vol_spread_limit=0.3", "--limit",
           "max_request_ttl_s=300", "--limit", "policy_quorum=3", "--update-quorum", 3,
           "--out", v2)
    new = load_roster(v2)
    assert (new.limits.vol_spread_limit, new.limits.max_request_ttl_s) == (0.3, 300.0)
    assert new.limits.policy_quorum == 3 and new.update_quorum == 3
    assert new.limits.max_message_bytes == load_roster(v1).limits.max_message_bytes
    for name in ("alice", "bob"):  # version 1's quorum (n - t = 2) makes version 2
        sign(v2, dirs[name], name)
    mpcnet("roster", "verify", "--roster", v2, "--current", v1)

    v3 = tmp_path / "v3.yaml"  # version 2 asks 3 party signatures of the next one
    mpcnet("roster", "update", "--current", v2, "--limit", "policy_quorum=none", "--out", v3)
    assert load_roster(v3).limits.policy_quorum is None
    for name in ("alice", "bob"):
        sign(v3, dirs[name], name)
    short = mpcnet("roster", "verify", "--roster", v3, "--current", v2, ok=False)
    assert short.exit_code == 2 and "it needs 3" in short.output
    sign(v3, dirs["carol"], "carol")
    mpcnet("roster", "verify", "--roster", v3, "--current", v2)


@pytest.mark.parametrize("args, message", [
    (["--limit", "max_speed=3"], "unknown limit 'max_speed': the limits are max_message_bytes,"
                                 " max_request_ttl_s, vol_spread_limit, policy_quorum"),
    (["--limit", "vol_spread_limit=2"], "limits: vol_spread_limit: Input should be less than 1"),
    (["--limit", "max_message_bytes=lots"], "limits: max_message_bytes: Input should be a"
                                            " valid integer"),
    (["--limit", "vol_spread_limit"], "limit 'vol_spread_limit': give NAME=VALUE"),
    (["--limit", "policy_quorum=2"], "policy_quorum 2 must be between 3 and 3"),
    (["--update-quorum", 1], "update_quorum 1 must be between n - t = 2 and n = 3"),
    (["--update-quorum", 4], "update_quorum 4 must be between n - t = 2 and n = 3"),
])
def test_roster_update_refuses_a_bad_limit_or_quorum(network, tmp_path, args, message):
    _, v1 = network
    result = mpcnet("roster", "update", "--current", v1, *args, "--out", tmp_path / "v2.yaml",
                    ok=False)
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    assert not (tmp_path / "v2.yaml").exists()


# -- end to end: a node restarted on its rotated keys and the new roster -------------------

@pytest.mark.e2e
@pytest.mark.timeout(150)
async def test_a_node_runs_jobs_on_its_rotated_keys(make_cluster):
    cluster = make_cluster(parties=3, threshold=1)
    config = cluster.dir / "coordinator" / "coordinator.yaml"
    async with Client(config, cluster.broker_url) as net:
        await net.wait_for_parties(60)
        before = await net.aggregate("eth_vol_30d", "median")

    party1, v1 = cluster.dir / "party1", cluster.dir / "roster.yaml"
    passphrase = ("--passphrase-file", party1 / "passphrase")
    mpcnet("operator", "rotate", "--dir", party1, *passphrase)
    v2 = cluster.dir / "roster-v2.yaml"
    mpcnet("roster", "update", "--current", v1, "--rotate", party1 / NEXT.bundle, "--out", v2)
    for i in (0, 2, 1):
        mpcnet("roster", "sign", "--roster", v2, "--dir", cluster.dir / f"party{i}",
               "--passphrase-file", cluster.dir / f"party{i}" / "passphrase")
    cluster.close()  # the broker pins certificates at start: everything restarts
    mpcnet("operator", "rotate", "--dir", party1, *passphrase, "--finish", "--roster", v2,
           "--current", party1 / "data" / HELD)
    shutil.copy(v2, v1)
    cluster.roster = load_roster(v1)
    cluster.start()

    async with Client(config, cluster.broker_url) as net:
        await net.wait_for_parties(60)
        after = await net.aggregate("eth_vol_30d", "median")
    assert after.value == pytest.approx(before.value)
    assert sorted(after.outcome.participants) == ["party0", "party1", "party2"]
    for i in range(3):
        held = load_roster(cluster.dir / f"party{i}" / "data" / HELD)
        assert held.version == 2 and held.party("party1").tls_cert == (
            party1 / "tls.crt").read_text()
    assert load_roster(cluster.dir / "coordinator" / HELD).version == 2
