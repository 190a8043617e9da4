"""The key share store with real files: encryption, tamper detection, crash safety, epochs,
one-time secrets and backups."""

import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from keyshare import (ForeignShare, KeyMeta, KeyShareError, KeyStore, PresignatureUnavailable,
                      TamperedFile, UnknownKey, WrongPassphrase, export_backup, import_backup)

FAST = 2**10  # cheap scrypt for tests


def meta(epoch=0, key_id="vault-1", cluster="c1", party=1):
    return KeyMeta(key_id=key_id, scheme="ecdsa-secp256k1", curve="secp256k1", cluster_id=cluster,
                   n=3, t=1, party_index=party, epoch=epoch, public_key="02" + "ab" * 32,
                   verification_shares=["02" + "cd" * 32] * 3)


def store(root, passphrase=b"pw", cluster="c1", party=1):
    return KeyStore(root, passphrase, cluster, party, scrypt_n=FAST)


def test_round_trip_modes_and_reopen(tmp_path):
    s = store(tmp_path / "keys")
    s.save_new(meta(), 123456789)
    assert s.load("vault-1") == (meta().model_copy(update={"created": s.load("vault-1")[0].created}),
                                 123456789)
    f = tmp_path / "keys" / "vault-1" / "epoch-0.share"
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert b"123456789" not in f.read_bytes()
    assert store(tmp_path / "keys").load("vault-1")[1] == 123456789
    with pytest.raises(WrongPassphrase):
        store(tmp_path / "keys", b"wrong").load("vault-1")
    with pytest.raises(UnknownKey):
        s.load("vault-2")


def test_every_flipped_byte_is_detected(tmp_path):
    s = store(tmp_path / "keys")
    s.save_new(meta(), 42)
    path = tmp_path / "keys" / "vault-1" / "epoch-0.share"
    original = path.read_bytes()
    for i in range(len(original)):
        data = bytearray(original)
        data[i] ^= 0x01
        path.write_bytes(bytes(data))
        try:
            loaded = s.load("vault-1")
        except KeyShareError:
            continue
        # a flip inside JSON whitespace-insensitive spots may still parse to the same document
        assert loaded[1] == 42, f"byte {i}: wrong share returned"
    path.write_bytes(original[: len(original) // 2])
    with pytest.raises(TamperedFile, match="malformed or truncated"):
        s.load("vault-1")


def test_edited_metadata_and_foreign_shares(tmp_path):
    s = store(tmp_path / "keys")
    s.save_new(meta(), 42)
    path = tmp_path / "keys" / "vault-1" / "epoch-0.share"
    doc = json.loads(path.read_text())
    doc["meta"]["t"] = 0
    path.write_text(json.dumps(doc))
    with pytest.raises(TamperedFile, match="modified"):
        s.load("vault-1")
    other = store(tmp_path / "other", cluster="c2")
    with pytest.raises(ForeignShare):
        other.save_new(meta(), 1)
    s2 = store(tmp_path / "k2")
    s2.save_new(meta(), 7)
    (tmp_path / "k3").mkdir()
    os.rename(tmp_path / "k2" / "vault-1", tmp_path / "k3" / "vault-1")
    os.rename(tmp_path / "k2" / "kdf.json", tmp_path / "k3" / "kdf.json")
    with pytest.raises(ForeignShare, match="cluster c1"):
        KeyStore(tmp_path / "k3", b"pw", "c2", 1, scrypt_n=FAST).load("vault-1")


def test_crash_during_write_keeps_the_old_file(tmp_path, monkeypatch):
    s = store(tmp_path / "keys")
    s.save_new(meta(), 42)

    def boom(*a):
        raise OSError("disk gone")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        s.stage(meta(epoch=1), 43)
    monkeypatch.undo()
    assert s.load("vault-1")[1] == 42
    assert not list((tmp_path / "keys" / "vault-1").glob(".*.tmp"))
    assert s.staged_epochs("vault-1") == []


def test_refresh_epochs_stage_commit_abort(tmp_path):
    s = store(tmp_path / "keys")
    s.save_new(meta(), 42)
    s.add_secret("vault-1", "p0", 0, "0,1,2", {"kinv": 1})
    s.stage(meta(epoch=1), 43)
    assert s.staged_epochs("vault-1") == [1]
    assert s.load("vault-1")[1] == 42  # staged is not current ("crash" before commit)
    assert store(tmp_path / "keys").load("vault-1")[1] == 42
    s.commit("vault-1", 1)
    s.commit("vault-1", 1)  # idempotent
    assert s.load("vault-1")[1] == 43 and s.committed_epoch("vault-1") == 1
    assert s.count_secrets("vault-1", 1) == 0  # old-epoch presignatures are gone
    with pytest.raises(UnknownKey):
        s.load("vault-1", 0)
    s.stage(meta(epoch=2), 44)
    s.abort("vault-1", 2)
    assert s.staged_epochs("vault-1") == [] and s.load("vault-1")[1] == 43


def test_one_time_secrets_are_released_once(tmp_path):
    s = store(tmp_path / "keys")
    s.save_new(meta(), 42)
    for i in range(3):
        s.add_secret("vault-1", f"p{i}", 0, "0,1,2", {"kinv": i})
    s.add_secret("vault-1", "other-set", 0, "0,1,3", {"kinv": 9})
    assert s.count_secrets("vault-1", 0, "0,1,2") == 3
    taken = {s.take_secret("vault-1", 0, "0,1,2")[0] for _ in range(3)}
    assert taken == {"p0", "p1", "p2"}
    with pytest.raises(PresignatureUnavailable):
        s.take_secret("vault-1", 0, "0,1,2")
    assert store(tmp_path / "keys").count_secrets("vault-1", 0, "0,1,2") == 0  # after restart
    assert s.list_keys()[0]["presignatures"] == 1


KILLED_AFTER_MARK = """
import os, signal, sys
from keyshare import KeyStore
from keyshare import store as st
real = st.create_exclusive
def mark_then_die(path, data=b""):
    real(path, data)
    os.kill(os.getpid(), signal.SIGKILL)  # crash after the durable mark, before release
st.create_exclusive = mark_then_die
s = KeyStore(sys.argv[1], b"pw", "c1", 1, scrypt_n=1024)
s.take_secret("vault-1", 0, "0,1,2")
"""


@pytest.mark.timeout(60)
def test_secret_marked_then_crash_is_never_released(tmp_path):
    s = store(tmp_path / "keys")
    s.save_new(meta(), 42)
    s.add_secret("vault-1", "only", 0, "0,1,2", {"kinv": 5})
    proc = subprocess.run([sys.executable, "-c", KILLED_AFTER_MARK, str(tmp_path / "keys")],
                          env=dict(os.environ, PYTHONPATH=os.getcwd()))
    assert proc.returncode == -signal.SIGKILL
    with pytest.raises(PresignatureUnavailable):
        store(tmp_path / "keys").take_secret("vault-1", 0, "0,1,2")


def test_backup_round_trip_and_errors(tmp_path):
    s = store(tmp_path / "keys")
    s.save_new(meta(), 42)
    s.add_secret("vault-1", "p0", 0, "0,1,2", {"kinv": 1})
    backup = tmp_path / "backup.bin"
    assert export_backup(s, backup, b"backup-pw") == ["vault-1"]
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    fresh = store(tmp_path / "restored")
    assert import_backup(fresh, backup, b"backup-pw") == ["vault-1"]
    assert fresh.load("vault-1")[1] == 42
    assert fresh.count_secrets("vault-1", 0) == 0  # presignatures are never restored
    with pytest.raises(WrongPassphrase):
        import_backup(store(tmp_path / "x"), backup, b"nope")
    other = store(tmp_path / "y")
    other.save_new(meta(), 99)
    with pytest.raises(KeyShareError, match="already exists with another share"):
        import_backup(other, backup, b"backup-pw")
    data = bytearray(backup.read_bytes())
    data[-10] ^= 1
    backup.write_bytes(bytes(data))
    with pytest.raises(KeyShareError):
        import_backup(store(tmp_path / "z"), backup, b"backup-pw")
    export_backup(s, tmp_path / "backup2.bin", b"b")
    with pytest.raises(WrongPassphrase):  # the shares need the store's own passphrase too
        import_backup(store(tmp_path / "w", b"other"), tmp_path / "backup2.bin", b"b")


def test_stale_one_time_secrets_are_retired(tmp_path):
    s = store(tmp_path / "keys")
    s.save_new(meta(), 42)
    s.add_secret("vault-1", "n1", 0, "frost/aa/p0,p1", {"x": 1})
    s.add_secret("vault-1", "n2", 0, "p0,p1,p2", {"x": 2})  # a presignature: not touched
    assert s.discard_secrets("vault-1", "frost/", time.time() - 600) == 0  # still fresh
    assert s.discard_secrets("vault-1", "frost/", time.time() + 1) == 1
    assert s.count_secrets("vault-1", 0, "frost/aa/p0,p1") == 0
    assert s.count_secrets("vault-1", 0, "p0,p1,p2") == 1
    assert not (tmp_path / "keys" / "vault-1" / "presig" / "n1.sealed").exists()
