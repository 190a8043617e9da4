"""Issue 13, the adversary test: one party deviates INSIDE its MPC sessions, and no job may
return a wrong output.

A real 3-party cluster (t = 1) in which one party runs a deviating engine
(tests/adversarial/deviating_engine.py): in the session a trial arms, its k-th message to a
peer (k random per trial) carries a random nonzero error in one value: an input share, a
reshare in a multiplication, a share of an opened value, a curve point it publishes, a
presignature share, a dealt bit or limb, a resharing's dealing or complaint.  Each trial runs
one job kind, and the job must either

- fail with a clear reason (a message, not a traceback; not a hang), the nodes alive and the
  next job fine, or
- succeed with an output that is exactly correct, judged by code other than ours: a signature
  verified by libsecp256k1 (coincurve) and eth-account, or OpenSSL for Ed25519; a new key
  consistent with its verification shares (the coordinator's check) and signing correctly
  afterwards; a refreshed or reshared key with the same public key, signing correctly
  afterwards; an aggregate equal to statistics.median/mean of the parties' private inputs
  (read from their files) to the protocol's fixed-point precision; prices and Greeks within
  the e2e test's tolerances of QuantLib's at the median vol, nothing breached.  A protocol
  that computes exactly (everything but MPyC's semi-honest fixed-point mean) must also give
  the very output of the kind's first, honest run.

A trial counts as deviated-and-aborted, deviated-and-harmless, deviated-and-wrong, or
no-deviation (k was past the session's last message).  Under `security: semi-honest` a wrong
aggregate or price is expected — MPyC is secure against passive parties only — and counted,
not failed; under `security: malicious` a wrong output of any kind fails the test.  A party a
failed job names as the culprit ("party1 sent ...", "invalid: party1", "dealer 1 sent ...",
or a party's report that another sent a bad signature share) must be the deviator under
malicious; in any mode such a reason
pointing at an honest party is counted and printed, and so is a success whose notes call an
honest party's result the dissenting one.  No party may report a crash ("internal error").
The deviating party changes between blocks of trials (party1, party0, party2); the kinds
take turns, in a random order each round.

MPCNET_DEVIATION_TRIALS: trials in all (default 54, about a minute and a half; `make soak`
runs 1,000), split over the security modes in which some trial kind runs;
MPCNET_DEVIATION_SEED: the seed (default fixed; printed); MPCNET_DEVIATION_SECURITY: the
modes to try (default "semi-honest,malicious"; under malicious only the kinds whose protocols
are hardened run); MPCNET_DEVIATION_KINDS: the trial kinds to run (default all).
"""

from __future__ import annotations

import collections
import os
import random
import re
import secrets
import statistics
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import coincurve
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eth_account import Account

from mpc_nodes.jobs.ecdsa import check_signature, ecdsa_keygen, presign, refresh, \
    sign_transaction
from mpc_nodes.jobs.evm import parse_transaction
from mpc_nodes.jobs.frost import frost_keygen, frost_sign
from mpc_nodes.jobs.pricing import price_params, run_price
from mpc_nodes.jobs.registry import kind_for
from mpc_nodes.jobs.reshare import check_reshared, held_key, record
from mpc_nodes.node.volsurface import SurfaceBook
from tests.adversarial.harness import Deviator, start_deviator
from tests.cluster_harness import eth_policy, wait_until, write_policies
from tests.test_e2e_cluster import private_inputs
from tests.test_e2e_pricing import RATE, SPOT, _assert_close, _days_book, _expected
from tests.test_e2e_reshare_malicious import reshare_in_place
from tests.test_pricing_numerics import quantlib

TRIALS = int(os.environ.get("MPCNET_DEVIATION_TRIALS") or 54)
SEED = int(os.environ.get("MPCNET_DEVIATION_SEED") or 13)
MODES = (os.environ.get("MPCNET_DEVIATION_SECURITY") or "semi-honest,malicious").split(",")
ONLY = [k for k in (os.environ.get("MPCNET_DEVIATION_KINDS") or "").split(",") if k]
RECIPIENT = "0x1111111111111111111111111111111111111111"
NEVER = 10**9  # a message number no session reaches: the session runs honestly
pytestmark = [pytest.mark.heavy, pytest.mark.e2e,
              pytest.mark.timeout(max(600, 12 * TRIALS))]


def _tx(nonce: int) -> dict:
    return {"chainId": 11155111, "nonce": nonce, "to": RECIPIENT, "value": "1", "data": "0x",
            "gas": 21000, "maxFeePerGas": 30 * 10**9, "maxPriorityFeePerGas": 10**9}


@dataclass
class Trial:
    """One trial: its id, the deviator, the calibrated session lengths, and what it saw."""

    id: str
    rng: random.Random
    c: object
    deviator: Deviator
    sends: dict  # (kind, step) -> most messages the deviator sent in such a session
    kind: str = ""
    armed: str = ""  # the step armed
    wrong: str | None = None  # why a job that succeeded gave a wrong output
    notes: list = field(default_factory=list)

    def arm(self, step: str) -> None:
        """Arm the deviator's next session, this trial's `step` (first time: honest, to
        learn how many messages such a session sends)."""
        key = (self.kind, step)
        known = self.sends.get(key)
        self.deviator.arm(self.id, self.rng.randrange(2**32),
                          [0, known + 1] if known is not None else NEVER)
        self.armed = step

    def deviated(self) -> bool:
        """Whether the armed session tampered a message."""
        return any(r["event"] == "tampered" for r in self.deviator.records(self.id))

    def taken(self, out) -> None:
        assert not self.deviator.disarm(), \
            f"trial {self.id}: no session took the arming: {out.error} {out.party_errors}"
        for r in self.deviator.records(self.id):
            if r["event"] == "ended":
                key = (self.kind, self.armed)
                self.sends[key] = max(self.sends.get(key, 0), r["sends"])


class Run:
    """The trials' shared state: the coordinator, the standing keys, transaction nonces, the
    references outputs are judged against, and each kind's first (honest) output."""

    def __init__(self, c, public_keys: dict, cluster, security: str):
        self.c, self.public_keys, self.nonce, self.n = c, public_keys, 0, 0
        self.security = security
        self.inputs = {name: private_inputs(cluster, name) for name in AGGREGATES.values()}
        self.book = _days_book()
        _, self.quantlib = _expected(cluster, self.book)  # the surfaces stay as they are
        self.quantlib_mean = _mean_references(cluster, self.book)
        self.honest: dict[str, object] = {}

    def fresh(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}-{self.n}-{secrets.token_hex(3)}"

    async def sign_checked(self, key_id: str, presigned: bool = False):
        """Sign a transaction; if it succeeds, check it independently under the key."""
        self.nonce += 1
        tx = _tx(self.nonce)
        out = await sign_transaction(self.c, key_id, tx, presigned=presigned)
        if out.ok:
            _verified(out.output, tx, self.public_keys[key_id])
        return out

    async def sign_honestly(self, key_id: str) -> None:
        out = await self.sign_checked(key_id)
        assert out.ok, f"an honest signature with {key_id} failed: {out.error}"


def _verified(out: dict, tx: dict, public_key: str) -> None:
    """libsecp256k1 on the digest, eth-account on the raw transaction, and the key's own."""
    assert out["public_key"] == public_key, "signed under another key"
    assert check_signature(out) is None
    r, s = int(out["r"], 16), int(out["s"], 16)
    der = coincurve.ecdsa.cdata_to_der(coincurve.ecdsa.deserialize_compact(
        r.to_bytes(32, "big") + s.to_bytes(32, "big")))
    digest = parse_transaction(tx).digest
    assert coincurve.PublicKey(bytes.fromhex(public_key)).verify(der, digest, hasher=None)
    assert Account.recover_transaction(bytes.fromhex(out["raw"])) == out["address"]


# -- the job kinds: each arms one session, runs, and checks a success exactly ------------------

async def ecdsa_keygen_trial(run: Run, t: Trial):
    key_id = run.fresh("dev-ecdsa")
    t.arm("keygen")
    out = await ecdsa_keygen(run.c, key_id)  # the coordinator checks the verification shares
    t.taken(out)
    if out.ok:
        run.public_keys[key_id] = out.output["public_key"]
        await run.sign_honestly(key_id)  # the shares combine to the key
    return out


async def frost_keygen_trial(run: Run, t: Trial):
    key_id = run.fresh("dev-frost")
    t.arm("keygen")
    out = await frost_keygen(run.c, key_id)
    t.taken(out)
    if out.ok:
        message = f"after trial {t.id}".encode()
        signed = await frost_sign(run.c, key_id, message)
        assert signed["public_key"] == out.output["public_key"]
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(out.output["public_key"])).verify(
            bytes.fromhex(signed["signature"]), message)  # OpenSSL; raises if wrong
    return out


async def refresh_trial(run: Run, t: Trial):
    t.arm("refresh")
    out = await refresh(run.c, "dev-standing")
    t.taken(out)
    if out.ok:
        assert out.output["public_key"] == run.public_keys["dev-standing"]
    await run.sign_honestly("dev-standing")  # refreshed or not, the key still signs
    return out


async def sign_trial(run: Run, t: Trial):
    t.arm("sign")
    out = await run.sign_checked("dev-standing")
    t.taken(out)
    return out


async def presigned_sign_trial(run: Run, t: Trial):
    step = t.rng.choice(["presign", "sign"])
    if step == "presign":
        t.arm(step)
    made = await presign(run.c, "dev-standing", 1)
    if step == "presign":
        t.taken(made)
        if not made.ok:
            return made
    assert made.ok, f"an honest presign failed: {made.error}"
    if step == "sign":
        t.arm(step)
    out = await run.sign_checked("dev-standing", presigned=True)
    if step == "sign":
        t.taken(out)
    return out


async def reshare_trial(run: Run, t: Trial):
    """key-reshare among the same parties (new shares of the same key, the next epoch)."""
    t.arm("key-reshare")
    _, out = await reshare_in_place(run.c, "dev-standing")
    t.taken(out)
    if out.ok:
        _, key, _ = await held_key(run.c, "dev-standing")
        assert key.public_key == run.public_keys["dev-standing"], "reshared to another key"
        assert (problem := check_reshared(run.c, key, out.output)) is None, problem
        record(run.c, "dev-standing", out.output)
    await run.sign_honestly("dev-standing")  # reshared or not, the key still signs
    return out


AGGREGATES = {"aggregate-median": "eth_vol_30d", "aggregate-mean": "btc_vol_30d"}  # (a node
# binds each private input to one aggregation: docs/SECURITY.md, attack 1)
ULP = 2.0 ** -32  # both aggregate protocols compute on 32 fraction bits


def _honest_output(run: Run, t: Trial, output, exact: bool) -> str | None:
    """Against the kind's first output of a run without a deviation (judged by the references
    too): a protocol that computes exactly must give the very same output every time."""
    if not t.deviated():
        run.honest.setdefault(t.kind, output)
    first = run.honest.get(t.kind, output)
    if exact and output != first:
        return f"{output} differs from the honest run's {first}"
    return None


async def aggregate_trial(run: Run, t: Trial):
    """aggregate of one private input per party: statistics.median or statistics.mean of the
    inputs as the parties' files hold them, to the protocol's precision: one unit of 2^-32
    (the inputs' rounding), four for MPyC's fixed-point mean (it also rounds 1/n and the
    product, by truncations that need not be deterministic)."""
    method = t.kind.removeprefix("aggregate-")
    t.arm("aggregate")
    out = await run.c.run_job("aggregate", {"input": AGGREGATES[t.kind], "method": method})
    t.taken(out)
    if out.ok:
        inputs = run.inputs[AGGREGATES[t.kind]]
        reference = statistics.median(inputs) if method == "median" else statistics.mean(inputs)
        value, mpyc_mean = out.output["value"], run.security != "malicious" and method == "mean"
        if abs(value - reference) > (4 if mpyc_mean else 1) * ULP:
            t.wrong = f"{method} {value!r}, statistics.{method} of the inputs {reference!r}"
        else:
            t.wrong = _honest_output(run, t, value, exact=not mpyc_mean)
    return out


async def price_trial(run: Run, t: Trial):
    """price of a small book (five options, Greeks), within the e2e test's tolerances of
    QuantLib, nothing breached: "price" at the median of the parties' ETH vols, where both
    paths select the median party's own rows (so also the honest run's exact rows);
    "price-mean" at the mean of their BTC vols (the secure evaluation, on a surface of its own:
    a node binds each surface version to one aggregation), whose truncations round up by a
    random few units of 2^-32, so not compared bit for bit."""
    mean = t.kind == "price-mean"
    t.arm("price")
    out = await run_price(run.c, price_params(run.book, "BTC" if mean else "ETH", SPOT, RATE,
                                              greeks=True, method="mean" if mean else "median"))
    t.taken(out)
    if out.ok:
        try:
            assert out.output["breached"] == [], f"breached {out.output['breached']}"
            _assert_close(out.output["values"], run.quantlib_mean if mean else run.quantlib)
        except AssertionError as exc:
            t.wrong = f"not QuantLib's prices: {exc}"
        else:
            t.wrong = _honest_output(run, t, out.output["values"], exact=not mean)
    return out


def _mean_references(cluster, book) -> list[dict]:
    """QuantLib at the mean of the parties' BTC vols for the book at SPOT."""
    vols = [SurfaceBook(cluster.dir / f"party{i}" / "data" / "surfaces").get("BTC")
            .vol(book.strikes, book.expiries, SPOT) for i in range(len(cluster.roster.parties))]
    mean = [sum(v) / len(v) for v in zip(*vols)]
    return [quantlib(c, SPOT, k, t, RATE, 0.0, float(v))
            for c, k, t, v in zip(book.is_call, book.strikes, book.expiries, mean)]


KINDS = {"ecdsa-keygen": ecdsa_keygen_trial, "frost-keygen": frost_keygen_trial,
         "refresh": refresh_trial, "ecdsa-sign": sign_trial,
         "presign+sign": presigned_sign_trial, "key-reshare": reshare_trial,
         "aggregate-median": aggregate_trial, "aggregate-mean": aggregate_trial,
         "price": price_trial, "price-mean": price_trial}
NEEDS = {"ecdsa-keygen": ["keygen", "sign"], "frost-keygen": ["keygen", "frost-commit",
                                                             "frost-sign"],
         "refresh": ["keygen", "refresh", "sign"], "ecdsa-sign": ["keygen", "sign"],
         "presign+sign": ["keygen", "presign", "sign"],
         "key-reshare": ["keygen", "key-reshare", "sign"],
         "aggregate-median": ["aggregate"], "aggregate-mean": ["aggregate"],
         "price": ["price"], "price-mean": ["price"]}  # the job kinds each trial runs
if ONLY:
    assert set(ONLY) <= set(KINDS), f"unknown trial kinds {set(ONLY) - set(KINDS)}"
    KINDS = {k: f for k, f in KINDS.items() if k in ONLY}
    NEEDS = {k: jobs for k, jobs in NEEDS.items() if k in ONLY}


def runnable(roster) -> dict[str, str]:
    """The trial kinds whose jobs run under the roster's security mode (under malicious, a
    kind not hardened yet is refused at every vote), and why each other one is skipped."""
    skipped = {}
    for kind, jobs in NEEDS.items():
        refused = [why for j in jobs if (why := kind_for(j).refused_under(roster))]
        if refused:
            skipped[kind] = refused[0]
    return skipped


# -- judging a failure ---------------------------------------------------------------------

_CHEAT = re.compile(r"(party\d+)[^.;:]{0,40}?\b(cheat\w*|misbehav\w*|deviat\w*|bad "
                    r"(?:share|contribution)|sent a (?:bad|wrong|invalid))", re.I)
_SENT = re.compile(r"(party\d+) sent\b")  # the checked protocols: "party1 sent a value ..."
_INVALID = re.compile(r"invalid: (party\d+(?:, party\d+)*)")  # "... shares; invalid: party1"
_DISAGREES = re.compile(r"(party\d+): its result \(\w+\) disagrees")
_OBSERVED = re.compile(r"(party\d+) sent a signature share that does not match")  # a report
_DEALT = re.compile(r"(party\d+(?:, party\d+)*) dealt an input")  # a non-bit's dealer
# the protocols that take no names say "session party j" or, in a resharing, "dealer j" and
# "parties [j]": session indices, which are roster indices in these all-party sessions
_SESSION_PARTY = re.compile(r"session party (\d+)\b[^.;:]{0,20}? sent\b")
_DEALERS = re.compile(r"dealers? \[?(\d+(?:, \d+)*)\]? (?:sent|opened)")
_PARTIES_SENT = re.compile(r"parties \[(\d+(?:, \d+)*)\] sent")
_BAD_SHARE = re.compile(r"verification share of (?:point|identifier) (\d+) is (?:inconsistent|"
                        r"not a valid)")  # a point (identifier) j is party j-1's


def named_cheaters(out) -> set[str]:
    """Parties a failed job's reasons call cheaters, or point at as the faulty one (a
    verification share that does not fit, a result that disagrees)."""
    texts = [out.error or "", *out.party_errors.values()]
    named = {m.group(1) for text in texts for m in _CHEAT.finditer(text)}
    named |= {m.group(1) for text in texts for m in _DISAGREES.finditer(text)}
    named |= {m.group(1) for text in texts for m in _SENT.finditer(text)}
    for listed in (_INVALID, _DEALT):
        named |= {n for text in texts for m in listed.finditer(text)
                  for n in m.group(1).split(", ")}
    for indices in (_SESSION_PARTY, _DEALERS, _PARTIES_SENT):
        named |= {f"party{j}" for text in texts for m in indices.finditer(text)
                  for j in m.group(1).split(", ")}
    named |= {f"party{int(m.group(1)) - 1}" for text in texts for m in _BAD_SHARE.finditer(text)}
    named |= set((out.output or {}).get("cheaters") or [])
    named |= {m.group(1) for seen in out.observations.values() for note in seen
              for m in _OBSERVED.finditer(note)}
    return named


def unclear(out) -> str | None:
    """Why a failed job's reason is not a clear one, or None."""
    texts = [out.error or "", *out.party_errors.values()]
    if not (out.error or "").strip():
        return "no reason given"
    if any("Traceback" in text for text in texts):
        return "a traceback as the reason"
    if any("did not finish within" in text or "hung" in text for text in texts):
        return "an honest party waited until its timeout (a hang)"
    return None


def _root_reasons(out) -> set[str]:
    """The distinct first causes in a failed job's reasons ("party0 stopped: " messengers
    taken off), numbers, ids and hex taken out, to count alike ones together."""
    texts = list(out.party_errors.values()) or [out.error or ""]
    shapes = set()
    for text in texts:
        text = re.sub(r"^(?:party\d+ stopped: )+(?:protocol error: \w+: )?", "", text)
        text = re.sub(r"^protocol error: \w+: ", "", text)
        text = re.sub(r"[0-9a-f]{8,}", "…", text)
        shapes.add(re.sub(r"\b\d+(\.\d+)?\b", "#", text)[:150])
    return shapes


async def _restarted(cluster, c, i: int, start):
    """Stop party i, run `start`, and wait until the coordinator hears the new process."""
    name = cluster.roster.parties[i].name
    before = getattr(c.presence.get(name), "boot_id", None)
    cluster.stop_node(i)
    started = start()
    await wait_until(lambda: name in c.online() and c.presence[name].boot_id != before, 60,
                     f"{name} back online")
    await cluster.wait_online(c)
    return started


# -- the run -------------------------------------------------------------------------------

def _trials(mode: str) -> int:
    """This mode's share of the trials: they are split over the modes in which some trial
    kind runs (a mode that refuses every kind gets none)."""
    live = [m for m in MODES if len(runnable(SimpleNamespace(security=m, version=0))) < len(NEEDS)]
    return TRIALS // len(live) + (live.index(mode) < TRIALS % len(live)) if mode in live else 0


@pytest.mark.parametrize("security", MODES)
async def test_single_deviations_never_give_a_wrong_output(make_cluster, security):
    trials = _trials(security)
    skipped = runnable(SimpleNamespace(security=security, version=0))
    if not trials:
        pytest.skip(f"no trial kind runs under security: {security} yet: "
                    + "; ".join(f"{k}: {why}" for k, why in skipped.items()))
    kinds = [k for k in KINDS if k not in skipped]
    for kind, why in skipped.items():
        print(f"\nskipped {kind}: {why}")
    cluster = make_cluster(start=False, session_timeout_s=30.0, security=security)
    write_policies(cluster, eth_policy(RECIPIENT, daily_cap_wei=10**24))
    cluster.start_broker()
    for i in range(3):
        cluster.start_node(i)
    rng = random.Random(SEED)
    counts = {k: collections.Counter() for k in kinds}
    reasons = collections.Counter()
    misnamed = collections.Counter()  # failures whose reasons point at an honest party
    noted = collections.Counter()
    problems: list[str] = []
    sends: dict = {}
    started = time.monotonic()
    blocks = [(i, trials * (b + 1) // 3 - trials * b // 3) for b, i in enumerate((1, 0, 2))]
    schedule = []  # every kind once per round, in a random order: a small sample covers all
    while len(schedule) < trials:
        schedule += rng.sample(kinds, len(kinds))
    schedule.reverse()
    async with cluster.coordinator() as c:
        run = None
        for index, size in blocks:
            if size == 0:
                continue
            deviator = await _restarted(cluster, c, index, lambda: start_deviator(cluster, index))
            if run is None:
                run = Run(c, {}, cluster, security)
                made = await ecdsa_keygen(c, "dev-standing")
                assert made.ok, made.error
                run.public_keys["dev-standing"] = made.output["public_key"]
            for _ in range(size):
                kind = schedule.pop()
                t = Trial(f"{SEED}-{run.n}-{kind}", random.Random(rng.random()), c, deviator,
                          sends, kind)
                run.n += 1
                out = await KINDS[kind](run, t)  # judges a success (asserts, or t.wrong)
                deviated = t.deviated()
                counts[kind]["no-deviation" if not deviated else "deviated-and-aborted"
                             if not out.ok else "deviated-and-wrong" if t.wrong else
                             "deviated-and-harmless"] += 1
                where = f"trial {t.id} ({deviator.name} deviating in {t.armed})"
                tampered = [r["what"] for r in deviator.records(t.id) if r["event"] == "tampered"]
                print(f"{where}: {'ok' if out.ok else out.error} {tampered}"
                      + (f" WRONG: {t.wrong}" if t.wrong else "")
                      + (f" (notes: {out.party_notes})" if out.party_notes else ""))
                if t.wrong and (security == "malicious" or not deviated):
                    problems.append(f"{where}: a wrong output accepted: {t.wrong}")
                if crashed := [f"{p}: {e}" for p, e in {**out.party_notes,
                                                         **out.party_errors}.items()
                               if "internal error" in e]:  # a node's bug, not a reason
                    problems.append(f"{where}: a job kind crashed: {crashed}")
                if out.ok and (wrong := {m.group(1) for seen in out.observations.values()
                                         for note in seen for m in _OBSERVED.finditer(note)}
                               - {deviator.name}):
                    problems.append(f"{where}: a party reports honest {sorted(wrong)} sent a"
                                    f" bad signature share")
                if out.ok and {n for n, note in out.party_notes.items()
                               if _DISAGREES.match(f"{n}: {note}")} - {deviator.name}:
                    noted[kind] += 1  # a success whose notes call an honest result dissenting
                if not out.ok:
                    for reason in _root_reasons(out):
                        reasons[(kind, reason)] += 1
                    if not deviated:
                        problems.append(f"{where}: failed without a deviation: {out.error}")
                    if why := unclear(out):
                        problems.append(f"{where}: {why}: {out.error} {out.party_errors}")
                    if wrong := named_cheaters(out) - {deviator.name}:
                        misnamed[kind] += 1
                        if security == "malicious":
                            problems.append(f"{where}: honest {sorted(wrong)} named a cheater:"
                                            f" {out.error}")
                dead = [i for i, proc in cluster.nodes.items() if proc.poll() is not None]
                assert not dead, f"{where}: party {dead} exited"
            await _restarted(cluster, c, index, lambda: cluster.start_node(index))  # honest
    elapsed = time.monotonic() - started
    print(f"\ndeviation trials: {trials} in {elapsed:.0f} s, seed {SEED}, security {security}")
    for kind, counter in counts.items():
        print(f"  {kind:16} " + ", ".join(f"{k} {counter[k]}" for k in (
            "deviated-and-aborted", "deviated-and-harmless", "no-deviation")) + (
            f", deviated-and-wrong {counter['deviated-and-wrong']} (semi-honest: expected,"
            f" MPyC is passive)" if counter["deviated-and-wrong"] else ""))
    print("  failures pointing at an honest party: " + (", ".join(
        f"{kind} {n}" for kind, n in misnamed.items()) or "none"))
    print("  successes whose notes call an honest party's result dissenting: " + (", ".join(
        f"{kind} {n}" for kind, n in noted.items()) or "none"))
    print("  failure reasons:")
    for (kind, reason), n in reasons.most_common():
        print(f"    {n:4} {kind}: {reason}")
    assert not problems, "\n".join(problems)
