"""The ceremony of docs/OPERATOR.md end to end: three node operators and a coordinator, each
in its own 0700 directory, make their own secrets (passphrases only in the environment or in
a file elsewhere), exchange signed join bundles, assemble and sign the roster; the broker
host makes its key with openssl; nodes start from their own directories and run aggregate,
ECDSA keygen + sign (checked by eth-account and libsecp256k1; the shares sealed under a
passphrase of their own) and a FROST signature (checked by OpenSSL).  Then a fourth operator
joins by a version 2 that the quorum signs, every node restarts on it, and a job with the
fourth runs; `mpcnet reshare` moves both keys to the four, then carol is removed (her old
share no longer combines with the new ones), two operators join and the threshold goes from 1
to 2 -- after each step the old keys sign (checked by eth-account, libsecp256k1 and OpenSSL)
and a price job matches scipy.  One network for the module; the tests run in order (each
changes the membership)."""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import coincurve
import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eth_account import Account

from scipy.stats import norm

from keyshare import KeyStore, WrongPassphrase
from mpc_nodes import governance
from mpc_nodes.cli.app import main
from mpc_nodes.client.api import Client, key_id_for
from mpc_nodes.config import CoordinatorConfig, NodeConfig, PassphraseSource, dump_yaml, load_roster
from mpc_nodes.deploy.cluster import free_port
from mpc_nodes.errors import JobFailed
from mpc_nodes.jobs.evm import parse_transaction
from mpc_nodes.jobs.options_csv import parse_options
from protocols.secp256k1 import N, hex_point, mul_base
from protocols.shamir import lagrange_coefficients
from tests.cluster_harness import _env, _killgroups, eth_policy, port_open

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]
NODES = ("alice", "bob", "carol")
VOLS = {"alice": 0.50, "bob": 0.51, "carol": 0.52, "dave": 0.53, "eve": 0.54, "frank": 0.55}
"""Each operator's flat private ETH surface: a price at the mean is checkable with scipy."""
VAULT, ORACLE = "ceremony-vault", "ceremony-oracle"
SPOT, RATE, EXPIRY = 3000.0, 0.03, 0.5
RECIPIENT = "0x1111111111111111111111111111111111111111"
TX = {"chainId": 11155111, "nonce": 0, "to": RECIPIENT, "value": str(10**17), "data": "0x",
      "gas": 21000, "maxFeePerGas": 30 * 10**9, "maxPriorityFeePerGas": 10**9}
BROKER = """
import asyncio, json, signal, sys
from mpc_nodes.wire.broker import EmbeddedBroker
port, cert, key, peers, acl = sys.argv[1:]
async def run():
    broker = EmbeddedBroker("127.0.0.1", int(port), cert, key, peers, json.loads(acl))
    await broker.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await broker.stop()
asyncio.run(run())
"""


def passphrase(name: str) -> str:
    return f"{name}'s own passphrase"


def env_var(name: str) -> str:
    return f"{name.upper()}_PASSPHRASE"


def share_passphrase(name: str) -> str:
    return f"{name}'s passphrase for key shares"


def mpcnet(*args, operator: str | None = None) -> str:
    env = {env_var(operator): passphrase(operator)} if operator else {}
    result = CliRunner().invoke(main, [str(a) for a in args], env=env)
    assert result.exit_code == 0, result.output
    return result.output


class Network:
    """The operators' directories (each its own machine), the public files, the processes."""

    def __init__(self, root: Path):
        self.root, self.public = root, root / "public"
        self.public.mkdir()
        self.broker_port = free_port()
        self.broker_url = f"mqtts://127.0.0.1:{self.broker_port}"
        self.procs: dict[str, subprocess.Popen] = {}
        self.nodes: list[str] = []
        self.nonce = 0  # of the next settlement transaction
        self.version = 1  # of the roster in force

    def operator(self, name: str, role: str = "node") -> Path:
        """`mpcnet operator init` on the operator's machine; its node.yaml or
        coordinator.yaml written as docs/OPERATOR.md step 1e says."""
        d = self.root / name
        where = ["--host", "127.0.0.1", "--mpc-port", free_port()] if role == "node" else []
        mpcnet("operator", "init", "--dir", d, "--name", name, "--role", role, *where,
               "--passphrase-env", env_var(name), operator=name)
        if role == "node":
            dump_yaml(d / "node.yaml", NodeConfig(
                roster="roster.yaml", party=name, identity_key="identity.key",
                tls_cert="tls.crt", tls_key="tls.key",
                passphrase=PassphraseSource(env=env_var(name)),
                share_passphrase=PassphraseSource(env="SHARE_PASSPHRASE"),
                broker=self.broker_url))
            (d / "inputs.yaml").write_text(f"eth_vol_30d: {0.5 + len(self.nodes) / 10}\n")
            (d / "data" / "surfaces").mkdir(mode=0o700, parents=True)
            self.write_surface(name)
            (d / "policy.yaml").write_text(eth_policy(RECIPIENT))
            self.nodes.append(name)
        else:  # the coordinator's passphrase in a 0600 file away from its keys
            secret = self.root / f"{name}-secrets" / "passphrase"
            secret.parent.mkdir(mode=0o700)
            secret.write_text(passphrase(name))
            secret.chmod(0o600)
            dump_yaml(d / "coordinator.yaml", CoordinatorConfig(
                roster="roster.yaml", name=name, identity_key="identity.key",
                passphrase=PassphraseSource(file=str(secret)), broker=self.broker_url,
                tls_cert="tls.crt", tls_key="tls.key"))
        return d

    def broker_key(self) -> Path:
        """Step 1b: the broker host's key and self-signed certificate, made with openssl."""
        d = self.root / "broker-host" / "broker"
        d.mkdir(parents=True, mode=0o700)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "825", "-keyout",
                        "broker.key", "-out", "broker.crt", "-subj", "/CN=mpcnet-broker",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-addext",
                        "basicConstraints=critical,CA:FALSE", "-addext",
                        "extendedKeyUsage=serverAuth"], cwd=d, check=True, capture_output=True)
        (d / "broker.key").chmod(0o600)
        return d / "broker.crt"

    def sign(self, roster: Path, name: str) -> None:
        mpcnet("roster", "sign", "--roster", roster, "--dir", self.root / name,
               "--passphrase-env", env_var(name), operator=name)

    def distribute(self, roster: Path) -> None:
        """Every machine (and the broker host) takes the same public roster."""
        for d in [*self.nodes, "desk", "broker-host"]:
            (self.root / d / "roster.yaml").write_bytes(roster.read_bytes())

    def _spawn(self, name: str, args: list[str], cwd: Path, env: dict) -> None:
        with open(cwd / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(
                [sys.executable, *args], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env={**_env(), **env}, cwd=cwd,
                start_new_session=True)

    def start(self) -> None:
        """The broker from the signed roster's pins, then every node from its own directory
        with only its own passphrase in its environment."""
        host = self.root / "broker-host"
        roster = load_roster(host / "roster.yaml")
        (host / "peers.pem").write_text(roster.peer_certs_pem)
        acl = {"cluster": roster.cluster_id, "parties": [p.name for p in roster.parties],
               "coordinators": [c.name for c in roster.coordinators]}
        self._spawn("broker", ["-c", BROKER, str(self.broker_port), "broker/broker.crt",
                               "broker/broker.key", "peers.pem", json.dumps(acl)], host, {})
        for name in self.nodes:
            self._spawn(name, ["-m", "mpc_nodes.cli.app", "--log-level", "INFO", "node",
                               "--config", "node.yaml"], self.root / name,
                        {env_var(name): passphrase(name),
                         "SHARE_PASSPHRASE": share_passphrase(name)})
        deadline = time.monotonic() + 20
        while not port_open("127.0.0.1", self.broker_port):
            assert time.monotonic() < deadline and self.procs["broker"].poll() is None, \
                (host / "broker.log").read_text()
            time.sleep(0.05)

    def stop(self) -> None:
        _killgroups([self.procs.pop(name) for name in list(self.procs)], signal.SIGTERM)

    def vol(self, name: str) -> float:
        """The operator's flat vol under the roster in force: a private input version is
        used with one participant set only (docs/SECURITY.md), so after a membership change
        each operator publishes a new one, as the market moves anyway."""
        return VOLS[name] + self.version / 1000

    def write_surface(self, name: str) -> None:
        v = self.vol(name)
        (self.root / name / "data" / "surfaces" / "ETH.yaml").write_text(yaml.safe_dump({
            "axis": "moneyness", "expiries": [0.1, 2.0], "points": [0.5, 2.0],
            "vols": [[v, v], [v, v]]}))

    def roster(self, version: int | None = None) -> Path:
        v = version or self.version
        return self.public / ("roster.yaml" if v == 1 else f"roster-v{v}.yaml")

    def update(self, *args, signers: list[str]) -> Path:
        """The next roster version, made with `mpcnet roster update`, signed by `signers`
        and checked against the version in force, as docs/OPERATOR.md says."""
        current, new = self.roster(), self.roster(self.version + 1)
        mpcnet("roster", "update", "--current", current, *args, "--out", new)
        for name in signers:
            self.sign(new, name)
        mpcnet("roster", "verify", "--roster", new, "--current", current)
        self.version += 1
        return new

    def newcomer(self, name: str) -> Path:
        """An operator who joins the running network: its node accepts the version in force
        first (it checked the chain of signatures with roster verify)."""
        d = self.operator(name)
        (d / "data" / "roster.accepted.yaml").write_bytes(self.roster().read_bytes())
        return d

    def restart(self, roster: Path) -> None:
        """Every machine takes the new version; the broker and the nodes start on it."""
        self.stop()
        self.distribute(roster)
        for name in self.nodes:
            self.write_surface(name)
        self.start()

    def tx(self) -> dict:
        self.nonce += 1
        return {**TX, "nonce": self.nonce}

    def client(self) -> Client:
        return Client(self.root / "desk" / "coordinator.yaml", self.broker_url)

    def log(self, name: str) -> str:
        return (self.root / name / f"{name}.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    net = Network(tmp_path_factory.mktemp("ceremony"))
    for name in NODES:
        net.operator(name)
    net.operator("desk", "coordinator")
    broker_cert = net.broker_key()
    roster = net.public / "roster.yaml"
    mpcnet("roster", "assemble", "--cluster-id", "acme-net", "-t", "1",
           *[a for n in [*NODES, "desk"] for a in ("--bundle", net.root / n / "bundle.yaml")],
           "--broker-cert", broker_cert, "--out", roster)
    for name in [*NODES, "desk"]:
        net.sign(roster, name)
    mpcnet("roster", "verify", "--roster", roster)
    net.distribute(roster)
    net.start()
    yield net
    net.stop()


def test_each_operator_holds_only_its_own_secrets(network):
    for name in [*NODES, "desk"]:
        d = network.root / name
        assert stat.S_IMODE(d.stat().st_mode) == 0o700  # no other operator can enter
        files = {p.name for p in d.iterdir()}
        assert not any("passphrase" in f for f in files)  # never written next to the keys
        for key in ("identity.key", "tls.key"):
            assert b"ENCRYPTED PRIVATE KEY" in (d / key).read_bytes()
        for f in d.iterdir():
            if f.is_file() and f.suffix != ".log":
                assert passphrase(name).encode() not in f.read_bytes()
    roster = load_roster(network.root / "alice" / "roster.yaml")
    assert roster.ca_cert is None and roster.broker_cert  # no CA: every certificate pinned


async def test_three_operators_aggregate_sign_ecdsa_and_frost(network):
    async with network.client() as net:
        status = await net.wait_for_parties(60)
        assert set(status.online) == set(NODES)
        agg = await net.aggregate("eth_vol_30d", "median")
        assert agg.value == pytest.approx(0.6, abs=1e-3)  # 0.5, 0.6, 0.7
        key = await net.keygen(label="ceremony vault")
        signed = await net.sign(key.key_id, TX)
        assert Account.recover_transaction(signed.raw) == key.address  # eth-account
        der = coincurve.ecdsa.cdata_to_der(coincurve.ecdsa.deserialize_compact(
            signed.r.to_bytes(32, "big") + signed.s.to_bytes(32, "big")))
        assert coincurve.PublicKey(bytes.fromhex(key.public_key)).verify(
            der, parse_transaction(TX).digest, hasher=None)  # libsecp256k1
        roster = load_roster(network.root / "alice" / "roster.yaml")
        for i, name in enumerate(NODES):  # shares sealed under the share passphrase only
            keys = network.root / name / "data" / "keys"
            assert KeyStore(keys, share_passphrase(name).encode(), roster.cluster_id,
                            i).load(key.key_id)[0].public_key == key.public_key
            with pytest.raises(WrongPassphrase):
                KeyStore(keys, passphrase(name).encode(), roster.cluster_id, i).load(key.key_id)
        frost_key = await net.keygen(scheme="frost-ed25519", label="ceremony oracle")
        message = b"three operators, no shared secret"
        sig = await net.sign(frost_key.key_id, message)
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(frost_key.public_key)).verify(
            sig.signature, message)  # OpenSSL; raises if wrong


async def test_a_fourth_operator_joins_by_a_quorum_signed_version_2(network):
    net = network
    dave = net.newcomer("dave")
    v2 = net.update("--add", dave / "bundle.yaml", signers=["dave", "alice", "bob"])  # n - t
    with pytest.raises(governance.RosterTrustError, match="carol, desk"):
        governance.accept(None, load_roster(v2))  # as a first roster it lacks signatures
    net.restart(v2)
    async with net.client() as client:
        status = await client.wait_for_parties(60)
        assert set(status.online) == {*NODES, "dave"}
        key = await client.keygen(label="four operators")  # keygen needs every party
        assert key.n == 4 and set(key.outcome.participants) == {*NODES, "dave"}
        signed = await client.sign(key.key_id, net.tx())
        assert Account.recover_transaction(signed.raw) == key.address
        # until it is reshared, a key made by the three is theirs: they sign with it, and dave,
        # who holds no share, approves by his own policy (the quorum is every party)
        tx = net.tx()
        signed = await client.sign(VAULT, tx)
        assert Account.recover_transaction(signed.raw) == signed.address
        assert set(signed.outcome.participants) == set(NODES)
        votes = {v.party: v for v in signed.outcome.votes}
        assert votes["dave"].accept and "holds no share" in votes["dave"].reason
        with pytest.raises(JobFailed) as refused:  # and his policy is his: a transfer it
            await client.sign(VAULT, {**net.tx(), "to": "0x" + "22" * 20})  # forbids fails
        votes = {v.party: v for v in refused.value.outcome.votes}
        assert not votes["dave"].accept and "policy" in votes["dave"].reason
    for name in (*NODES, "dave"):  # each node holds version 2 and audited the change
        assert load_roster(net.root / name / "data" / "roster.accepted.yaml").version == 2
        events = [json.loads(line) for line in
                  (net.root / name / "data" / "audit.log").read_text().splitlines()]
        assert any(e.get("event") == "roster" and e.get("version") == 2 and e.get("previous") == 1
                   for e in events)


def reshare_all(net: Network) -> list[dict]:
    """`mpcnet reshare --all` from the coordinator's machine, as docs/OPERATOR.md says."""
    done = subprocess.run([sys.executable, "-m", "mpc_nodes.cli.app", "reshare", "--all",
                           "--coordinator", str(net.root / "desk" / "coordinator.yaml"),
                           "--broker", net.broker_url, "--json"], env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return {d["key_id"]: d for d in json.loads(done.stdout)}


def bsm_call(vol: float) -> float:
    d1 = (np.log(1.0) + (RATE + vol ** 2 / 2) * EXPIRY) / (vol * np.sqrt(EXPIRY))
    return SPOT * norm.cdf(d1) - SPOT * np.exp(-RATE * EXPIRY) * norm.cdf(d1 - vol * np.sqrt(EXPIRY))


async def assert_old_keys_work(net: Network, parties: list[str]) -> None:
    """The keys made by the first three sign for the committee now in force (eth-account,
    libsecp256k1, OpenSSL check), and a price at the mean of its vols matches scipy."""
    async with net.client() as client:
        status = await client.wait_for_parties(60)
        assert set(status.online) == set(parties)
        tx = net.tx()
        signed = await client.sign(VAULT, tx)
        vault = load_public(net, VAULT)
        assert Account.recover_transaction(signed.raw) == signed.address  # eth-account
        der = coincurve.ecdsa.cdata_to_der(coincurve.ecdsa.deserialize_compact(
            signed.r.to_bytes(32, "big") + signed.s.to_bytes(32, "big")))
        assert coincurve.PublicKey(bytes.fromhex(vault)).verify(
            der, parse_transaction(tx).digest, hasher=None)  # libsecp256k1
        message = f"signed by {', '.join(parties)}".encode()
        sig = await client.sign(ORACLE, message)
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(load_public(net, ORACLE))).verify(
            sig.signature, message)  # OpenSSL; raises if wrong
        priced = await client.price(parse_options(f"type,strike,expiry\ncall,{SPOT},{EXPIRY}\n"),
                                    "ETH", SPOT, RATE, method="mean")
        assert set(priced.outcome.participants) == set(parties)
        expected = bsm_call(float(np.mean([net.vol(p) for p in parties])))
        assert priced.options[0].price == pytest.approx(expected, rel=1e-4)


def load_public(net: Network, key_id: str) -> str:
    """The key's public key as alice's store holds it (the same on every party)."""
    return store(net, "alice").load(key_id)[0].public_key


def store(net: Network, name: str) -> KeyStore:
    roster = load_roster(net.roster())
    return KeyStore(net.root / name / "data" / "keys", share_passphrase(name).encode(),
                    roster.cluster_id, 0, party_name=name)


async def test_reshare_moves_the_first_keys_to_the_four(network):
    net = network
    publics = {k: load_public(net, k) for k in (VAULT, ORACLE)}
    moved = reshare_all(net)
    for key_id in (VAULT, ORACLE):
        assert moved[key_id]["holders"] == [*NODES, "dave"] and moved[key_id]["threshold"] == 1
        assert not moved[key_id]["unchanged"] and moved[key_id]["public_key"] == publics[key_id]
    assert reshare_all(net)[VAULT]["unchanged"]  # nothing left to move
    for name in (*NODES, "dave"):  # one epoch on disk: the old shares are gone
        assert list(store(net, name).epochs(VAULT)) == [1]
    await assert_old_keys_work(net, [*NODES, "dave"])


async def test_a_removed_operators_old_share_is_useless(network):
    net = network
    old_carol = store(net, "carol").load(VAULT)  # what carol keeps after she is removed
    v3 = net.update("--remove", "carol", signers=["alice", "bob", "dave"])  # n - t = 3
    net.nodes.remove("carol")
    net.restart(v3)
    reshare_all(net)
    await assert_old_keys_work(net, ["alice", "bob", "dave"])
    public = load_public(net, VAULT)
    new = {name: store(net, name).load(VAULT) for name in ("alice", "bob")}
    assert all(meta.holders == ["alice", "bob", "dave"] and meta.epoch == 2
               for meta, _ in new.values())

    def combine(points_and_shares) -> str:
        xs = [x for x, _ in points_and_shares]
        lam = lagrange_coefficients(xs, 0, N)
        return hex_point(mul_base(sum(l * y for l, (_, y) in zip(lam, points_and_shares)) % N))

    alice, bob = new["alice"][1], new["bob"][1]
    assert combine([(1, alice), (2, bob)]) == public  # two new shares make the key
    carol_meta, carol_share = old_carol
    assert carol_meta.holders == [*NODES, "dave"]
    for x_new, share in ((1, alice), (2, bob)):  # carol's old one with any new one does not
        assert combine([(3, carol_share), (x_new, share)]) != public
        assert combine([(4, carol_share), (x_new, share)]) != public


async def test_two_join_then_the_threshold_rises_to_two(network):
    net = network
    bundles = [net.newcomer(name) / "bundle.yaml" for name in ("eve", "frank")]
    v4 = net.update("--add", bundles[0], "--add", bundles[1],
                    signers=["alice", "bob", "eve", "frank"])  # n - t = 2, and the two
    net.restart(v4)
    moved = reshare_all(net)
    assert moved[VAULT]["holders"] == ["alice", "bob", "dave", "eve", "frank"]
    five = ["alice", "bob", "dave", "eve", "frank"]
    await assert_old_keys_work(net, five)
    v5 = net.update("--threshold", "2", signers=["alice", "bob", "dave", "eve"])  # n - t = 4
    net.restart(v5)
    moved = reshare_all(net)
    assert {d["threshold"] for d in moved.values()} == {2}
    meta, _ = store(net, "eve").load(ORACLE)
    assert (meta.t, meta.n, meta.epoch) == (2, 5, 4)
    await assert_old_keys_work(net, five)
