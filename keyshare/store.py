"""One party's key share store.

    <root>/kdf.json                   scrypt parameters (the store key is derived once)
    <root>/<key_id>/COMMITTED         the committed epoch (written atomically)
    <root>/<key_id>/epoch-<e>.share   a sealed share per epoch; epochs above COMMITTED are staged
    <root>/<key_id>/presig/<id>.sealed, <id>.used   one-time secrets and their durable use marks

A refresh stages epoch e+1 next to the committed epoch e and commits it only when every
party has it; until then the committed epoch stays the one that loads.  A one-time secret is
marked used (created exclusively, fsynced) before it is read, so it is released at most once,
also across crashes.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .atomic import create_exclusive, write_atomic
from .errors import (ForeignShare, KeyShareError, PresignatureUnavailable, TamperedFile,
                     UnknownKey)
from .sealed import SCRYPT_N, FileKey, read_header, seal, unseal

SHARE_FORMAT = "mpcnet-keyshare"
SECRET_FORMAT = "mpcnet-onetime-secret"
KEY_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")
SECRET_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


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
    """Encrypted, crash-safe storage of this party's shares and one-time secrets."""

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
        """Make a staged epoch current, then delete older epochs and their presignatures."""
        committed = self.committed_epoch(key_id)
        if epoch == committed:
            return  # idempotent: a repeated commit is harmless
        self.load(key_id, epoch)  # must be a readable, valid share
        write_atomic(self._dir(key_id) / "COMMITTED", str(epoch).encode())
        for path in self._dir(key_id).glob("epoch-*.share"):
            if int(path.stem.split("-")[1]) < epoch:
                path.unlink()
        for path in (self._dir(key_id) / "presig").glob("*.sealed"):
            if read_header(path.read_bytes(), SECRET_FORMAT)["meta"].get("epoch") != epoch:
                path.unlink()

    def abort(self, key_id: str, epoch: int) -> None:
        """Discard a staged epoch."""
        if epoch <= self.committed_epoch(key_id):
            raise KeyShareError(f"epoch {epoch} is committed; it cannot be aborted")
        (self._dir(key_id) / f"epoch-{epoch}.share").unlink(missing_ok=True)

    def key_ids(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if (p / "COMMITTED").exists())

    def list_keys(self) -> list[dict]:
        """Metadata of every committed key, with unused presignatures counted."""
        out = []
        for key_id in self.key_ids():
            meta, _ = self.load(key_id)
            out.append({**meta.model_dump(mode="json"),
                        "presignatures": self.count_secrets(key_id, meta.epoch)})
        return out

    # -- one-time secrets (presignatures, signing nonces) -------------------------------

    def add_secret(self, key_id: str, secret_id: str, epoch: int, binding: str,
                   payload: dict) -> None:
        """Store a secret that may be released once, bound to an epoch and a party set."""
        if not SECRET_ID.match(secret_id):
            raise KeyShareError(f"invalid secret id {secret_id!r}")
        meta = {"key_id": key_id, "id": secret_id, "epoch": epoch, "binding": binding,
                "created": time.time()}
        write_atomic(self._dir(key_id) / "presig" / f"{secret_id}.sealed",
                     seal(self._key, SECRET_FORMAT, meta, json.dumps(payload).encode()))

    def discard_secrets(self, key_id: str, binding_prefix: str, older_than: float) -> int:
        """Retire unused secrets whose binding starts with the prefix and that were made
        before `older_than` (Unix time): marked used, then deleted.  Returns how many."""
        retired = 0
        for path in sorted((self._dir(key_id) / "presig").glob("*.sealed")):
            meta = read_header(path.read_bytes(), SECRET_FORMAT)["meta"]
            if (str(meta.get("binding", "")).startswith(binding_prefix)
                    and meta.get("created", 0) < older_than
                    and create_exclusive(path.with_suffix(".used"))):
                path.unlink()
                retired += 1
        return retired

    def _available(self, key_id: str, epoch: int, binding: str | None) -> list[Path]:
        found = []
        for path in sorted((self._dir(key_id) / "presig").glob("*.sealed")):
            if path.with_suffix(".used").exists():
                continue
            meta = read_header(path.read_bytes(), SECRET_FORMAT)["meta"]
            if meta.get("epoch") == epoch and binding in (None, meta.get("binding")):
                found.append(path)
        return found

    def count_secrets(self, key_id: str, epoch: int, binding: str | None = None) -> int:
        return len(self._available(key_id, epoch, binding))

    def take_secret(self, key_id: str, epoch: int, binding: str,
                    secret_id: str | None = None) -> tuple[str, dict]:
        """Mark one unused secret used (durably), then return (id, payload)."""
        for path in self._available(key_id, epoch, binding):
            if secret_id is not None and path.stem != secret_id:
                continue
            if not create_exclusive(path.with_suffix(".used")):
                continue  # taken concurrently
            _, plaintext = self._open(path, SECRET_FORMAT)
            path.unlink()
            return path.stem, json.loads(plaintext)
        raise PresignatureUnavailable(f"no unused presignature for key {key_id} epoch {epoch}"
                                      f" and party set {binding}")
