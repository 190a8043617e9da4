"""The coordinator's own record of keys and presignatures (coordinator/keys.json)."""

from __future__ import annotations

import json
import os
import time
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

    def take_presignature(self, key_id: str, boots: dict[str, str]) -> tuple[dict | None,
                                                                             list[dict]]:
        """Pop the first presignature of `key_id` its holders can still have: unexpired, and
        every holder still runs the process that made it (the same boot id in `boots`, party
        name -> boot id of its presence): a node keeps presignatures in memory only.  Returns
        it (None when none is left) and the entries dropped on the way; the caller saves."""
        pool, dropped = self.key(key_id)["presignatures"], []
        while pool:
            entry = pool.pop(0)  # used or not, never offered twice
            holders = entry["binding"].split(",")
            if (entry.get("boots") == {n: boots.get(n) for n in holders}
                    and time.time() < entry.get("expires", 0)):
                return entry, dropped
            dropped.append(entry)
        return None, dropped
