"""The coordinator's judgement of a signing job whose participants did not all report
(issue 11, item 1): a signature reported alike by more than t participants that verifies is
the job's result, with notes naming the others; anything less, or a forged or invalid
output, still fails the job.  Signatures are made here with coincurve, independently of the
code under test."""

import coincurve

from mpc_nodes.client.coordinator import Coordinator, JobOutcome
from mpc_nodes.jobs.evm import parse_transaction, signed_transaction
from mpc_nodes.jobs.registry import kind_for
from mpc_nodes.jobs.keycheck import eth_address
from mpc_nodes.wire.messages import JobResult, output_digest
from tests.test_faults import transfer

SIGN = kind_for("sign")
PARAMS = {"key_id": "vault-1", "tx": transfer(0)}
SUFFICES = (2, lambda out: SIGN.verify_output(SIGN.parse(PARAMS), out))  # t = 1


def signature_output(secret: int = 7, tx=None) -> dict:
    key = coincurve.PrivateKey(secret.to_bytes(32, "big"))
    public_key = key.public_key.format(compressed=True).hex()
    parsed = parse_transaction(tx or PARAMS["tx"])
    sig = key.sign_recoverable(parsed.digest, hasher=None)
    r, s, v = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]
    raw, tx_hash = signed_transaction(parsed, r, s, v)
    return {"key_id": "vault-1", "address": eth_address(public_key), "public_key": public_key,
            "r": hex(r), "s": hex(s), "y_parity": v, "raw": raw.hex(), "hash": tx_hash.hex(),
            "digest": parsed.digest.hex()}


def ok(output, digest=None) -> JobResult:
    return JobResult(job_id="a" * 32, request_digest="b" * 64, ok=True, output=output,
                     output_digest=digest or output_digest(output))


def failed(error) -> JobResult:
    return JobResult(job_id="a" * 32, request_digest="b" * 64, ok=False, error=error)


def judge(results, failures=None) -> JobOutcome:
    outcome = JobOutcome("a" * 32, "sign", PARAMS, ok=False,
                         participants=["party0", "party1", "party2"])
    Coordinator._judge(outcome, results, True, failures or {}, SUFFICES)
    return outcome


def test_two_alike_valid_signatures_succeed_with_a_note_on_the_lost_party():
    out = signature_output()
    outcome = judge({"party0": ok(out), "party1": ok(out)},
                    {"party2": "restarted during the job and lost it"})
    assert outcome.ok and outcome.output == out and not outcome.party_errors
    assert outcome.party_notes == {"party2": "restarted during the job and lost it"}


def test_one_signature_alone_is_not_enough():
    outcome = judge({"party0": ok(signature_output()), "party1": failed("lost connection")})
    assert not outcome.ok and set(outcome.party_errors) == {"party1", "party2"}


def test_alike_signatures_that_do_not_verify_fail():
    out = dict(signature_output(), digest="00" * 32)  # not the requested transaction
    outcome = judge({"party0": ok(out), "party1": ok(out)}, {"party2": "lost"})
    assert not outcome.ok
    assert "not a signature of the requested transaction" in outcome.party_errors["party0"]


def test_a_signature_by_another_key_fails():
    out = dict(signature_output(secret=9))
    out["public_key"] = signature_output()["public_key"]  # claims the vault's key
    outcome = judge({"party0": ok(out), "party1": ok(out)}, {"party2": "lost"})
    assert not outcome.ok and "does not verify" in outcome.party_errors["party0"]


def test_a_forged_digest_or_a_dissent_still_fails_the_job():
    out, other = signature_output(), signature_output(tx=transfer(1))
    forged = judge({"party0": ok(out), "party1": ok(out, digest="c" * 64)}, {"party2": "lost"})
    assert not forged.ok and "forged" in forged.party_errors["party1"]
    dissent = judge({"party0": ok(out), "party1": ok(other)}, {"party2": "lost"})
    assert not dissent.ok and {"party0", "party1"} <= set(dissent.party_errors)


def test_kinds_without_a_self_evident_output_need_every_participant():
    out = signature_output()
    outcome = JobOutcome("a" * 32, "sign", PARAMS, ok=False,
                         participants=["party0", "party1", "party2"])
    Coordinator._judge(outcome, {"party0": ok(out), "party1": ok(out)}, True,
                       {"party2": "lost"}, None)
    assert not outcome.ok and outcome.party_errors == {"party2": "lost"}
