"""The Vyper contracts of contracts/, compiled from source and cached by source digest.

Sources live in the repository's contracts/ directory; their ABI and bytecode are never
committed. `load(name)` compiles all of them once per change of any source or of the
compiler version, and keeps the output in build/contracts/ (gitignored), so a test module
or the bench compiles in a few seconds the first time and reads JSON after.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from keyshare.atomic import write_atomic

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "contracts"
CACHE = ROOT / "build" / "contracts"
NAMES = ("OracleMarkVerifier", "CommitteeMarkVerifier", "OptionSettlement")
"""The deployable contracts; mark_typed_data.vy is a module they import."""


@dataclass(frozen=True)
class Compiled:
    name: str
    abi: list
    bytecode: bytes


def _sources_digest() -> str:
    """SHA-256 over the compiler version and every source (a contract's imports count)."""
    if not SOURCES.is_dir():
        raise FileNotFoundError(f"no contract sources at {SOURCES}: mpcnet runs from its"
                                " repository checkout (pip install -e .)")
    digest = hashlib.sha256(f"vyper {version('vyper')}\n".encode())
    for path in sorted(SOURCES.glob("*.vy")):
        digest.update(f"{path.name}\n".encode() + path.read_bytes())
    return digest.hexdigest()


def _compile(name: str) -> dict:
    import vyper  # here, not at the top: a cached build needs no compiler
    from vyper.compiler.input_bundle import FilesystemInputBundle
    path = SOURCES / f"{name}.vy"
    out = vyper.compile_code(path.read_text(), contract_path=path.name,
                             input_bundle=FilesystemInputBundle([SOURCES]),
                             output_formats=["abi", "bytecode"])
    return {"abi": out["abi"], "bytecode": out["bytecode"]}


@functools.cache
def load(name: str) -> Compiled:
    """The ABI and deployment bytecode of contract `name` (one of NAMES)."""
    if name not in NAMES:
        raise ValueError(f"no contract {name!r}; the contracts are {', '.join(NAMES)}")
    cached = CACHE / f"{name}-{_sources_digest()[:16]}.json"
    if cached.exists():
        out = json.loads(cached.read_text())
    else:
        out = _compile(name)
        write_atomic(cached, json.dumps(out).encode(), mode=0o644)
    return Compiled(name, out["abi"], bytes.fromhex(out["bytecode"].removeprefix("0x")))
