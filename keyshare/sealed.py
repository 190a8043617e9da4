"""Sealed files: JSON with public, authenticated metadata and an AES-256-GCM ciphertext whose
key is derived by scrypt from the operator's passphrase.

    {"format", "version", "kdf": {"name": "scrypt", "n", "r", "p", "salt", "check"},
     "meta": {...}, "nonce", "ciphertext"}

The associated data is the canonical JSON of everything but nonce and ciphertext, so any
change to the metadata fails decryption.  `kdf.check` (8 bytes of a hash of the derived key)
tells a wrong passphrase apart from a modified file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .errors import TamperedFile, UnsupportedVersion, WrongPassphrase

VERSION = 1
SCRYPT_N = 2**15  # ~32 MiB and ~0.1 s per derivation on this hardware; once per store


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text) -> bytes:
    if not isinstance(text, str):
        raise ValueError("expected base64 text")
    return base64.b64decode(text, validate=True)


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class FileKey:
    """A derived AES key with the scrypt parameters that produced it."""

    key: bytes
    kdf: dict

    @classmethod
    def derive(cls, passphrase: bytes, n: int = SCRYPT_N, salt: bytes | None = None,
               r: int = 8, p: int = 1) -> "FileKey":
        salt = salt or os.urandom(16)
        key = Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase)
        check = hashlib.sha256(b"mpcnet-keyshare-check" + key).hexdigest()[:16]
        return cls(key, {"name": "scrypt", "n": n, "r": r, "p": p, "salt": _b64(salt),
                         "check": check})

    @classmethod
    def for_kdf(cls, passphrase: bytes, kdf: dict) -> "FileKey":
        """Re-derive from a file's stored parameters (validated: nobody picks our costs)."""
        try:
            n, r, p, salt = int(kdf["n"]), int(kdf["r"]), int(kdf["p"]), _unb64(kdf["salt"])
        except (KeyError, TypeError, ValueError):
            raise TamperedFile("bad key derivation parameters") from None
        if kdf.get("name") != "scrypt" or not (2**10 <= n <= 2**20 and n & (n - 1) == 0
                                               and 1 <= r <= 32 and 1 <= p <= 16
                                               and len(salt) == 16):
            raise TamperedFile("key derivation parameters out of range")
        return cls.derive(passphrase, n, salt, r, p)


def seal(file_key: FileKey, fmt: str, meta: dict, plaintext: bytes) -> bytes:
    header = {"format": fmt, "version": VERSION, "kdf": file_key.kdf, "meta": meta}
    nonce = os.urandom(12)
    ct = AESGCM(file_key.key).encrypt(nonce, plaintext, canonical(header))
    return canonical({**header, "nonce": _b64(nonce), "ciphertext": _b64(ct)}) + b"\n"


def read_header(data: bytes, fmt: str) -> dict:
    """Parse and check the structure of a sealed file (no decryption)."""
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or set(doc) != {"format", "version", "kdf", "meta", "nonce",
                                                     "ciphertext"}:
            raise ValueError("unexpected fields")
        if not isinstance(doc["meta"], dict) or not isinstance(doc["kdf"], dict):
            raise ValueError("meta and kdf must be objects")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise TamperedFile(f"malformed or truncated ({exc})") from None
    if doc["format"] != fmt:
        raise TamperedFile(f"not a {fmt} file")
    if doc["version"] != VERSION:
        raise UnsupportedVersion(f"file version {doc['version']!r}; this software reads"
                                 f" version {VERSION}")
    return doc


def unseal(doc: dict, key_for) -> bytes:
    """Decrypt a parsed sealed file; `key_for(kdf)` returns the FileKey for its parameters."""
    file_key = key_for(doc["kdf"])
    if doc["kdf"].get("check") != file_key.kdf["check"]:
        raise WrongPassphrase("wrong passphrase (or a file sealed by another store)")
    header = {k: doc[k] for k in ("format", "version", "kdf", "meta")}
    try:
        return AESGCM(file_key.key).decrypt(_unb64(doc["nonce"]), _unb64(doc["ciphertext"]),
                                            canonical(header))
    except (InvalidTag, ValueError):
        raise TamperedFile("authentication failed: the metadata or ciphertext was"
                           " modified") from None
