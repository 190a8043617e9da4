"""The operators' ceremony through the CLI: three operators, each in its own 0700 directory,
make their own secrets, exchange only signed join bundles, assemble and sign the roster; a
node accepts it only once every operator has signed, and a fourth joins by an update the
quorum signs."""

from __future__ import annotations

import stat

import pytest
import yaml
from click.testing import CliRunner

from mpc_nodes import governance, pki
from mpc_nodes.cli.app import main
from mpc_nodes.config import load_roster
from mpc_nodes.onboarding import load_bundle

OPERATORS = {"alice": ("node", 7001), "bob": ("node", 7002), "carol": ("node", 7003),
             "desk": ("coordinator", None)}


def mpcnet(*args, passphrase: str | None = None):
    env = {"OP_PASSPHRASE": passphrase} if passphrase else {}
    result = CliRunner().invoke(main, [str(a) for a in args], env=env)
    return result


def init_operator(root, name):
    role, port = OPERATORS.get(name, ("node", 7004))
    args = ["operator", "init", "--dir", root / name, "--name", name, "--role", role,
            "--passphrase-env", "OP_PASSPHRASE"]
    if port:
        args += ["--host", "127.0.0.1", "--mpc-port", port]
    result = mpcnet(*args, passphrase=f"secret of {name}")
    assert result.exit_code == 0, result.output
    return root / name


def sign(roster, directory, name):
    result = mpcnet("roster", "sign", "--roster", roster, "--dir", directory,
                    "--passphrase-env", "OP_PASSPHRASE", passphrase=f"secret of {name}")
    assert result.exit_code == 0, result.output


@pytest.fixture
def ceremony(tmp_path):
    """Every operator's directory, the broker certificate and the assembled roster path."""
    dirs = {name: init_operator(tmp_path, name) for name in OPERATORS}
    _, broker = pki.self_signed_cert("mpcnet-broker", ["localhost"], ["127.0.0.1"], True, False)
    (tmp_path / "broker.crt").write_text(pki.cert_pem(broker))
    roster = tmp_path / "public" / "roster.yaml"
    roster.parent.mkdir()
    result = mpcnet("roster", "assemble", *[a for n in OPERATORS for a in
                                            ("--bundle", dirs[n] / "bundle.yaml")],
                    "--cluster-id", "three-ops", "-t", "1", "--broker-cert",
                    tmp_path / "broker.crt", "--out", roster)
    assert result.exit_code == 0, result.output
    return dirs, roster


def test_each_operator_holds_only_its_own_secrets(ceremony):
    dirs, _ = ceremony
    for name, directory in dirs.items():
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700  # the others cannot enter
        assert sorted(p.name for p in directory.iterdir()) == [
            "bundle.yaml", "identity.key", "tls.crt", "tls.key"]  # no passphrase next to keys
        for key in ("identity.key", "tls.key"):
            assert stat.S_IMODE((directory / key).stat().st_mode) == 0o600
            assert b"ENCRYPTED PRIVATE KEY" in (directory / key).read_bytes()
        bundle_text = (directory / "bundle.yaml").read_text()
        assert "PRIVATE" not in bundle_text
        bundle = load_bundle(directory / "bundle.yaml")  # its own signature verifies
        identity = pki.load_identity(directory / "identity.key", f"secret of {name}".encode())
        assert pki.public_hex(identity) == bundle.identity_key


def test_a_tampered_bundle_is_refused(ceremony, tmp_path):
    dirs, _ = ceremony
    data = yaml.safe_load((dirs["bob"] / "bundle.yaml").read_text())
    data["mpc_port"] = 9999  # a man in the middle redirects bob's MPC endpoint
    (tmp_path / "tampered.yaml").write_text(yaml.safe_dump(data))
    result = mpcnet("roster", "assemble", "--bundle", tmp_path / "tampered.yaml",
                    "--cluster-id", "x-y-z", "-t", "1", "--broker-cert", tmp_path / "broker.crt",
                    "--out", tmp_path / "r.yaml")
    assert result.exit_code == 2 and "does not verify" in result.output


def test_the_first_roster_needs_every_operators_signature(ceremony):
    dirs, roster = ceremony
    names = list(OPERATORS)
    for name in names[:-1]:
        sign(roster, dirs[name], name)
        result = mpcnet("roster", "verify", "--roster", roster)
        assert result.exit_code == 2 and names[-1] in result.output  # names who is missing
    sign(roster, dirs[names[-1]], names[-1])
    result = mpcnet("roster", "verify", "--roster", roster)
    assert result.exit_code == 0, result.output
    accepted = yaml.safe_load(result.output)
    assert accepted["signers"] == sorted(names) and accepted["version"] == 1
    held = load_roster(roster)
    assert held.ca_cert is None and held.peer_certs_pem.count("BEGIN CERTIFICATE") == 4


def test_a_fourth_operator_joins_by_an_update_the_quorum_signs(ceremony, tmp_path):
    dirs, roster = ceremony
    for name in OPERATORS:
        sign(roster, dirs[name], name)
    dave = init_operator(tmp_path, "dave")
    update = tmp_path / "public" / "roster-v2.yaml"
    result = mpcnet("roster", "update", "--current", roster, "--add", dave / "bundle.yaml",
                    "--out", update)
    assert result.exit_code == 0, result.output
    verify = ("roster", "verify", "--roster", update, "--current", roster)
    sign(update, dave, "dave")
    sign(update, dirs["alice"], "alice")
    result = mpcnet(*verify)
    assert result.exit_code == 2 and "it needs 2" in result.output  # n - t = 3 - 1
    sign(update, dirs["bob"], "bob")
    assert mpcnet(*verify).exit_code == 0
    new = load_roster(update)
    assert [p.name for p in new.parties] == ["alice", "bob", "carol", "dave"]
    assert new.version == 2 and governance.accept(load_roster(roster), new) == new


def test_removing_a_middle_operator_renumbers_the_later_ones_whose_old_shares_then_refuse(
        tmp_path):
    """Why docs/OPERATOR.md says old keys stop working after a removal (keys do not move)."""
    from keyshare import ForeignShare, KeyMeta, KeyStore
    from mpc_nodes.deploy.cluster import init_cluster
    from mpc_nodes.onboarding import next_version
    current = init_cluster(tmp_path / "c", parties=5, threshold=1)
    after = next_version(current, remove=["party1"])
    assert [(p.name, p.index) for p in after.parties][:2] == [("party0", 0), ("party2", 1)]
    keys = tmp_path / "party2-keys"
    store = KeyStore(keys, b"pw", current.cluster_id, 2, scrypt_n=2**10)
    meta = KeyMeta(key_id="vault-1", scheme="ecdsa-secp256k1", curve="secp256k1",
                   cluster_id=current.cluster_id, n=5, t=1, party_index=2, epoch=0,
                   public_key="02" + "ab" * 32, verification_shares=["02" + "cd" * 32] * 5)
    store.stage(meta, 5)
    store.promise("vault-1", 0, meta.sharing)
    store.commit("vault-1", 0, meta.sharing)
    renumbered = KeyStore(keys, b"pw", after.cluster_id, after.party("party2").index)
    with pytest.raises(ForeignShare, match="of party 2"):
        renumbered.load("vault-1")
