"""The coordinator's presignature pool: each entry is offered once, and entries a node can no
longer hold (it restarted since: presignatures live in its memory only; or they expired) are
dropped instead of being tried."""

import time

from mpc_nodes.ledger import Ledger


def entry(i: str, boots: dict, expires: float | None = None) -> dict:
    return {"id": i, "binding": ",".join(boots), "epoch": 0, "boots": boots,
            "expires": time.time() + 3600 if expires is None else expires}


def test_presignatures_of_restarted_or_expired_holders_are_dropped(tmp_path):
    ledger = Ledger(tmp_path / "coordinator.yaml")
    now = {"party0": "a" * 16, "party1": "b" * 16, "party2": "c" * 16}
    ledger.key("vault-1")["presignatures"] = [
        entry("old-boot", {**now, "party1": "d" * 16}),  # party1 restarted since
        entry("expired", now, expires=time.time() - 1),
        {"id": "legacy", "binding": "party0,party1,party2", "epoch": 0},  # an older version's
        entry("good", now), entry("next", now)]
    taken, dropped = ledger.take_presignature("vault-1", now)
    assert taken["id"] == "good"
    assert [d["id"] for d in dropped] == ["old-boot", "expired", "legacy"]
    ledger.save()
    again = Ledger(tmp_path / "coordinator.yaml")
    assert [e["id"] for e in again.key("vault-1")["presignatures"]] == ["next"]
    offline = {k: v for k, v in now.items() if k != "party2"}
    taken, dropped = again.take_presignature("vault-1", offline)  # party2 is not online
    assert taken is None and [d["id"] for d in dropped] == ["next"]
