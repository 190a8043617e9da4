"""Job kinds for FROST(Ed25519) signing (RFC 9591): the two rounds, each a bus job without an
MPC session (a LocalKind), in which every signer reports its own part (the output is not
shared).

frost-commit  each selected signer draws fresh nonces, keeps them in its memory only
              (keyshare.onetime: never on disk, so no snapshot or backup can bring them
              back) and reports its commitment.
frost-preprocess  round one ahead of time (RFC 9591 allows it): each party draws `count`
              nonce pairs, keeps them in memory as frost-commit does, and reports their
              commitments, which the coordinator's ledger hands out one per signature.
frost-sign    each signer checks the request (its key, its own commitment exactly as it
              made it, the signer set), takes its nonces out of memory (so never used
              twice) and reports its share.  A node restarted in between has lost them: it
              refuses, and the coordinator starts again with fresh commitments.

Nonces are bound to the key epoch and to `frost/<request>/<signer names>` (round one of a
signing) or to `frost/preprocessed` (usable with any signer set the commitment list names,
only by a frost-sign that says it uses preprocessed commitments); their secret id is
derived from the commitment, so a request naming another commitment finds nothing.
Unused nonces expire after the cluster's request lifetime, preprocessed ones after
PREPROCESSED_NONCE_LIFETIME_S.
What a key signs depends on its purpose, fixed at keygen (mpc_nodes.jobs.frost_domain): a
"reports" key signs only the price report this node rebuilds from its own record of the
job; a "raw" key signs any message an authorised coordinator asks for, except one in the
reserved namespace of typed domains (raw messages are not checked against policy.yaml,
which describes EVM transactions).

The coordinator's side (below) follows RFC 9591: key generation checked against the verification
shares and recorded in the ledger, and signing over the bus as the RFC's coordinator --
commitments, signature shares, each share verified against its signer's verification share,
cheaters named and excluded, the aggregate checked by OpenSSL.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import Field

from keyshare import KeyMeta, KeyShareError
from protocols import frost
from protocols.ed25519_dkg import scalar

from mpc_nodes.client.ledger import Ledger
from mpc_nodes.jobs import committee
from mpc_nodes.jobs.ecdsa import FROST_SCHEME, boot_ids, load_share
from mpc_nodes.jobs.frost_domain import DEFAULT_PURPOSE, DomainError, check_raw, purpose_of
from mpc_nodes.jobs.keycheck import reported_key_problem
from mpc_nodes.jobs.kind import (JobRejected, KeyId, LocalKind, LocalStep, NodeContext, P, R,
                                 _Params)
from mpc_nodes.jobs.price_report import ReportError, rebuild_for_signing
from mpc_nodes.models import StrictModel
from mpc_nodes.node.context import PREPROCESSED_NONCE_LIFETIME_S

if TYPE_CHECKING:  # the coordinator imports the job kinds
    from mpc_nodes.client.coordinator import Coordinator, JobOutcome


RequestId = Field(pattern=r"^[0-9a-f]{16}$")
Hex32 = Field(pattern=r"^[0-9a-f]{64}$")
MAX_MESSAGE_BYTES = 64 * 1024

def identifier(meta: KeyMeta, roster, name: str) -> int:
    """A party's FROST identifier for a key: its Shamir point in the key's committee."""
    return committee.point(meta, roster, name)


PREPROCESSED = "frost/preprocessed"
"""What preprocessed nonces are bound to: no request, no signer set (the commitment list of
the signing that uses one names both)."""
MAX_PREPROCESS = 100  # nonce pairs per party and frost-preprocess job


def binding(request: str, names: list[str]) -> str:
    """What a signer's nonces are bound to: this signing request and this signer set."""
    return f"frost/{request}/{','.join(names)}"


def nonce_id(c: frost.SigningCommitment) -> str:
    """The secret id of the nonces behind a commitment (the same on both rounds)."""
    return hashlib.sha256(frost.encode_identifier(c.identifier) + c.hiding
                          + c.binding).hexdigest()[:16]


def entry_id(entry: dict) -> str:
    """The nonce id (as the nodes name it) of a ledger entry {identifier, hiding, binding}."""
    return nonce_id(frost.SigningCommitment(entry["identifier"], bytes.fromhex(entry["hiding"]),
                                            bytes.fromhex(entry["binding"])))


@dataclass(frozen=True)
class FrostShare:
    """This party's committed share of a FROST key, as a scalar (kept out of reprs)."""

    meta: KeyMeta
    secret: bytes = field(repr=False)


def load_frost_key(ctx: NodeContext, key_id: str) -> FrostShare:
    """This party's committed FROST share, refused unless it matches its published
    verification share."""
    meta, share = load_share(ctx, key_id, FROST_SCHEME)
    sk = scalar(share)
    if frost.verification_share(sk).hex() != committee.own_verification_share(
            meta, ctx.roster, ctx.party.name):
        raise JobRejected(f"stored share of key {key_id} does not match this party's"
                          f" verification share: refusing to use it")
    return FrostShare(meta, sk)


class _Signing(LocalKind[P, R]):
    def output_is_shared(self, params):
        return False  # each signer reports its own part

    def min_parties(self, roster):
        return roster.threshold + 1  # FROST needs t+1 signers, not an honest majority


class CommitParams(_Params):
    key_id: str = KeyId
    request: str = RequestId


class FrostCommit(_Signing[CommitParams, FrostShare]):
    """Round one: fresh nonces, kept in memory as a one-time secret; report the commitment."""

    name = "frost-commit"
    params_model = CommitParams

    def prepare(self, ctx, params) -> FrostShare:
        return load_frost_key(ctx, params.key_id)

    def check_vote(self, ctx, job):
        if ctx.nonces.room() < 1:
            raise JobRejected(f"this node already holds {ctx.nonces.capacity} unused nonces")

    def plan(self, ctx, job):
        self.check_vote(ctx, job)  # again: other jobs may have filled the pool meanwhile
        return LocalStep()

    def run_locally(self, ctx, job):
        key, params = job.prepared, job.params
        nonces, c = frost.commit(identifier(key.meta, ctx.roster, ctx.party.name), key.secret)
        try:
            ctx.nonces.add(params.key_id, nonce_id(c), key.meta.epoch,
                           binding(params.request, [p.name for p in job.participants]),
                           {"hiding": nonces.hiding.hex(), "binding": nonces.binding.hex()})
        except KeyShareError as exc:
            raise JobRejected(str(exc)) from None
        return {"identifier": c.identifier, "hiding": c.hiding.hex(), "binding": c.binding.hex()}


class PreprocessParams(_Params):
    key_id: str = KeyId
    count: int = Field(ge=1, le=MAX_PREPROCESS)


class FrostPreprocess(_Signing[PreprocessParams, FrostShare]):
    """Round one ahead of time: `count` nonce pairs, each kept in memory as a one-time secret
    bound to the key epoch and PREPROCESSED; report their commitments."""

    name = "frost-preprocess"
    params_model = PreprocessParams

    def prepare(self, ctx, params) -> FrostShare:
        return load_frost_key(ctx, params.key_id)

    def check_vote(self, ctx, job):
        if ctx.nonces.room() < job.params.count:
            raise JobRejected(f"no room for {job.params.count} more nonces on this node"
                              f" ({ctx.nonces.capacity} at most)")

    def plan(self, ctx, job):
        self.check_vote(ctx, job)  # again: other jobs may have filled the pool meanwhile
        return LocalStep()

    def run_locally(self, ctx, job):
        key, params = job.prepared, job.params
        own = identifier(key.meta, ctx.roster, ctx.party.name)
        made = [frost.commit(own, key.secret) for _ in range(params.count)]
        if ctx.nonces.room() < len(made):  # all or none: a commitment reported is held
            raise JobRejected(f"no room left for {len(made)} more nonces on this node")
        for nonces, c in made:
            try:
                ctx.nonces.add(params.key_id, nonce_id(c), key.meta.epoch, PREPROCESSED,
                               {"hiding": nonces.hiding.hex(), "binding": nonces.binding.hex()},
                               lifetime_s=PREPROCESSED_NONCE_LIFETIME_S)
            except KeyShareError as exc:
                raise JobRejected(str(exc)) from None
        return {"identifier": own, "epoch": key.meta.epoch,
                "commitments": [{"hiding": c.hiding.hex(), "binding": c.binding.hex()}
                                for _, c in made]}


class Commitment(StrictModel):
    identifier: int = Field(ge=1, le=1000)
    hiding: str = Hex32
    binding: str = Hex32


class SignParams(_Params):
    key_id: str = KeyId
    request: str = RequestId
    message: str = Field(pattern=r"^(?:[0-9a-f]{2})*$", max_length=2 * MAX_MESSAGE_BYTES)
    commitments: list[Commitment] = Field(min_length=1, max_length=256)
    preprocessed: bool = Field(default=False, description="the commitments are preprocessed"
                               " ones (frost-preprocess), not round one of this request")


@dataclass(frozen=True)
class SigningInputs:
    """What a frost-sign job is checked and signed with, read once (FrostSign.prepare)."""

    key: FrostShare
    commitments: list[frost.SigningCommitment]
    own: frost.SigningCommitment  # this party's, in the list
    signers: list[str]  # the parties of the commitment list, in identifier order
    binding: str  # what this party's nonces behind `own` must be bound to


class FrostSign(_Signing[SignParams, SigningInputs]):
    """Round two: this signer's signature share over the message and commitment list."""

    name = "frost-sign"
    params_model = SignParams

    def prepare(self, ctx, params) -> SigningInputs:
        """Key, commitment list, own commitment and the binding; JobRejected if unusable."""
        key = load_frost_key(ctx, params.key_id)
        meta = key.meta
        try:
            clist = [frost.SigningCommitment(c.identifier, bytes.fromhex(c.hiding),
                                             bytes.fromhex(c.binding)) for c in params.commitments]
        except frost.FrostError as exc:
            raise JobRejected(f"invalid commitment: {exc}") from None
        ids = [c.identifier for c in clist]
        signers = dict(enumerate(committee.holders(meta, ctx.roster), start=1))
        if len(set(ids)) != len(ids) or not set(ids) <= set(signers):
            raise JobRejected(f"commitment identifiers {ids} are not distinct holders of key"
                              f" {meta.key_id}")
        if len(ids) < meta.t + 1:
            raise JobRejected(f"{len(ids)} signers; key {meta.key_id} needs {meta.t + 1}")
        own = [c for c in clist if c.identifier == identifier(meta, ctx.roster, ctx.party.name)]
        if not own:
            raise JobRejected("this party's commitment is not in the list")
        names = [signers[i] for i in sorted(ids)]
        bound = PREPROCESSED if params.preprocessed else binding(params.request, names)
        return SigningInputs(key, clist, own[0], names, bound)

    @staticmethod
    def _check_nonce(ctx, job) -> None:
        """Our nonces behind our commitment are still here, unused (on the event loop: the
        pool is not thread-safe)."""
        inputs = job.prepared
        try:  # a restarted node has lost them: the coordinator retries with fresh commitments
            ctx.nonces.check(job.params.key_id, nonce_id(inputs.own), inputs.key.meta.epoch,
                             inputs.binding)
        except KeyShareError as exc:
            raise JobRejected(f"no usable nonce behind this party's commitment: {exc}") from None

    def _check_message(self, ctx, params, meta) -> None:
        """Refuse a message the key's purpose does not allow (at the vote and again right
        before the nonce is taken: a report's timestamp window may have passed)."""
        message, purpose = bytes.fromhex(params.message), purpose_of(meta.purpose)
        try:
            if purpose == "reports":
                rebuild_for_signing(message, ctx.roster.cluster_id, meta.key_id,
                                    ctx.path(ctx.config.data_dir) / "audit.log")
            else:
                check_raw(message)
        except ReportError as exc:
            raise JobRejected(f"price report refused: key {meta.key_id} signs only price"
                              f" reports this node rebuilds itself: {exc}") from None
        except DomainError as exc:
            raise JobRejected(f"raw message refused: {exc}") from None

    def check_vote(self, ctx, job):
        self._check_nonce(ctx, job)
        self._check_message(ctx, job.params, job.prepared.key.meta)

    def plan(self, ctx, job):
        self._check_nonce(ctx, job)
        names = [p.name for p in job.participants]
        if names != job.prepared.signers:
            raise JobRejected(f"participants {names} are not the signers of the commitment"
                              f" list {job.prepared.signers}")
        return LocalStep()

    def run_locally(self, ctx, job):
        """The signature share: made here, once, with nonces taken out of memory first."""
        params, inputs = job.params, job.prepared
        meta, own = inputs.key.meta, inputs.own
        self._check_message(ctx, params, meta)
        try:  # out of memory before the share is computed: never taken twice
            secret = ctx.nonces.take(params.key_id, nonce_id(own), meta.epoch, inputs.binding)
        except KeyShareError as exc:
            raise JobRejected(f"nonce refused: {exc}") from None
        nonces = frost.SigningNonces(bytes.fromhex(secret["hiding"]),
                                     bytes.fromhex(secret["binding"]))
        try:
            z = frost.sign(own.identifier, inputs.key.secret, bytes.fromhex(meta.public_key),
                           nonces, bytes.fromhex(params.message), inputs.commitments,
                           min_signers=meta.t + 1)
        except frost.FrostError as exc:
            raise JobRejected(f"cannot sign: {exc}") from None
        return {"identifier": own.identifier, "share": z.hex()}


FROST_JOBS = [FrostCommit(), FrostPreprocess(), FrostSign()]


# -- the coordinator's side ------------------------------------------------------------

from mpc_nodes.errors import JobFailed, UsageError  # noqa: E402


class FrostSigningError(JobFailed):
    """No signature: too few usable signers, or a pinned signer failed or cheated.
    `excluded` names each party left out, with the reason; `outcome` is the signing as one
    outcome (sign_message)."""

    def __init__(self, message: str, excluded: dict[str, str], outcome: JobOutcome):
        super().__init__(outcome, message)
        self.excluded = excluded

    @property
    def reasons(self) -> dict[str, str]:
        return self.excluded


async def frost_keygen(c: Coordinator, key_id: str, label: str = "",
                       progress=lambda text: None, purpose: str = DEFAULT_PURPOSE) -> JobOutcome:
    """Dealer-free t-of-n FROST key among all parties, for one purpose ("raw" messages or
    price "reports", mpc_nodes.jobs.frost_domain); checked, then recorded in the ledger."""
    outcome = await c.run_job("keygen", {"key_id": key_id, "scheme": FROST_SCHEME,
                                         "label": label, "purpose": purpose},
                              progress=progress)
    if outcome.ok and (problem := reported_key_problem(outcome.output, c.roster)):
        outcome.ok, outcome.error = False, problem
    if outcome.ok and outcome.output.get("purpose") != purpose:
        outcome.ok = False
        outcome.error = f"the parties stored purpose {outcome.output.get('purpose')!r}," \
                        f" not {purpose!r}"
    if outcome.ok:
        ledger = Ledger(c.config_path)
        ledger.key(key_id).update({k: outcome.output[k] for k in (
            "scheme", "public_key", "epoch", "t", "n", "verification_shares", "purpose",
            "holders")})
        ledger.save()
    return outcome


def _refusals(outcome: JobOutcome, names: list[str]) -> dict[str, str]:
    """The signers a failed round names: refused, silent, or failed while running."""
    votes = {v.party: v for v in outcome.votes}
    bad = {}
    for name in names:
        v = votes.get(name)
        if v is None:
            bad[name] = "no vote (offline or unreachable)"
        elif not v.accept:
            bad[name] = f"refused: {v.reason}"
        elif name in outcome.party_errors:
            bad[name] = f"failed: {outcome.party_errors[name]}"
    return bad


class _Attempt:
    """One signing with a fixed signer set: both rounds, or only round two with
    `preprocessed` commitments (signer name -> the ledger's entry)."""

    def __init__(self, c: Coordinator, key: dict, key_id: str, message: bytes,
                 ids: list[int], progress, preprocessed: dict[str, dict] | None = None):
        self.c, self.key_id, self.message, self.ids = c, key_id, message, ids
        self.progress, self.preprocessed = progress, preprocessed
        self.pk = bytes.fromhex(key["public_key"])
        self.vshares = {i + 1: bytes.fromhex(v) for i, v in enumerate(key["verification_shares"])}
        self.names = [key_holders(c, key)[i - 1] for i in ids]
        self.bad: dict[str, str] = {}
        self.fatal: str | None = None  # a failure that no other signer set avoids
        self.last: JobOutcome | None = None  # the latest round
        self.jobs: list[str] = []
        self.timings: dict[str, float] = {}

    async def _round(self, kind: str, params: dict) -> dict[str, dict] | None:
        t = asyncio.get_running_loop().time()
        outcome = await self.c.run_job(kind, params, only=self.names, progress=self.progress)
        self.timings[f"{kind}_s"] = asyncio.get_running_loop().time() - t
        self.last = outcome
        self.jobs.append(outcome.job_id)
        if outcome.ok:
            return outcome.party_outputs
        self.bad = _refusals(outcome, self.names)
        if not self.bad:
            self.fatal = f"{kind} failed: {outcome.error}"
        return None

    async def run(self) -> bytes | None:
        """The signature, or None with `bad` naming the signers to exclude (or `fatal`)."""
        request = secrets.token_hex(8)
        if self.preprocessed is None:
            outputs = await self._round("frost-commit", {"key_id": self.key_id,
                                                         "request": request})
            if outputs is None:
                return None
        else:  # recorded by `preprocess` once each commitment decoded
            outputs = self.preprocessed
        clist = []
        for i, name in zip(self.ids, self.names):
            out = outputs[name]
            try:
                if out.get("identifier") != i:
                    raise frost.FrostError(f"identifier {out.get('identifier')}, expected {i}")
                clist.append(frost.SigningCommitment(i, bytes.fromhex(out["hiding"]),
                                                     bytes.fromhex(out["binding"])))
            except (frost.FrostError, KeyError, TypeError, ValueError) as exc:
                self.bad[name] = f"invalid commitment: {exc}"
        if self.bad:
            return None
        outputs = await self._round("frost-sign", {
            "key_id": self.key_id, "request": request, "message": self.message.hex(),
            "commitments": [{"identifier": c.identifier, "hiding": c.hiding.hex(),
                             "binding": c.binding.hex()} for c in clist],
            "preprocessed": self.preprocessed is not None})
        if outputs is None:
            return None
        t = asyncio.get_running_loop().time()
        shares = {}
        for c, name in zip(clist, self.names):
            try:
                z = bytes.fromhex(outputs[name]["share"])
                ok = outputs[name].get("identifier") == c.identifier and frost.verify_share(
                    c.identifier, self.vshares[c.identifier], c, z, self.message, clist,
                    self.pk)
            except (KeyError, TypeError, ValueError):
                ok = False
            if ok:
                shares[c.identifier] = z
            else:
                self.bad[name] = "invalid signature share (RFC 9591 verify_signature_share failed)"
        if self.bad:
            return None
        try:
            signature = frost.aggregate(clist, self.message, self.pk, shares)
            Ed25519PublicKey.from_public_bytes(self.pk).verify(signature, self.message)
        except (frost.FrostError, InvalidSignature) as exc:
            self.fatal = f"the aggregate signature does not verify: {exc!r}"
            return None
        self.timings["aggregate_s"] = asyncio.get_running_loop().time() - t
        return signature


def _pool_refusals(attempt: _Attempt) -> dict[str, str]:
    """The signers of a preprocessed attempt that refused for want of the nonce behind their
    commitment (a restart lost it): not cheaters, their pool is stale."""
    if attempt.preprocessed is None:
        return {}
    return {name: reason for name, reason in attempt.bad.items()
            if "no usable nonce" in reason or "nonce refused" in reason}


def key_holders(c: Coordinator, key: dict) -> list[str]:
    """The parties holding a recorded key, in identifier order (identifier = position + 1);
    a record from before resharing names none: the roster's first n parties."""
    return committee.recorded_holders(key.get("holders") or [], key["n"], c.roster)


def _key(c: Coordinator, key_id: str) -> dict:
    key = Ledger(c.config_path).data.get(key_id)
    if not key or key.get("scheme") != FROST_SCHEME:
        raise UsageError(f"the coordinator has no record of a {FROST_SCHEME} key {key_id!r}"
                         f" (make one with mpcnet keygen --scheme {FROST_SCHEME})")
    return key


def _check_signers(signers: list[int], t: int, n: int) -> list[int]:
    if len(set(signers)) != len(signers) or not all(1 <= i <= n for i in signers):
        raise UsageError(f"signers must be distinct identifiers in 1..{n}, got {signers}")
    if len(signers) < t + 1:
        raise UsageError(f"{len(signers)} signers given; the key needs {t + 1}")
    return sorted(signers)


async def sign_message(c: Coordinator, key_id: str, message: bytes,
                       signers: list[int] | None = None,
                       progress=lambda text: None, pool: bool = True) -> JobOutcome:
    """Sign `message` with FROST key `key_id` (from the coordinator's ledger), as one outcome
    of kind "frost-sign": the job id and votes of its last round, the signers as
    participants, and on success the output {key_id, signature, public_key (hex), signers
    (names), identifiers, excluded {name: reason}, attempts, jobs, timings, preprocessed
    (whether the signature used preprocessed commitments)}; on failure each excluded
    signer's reason in party_errors.

    With a preprocessed commitment in the ledger for every chosen signer (`preprocess`),
    one of each is taken and the signing is one job (frost-sign); otherwise both rounds.  A
    signer refusing its preprocessed commitment (a restart lost the nonce) gets its entries
    for the key dropped, and the signing is retried with both rounds.  `pool=False`: both
    rounds, the pool left alone.

    `signers`: identifiers (the key's holders' points) to use exactly; default t+1 online
    holders, in roster order, those with preprocessed commitments first,
    and after a signer refuses, fails or sends an invalid share it is excluded and another
    set is tried.  UsageError for an unknown key, bad `signers` or too long a message."""
    from mpc_nodes.client.coordinator import JobOutcome  # it imports the job kinds
    key = _key(c, key_id)
    if len(message) > MAX_MESSAGE_BYTES:
        raise UsageError(f"message of {len(message)} bytes; at most {MAX_MESSAGE_BYTES}")
    t, n = key["t"], key["n"]
    fixed = None if signers is None else _check_signers(signers, t, n)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    excluded: dict[str, str] = {}
    jobs: list[str] = []
    attempt, attempts, use_pool = None, 0, pool
    ledger = Ledger(c.config_path)

    def done(signature: bytes | None = None, error: str | None = None) -> JobOutcome:
        last = attempt.last if attempt else None
        timings = {**(attempt.timings if attempt else {}), "total_s": loop.time() - t0}
        output = None if signature is None else {
            "key_id": key_id, "signature": signature.hex(), "public_key": key["public_key"],
            "signers": attempt.names, "identifiers": attempt.ids, "excluded": excluded,
            "attempts": attempts, "jobs": jobs, "timings": timings,
            "preprocessed": attempt.preprocessed is not None}
        return JobOutcome(last.job_id if last else None, "frost-sign",
                          {"key_id": key_id, "message": message.hex(), "signers": signers},
                          ok=error is None, output=output, error=error,
                          participants=attempt.names if attempt else [],
                          votes=last.votes if last else [],
                          party_errors={} if error is None else dict(excluded), timings=timings)

    while True:
        await c.status(wait=1.0)
        usable = [i for i, name in enumerate(key_holders(c, key), start=1)
                  if name in c.online() and name not in excluded]
        if use_pool:  # parties with preprocessed commitments first: one job if t+1 have some
            stocked = ledger.commitments(key_id)
            usable.sort(key=lambda i: not stocked.get(key_holders(c, key)[i - 1]))
        ids = fixed or sorted(usable[:t + 1])
        if len(ids) < t + 1:
            return done(error=f"only {len(ids)} usable online signers; key {key_id}"
                              f" needs {t + 1}")
        attempts += 1
        pooled = _take_pooled(c, ledger, key, key_id, ids, progress) if use_pool else None
        attempt = _Attempt(c, key, key_id, message, ids, progress, pooled)
        signature = await attempt.run()
        jobs += attempt.jobs
        if stale := _pool_refusals(attempt):
            for name, reason in stale.items():
                dropped = ledger.drop_commitments(key_id, name, reason)
                progress(f"{name} {reason}: dropped its {dropped} other preprocessed"
                         f" commitment(s) of {key_id}; signing with both rounds")
                del attempt.bad[name]
            use_pool = False  # retried with both rounds, the same signers unless others failed
        excluded.update(attempt.bad)
        for name, reason in attempt.bad.items():
            progress(f"excluding {name}: {reason}")
        if signature is not None:
            return done(signature)
        if attempt.fatal:
            return done(error=attempt.fatal)
        if fixed and attempt.bad:
            return done(error="signing with the given signers failed: " + "; ".join(
                f"{name}: {reason}" for name, reason in attempt.bad.items()))


def _take_pooled(c: Coordinator, ledger: Ledger, key: dict, key_id: str, ids: list[int],
                 progress) -> dict[str, dict] | None:
    """One preprocessed commitment per signer from the ledger, for this signing alone, or
    None when some signer has none left."""
    names = [key_holders(c, key)[i - 1] for i in ids]
    taken, dropped = ledger.take_commitments(key_id, names, key.get("epoch", 0), boot_ids(c))
    for d in dropped:
        progress(f"dropped a preprocessed commitment of {d['party']}: {d['reason']}")
    if taken is None:
        return None
    return {name: {"identifier": e["identifier"], "hiding": e["hiding"],
                   "binding": e["binding"]} for name, e in taken.items()}


async def preprocess(c: Coordinator, key_id: str, count: int,
                     progress=lambda text: None) -> JobOutcome:
    """Round one ahead of time: `count` nonce pairs made by each online holder of FROST key
    `key_id` (frost-preprocess), kept in that process's memory only; each party's
    commitments that decode, with its own identifier and the key's epoch, are recorded in
    the ledger with its boot id.  The output: {key_id, epoch, count, recorded {name: how
    many}, refused {name: reason} (parties that refused the job or reported commitments that
    are not valid)}; ok once at least t+1 parties' were recorded."""
    key = _key(c, key_id)
    if not 1 <= count <= MAX_PREPROCESS:
        raise UsageError(f"count must be in 1..{MAX_PREPROCESS}, got {count}")
    await c.status(wait=1.0)
    holders = key_holders(c, key)
    names = [name for name in holders if name in c.online()]
    started = time.time()  # the nodes' lifetimes start later: ours ends first
    outcome = await c.run_job("frost-preprocess", {"key_id": key_id, "count": count},
                              only=names, progress=progress)
    if not outcome.ok:
        return outcome
    boots, epoch = boot_ids(c), key.get("epoch", 0)
    ledger, recorded, refused = Ledger(c.config_path), {}, {}
    for name, out in outcome.party_outputs.items():
        try:
            if out.get("identifier") != holders.index(name) + 1 or out.get("epoch") != epoch:
                raise frost.FrostError(f"identifier {out.get('identifier')} and epoch"
                                       f" {out.get('epoch')}, expected {holders.index(name) + 1}"
                                       f" and {epoch}")
            made = [frost.SigningCommitment(out["identifier"], bytes.fromhex(m["hiding"]),
                                            bytes.fromhex(m["binding"]))
                    for m in out["commitments"]]
            if len({m.hiding for m in made}) != len(made) or len(made) != count:
                raise frost.FrostError(f"{len(made)} commitments ({len({m.hiding for m in made})}"
                                       f" distinct), {count} asked for")
        except (frost.FrostError, KeyError, TypeError, ValueError, AttributeError) as exc:
            refused[name] = f"invalid commitments: {exc}"
            continue
        if name not in boots:
            refused[name] = "went offline during preprocessing: its nonces may be gone"
            continue
        ledger.add_commitments(key_id, name, out["identifier"], [
            {"hiding": m.hiding.hex(), "binding": m.binding.hex()} for m in made], epoch,
            boots[name], started + PREPROCESSED_NONCE_LIFETIME_S)
        recorded[name] = len(made)
    refused.update({name: reason for name, reason in _refusals(outcome, names).items()
                    if name not in outcome.party_outputs})  # e.g. its nonce pool is full
    outcome.output = {"key_id": key_id, "epoch": epoch, "count": count, "recorded": recorded,
                      "refused": refused}
    if len(recorded) < key["t"] + 1:  # fewer than any signature needs
        outcome.ok = False
        outcome.error = (f"commitments of {len(recorded)} parties recorded; key {key_id}"
                         f" needs {key['t'] + 1}: " + "; ".join(
                             f"{name}: {reason}" for name, reason in refused.items()))
    return outcome


async def frost_sign(c: Coordinator, key_id: str, message: bytes,
                     signers: list[int] | None = None, progress=lambda text: None,
                     pool: bool = True) -> dict:
    """`sign_message`'s output; FrostSigningError (with `excluded`) when no signature can be
    made."""
    outcome = await sign_message(c, key_id, message, signers, progress, pool)
    if not outcome.ok:
        raise FrostSigningError(outcome.error, outcome.party_errors, outcome)
    return outcome.output
