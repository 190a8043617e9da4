"""The key share store with real files: encryption, tamper detection, crash safety, epochs
and backups; and the in-memory pool of one-time secrets, which never touches a file."""

import json
import os
import stat
from types import SimpleNamespace

import pytest

from keyshare import (ForeignShare, KeyMeta, KeyShareError, KeyStore, OneTimeSecrets,
                      PresignatureUnavailable, TamperedFile, UnknownKey, WrongPassphrase,
                      export_backup, import_backup, onetime)

FAST = 2**10  # cheap scrypt for tests


def meta(epoch=0, key_id="vault-1", cluster="c1", party=1):
    return KeyMeta(key_id=key_id, scheme="ecdsa-secp256k1", curve="secp256k1", cluster_id=cluster,
                   n=3, t=1, party_index=party, epoch=epoch, public_key="02" + "ab" * 32,
                   verification_shares=["02" + "cd" * 32] * 3)


def store(root, passphrase=b"pw", cluster="c1", party=1):
    return KeyStore(root, passphrase, cluster, party, scrypt_n=FAST)


def made(s, m, share):
    """A key as keygen leaves it on a party: staged, voted for, committed, confirmed."""
    s.stage(m, share)
    s.promise(m.key_id, m.epoch, m.sharing)
    s.commit(m.key_id, m.epoch, m.sharing)
    s.drop_older(m.key_id)


def staged(s, key_id):
    """The epochs on disk beyond the committed one, as the store's state shows them."""
    state = s.state(key_id)
    return [int(e) for e in state["epochs"]
            if state["committed"] is None or int(e) > state["committed"]]


def test_round_trip_modes_and_reopen(tmp_path):
    s = store(tmp_path / "keys")
    made(s, meta(), 123456789)
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
    made(s, meta(), 42)
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
    made(s, meta(), 42)
    path = tmp_path / "keys" / "vault-1" / "epoch-0.share"
    doc = json.loads(path.read_text())
    doc["meta"]["t"] = 0
    path.write_text(json.dumps(doc))
    with pytest.raises(TamperedFile, match="modified"):
        s.load("vault-1")
    other = store(tmp_path / "other", cluster="c2")
    with pytest.raises(ForeignShare):
        made(other, meta(), 1)
    s2 = store(tmp_path / "k2")
    made(s2, meta(), 7)
    (tmp_path / "k3").mkdir()
    os.rename(tmp_path / "k2" / "vault-1", tmp_path / "k3" / "vault-1")
    os.rename(tmp_path / "k2" / "kdf.json", tmp_path / "k3" / "kdf.json")
    with pytest.raises(ForeignShare, match="cluster c1"):
        KeyStore(tmp_path / "k3", b"pw", "c2", 1, scrypt_n=FAST).load("vault-1")


def test_crash_during_write_keeps_the_old_file(tmp_path, monkeypatch):
    s = store(tmp_path / "keys")
    made(s, meta(), 42)

    def boom(*a):
        raise OSError("disk gone")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        s.stage(meta(epoch=1), 43)
    monkeypatch.undo()
    assert s.load("vault-1")[1] == 42
    assert not list((tmp_path / "keys" / "vault-1").glob(".*.tmp"))
    assert staged(s, "vault-1") == []


def test_refresh_epochs_stage_commit_abort(tmp_path):
    s = store(tmp_path / "keys")
    made(s, meta(), 42)
    new = meta(epoch=1).model_copy(update={"verification_shares": ["03" + "ef" * 32] * 3})
    s.stage(new, 43)
    assert staged(s, "vault-1") == [1]
    assert s.load("vault-1")[1] == 42  # staged is not current ("crash" before commit)
    assert store(tmp_path / "keys").load("vault-1")[1] == 42
    with pytest.raises(KeyShareError, match="not voted for commit"):
        s.commit("vault-1", 1, new.sharing)  # a commit needs this party's vote first
    with pytest.raises(KeyShareError, match="another sharing"):
        s.promise("vault-1", 1, meta().sharing)
    s.promise("vault-1", 1, new.sharing)
    assert s.unfinished("vault-1") is None  # still on epoch 0, as maybe every other party
    with pytest.raises(KeyShareError, match="voted for commit"):
        s.abort("vault-1", 1)  # a promised epoch is finished, never discarded
    with pytest.raises(KeyShareError, match="voted for commit"):
        s.stage(new, 44)
    s.commit("vault-1", 1, new.sharing)
    s.commit("vault-1", 1, new.sharing)  # idempotent
    assert s.load("vault-1")[1] == 43 and s.committed_epoch("vault-1") == 1
    assert s.load("vault-1", 0)[1] == 42  # kept until every party confirmed epoch 1
    assert s.unfinished("vault-1") == "epoch 1 is not yet confirmed by every party"
    assert s.drop_older("vault-1") == [0] and s.unfinished("vault-1") is None
    with pytest.raises(UnknownKey):
        s.load("vault-1", 0)
    s.stage(meta(epoch=2), 44)
    assert s.abort("vault-1", 2)
    assert staged(s, "vault-1") == [] and s.load("vault-1")[1] == 43
    assert s.state("vault-1") == {"committed": 1, "epochs": {"1": new.sharing},
                                  "promised": {}}


def test_a_new_key_is_staged_until_committed_and_a_half_made_one_is_removed(tmp_path):
    s = store(tmp_path / "keys")
    s.stage(meta(), 42)
    assert s.key_ids() == [] and s.state("vault-1")["committed"] is None
    with pytest.raises(UnknownKey):
        s.load("vault-1")  # not usable before every party committed
    s.stage(meta(), 41)  # a retry replaces a stale, unpromised stage
    assert s.abort("vault-1", 0) and not (tmp_path / "keys" / "vault-1").exists()
    made(s, meta(), 42)
    with pytest.raises(KeyShareError, match="already exists"):
        s.stage(meta(), 43)


def test_one_time_secrets_are_released_once_with_a_reason(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pool = OneTimeSecrets("presignature", lifetime_s=600, capacity=10)
    for i in range(3):
        pool.add("vault-1", f"p{i}", 0, "party0,party1,party2", {"kinv": i})
    assert pool.held({"vault-1": None}) == {"vault-1": 3}
    assert pool.held({"vault-1": 1, "other": None}) == {"vault-1": 0, "other": 0}
    assert pool.take("vault-1", "p1", 0, "party0,party1,party2") == {"kinv": 1}
    with pytest.raises(PresignatureUnavailable, match="presignature p1 was already used"):
        pool.take("vault-1", "p1", 0, "party0,party1,party2")
    with pytest.raises(PresignatureUnavailable, match=r"p9 unknown here \(node restarted\?\)"):
        pool.check("vault-1", "p9", 0)
    with pytest.raises(PresignatureUnavailable, match="bound to party0,party1,party2"):
        pool.take("vault-1", "p0", 0, "party0,party1,party3")
    with pytest.raises(PresignatureUnavailable, match="belongs to epoch 0"):
        pool.take("vault-1", "p0", 1, "party0,party1,party2")
    with pytest.raises(KeyShareError, match="exists already"):  # a used id never comes back
        pool.add("vault-1", "p1", 0, "party0,party1,party2", {"kinv": 1})
    assert pool.held({"vault-1": 0}) == {"vault-1": 2}  # refused takes burn nothing
    assert not list(tmp_path.rglob("*"))  # and nothing was ever written


def test_one_time_secrets_expire_are_bounded_and_retired_by_a_refresh(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(onetime, "time", SimpleNamespace(monotonic=lambda: now[0]))
    pool = OneTimeSecrets("nonce", lifetime_s=60, capacity=2)
    pool.add("oracle-1", "n1", 0, "frost/aa/p0,p1", {"x": 1})
    pool.add("oracle-1", "n2", 1, "frost/ab/p0,p1", {"x": 2})
    with pytest.raises(KeyShareError, match="already holds 2 nonces"):
        pool.add("oracle-1", "n3", 0, "frost/ac/p0,p1", {"x": 3})
    assert pool.retire("oracle-1", keep_epoch=1) == 1
    with pytest.raises(PresignatureUnavailable, match="n1 belongs to an epoch .* refreshed"):
        pool.check("oracle-1", "n1", 0)
    now[0] += 61
    assert pool.room() == 2
    with pytest.raises(PresignatureUnavailable, match="nonce n2 expired"):
        pool.take("oracle-1", "n2", 1, "frost/ab/p0,p1")


def test_legacy_on_disk_secrets_are_removed(tmp_path):
    s = store(tmp_path / "keys")
    made(s, meta(), 42)
    legacy = tmp_path / "keys" / "vault-1" / "presig"
    legacy.mkdir()
    (legacy / "p0.sealed").write_text("{}")
    assert s.remove_legacy_secrets() == 1 and not legacy.exists()
    assert s.remove_legacy_secrets() == 0 and s.load("vault-1")[1] == 42


def test_backup_round_trip_and_errors(tmp_path):
    s = store(tmp_path / "keys")
    made(s, meta(), 42)
    backup = tmp_path / "backup.bin"
    assert export_backup(s, backup, b"backup-pw") == ["vault-1"]
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    fresh = store(tmp_path / "restored")
    assert import_backup(fresh, backup, b"backup-pw") == ["vault-1"]
    assert fresh.load("vault-1")[1] == 42
    assert sorted(p.name for p in (tmp_path / "restored" / "vault-1").iterdir()) == [
        "COMMITTED", "epoch-0.share"]  # a backup holds shares only
    with pytest.raises(WrongPassphrase):
        import_backup(store(tmp_path / "x"), backup, b"nope")
    other = store(tmp_path / "y")
    made(other, meta(), 99)
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
