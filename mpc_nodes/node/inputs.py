"""An operator's private inputs file: a YAML mapping of names to numbers.

These values never leave the node except as secret shares inside an MPC session.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from mpc_nodes.config import read_yaml_mapping

INPUT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


class InputError(ValueError):
    """The inputs file or one of its values is missing or invalid."""


def load_input(path: Path, name: str) -> float:
    """Read one named private number, re-reading the file so edits apply to the next job."""
    data = read_yaml_mapping(path, InputError)
    # reasons go into votes that the coordinator and the broker see: never the value itself
    if name not in data:
        raise InputError(f"no private input {name!r} in {Path(path).name}")
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"private input {name!r} in {Path(path).name} is not a finite number"
                         f" (it is a {type(value).__name__})")
    if abs(value) >= 2**30:
        raise InputError(f"private input {name!r} is too large for fixed-point MPC (|x| < 2^30)")
    return float(value)
