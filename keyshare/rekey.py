"""Re-encrypt a share store under a new passphrase, crash-safely and resumably.

    rekey(root, old_passphrase, new_passphrase)

1. The new key's scrypt parameters are written first (`kdf.next.json`, atomically), so a
   resumed run derives the same key; while it exists, `KeyStore` refuses to open the store.
2. Each sealed share is rewritten under the new key by its own atomic write; one already
   sealed under it is left alone.  At every moment each share file is whole and sealed under
   the old passphrase or the new one.
3. `kdf.json` takes the new parameters and `kdf.next.json` goes.

A crash anywhere leaves every share readable under the old or the new passphrase; running
`rekey` again with the same two passphrases finishes the job.  The node must be stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

from .atomic import write_atomic
from .errors import KeyShareError, WrongPassphrase
from .sealed import SCRYPT_N, FileKey, read_header, seal, unseal
from .store import KDF_FILE, PENDING_KDF_FILE, SHARE_FORMAT


def share_files(root: Path) -> list[Path]:
    """Every sealed share file of the store."""
    return sorted(Path(root).glob("*/epoch-*.share"))


def _pending_key(root: Path, new_passphrase: bytes, scrypt_n: int) -> FileKey:
    """The new key: the one an interrupted run chose, else a fresh one, recorded first."""
    pending = root / PENDING_KDF_FILE
    if pending.exists():
        kdf = json.loads(pending.read_text())
        key = FileKey.for_kdf(new_passphrase, kdf)
        if key.kdf["check"] != kdf.get("check"):
            raise WrongPassphrase(f"{root}: an interrupted rekey chose another new passphrase;"
                                  f" run it again with that one")
        return key
    key = FileKey.derive(new_passphrase, n=scrypt_n)
    write_atomic(pending, json.dumps(key.kdf).encode())
    return key


def rekey(root: Path, old_passphrase: bytes, new_passphrase: bytes,
          scrypt_n: int = SCRYPT_N) -> int:
    """Re-encrypt the store at `root` from `old_passphrase` to `new_passphrase`; return how
    many share files were rewritten by this run."""
    root = Path(root)
    if not (root / KDF_FILE).exists():
        raise KeyShareError(f"{root} is not a key share store (no {KDF_FILE})")
    if old_passphrase == new_passphrase:
        raise KeyShareError("the new passphrase is the old one")
    current = json.loads((root / KDF_FILE).read_text())
    if (root / PENDING_KDF_FILE).exists() and current == json.loads(
            (root / PENDING_KDF_FILE).read_text()):
        _pending_key(root, new_passphrase, scrypt_n)  # checks the new passphrase
        (root / PENDING_KDF_FILE).unlink()  # interrupted after its last write
        return 0
    if FileKey.for_kdf(old_passphrase, current).kdf["check"] != current.get("check"):
        raise WrongPassphrase(f"{root}: the old passphrase does not open this store")
    new = _pending_key(root, new_passphrase, scrypt_n)
    old_keys: dict[str, FileKey] = {}

    def old_key(kdf: dict) -> FileKey:
        salt = str(kdf.get("salt"))
        if salt not in old_keys:
            old_keys[salt] = FileKey.for_kdf(old_passphrase, kdf)
        return old_keys[salt]

    rewritten = 0
    for path in share_files(root):
        doc = read_header(path.read_bytes(), SHARE_FORMAT)
        if doc["kdf"] == new.kdf:
            continue  # done by an interrupted run
        try:
            plaintext = unseal(doc, old_key)
        except KeyShareError as exc:
            raise type(exc)(f"{path}: {exc}") from None
        write_atomic(path, seal(new, SHARE_FORMAT, doc["meta"], plaintext))
        rewritten += 1
    write_atomic(root / KDF_FILE, json.dumps(new.kdf).encode())
    (root / PENDING_KDF_FILE).unlink()
    return rewritten
