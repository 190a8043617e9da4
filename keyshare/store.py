"""One party's key share store.

    <root>/kdf.json                   scrypt parameters (the store key is derived once)
    <root>/kdf.next.json              the new parameters while a rekey is unfinished (`rekey`)
    <root>/<key_id>/COMMITTED         the committed epoch (written atomically); absent while a
                                      new key is only staged
    <root>/<key_id>/epoch-<e>.share   a sealed share per epoch; epochs above COMMITTED are staged
    <root>/<key_id>/PROMISED          staged epochs this party voted to commit: {epoch: sharing}

A new key (epoch 0) or a refresh (epoch e) changes a key in two phases, the same for both:
stage on every party -> commit once every party staged it -> drop the older epochs once every
party committed.  A party promises to commit a staged epoch before it says so (PROMISED) and
from then on never discards it, so a commit that reached one party can always be finished on
the others; until the drop, the older epoch stays on disk.  One-time secrets (presignatures,
FROST nonces) are never stored here: a restored copy of the store would release them again
(see `onetime`).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .atomic import write_atomic
from .errors import ForeignShare, KeyShareError, RekeyUnfinished, TamperedFile, UnknownKey
from .sealed import SCRYPT_N, FileKey, read_header, seal, unseal

SHARE_FORMAT = "mpcnet-keyshare"
KDF_FILE = "kdf.json"
PENDING_KDF_FILE = "kdf.next.json"  # present only while a rekey (keyshare.rekey) is unfinished
KEY_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")


def sharing_digest(public_key: str, verification_shares: list[str]) -> str:
    """Names one sharing of a key: the public key and every party's verification share.  A
    commit is voted for by this digest, so all parties commit the same sharing."""
    doc = json.dumps([public_key, verification_shares], separators=(",", ":"))
    return hashlib.sha256(doc.encode()).hexdigest()


class KeyMeta(BaseModel):
    """Public, authenticated facts about one party's share of one key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: str = Field(pattern=KEY_ID.pattern)
    scheme: str
    curve: str
    cluster_id: str
    n: int = Field(ge=2)
    t: int = Field(ge=0)
    party_index: int = Field(ge=0)
    epoch: int = Field(ge=0)
    public_key: str
    verification_shares: list[str]
    label: str = ""
    address: str | None = None
    purpose: str | None = None  # FROST keys: what the key signs, fixed at keygen
    holders: list[str] = Field(default_factory=list, description=(
        "the parties holding this sharing, in point order (point = position + 1), fixed"
        " when it was made: a resharing moves a key to another committee; empty in files"
        " from before resharing, whose holders are the roster's parties"))
    created: float = Field(default_factory=time.time)

    @property
    def sharing(self) -> str:
        return sharing_digest(self.public_key, self.verification_shares)


class KeyStore:
    """Encrypted, crash-safe storage of this party's key shares."""

    def __init__(self, root: Path, passphrase: bytes, cluster_id: str, party_index: int,
                 scrypt_n: int = SCRYPT_N, party_name: str | None = None):
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.cluster_id, self.party_index, self.party_name = cluster_id, party_index, party_name
        self._passphrase = passphrase
        if (self.root / PENDING_KDF_FILE).exists():
            raise RekeyUnfinished(f"{self.root}: a change of its passphrase was interrupted;"
                                  f" run mpcnet keys rekey again with the same passphrases")
        kdf_file = self.root / KDF_FILE
        if kdf_file.exists():
            try:
                kdf = json.loads(kdf_file.read_text())
            except ValueError:
                raise TamperedFile(f"{kdf_file}: not JSON") from None
            self._key = FileKey.for_kdf(passphrase, kdf)
        else:
            self._key = FileKey.derive(passphrase, n=scrypt_n)
            write_atomic(kdf_file, json.dumps(self._key.kdf).encode())

    # -- sealed files -------------------------------------------------------------------

    def _key_for(self, kdf: dict) -> FileKey:
        return self._key if kdf == self._key.kdf else FileKey.for_kdf(self._passphrase, kdf)

    def _open(self, path: Path, fmt: str) -> tuple[dict, bytes]:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise UnknownKey(f"{path} not found") from None
        try:
            doc = read_header(data, fmt)
            return doc["meta"], unseal(doc, self._key_for)
        except KeyShareError as exc:
            raise type(exc)(f"{path}: {exc}") from None

    def _dir(self, key_id: str) -> Path:
        if not KEY_ID.match(key_id or ""):
            raise UnknownKey(f"invalid key id {key_id!r}")
        return self.root / key_id

    # -- shares -------------------------------------------------------------------------

    def committed_epoch(self, key_id: str) -> int:
        path = self._dir(key_id) / "COMMITTED"
        try:
            return int(path.read_text())
        except FileNotFoundError:
            raise UnknownKey(f"no key {key_id!r} in {self.root}") from None
        except ValueError:
            raise TamperedFile(f"{path}: not an epoch number") from None

    def _committed_or_none(self, key_id: str) -> int | None:
        try:
            return self.committed_epoch(key_id)
        except UnknownKey:
            return None

    def _is_mine(self, meta: KeyMeta) -> bool:
        """Whether the share is this party's: by name in the sharing's committee (it may be
        another committee than the roster's), by roster index for a file without one."""
        if meta.holders and self.party_name is not None:
            return (meta.party_index < len(meta.holders)
                    and meta.holders[meta.party_index] == self.party_name)
        return meta.party_index == self.party_index

    def _write_share(self, meta: KeyMeta, share: int) -> None:
        if meta.cluster_id != self.cluster_id or not self._is_mine(meta):
            raise ForeignShare(f"share for cluster {meta.cluster_id} party {meta.party_index},"
                               f" this store is cluster {self.cluster_id} party"
                               f" {self.party_name or self.party_index}")
        write_atomic(self._dir(meta.key_id) / f"epoch-{meta.epoch}.share",
                     seal(self._key, SHARE_FORMAT, meta.model_dump(mode="json"),
                          str(share).encode()))

    def load(self, key_id: str, epoch: int | None = None) -> tuple[KeyMeta, int]:
        """The committed share (or a given staged epoch), checked against this store."""
        epoch = self.committed_epoch(key_id) if epoch is None else epoch
        raw_meta, plaintext = self._open(self._dir(key_id) / f"epoch-{epoch}.share", SHARE_FORMAT)
        try:
            meta = KeyMeta.model_validate(raw_meta)
            share = int(plaintext)
        except (ValidationError, ValueError):
            raise TamperedFile(f"key {key_id} epoch {epoch}: invalid contents") from None
        if meta.cluster_id != self.cluster_id:
            raise ForeignShare(f"key {key_id} is a share from cluster {meta.cluster_id}, not"
                               f" {self.cluster_id}")
        if (meta.key_id, meta.epoch) != (key_id, epoch) or not self._is_mine(meta):
            raise ForeignShare(f"file for key {key_id} epoch {epoch} holds key {meta.key_id}"
                               f" epoch {meta.epoch} of party {meta.party_index}")
        return meta, share

    # -- two-phase epoch changes -------------------------------------------------------

    def promised(self, key_id: str) -> dict[int, str]:
        """Staged epochs this party voted to commit, with the sharing it voted for."""
        path = self._dir(key_id) / "PROMISED"
        try:
            return {int(e): d for e, d in json.loads(path.read_text()).items()}
        except FileNotFoundError:
            return {}
        except (ValueError, AttributeError):
            raise TamperedFile(f"{path}: not a promise record") from None

    def _set_promised(self, key_id: str, promised: dict[int, str]) -> None:
        write_atomic(self._dir(key_id) / "PROMISED",
                     json.dumps({str(e): d for e, d in sorted(promised.items())}).encode())

    def epochs(self, key_id: str) -> dict[int, str]:
        """Every epoch on disk (committed, older or staged) with the sharing it holds."""
        folder = self._dir(key_id)
        found = sorted(int(p.stem.split("-")[1]) for p in folder.glob("epoch-*.share")
                       if p.is_file())
        return {e: self.load(key_id, e)[0].sharing for e in found}

    def state(self, key_id: str) -> dict:
        """What an operator and a repair need to see: the committed epoch (None for a key
        not yet committed), every epoch on disk and the epochs promised."""
        if not self._dir(key_id).is_dir():
            return {"committed": None, "epochs": {}, "promised": {}}
        return {"committed": self._committed_or_none(key_id),
                "epochs": {str(e): d for e, d in self.epochs(key_id).items()},
                "promised": {str(e): d for e, d in self.promised(key_id).items()}}

    def unfinished(self, key_id: str) -> str | None:
        """Why this key must not be used until its epoch change is finished, or None: this
        party committed a new epoch that not every party has confirmed (some may still be on
        the old one).  A party still on the old epoch needs no such check: while any party
        is behind, every party that moved on refuses."""
        committed = self.committed_epoch(key_id)
        if any(e < committed for e in self.epochs(key_id)):
            return f"epoch {committed} is not yet confirmed by every party"
        return None

    def stage(self, meta: KeyMeta, share: int) -> None:
        """Write an epoch without making it current: epoch 0 of a new key, or the next epoch
        of a committed one.  A stale staged copy of the same epoch is replaced, unless this
        party promised to commit it."""
        committed = self._committed_or_none(meta.key_id)
        if committed is not None and meta.epoch <= committed:
            raise KeyShareError(f"key {meta.key_id} already exists" if meta.epoch == 0 else
                                f"epoch {meta.epoch} is not newer than the committed one")
        if meta.epoch in self.promised(meta.key_id):
            raise KeyShareError(f"epoch {meta.epoch} of key {meta.key_id} is voted for commit;"
                                f" finish it (mpcnet keys repair) before staging another")
        self._write_share(meta, share)

    def promise(self, key_id: str, epoch: int, sharing: str) -> None:
        """Record, before voting so, that this party will commit this staged sharing."""
        committed = self._committed_or_none(key_id)
        if committed == epoch and self.load(key_id)[0].sharing == sharing:
            return  # already committed: voting again is harmless
        if committed is not None and epoch < committed:
            raise KeyShareError(f"epoch {epoch} of key {key_id} is older than the committed"
                                f" epoch {committed}")
        try:
            held = self.load(key_id, epoch)[0].sharing
        except UnknownKey:
            raise KeyShareError(f"epoch {epoch} of key {key_id} is not staged here") from None
        if held != sharing:
            raise KeyShareError(f"epoch {epoch} of key {key_id} is staged here with another"
                                f" sharing ({held[:12]}, not {sharing[:12]})")
        self._set_promised(key_id, {**self.promised(key_id), epoch: sharing})

    def commit(self, key_id: str, epoch: int, sharing: str) -> None:
        """Make a promised epoch current; older epochs stay until `drop_older`."""
        if self._committed_or_none(key_id) == epoch:
            return  # idempotent: a repeated commit is harmless
        if self.promised(key_id).get(epoch) != sharing:
            raise KeyShareError(f"epoch {epoch} of key {key_id} was not voted for commit here")
        self.load(key_id, epoch)  # must be a readable, valid share
        write_atomic(self._dir(key_id) / "COMMITTED", str(epoch).encode())
        self._set_promised(key_id, {e: d for e, d in self.promised(key_id).items()
                                    if e > epoch})

    def drop_older(self, key_id: str) -> list[int]:
        """Delete the epochs older than the committed one (every party confirmed it)."""
        committed = self.committed_epoch(key_id)
        gone = [e for e in self.epochs(key_id) if e < committed]
        for e in gone:
            (self._dir(key_id) / f"epoch-{e}.share").unlink()
        return gone

    def abort(self, key_id: str, epoch: int) -> bool:
        """Discard a staged epoch this party has not promised to commit: from now on it can
        never vote for it, so no party can ever commit it.  True if there was one."""
        committed = self._committed_or_none(key_id)
        if committed is not None and epoch <= committed:
            raise KeyShareError(f"epoch {epoch} of key {key_id} is committed here")
        if epoch in self.promised(key_id):
            raise KeyShareError(f"epoch {epoch} of key {key_id} is voted for commit here (every"
                                f" party had staged it): it is finished, not aborted")
        path = self._dir(key_id) / f"epoch-{epoch}.share"
        existed = path.exists()
        path.unlink(missing_ok=True)
        if committed is None and not any(self._dir(key_id).iterdir()):
            self._dir(key_id).rmdir()  # a half-made key leaves nothing behind
        return existed

    def key_ids(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if (p / "COMMITTED").exists())

    def list_keys(self) -> list[dict]:
        """Metadata of every committed key."""
        return [self.load(key_id)[0].model_dump(mode="json") for key_id in self.key_ids()]

    def remove_legacy_secrets(self) -> int:
        """Delete the `presig/` folders in which earlier versions kept one-time secrets on
        disk (a snapshot of them could be restored and used twice); how many keys had one."""
        found = [f for f in (self._dir(k) / "presig" for k in self.key_ids()) if f.exists()]
        for folder in found:
            shutil.rmtree(folder)
        return len(found)
