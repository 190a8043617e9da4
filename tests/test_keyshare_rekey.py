"""Re-encrypting a share store under a new passphrase: interrupted after every durable write
it leaves each share readable under the old or the new passphrase, and running it again
finishes; `mpcnet keys rekey` and node.yaml's separate `share_passphrase`."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import keyshare.rekey as rekey_module
from keyshare import KeyStore, RekeyUnfinished, WrongPassphrase
from keyshare.rekey import rekey, share_files
from keyshare.sealed import FileKey, read_header, unseal
from keyshare.store import PENDING_KDF_FILE, SHARE_FORMAT
from mpc_nodes.cli.app import main
from mpc_nodes.config import PassphraseSource, dump_yaml, load_node_config, load_roster
from mpc_nodes.deploy.cluster import init_cluster
from tests.test_keyshare import FAST, made, meta, store

OLD, NEW = b"old share passphrase", b"new share passphrase"
SHARES = {("vault-1", 0): 11, ("vault-1", 1): 12, ("vault-2", 0): 21}


class Crash(BaseException):
    """A power cut: nothing after it runs."""


def a_store(root):
    s = store(root, OLD)
    made(s, meta(key_id="vault-1"), SHARES["vault-1", 0])
    s.stage(meta(key_id="vault-1", epoch=1), SHARES["vault-1", 1])  # a refresh in progress
    made(s, meta(key_id="vault-2"), SHARES["vault-2", 0])
    return root


def opens_under(path, passphrase) -> int | None:
    """The share in `path` if `passphrase` opens it, else None."""
    doc = read_header(path.read_bytes(), SHARE_FORMAT)
    try:
        return int(unseal(doc, lambda kdf: FileKey.for_kdf(passphrase, kdf)))
    except WrongPassphrase:
        return None


def shares_under(root, passphrase) -> dict:
    s = store(root, passphrase)
    return {(k, e): s.load(k, e)[1] for k, e in SHARES}


def crash_after(monkeypatch, writes: int) -> None:
    """rekey's durable writes succeed `writes` times, then the machine stops."""
    real, done = rekey_module.write_atomic, []

    def write(*args, **kw):
        if len(done) == writes:
            raise Crash()
        done.append(args[0])
        real(*args, **kw)
    monkeypatch.setattr(rekey_module, "write_atomic", write)


def test_rekey_changes_the_passphrase_of_every_share(tmp_path):
    root = a_store(tmp_path / "keys")
    assert rekey(root, OLD, NEW, scrypt_n=FAST) == 3
    assert shares_under(root, NEW) == SHARES
    with pytest.raises(WrongPassphrase):
        shares_under(root, OLD)
    assert not (root / PENDING_KDF_FILE).exists()


@pytest.mark.parametrize("writes", range(5))  # the pending key, three shares, kdf.json
def test_interrupted_at_any_write_every_share_opens_under_one_passphrase(tmp_path, monkeypatch,
                                                                         writes):
    root = a_store(tmp_path / "keys")
    crash_after(monkeypatch, writes)
    with pytest.raises(Crash):
        rekey(root, OLD, NEW, scrypt_n=FAST)
    monkeypatch.undo()
    files = share_files(root)
    assert len(files) == 3 and not list(root.rglob("*.tmp"))
    for path in files:
        values = {opens_under(path, OLD), opens_under(path, NEW)} - {None}
        assert len(values) == 1 and values <= set(SHARES.values())
    if writes > 0:  # the new key is chosen: a node refuses the store, saying what to do
        with pytest.raises(RekeyUnfinished, match="run mpcnet keys rekey again"):
            store(root, OLD)
        with pytest.raises(WrongPassphrase, match="another new passphrase"):
            rekey(root, OLD, b"a third passphrase", scrypt_n=FAST)
    rekey(root, OLD, NEW, scrypt_n=FAST)  # run again: finishes
    assert shares_under(root, NEW) == SHARES


def test_interrupted_after_the_last_write_finishes_on_the_next_run(tmp_path):
    root = a_store(tmp_path / "keys")
    rekey(root, OLD, NEW, scrypt_n=FAST)
    (root / PENDING_KDF_FILE).write_bytes((root / "kdf.json").read_bytes())  # not yet removed
    assert rekey(root, OLD, NEW, scrypt_n=FAST) == 0
    assert shares_under(root, NEW) == SHARES


def test_a_wrong_old_passphrase_changes_nothing(tmp_path):
    root = a_store(tmp_path / "keys")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    with pytest.raises(WrongPassphrase, match="old passphrase"):
        rekey(root, b"not it", NEW, scrypt_n=FAST)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_keys_rekey_then_a_separate_share_passphrase(tmp_path, monkeypatch):
    init_cluster(tmp_path / "c", parties=3, threshold=1)
    pdir = tmp_path / "c" / "party0"
    config = load_node_config(pdir / "node.yaml")
    assert config.share_passphrase is None  # an old config: shares under the same passphrase
    cluster_id = load_roster(tmp_path / "c" / "roster.yaml").cluster_id
    identity_passphrase = (pdir / "passphrase").read_bytes().strip()
    shares = KeyStore(pdir / "data" / "keys", identity_passphrase, cluster_id, 0, scrypt_n=FAST)
    made(shares, meta(key_id="vault-1", cluster=cluster_id, party=0), 77)

    monkeypatch.setenv("NEW_SHARE_PASSPHRASE", NEW.decode())
    run = CliRunner().invoke(main, ["keys", "rekey", "--config", str(pdir / "node.yaml"),
                                    "--new-passphrase-env", "NEW_SHARE_PASSPHRASE"])
    assert run.exit_code == 0, run.output
    assert "re-encrypted 1 share files" in run.output
    listed = CliRunner().invoke(main, ["keys", "list", "--config", str(pdir / "node.yaml")])
    assert listed.exit_code == 2 and "wrong passphrase" in listed.output  # not yet pointed at

    dump_yaml(pdir / "node.yaml", config.model_copy(update={
        "share_passphrase": PassphraseSource(env="NEW_SHARE_PASSPHRASE")}))
    listed = CliRunner().invoke(main, ["keys", "list", "--config", str(pdir / "node.yaml"),
                                       "--json"])
    assert listed.exit_code == 0 and "vault-1" in listed.output, listed.output
    assert KeyStore(pdir / "data" / "keys", NEW, cluster_id, 0).load("vault-1")[1] == 77
