"""Signed envelopes: what verifies, and every way a message is refused."""

import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from mpc_nodes import governance
from mpc_nodes.config import CoordinatorInfo, Limits, PartyInfo, Roster
from mpc_nodes.wire.envelope import EnvelopeError, Verifier, seal
from mpc_nodes.wire.messages import JobRequest, Vote
from mpc_nodes.pki import public_hex

KEYS = {name: Ed25519PrivateKey.generate() for name in ("party0", "party1", "party2", "coord")}
TOPIC = "mpcnet/test-cluster/jobs"


def roster(**limits):
    parties = [PartyInfo(index=i, name=f"party{i}", host="127.0.0.1", mpc_port=20000 + i,
                         identity_key=public_hex(KEYS[f"party{i}"]), tls_cert="-") for i in range(3)]
    return Roster(cluster_id="test-cluster", threshold=1, parties=parties,
                  coordinators=[CoordinatorInfo(name="coord", identity_key=public_hex(KEYS["coord"]))],
                  ca_cert="-", limits=Limits(**limits))


def job():
    now = time.time()
    return JobRequest(job_id="ab" * 16, kind="ping", params={"rounds": 1}, coordinator="coord",
                      issued_at=now, expires_at=now + 30, **governance.request_binding(roster()))


def test_roundtrip_and_digest():
    sealed = seal(KEYS["coord"], "coordinator/coord", "test-cluster", TOPIC, job())
    v = Verifier(roster()).open(sealed.raw, TOPIC)
    assert (v.sender_kind, v.sender, v.message) == ("coordinator", "coord", job().model_copy(
        update={"issued_at": v.message.issued_at, "expires_at": v.message.expires_at}))
    assert v.payload_digest == sealed.payload_digest


@pytest.mark.parametrize("mutate, reason", [
    (lambda o: o.update(payload=o["payload"].replace('"rounds":1', '"rounds":2')), "bad signature"),
    (lambda o: o.update(sig="00" * 64), "bad signature"),
    (lambda o: o.update(sig="zz"), "bad signature"),
    (lambda o: o.update(sender="coordinator/eve"), "unknown sender"),
    (lambda o: o.update(sender="party/party1"), "bad signature"),
    (lambda o: o.update(v=2), "unsupported envelope version"),
    (lambda o: o.pop("sig"), "exactly the fields"),
    (lambda o: o.update(payload=7), "must be strings"),
])
def test_tampering_is_refused_with_a_reason(mutate, reason):
    outer = json.loads(seal(KEYS["coord"], "coordinator/coord", "test-cluster", TOPIC, job()).raw)
    mutate(outer)
    with pytest.raises(EnvelopeError, match=reason):
        Verifier(roster()).open(json.dumps(outer).encode(), TOPIC)


def test_signature_is_bound_to_topic_and_cluster():
    sealed = seal(KEYS["coord"], "coordinator/coord", "test-cluster", TOPIC, job())
    with pytest.raises(EnvelopeError, match="bad signature"):
        Verifier(roster()).open(sealed.raw, "mpcnet/test-cluster/nodes/party0/votes")
    other = seal(KEYS["coord"], "coordinator/coord", "other-cluster", TOPIC, job())
    with pytest.raises(EnvelopeError, match="bad signature"):
        Verifier(roster()).open(other.raw, TOPIC)


def test_oversized_and_invalid_messages():
    big = b"x" * 5000
    with pytest.raises(EnvelopeError, match="exceeds the 4096-byte limit"):
        Verifier(roster(max_message_bytes=4096)).open(big, TOPIC)
    vote = Vote(job_id="ab" * 16, request_digest="cd" * 32, accept=True, code_digest="ef" * 32,
                version="1")
    sealed = seal(KEYS["party0"], "party/party0", "test-cluster", TOPIC, vote)
    assert Verifier(roster()).open(sealed.raw, TOPIC).message == vote
    outer = json.loads(sealed.raw)
    payload = json.loads(outer["payload"]) | {"accept": "maybe"}
    outer["payload"] = json.dumps(payload)
    outer["sig"] = KEYS["party0"].sign(b"mpcnet-envelope-v1\ntest-cluster\n" + TOPIC.encode()
                                       + b"\n" + outer["payload"].encode()).hex()
    with pytest.raises(EnvelopeError, match="invalid message from party/party0: vote.accept"):
        Verifier(roster()).open(json.dumps(outer).encode(), TOPIC)


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_arbitrary_bytes_only_ever_raise_envelope_error(raw):
    with pytest.raises(EnvelopeError):
        Verifier(roster()).open(raw, TOPIC)
