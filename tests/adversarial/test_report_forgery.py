"""Item 3: a signed price report is what the network computed, and nothing else.

The attacker is the curious coordinator: it holds the roster coordinator's real key, runs
real price jobs, and drives both FROST rounds itself (`frost-commit`, then `frost-sign` with
any message it likes).  It tries to get the quorum to sign a fabricated or altered report,
or a raw message dressed up as one, and to pass forged files to `mpcnet verify-report`.
Every such signature must be refused by the nodes (no share is produced), and every forged
file by `verify-report`; a genuine report still signs and verifies with OpenSSL.

The signed bytes and hashes are computed here independently of mpc_nodes.jobs.price_report.
"""

import copy
import hashlib
import json
import secrets
import time

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mpc_nodes.cli.app import main
from mpc_nodes.jobs.frost import frost_keygen, frost_sign
from mpc_nodes.jobs.options_csv import OptionBook
from mpc_nodes.jobs.pricing import price_params, run_price, sign_report

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SIGNERS = ["party0", "party1"]
DOMAIN = b"mpcnet/frost/price-report/v2\x00"  # docs/PRICING.md, "Signed price reports"
BOOK = OptionBook(is_call=[True, False], strikes=[3000.0, 2700.0], expiries=[0.25, 0.5],
                  quantities=None)
OTHER_BOOK = OptionBook(is_call=[True, True], strikes=[3300.0, 3600.0], expiries=[1.0, 1.0],
                        quantities=None)  # as many options: a mix of the two is well-formed
YEAR = 365 * 86400


def canon(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode()


def digest_of(obj) -> str:
    return hashlib.sha256(canon(obj)).hexdigest()


def forge(report: dict, *, drop=(), inputs=None, outputs=None, rehash=True, **fields) -> dict:
    """An altered copy of a report, with its hashes recomputed as a careful forger would."""
    r = copy.deepcopy(report)
    r.update(fields)
    if inputs:
        r["inputs"].update(inputs)
    if outputs:
        r["outputs"] = outputs
    if rehash:
        r["inputs_sha256"] = digest_of(r["inputs"])
        r["result_digest"] = digest_of(r["outputs"])
    for name in drop:
        r.pop(name)
    return r


def scaled_prices(output: dict, factor: float) -> dict:
    out = copy.deepcopy(output)
    out["values"]["price"] = [p * factor for p in out["values"]["price"]]
    return out


async def ask_to_sign(cc, key_id: str, message: bytes):
    """Both FROST rounds, driven by the attacker with a message of its choosing."""
    request = secrets.token_hex(8)
    committed = await cc.run("frost-commit", {"key_id": key_id, "request": request},
                             participants=SIGNERS)
    assert committed.ok, committed.error
    return await cc.run("frost-sign", {
        "key_id": key_id, "request": request, "message": message.hex(),
        "commitments": [committed.party_outputs[n] for n in SIGNERS]}, participants=SIGNERS)


def refused(outcome, why: str) -> None:
    """No signer produced a share, and each said why."""
    assert not outcome.ok, "the nodes signed it"
    assert not any("share" in (out or {}) for out in outcome.party_outputs.values())
    votes = {v.party: v for v in outcome.votes}
    for name in SIGNERS:
        assert not votes[name].accept and why in votes[name].reason, votes[name]


def verify_cli(tmp_path, signed: dict, *extra) -> tuple[int, str]:
    """`mpcnet verify-report FILE --json [...]` on a file the attacker wrote."""
    path = tmp_path / f"report-{secrets.token_hex(4)}.json"
    path.write_text(json.dumps(signed))
    run = CliRunner().invoke(main, ["verify-report", str(path), "--json", *extra])
    return run.exit_code, run.output


async def price(cc, book: OptionBook):
    params = price_params(book, "ETH", 3000.0, 0.03, greeks=True)
    outcome = await run_price(cc.c, params)
    assert outcome.ok, outcome.error
    return params, outcome


async def test_nodes_sign_only_the_report_they_rebuild(shared_cluster, curious_factory, tmp_path):
    cluster = shared_cluster()
    async with curious_factory(cluster) as cc:
        key = await frost_keygen(cc.c, "reports", purpose="reports")
        assert key.ok, key.error
        pk = key.output["public_key"]
        params, job = await price(cc, BOOK)
        _, other = await price(cc, OTHER_BOOK)

        # a genuine report of a real job signs, and verifies with OpenSSL and the CLI
        genuine = await sign_report(cc.c, "reports", params, job)
        report = genuine["report"]
        assert report["inputs"] == params and report["outputs"] == job.output
        assert report["inputs_sha256"] == digest_of(params)
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(pk)).verify(
            bytes.fromhex(genuine["signature"]), DOMAIN + canon(report))
        code, out = verify_cli(tmp_path, genuine, "--public-key", pk)
        assert code == 0 and json.loads(out)["ok"], out

        now = int(time.time())
        forgeries = {
            "no type": forge(report, drop=["type"]),
            "spot": forge(report, inputs={"spot": 3100.0}),
            "strikes": forge(report, inputs={"strikes": [2900.0, 2600.0]}),
            "inputs hash": forge(report, rehash=False, inputs_sha256="ab" * 32),
            "a year ahead": forge(report, timestamp=now + YEAR),
            "outputs": forge(report, outputs=scaled_prices(job.output, 1.01)),
            "other job id": forge(report, job_id=other.job_id),
            "unknown job id": forge(report, job_id=secrets.token_hex(16)),
            "other key id": forge(report, key_id="oracle-1"),
        }
        for name, forged in forgeries.items():
            outcome = await ask_to_sign(cc, "reports", DOMAIN + canon(forged))
            refused(outcome, "price report refused")
            # the same forgery under the genuine signature, as a file: refused as well
            code, out = verify_cli(tmp_path, genuine | {"report": forged})
            assert code == 1 and not json.loads(out)["ok"], (name, out)

        # the other job's real outputs under this job's id and inputs
        mixed = forge(report, outputs=other.output)
        refused(await ask_to_sign(cc, "reports", DOMAIN + canon(mixed)), "other outputs")

        # the genuine report, but encoded otherwise than canonically, or without its domain
        spaced = DOMAIN + json.dumps(report, sort_keys=True).encode()
        refused(await ask_to_sign(cc, "reports", spaced), "canonical encoding")
        refused(await ask_to_sign(cc, "reports", canon(report)), "domain tag")
        refused(await ask_to_sign(cc, "reports", DOMAIN + DOMAIN + canon(report)), "JSON")

        # the genuine signature with a file that names another key, or a key not expected
        code, out = verify_cli(tmp_path, genuine, "--public-key", "00" * 32)
        assert code == 1 and "another key" in json.loads(out)["error"]


async def test_raw_messages_and_reports_never_cross(shared_cluster, curious_factory,
                                                   tmp_path):
    cluster = shared_cluster()
    async with curious_factory(cluster) as cc:
        reports = await frost_keygen(cc.c, "reports-2", purpose="reports")
        raw = await frost_keygen(cc.c, "oracle-1")  # the default purpose: raw messages
        assert reports.ok and raw.ok, (reports.error, raw.error)
        raw_pk = raw.output["public_key"]
        params, job = await price(cc, BOOK)
        genuine = await sign_report(cc.c, "reports-2", params, job)
        report = genuine["report"]

        # a reports key signs no raw message
        refused(await ask_to_sign(cc, "reports-2", b"eth-usd 3141.59"), "price report refused")

        # a raw key refuses anything in the reserved namespace: a report under its domain,
        # fabricated or genuine, or any other typed-looking message
        fabricated = forge(report, drop=["type"], outputs=scaled_prices(job.output, 2.0))
        for message in (DOMAIN + canon(fabricated), DOMAIN + canon(report),
                        b"mpcnet/frost/anything"):
            refused(await ask_to_sign(cc, "oracle-1", message), "raw message refused")

        # what a raw key does sign never verifies as a report: the bare canonical report,
        # with or without its type, or a look-alike domain tag
        for forged, message in ((report, canon(report)),
                                (fabricated, canon(fabricated)),
                                (report, DOMAIN.upper() + canon(report)),
                                (report, b" " + DOMAIN + canon(report))):
            sig = (await frost_sign(cc.c, "oracle-1", message))["signature"]  # signed: raw
            Ed25519PublicKey.from_public_bytes(bytes.fromhex(raw_pk)).verify(
                bytes.fromhex(sig), message)
            code, out = verify_cli(tmp_path, {"report": forged, "signature": sig,
                                              "public_key": raw_pk, "signers": SIGNERS})
            assert code == 1 and not json.loads(out)["ok"], out
            code, out = verify_cli(tmp_path, {"report": forged, "signature": sig,
                                              "public_key": raw_pk, "signers": SIGNERS},
                                   "--public-key", raw_pk)
            assert code == 1 and not json.loads(out)["ok"], out
