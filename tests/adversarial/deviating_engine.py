"""TEST-ONLY MPC engine child: the real engine worker, but a session it is armed for sends one
message with an error in it, as an operator who patched its own engine could.

    MpcEngine(worker="tests.adversarial.deviating_engine")   (run by tests.adversarial
    lying_node --engine-worker; the directory comes from env MPCNET_DEVIATION_DIR)

The test arms the next session by writing ``armed.json`` in that directory:
``{"trial": "...", "seed": 7, "k": [lo, hi]}`` (or ``"k": 5``).  The next session this engine
runs takes the file (renames it away, so one arming is one session) and, from a random
generator seeded with seed and trial, draws k in range(lo, hi): the session's k-th message to
a peer (0-based, in the order it sends them: ``protocols.mpyc_seam.tap_sends``) gets a random
nonzero error in one of its values:

- a pickled payload (MPyC's ``transfer``: curve points, commitments, lists of them) is
  unpickled, one leaf changed (an int or field element + a nonzero error, one entry of an
  array, one byte of a bytes value) and pickled again;
- any other payload (Shamir shares as MPyC's field bytes, ``exchange`` rounds) gets one byte
  XORed with a random nonzero byte: a nonzero error in the field element or word that holds
  that byte.

A message with nothing to change (an empty one, None) passes, and the next one is tampered
instead.  ``log.jsonl`` gets a line per tamper (``"event": "tampered"``: trial, session, k,
peer, what) at once, and a line per armed session that ends in this process (``"ended"``:
sends, and whether the session ended ok); a trial without a "tampered" line did not deviate
(k was past the session's last message).  Sessions not armed run honestly.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import time
from pathlib import Path

import numpy as np

from mpc_nodes.node import engine_worker, session
from protocols.mpyc_seam import finfields, tap_sends

DIR = Path(os.environ.get("MPCNET_DEVIATION_DIR", "."))


def _log(record: dict) -> None:
    with open(DIR / "log.jsonl", "a") as f:
        f.write(json.dumps({**record, "at": time.time()}) + "\n")


def _take_arming() -> dict | None:
    """The arming for this session, if the test left one (taken: the next session runs
    honestly unless armed again)."""
    taken = DIR / f"taken-{os.getpid()}.json"
    try:
        os.replace(DIR / "armed.json", taken)
    except FileNotFoundError:
        return None
    plan = json.loads(taken.read_text())
    taken.unlink()
    return plan


# -- the error in one value --------------------------------------------------------------

def _leaves(obj, path=()):
    """Paths of the values in `obj` an error can be added to."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return
    if isinstance(obj, int) or _is_field_element(obj):
        yield path
    elif isinstance(obj, (bytes, bytearray)):
        if obj:
            yield path
    elif _is_array(obj):
        if _array_values(obj).size:
            yield path
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _leaves(v, path + (i,))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, path + (k,))


def _is_field_element(x) -> bool:
    return isinstance(x, finfields.FiniteFieldElement)


def _is_array(x) -> bool:
    return isinstance(x, (np.ndarray, finfields.FiniteFieldArray))


def _array_values(x) -> np.ndarray:
    return x if isinstance(x, np.ndarray) else x.value


def _changed(value, rng: random.Random) -> tuple[object, str]:
    """`value` with a random nonzero error, and what was done."""
    if isinstance(value, int):  # small enough to be nonzero modulo any field in use
        e = rng.randrange(1, 2**16)
        return value + e, f"int + {e}"
    if _is_field_element(value):
        e = rng.randrange(1, type(value).order)
        return value + e, f"field element + {e}"
    if isinstance(value, (bytes, bytearray)):
        i, d = rng.randrange(len(value)), rng.randrange(1, 256)
        return bytes(value[:i]) + bytes([value[i] ^ d]) + bytes(value[i + 1:]), \
            f"bytes[{i}] of {len(value)} ^ {d:#04x}"
    values = _array_values(value).copy()
    flat = values.reshape(-1)
    i = rng.randrange(flat.size)
    if isinstance(value, np.ndarray):
        flat[i], what = _changed(flat[i].item() if hasattr(flat[i], "item") else flat[i], rng)
        return values, f"array[{i}] of {flat.size}: {what}"
    e = rng.randrange(1, value.field.order)
    flat[i] = int(flat[i]) + e
    return type(value)(values), f"field array[{i}] of {flat.size}: + {e}"


def _replaced(obj, path, new):
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(obj, dict):
        return {**obj, head: _replaced(obj[head], rest, new)}
    items = list(obj)
    items[head] = _replaced(items[head], rest, new)
    return type(obj)(items)


def _at(obj, path):
    for p in path:
        obj = obj[p]
    return obj


def tamper(payload: bytes, rng: random.Random) -> tuple[bytes, str] | None:
    """`payload` with a random nonzero error in one value, and what was done; None when it
    holds no value to change."""
    try:
        obj = pickle.loads(payload)
        pickled = pickle.dumps(obj) == payload  # MPyC's transfer pickles exactly so
    except Exception:  # noqa: BLE001 - not a pickle: raw field bytes or an exchange round
        pickled = False
    if pickled:
        leaves = list(_leaves(obj))
        if not leaves:
            return None
        path = rng.choice(leaves)
        new, what = _changed(_at(obj, path), rng)
        return pickle.dumps(_replaced(obj, path, new)), f"pickled {list(path)}: {what}"
    if not payload:
        return None
    i, d = rng.randrange(len(payload)), rng.randrange(1, 256)
    return payload[:i] + bytes([payload[i] ^ d]) + payload[i + 1:], \
        f"raw byte {i} of {len(payload)} ^ {d:#04x}"


# -- the engine ---------------------------------------------------------------------------

class _Deviation:
    """One armed session's tap: counts the messages sent, and tampers the k-th."""

    def __init__(self, plan: dict, session_id: str):
        self.trial, self.session_id = plan["trial"], session_id
        self.rng = random.Random(f"{plan['seed']}:{plan['trial']}")
        k = plan["k"]
        self.k = k if isinstance(k, int) else self.rng.randrange(k[0], k[1])
        self.sent = 0
        self.done = False

    def __call__(self, peer_pid: int, payload: bytes) -> bytes:
        index, self.sent = self.sent, self.sent + 1
        if self.done or index < self.k:
            return payload
        changed = tamper(payload, self.rng)
        if changed is None:
            return payload  # nothing to change here: the next message instead
        self.done = True
        _log({"event": "tampered", "trial": self.trial, "session": self.session_id,
              "k": self.k, "sent_index": index, "peer": peer_pid, "what": changed[1]})
        return changed[0]


_current: _Deviation | None = None
_new_runtime = session.new_runtime
_run_session = session.run_session


def _tapped_runtime(*args, **kwargs):
    rt = _new_runtime(*args, **kwargs)
    if _current is not None:
        tap_sends(rt, _current)
    return rt


async def _deviating_session(spec, pool=None):
    global _current
    plan = _take_arming()
    if plan is None:
        return await _run_session(spec, pool)
    _current = _Deviation(plan, spec.session_id)
    outcome = "ok"
    try:
        return await _run_session(spec, pool)
    except Exception as exc:
        outcome = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        _log({"event": "ended", "trial": _current.trial, "session": spec.session_id,
              "sends": _current.sent, "tampered": _current.done, "outcome": outcome})
        _current = None


session.new_runtime = _tapped_runtime
session.run_session = _deviating_session  # engine_worker.main imports it when it starts

if __name__ == "__main__":
    engine_worker.main()
