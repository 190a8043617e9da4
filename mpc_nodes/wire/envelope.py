"""Signed envelopes: every bus message is signed by its sender's Ed25519 identity key.

Wire format (UTF-8 JSON): ``{"v": 1, "sender": "party/NAME" | "coordinator/NAME",
"payload": "<message JSON>", "sig": "<hex>"}``.  The signature covers a domain tag, the
cluster id, the MQTT topic and the payload bytes, so a message cannot be replayed on
another topic or in another cluster.  Verification rejects, with a reason, anything that
is oversized, malformed, from an unknown sender, badly signed or not a known message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ValidationError

from mpc_nodes.config import Roster
from mpc_nodes.pki import identity_public
from mpc_nodes.wire.messages import digest_bytes, message_adapter
from mpc_nodes.wire.parsing import ParseBoundError, check_json_depth

DOMAIN = b"mpcnet-envelope-v1\n"


class EnvelopeError(ValueError):
    """A bus message was rejected; the message says why."""


@dataclass(frozen=True)
class Verified:
    """A verified message: who sent it, what it says, and the digest of its exact payload."""

    sender_kind: str  # "party" or "coordinator"
    sender: str
    message: BaseModel
    payload_digest: str
    raw: bytes


def _signed_bytes(cluster_id: str, topic: str, payload: str) -> bytes:
    return DOMAIN + cluster_id.encode() + b"\n" + topic.encode() + b"\n" + payload.encode()


@dataclass(frozen=True)
class Sealed:
    """A signed envelope ready to publish, and the digest of its payload."""

    raw: bytes
    payload_digest: str


def seal(key: Ed25519PrivateKey, sender: str, cluster_id: str, topic: str,
         message: BaseModel) -> Sealed:
    """Serialise and sign a message for `topic`; sender is 'party/NAME' or 'coordinator/NAME'."""
    payload = message.model_dump_json()
    sig = key.sign(_signed_bytes(cluster_id, topic, payload)).hex()
    raw = json.dumps({"v": 1, "sender": sender, "payload": payload, "sig": sig},
                     separators=(",", ":")).encode()
    return Sealed(raw, digest_bytes(payload.encode()))


def envelope_fields(raw: bytes) -> object:
    """The decoded outer JSON of an envelope, its nesting bounded before json recurses
    (it raises RecursionError past about a thousand levels); EnvelopeError says why not."""
    try:
        check_json_depth(raw, "the envelope")
        return json.loads(raw)
    except (ParseBoundError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EnvelopeError(f"not a JSON envelope: {exc}") from None


class Verifier:
    """Checks envelopes against the roster's identity keys."""

    def __init__(self, roster: Roster):
        self.roster = roster
        self._keys = {f"party/{p.name}": identity_public(p.identity_key) for p in roster.parties}
        self._keys.update({f"coordinator/{c.name}": identity_public(c.identity_key)
                           for c in roster.coordinators})

    def open(self, raw: bytes, topic: str) -> Verified:
        """Verify a raw envelope received on `topic`; raise EnvelopeError with the reason."""
        limit = self.roster.limits.max_message_bytes
        if len(raw) > limit:
            raise EnvelopeError(f"message of {len(raw)} bytes exceeds the {limit}-byte limit")
        outer = envelope_fields(raw)
        if not isinstance(outer, dict) or set(outer) != {"v", "sender", "payload", "sig"}:
            raise EnvelopeError("envelope must have exactly the fields v, sender, payload, sig")
        if type(outer["v"]) is not int or outer["v"] != 1:  # true == 1 in Python
            raise EnvelopeError(f"unsupported envelope version {outer['v']!r}")
        sender, payload, sig = outer["sender"], outer["payload"], outer["sig"]
        if not all(isinstance(x, str) for x in (sender, payload, sig)):
            raise EnvelopeError("envelope fields sender, payload and sig must be strings")
        key = self._keys.get(sender)
        if key is None:
            raise EnvelopeError(f"unknown sender {sender[:80]!r} (not in the roster)")
        try:
            key.verify(bytes.fromhex(sig), _signed_bytes(self.roster.cluster_id, topic, payload))
        except (ValueError, InvalidSignature):
            raise EnvelopeError(f"bad signature from {sender} on {topic}") from None
        try:
            check_json_depth(payload, "the payload")
        except ParseBoundError as exc:
            raise EnvelopeError(f"invalid message from {sender}: {exc}") from None
        try:
            message = message_adapter.validate_json(payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(map(str, first["loc"]))
            raise EnvelopeError(f"invalid message from {sender}: {where}: {first['msg']}") from None
        kind, name = sender.split("/", 1)
        return Verified(kind, name, message, digest_bytes(payload.encode()), raw)
