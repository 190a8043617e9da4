"""Digest of the protocol code a node runs, so parties only compute together on the same code."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path

import protocols

from mpc_nodes import __version__


@lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 over every protocols/ source file (path and bytes), the MPyC version and ours."""
    root = Path(protocols.__file__).parent
    h = hashlib.sha256(f"mpcnet {__version__}\nmpyc {version('mpyc')}\n".encode())
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix().encode()
        h.update(len(rel).to_bytes(4, "big") + rel)
        data = path.read_bytes()
        h.update(len(data).to_bytes(8, "big") + data)
    return h.hexdigest()
