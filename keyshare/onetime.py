"""One-time secrets (ECDSA presignatures, FROST nonces), held only in the node's memory.

A one-time secret used twice gives away the key (two ECDSA signatures with the same r, two
FROST signature shares over the same nonces).  Any copy that outlives its use — a file on
the data volume, a snapshot, a backup, a `deploy compose` copy — can be restored and used
again, and no mark on disk survives restoring the disk it is on.  So these secrets are never
written anywhere: they live in this pool, in the process that made them, and are gone when
it stops.  `take` removes a secret before its caller derives anything from it; a pool
holds a bounded number, and each expires after its lifetime.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import KeyShareError, PresignatureUnavailable


@dataclass
class _Secret:
    epoch: int
    binding: str
    payload: dict
    expires: float = field(default=0.0)


class OneTimeSecrets:
    """A bounded in-memory pool of one kind of one-time secret (`what` names it in errors),
    keyed by (key id, secret id); each is bound to a key epoch and a signer set."""

    def __init__(self, what: str, lifetime_s: float, capacity: int, remembered: int = 100_000):
        self.what, self.lifetime_s, self.capacity = what, lifetime_s, capacity
        self._secrets: dict[tuple[str, str], _Secret] = {}
        self._gone: OrderedDict[tuple[str, str], str] = OrderedDict()  # why each one left
        self._remembered = remembered

    def _forget(self, key: tuple[str, str], why: str) -> _Secret | None:
        secret = self._secrets.pop(key, None)
        if secret is not None:
            self._gone[key] = why
            self._gone.move_to_end(key)
            while len(self._gone) > self._remembered:
                self._gone.popitem(last=False)
        return secret

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, s in self._secrets.items() if s.expires <= now]:
            self._forget(key, "expired")

    def room(self) -> int:
        """How many more this pool accepts now."""
        self._expire()
        return self.capacity - len(self._secrets)

    def add(self, key_id: str, secret_id: str, epoch: int, binding: str, payload: dict,
            lifetime_s: float | None = None) -> None:
        """Hold a new secret for `lifetime_s` (default the pool's lifetime)."""
        if self.room() <= 0:
            raise KeyShareError(f"this node already holds {self.capacity} {self.what}s; use"
                                f" some or let them expire first")
        if (key_id, secret_id) in self._secrets or (key_id, secret_id) in self._gone:
            raise KeyShareError(f"{self.what} {secret_id} of key {key_id} exists already")
        lifetime = self.lifetime_s if lifetime_s is None else lifetime_s
        self._secrets[key_id, secret_id] = _Secret(epoch, binding, payload,
                                                   time.monotonic() + lifetime)

    def check(self, key_id: str, secret_id: str, epoch: int, binding: str | None = None) -> None:
        """Raise PresignatureUnavailable naming why this secret cannot be used here."""
        self._expire()
        secret = self._secrets.get((key_id, secret_id))
        if secret is None:
            why = self._gone.get((key_id, secret_id))
            raise PresignatureUnavailable(
                f"{self.what} {secret_id} unknown here (node restarted?)" if why is None else
                f"{self.what} {secret_id} was already used" if why == "used" else
                f"{self.what} {secret_id} {why}")
        if secret.epoch != epoch:
            raise PresignatureUnavailable(f"{self.what} {secret_id} belongs to epoch"
                                          f" {secret.epoch} of key {key_id}, not {epoch}")
        if binding is not None and secret.binding != binding:
            raise PresignatureUnavailable(f"{self.what} {secret_id} is bound to"
                                          f" {secret.binding}, not {binding}")

    def take(self, key_id: str, secret_id: str, epoch: int, binding: str) -> dict:
        """Remove the secret from the pool and return it: it can never be taken again."""
        self.check(key_id, secret_id, epoch, binding)
        return self._forget((key_id, secret_id), "used").payload

    def held(self, epochs: Mapping[str, int | None]) -> dict[str, int]:
        """How many secrets each key of `epochs` holds at its epoch there (None: any), in one
        pass over the pool: the node counts every key after every job."""
        self._expire()
        held = dict.fromkeys(epochs, 0)
        for (key_id, _), secret in self._secrets.items():
            if key_id in held and epochs[key_id] in (None, secret.epoch):
                held[key_id] += 1
        return held

    def retire(self, key_id: str, keep_epoch: int) -> int:
        """Drop the key's secrets of other epochs (after a refresh commit); how many."""
        stale = [k for k, s in self._secrets.items() if k[0] == key_id and s.epoch != keep_epoch]
        for key in stale:
            self._forget(key, f"belongs to an epoch of key {key_id} that was refreshed away")
        return len(stale)
