"""An operator's encrypted backup of its committed key shares.

A backup holds key shares only: one-time secrets (presignatures, FROST nonces) never reach
the disk (they live in the node's memory), so no backup can hold one.  A backup is a sealed
file (its own passphrase) holding the share files and COMMITTED markers; import checks every
share opens with the store's passphrase first.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from .atomic import write_atomic
from .errors import KeyShareError
from .sealed import FileKey, read_header, seal, unseal
from .store import KeyStore

BACKUP_FORMAT = "mpcnet-keyshare-backup"


def export_backup(store: KeyStore, dest: Path, backup_passphrase: bytes,
                  key_ids: list[str] | None = None) -> list[str]:
    """Write a backup of the given (default: all) keys' committed epochs; return the key ids."""
    files, exported = {}, []
    for key_id in store.key_ids():
        if key_ids is not None and key_id not in key_ids:
            continue
        epoch = store.committed_epoch(key_id)
        for name in ("COMMITTED", f"epoch-{epoch}.share"):
            files[f"{key_id}/{name}"] = base64.b64encode(
                (store.root / key_id / name).read_bytes()).decode()
        exported.append(key_id)
    missing = set(key_ids or []) - set(exported)
    if missing:
        raise KeyShareError(f"no such keys to back up: {', '.join(sorted(missing))}")
    meta = {"cluster_id": store.cluster_id, "party_index": store.party_index, "keys": exported}
    write_atomic(Path(dest), seal(FileKey.derive(backup_passphrase), BACKUP_FORMAT, meta,
                                  json.dumps(files).encode()))
    return exported


def import_backup(store: KeyStore, path: Path, backup_passphrase: bytes,
                  overwrite: bool = False) -> list[str]:
    """Restore keys from a backup into `store`; refuse to replace a different share."""
    doc = read_header(Path(path).read_bytes(), BACKUP_FORMAT)
    files = json.loads(unseal(doc, lambda kdf: FileKey.for_kdf(backup_passphrase, kdf)))
    if (doc["meta"]["cluster_id"], doc["meta"]["party_index"]) != (store.cluster_id,
                                                                   store.party_index):
        raise KeyShareError(f"backup belongs to cluster {doc['meta']['cluster_id']} party"
                            f" {doc['meta']['party_index']}")
    contents = {rel: base64.b64decode(data) for rel, data in files.items()}
    restored = []
    for key_id in doc["meta"]["keys"]:
        committed = contents[f"{key_id}/COMMITTED"]
        share_name = f"epoch-{int(committed)}.share"
        target = store.root / key_id
        if (target / "COMMITTED").exists() and not overwrite:
            if (target / share_name).exists() and \
                    (target / share_name).read_bytes() == contents[f"{key_id}/{share_name}"]:
                continue  # already there, identical
            raise KeyShareError(f"key {key_id} already exists with another share; pass"
                                f" overwrite to replace it")
        write_atomic(target / share_name, contents[f"{key_id}/{share_name}"])
        store.load(key_id, int(committed))  # opens with this store's passphrase and cluster
        write_atomic(target / "COMMITTED", committed)
        restored.append(key_id)
    return restored
