"""The coordinator's own record of keys and presignatures (coordinator/keys.json)."""

from __future__ import annotations

import json
import os
from pathlib import Path


class Ledger:
    """Keys this coordinator made: scheme, public key, threshold, epoch, presignatures, and
    for FROST keys the verification shares it checks signature shares against."""

    def __init__(self, coordinator_yaml: Path):
        self.path = Path(coordinator_yaml).parent / "keys.json"
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {}

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        os.replace(tmp, self.path)

    def key(self, key_id: str) -> dict:
        return self.data.setdefault(key_id, {"presignatures": []})
