"""Bounded, strict parsing of the files and messages a node is handed.

A hostile file or message must fail fast with a reason, never exhaust the stack or stall
the node: sizes are checked before anything is read or parsed, bracket nesting is measured
by a linear scan before the (recursive) JSON decoder or YAML composer runs, and YAML
nesting is bounded again while the document is composed, which also covers block nesting
(``- - - x``, no brackets at all).  Numbers in
CSV files are plain decimals: Python's float() also takes ``3_000``, ``inf`` or ``0x1p3``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import yaml

MAX_DEPTH = 32                  # nesting of any YAML document or JSON message we accept
MAX_YAML_BYTES = 256 * 1024     # node.yaml, roster.yaml, inputs.yaml, policy.yaml

_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


class ParseBoundError(ValueError):
    """Input beyond a parsing bound (size, nesting) or not in the accepted syntax."""


def read_text(path: Path, max_bytes: int) -> str:
    """A UTF-8 file (a leading BOM dropped) of at most max_bytes, read no further."""
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ParseBoundError(f"{Path(path).name} is larger than {max_bytes:,} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseBoundError(f"{Path(path).name} is not UTF-8 text ({exc.reason} at byte"
                              f" {exc.start})") from None


def json_depth(raw: bytes | str) -> int:
    """Deepest nesting of [ and { outside JSON strings, in linear time (no parsing)."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKET)
    if not brackets:
        return 0
    b = np.frombuffer(brackets, dtype=np.uint8)
    return int(np.cumsum(np.where((b == ord("[")) | (b == ord("{")), 1, -1)).max())


def check_json_depth(raw: bytes | str, what: str, limit: int = MAX_DEPTH) -> None:
    """Raise ParseBoundError if raw nests deeper than limit (before json.loads recurses)."""
    depth = json_depth(raw)
    if depth > limit:
        raise ParseBoundError(f"{what} nests {depth} levels deep, more than {limit}")


class _BoundedLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses documents nested deeper than MAX_DEPTH."""

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels",
                    self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_yaml(text: str):
    """yaml.safe_load with the nesting bound (a yaml.YAMLError says why not).  Flow
    brackets are counted first: PyYAML's scanner is quadratic in open brackets on a line
    (seconds for 50,000 of them), and the count over-approximates, never under."""
    depth = json_depth(text)
    if depth > MAX_DEPTH:
        raise yaml.YAMLError(f"brackets nested {depth} levels deep, more than {MAX_DEPTH}")
    return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 (a SafeLoader)


def plain_number(text: str) -> float | None:
    """The value of a plain decimal (optional sign, digits, point, exponent), else None."""
    text = text.strip()
    return float(text) if _DECIMAL.fullmatch(text) else None
