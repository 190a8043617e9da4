"""One party's key share store.

    <root>/kdf.json                   scrypt parameters (the store key is derived once)
    <root>/<key_id>/COMMITTED         the committed epoch (written atomically)
    <root>/<key_id>/epoch-<e>.share   a sealed share per epoch; epochs above COMMITTED are staged

A refresh stages epoch e+1 next to the committed epoch e and commits it only when every
party has it; until then the committed epoch stays the one that loads.  One-time secrets
(presignatures, FROST nonces) are never stored here: a restored copy of the store would
release them again (see `onetime`).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .atomic import write_atomic
from .errors import ForeignShare, KeyShareError, TamperedFile, UnknownKey
from .sealed import SCRYPT_N, FileKey, read_header, seal, unseal

SHARE_FORMAT = "mpcnet-keyshare"
KEY_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")


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
    created: float = Field(default_factory=time.time)


class KeyStore:
    """Encrypted, crash-safe storage of this party's key shares."""

    def __init__(self, root: Path, passphrase: bytes, cluster_id: str, party_index: int,
                 scrypt_n: int = SCRYPT_N):
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.cluster_id, self.party_index = cluster_id, party_index
        self._passphrase = passphrase
        kdf_file = self.root / "kdf.json"
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

    def _write_share(self, meta: KeyMeta, share: int) -> None:
        if meta.cluster_id != self.cluster_id or meta.party_index != self.party_index:
            raise ForeignShare(f"share for cluster {meta.cluster_id} party {meta.party_index},"
                               f" this store is cluster {self.cluster_id} party"
                               f" {self.party_index}")
        write_atomic(self._dir(meta.key_id) / f"epoch-{meta.epoch}.share",
                     seal(self._key, SHARE_FORMAT, meta.model_dump(mode="json"),
                          str(share).encode()))

    def save_new(self, meta: KeyMeta, share: int) -> None:
        """Store the first epoch of a new key and commit it."""
        if (self._dir(meta.key_id) / "COMMITTED").exists():
            raise KeyShareError(f"key {meta.key_id} already exists")
        self._write_share(meta, share)
        write_atomic(self._dir(meta.key_id) / "COMMITTED", str(meta.epoch).encode())

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
        if (meta.key_id, meta.epoch, meta.party_index) != (key_id, epoch, self.party_index):
            raise ForeignShare(f"file for key {key_id} epoch {epoch} holds key {meta.key_id}"
                               f" epoch {meta.epoch} of party {meta.party_index}")
        return meta, share

    def stage(self, meta: KeyMeta, share: int) -> None:
        """Write a new epoch without making it current."""
        if meta.epoch <= self.committed_epoch(meta.key_id):
            raise KeyShareError(f"epoch {meta.epoch} is not newer than the committed one")
        self._write_share(meta, share)

    def staged_epochs(self, key_id: str) -> list[int]:
        committed = self.committed_epoch(key_id)
        epochs = (int(p.stem.split("-")[1]) for p in self._dir(key_id).glob("epoch-*.share"))
        return sorted(e for e in epochs if e > committed)

    def commit(self, key_id: str, epoch: int) -> None:
        """Make a staged epoch current, then delete older epochs."""
        committed = self.committed_epoch(key_id)
        if epoch == committed:
            return  # idempotent: a repeated commit is harmless
        self.load(key_id, epoch)  # must be a readable, valid share
        write_atomic(self._dir(key_id) / "COMMITTED", str(epoch).encode())
        for path in self._dir(key_id).glob("epoch-*.share"):
            if int(path.stem.split("-")[1]) < epoch:
                path.unlink()

    def abort(self, key_id: str, epoch: int) -> None:
        """Discard a staged epoch."""
        if epoch <= self.committed_epoch(key_id):
            raise KeyShareError(f"epoch {epoch} is committed; it cannot be aborted")
        (self._dir(key_id) / f"epoch-{epoch}.share").unlink(missing_ok=True)

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
