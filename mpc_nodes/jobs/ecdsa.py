"""Job kinds for threshold keys: keygen, sign, presign and refresh.

Keys are t-of-n over the roster.  Keygen and refresh need every party (shares live at the
roster points) and only stage the new epoch: it becomes current through the two-phase
`jobs.epochs` (commit once every party staged it), which the coordinator runs next.  Signing
and presigning need an honest majority above t, 2t+1 parties.
Before a node contributes to a signature it checks the transaction against its own policy,
and that its stored share matches its published verification share.  Keygen also makes
FROST(Ed25519) keys (scheme "frost-ed25519"); their signing jobs are in `jobs.frost`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

import protocols.ecdsa
import protocols.ecdsa_active
import protocols.ed25519_dkg
from keyshare import KeyMeta, KeyShareError
from protocols.secp256k1 import hex_point, mul_base, verify

from mpc_nodes.client.ledger import Ledger
from mpc_nodes.errors import UserError
from mpc_nodes.jobs import committee, epochs
from mpc_nodes.jobs.evm import (EvmError, Transaction, parse_transaction, signed_transaction,
                                transaction_sender)
from mpc_nodes.jobs.frost_domain import Purpose, purpose_of
from mpc_nodes.jobs.keycheck import (FROST_SCHEME, SCHEME, eth_address, key_problem,
                                     reported_key_problem)
from mpc_nodes.jobs.kind import (ApprovesOnly, JobRejected, KeyId, MpcSession, NodeContext, P, R,
                                 SessionKind, _Params)
from mpc_nodes.jobs.policy import load_policy
from mpc_nodes.node.context import PRESIGNATURE_LIFETIME_S

if TYPE_CHECKING:  # the coordinator imports the job kinds
    from mpc_nodes.client.coordinator import Coordinator, JobOutcome

KEYGEN = {SCHEME: (protocols.ecdsa.keygen, "secp256k1"),
          FROST_SCHEME: (protocols.ed25519_dkg.keygen, "ed25519")}
"""Key generation per scheme: the protocol and the curve recorded with the share."""
log = logging.getLogger("mpcnet.policy")


def load_share(ctx: NodeContext, key_id: str, scheme: str) -> tuple[KeyMeta, int]:
    """This party's committed share of a key of this scheme (not yet checked)."""
    try:
        meta, share = ctx.keystore.load(key_id)
        unfinished = ctx.keystore.unfinished(key_id)
    except KeyShareError as exc:
        raise JobRejected(f"cannot use key {key_id}: {exc}") from None
    if unfinished:  # the parties may hold different epochs: a signature would not verify
        raise JobRejected(f"key {key_id}: {unfinished}; run mpcnet keys repair --key {key_id}")
    if meta.scheme != scheme:
        raise JobRejected(f"key {key_id} is a {meta.scheme} key, not {scheme}")
    return meta, share


def load_key(ctx: NodeContext, key_id: str) -> tuple[KeyMeta, int]:
    """This party's committed share, refused unless it matches its verification share."""
    meta, share = load_share(ctx, key_id, SCHEME)
    if hex_point(mul_base(share)) != committee.own_verification_share(meta, ctx.roster,
                                                                      ctx.party.name):
        raise JobRejected(f"stored share of key {key_id} does not match this party's"
                          f" verification share: refusing to use it")
    return meta, share


@functools.lru_cache(maxsize=64)
def _parsed_transaction(tx_json: str) -> Transaction:
    return parse_transaction(json.loads(tx_json))


def transaction_of(params: SignParams) -> Transaction:
    """The job's transaction, parsed (eth-account, ~0.5 ms) once per job on a node rather than
    at the vote, the start and the completion: keyed by its canonical JSON; EvmError if it
    is invalid."""
    return _parsed_transaction(json.dumps(params.tx, sort_keys=True))


def binding(participants) -> str:
    """The party set a presignature is tied to."""
    return ",".join(p.name for p in participants)


def signing_session(ctx: NodeContext, job, meta: KeyMeta, share: int,
                    digest_hex: str) -> MpcSession:
    """The session that signs ``digest_hex`` with the key, as the roster's security mode asks:
    under ``malicious`` the checked protocol, which names a party whose share is bad."""
    points = committee.points(meta, ctx.roster, job.participants)
    if ctx.roster.security == "malicious":
        return MpcSession(protocols.ecdsa_active.sign, [share, points, meta.public_key,
                                                        digest_hex, _names(job)])
    return MpcSession(protocols.ecdsa.sign, [share, points, meta.public_key, digest_hex])


def _names(job) -> list[str]:
    return [p.name for p in job.participants]


def observe_excluded(job, output: dict) -> None:
    """Report each party whose signature share failed its check (checked protocol) beside
    the result, and log it: the signature was made without it.  Not in the output: a party
    that sent the bad share to one peer only is seen by that peer alone, and the honest
    outputs must still agree."""
    for name in (_names(job)[j] for j in output.get("excluded", ())):
        note = f"{name} sent a signature share that does not match its commitments; signed" \
               f" without it"
        job.observations.append(note)
        log.warning("key %s: %s", job.params.key_id, note)


class _AllParties(SessionKind[P, R]):
    def min_parties(self, roster):
        return roster.n


class KeygenParams(_Params):
    key_id: str = KeyId
    scheme: Literal["ecdsa-secp256k1", "frost-ed25519"] = SCHEME
    label: str = Field(default="", max_length=100)
    purpose: Purpose | None = Field(default=None, description="FROST: what the key signs"
                                    " (mpc_nodes.jobs.frost_domain); default raw")

    @model_validator(mode="after")
    def _purpose_is_frost(self) -> "KeygenParams":
        if self.purpose is not None and self.scheme != FROST_SCHEME:
            raise ValueError("a purpose is fixed for FROST keys only")
        return self


class Keygen(_AllParties[KeygenParams, None]):
    """Dealer-free key generation among all parties; each stages its share as epoch 0, and
    the key exists once every party committed it (`jobs.epochs`)."""

    name = "keygen"
    params_model = KeygenParams
    active_secure = True  # every party checks all n verification shares (docs/SECURITY.md)

    def check_vote(self, ctx, job):
        key_id = job.params.key_id
        if key_id in ctx.keystore.key_ids():
            raise JobRejected(f"key {key_id} already exists")
        if 0 in ctx.keystore.promised(key_id):  # a stale unvoted stage is replaced
            raise JobRejected(f"key {key_id} is voted for commit but not committed"
                              f" here: finish it with mpcnet keys repair --key {key_id}")

    def plan(self, ctx, job):
        return MpcSession(KEYGEN[job.params.scheme][0], [], threshold=ctx.roster.threshold)

    def complete(self, ctx, job, output):
        params, public_key = job.params, output["public_key"]
        meta = KeyMeta(key_id=params.key_id, scheme=params.scheme,
                       curve=KEYGEN[params.scheme][1], cluster_id=ctx.roster.cluster_id,
                       n=ctx.roster.n, t=ctx.roster.threshold, party_index=ctx.party.index,
                       holders=[p.name for p in ctx.roster.parties], epoch=0,
                       public_key=public_key,
                       verification_shares=output["verification_shares"], label=params.label,
                       address=eth_address(public_key) if params.scheme == SCHEME else None,
                       purpose=purpose_of(params.purpose) if params.scheme == FROST_SCHEME
                       else None)
        problem = key_problem(meta.model_dump(), [p.name for p in ctx.roster.parties], meta.t,
                              own=(ctx.party.index, output["share"]))
        if problem:  # nothing is saved: a key no one can check is no vault
            raise JobRejected(f"key {params.key_id} is inconsistent, not saved: {problem}")
        try:
            ctx.keystore.stage(meta, output["share"])
        except (KeyShareError, OSError) as exc:
            raise JobRejected(f"key {params.key_id} not staged here: {exc}") from None
        return {"key_id": meta.key_id, "scheme": meta.scheme, "public_key": public_key,
                "address": meta.address, "verification_shares": meta.verification_shares,
                "n": meta.n, "t": meta.t, "epoch": 0, "purpose": meta.purpose,
                "holders": meta.holders, "sharing": meta.sharing}

    def commit_params(self, params, output):
        return {"key_id": params.key_id, "epoch": 0, "sharing": output["sharing"]}


class SignParams(_Params):
    key_id: str = KeyId
    tx: dict
    presignature: str | None = Field(default=None, pattern=r"^[0-9a-f]{16}$")


class Sign(SessionKind[SignParams, None]):
    """Threshold-sign an EIP-1559 transaction that this party's policy allows."""

    name = "sign"
    params_model = SignParams
    active_secure = True  # protocols.ecdsa_active under security: malicious

    def approvals_needed(self, roster):
        return roster.policy_quorum  # every approver reserves: caps and nonces network-wide

    one_output_suffices = True  # the signature exists once one party has it

    def verify_output(self, params, output):
        try:
            digest = parse_transaction(params.tx).digest.hex()
            if output["key_id"] != params.key_id or output["digest"] != digest:
                return "the output is not a signature of the requested transaction"
            if not verify(output["public_key"], bytes.fromhex(digest), int(output["r"], 16),
                          int(output["s"], 16)):
                return "the signature does not verify under libsecp256k1 (or is high-s)"
            if eth_address(output["public_key"]) != output["address"] \
                    or transaction_sender(bytes.fromhex(output["raw"])) \
                    != output["address"]:
                return "the raw transaction does not recover to the key's address"
        except Exception as exc:  # anything a lying party could put there
            return f"malformed signature output: {type(exc).__name__}: {exc}"
        return None

    def _check(self, ctx, params, reserve: bool = False):
        meta, share = load_key(ctx, params.key_id)
        return meta, share, self._policy(ctx, params, reserve)

    @staticmethod
    def _policy(ctx, params, reserve: bool):
        """The transaction, if this node's policy allows the key to sign it (`reserve`: and
        records the spend and nonce); JobRejected with the rule that refuses it."""
        try:
            tx = transaction_of(params)
        except EvmError as exc:
            raise JobRejected(f"invalid transaction: {exc}") from None
        policy = load_policy(ctx)
        decision = (policy.reserve if reserve else policy.check)(tx, params.key_id)
        if not decision.accept:  # the requester learns the rule, only the log the particulars
            log.warning("policy refuses key %s, chain %s, nonce %s: %s", params.key_id,
                        tx.chain_id, tx.nonce, decision.detail)
            raise JobRejected(f"policy: {decision.reason}")
        return tx

    def check_vote(self, ctx, job):
        params = job.params
        if params.key_id not in ctx.keystore.key_ids():  # e.g. joined, the key not yet moved
            self._policy(ctx, params, reserve=True)  # its approval counts in the quorum
            raise ApprovesOnly(f"approves by its policy; holds no share of key {params.key_id}"
                               f" (mpcnet reshare moves it here)")
        if params.presignature is not None:  # first: a refusal must reserve nothing
            meta, _ = load_key(ctx, params.key_id)
            try:
                ctx.presignatures.check(params.key_id, params.presignature, meta.epoch)
            except KeyShareError as exc:
                raise JobRejected(str(exc)) from None
        self._check(ctx, params, reserve=True)  # an approval records the spend and nonce

    def plan(self, ctx, job):
        params = job.params
        meta, share, tx = self._check(ctx, params)  # again: the policy may have been edited
        if params.presignature is None:
            return signing_session(ctx, job, meta, share, tx.digest.hex())
        try:  # gone from memory before the session can release a share of s made with it
            presig = ctx.presignatures.take(params.key_id, params.presignature, meta.epoch,
                                            binding(job.participants))
        except KeyShareError as exc:
            raise JobRejected(str(exc)) from None
        if "K" in presig:  # made by the checked protocol: it carries every party's commitments
            return MpcSession(protocols.ecdsa_active.sign_presigned,
                              [presig, meta.public_key, tx.digest.hex(), _names(job)])
        if ctx.roster.security == "malicious":
            raise JobRejected(f"presignature {params.presignature} was made under security:"
                              f" semi-honest and carries no commitments to check shares"
                              f" against; run mpcnet presign again")
        return MpcSession(protocols.ecdsa.sign_presigned, [presig, meta.public_key,
                                                           tx.digest.hex()])

    def complete(self, ctx, job, output):
        params = job.params
        meta, _ = ctx.keystore.load(params.key_id)
        tx = transaction_of(params)
        observe_excluded(job, output)
        raw, tx_hash = signed_transaction(tx, output["r"], output["s"], output["y_parity"])
        return {"key_id": params.key_id, "address": meta.address,
                "public_key": meta.public_key, "r": hex(output["r"]),
                "s": hex(output["s"]), "y_parity": output["y_parity"], "raw": raw.hex(),
                "hash": tx_hash.hex(), "digest": tx.digest.hex()}


class PresignParams(_Params):
    key_id: str = KeyId
    count: int = Field(ge=1, le=100)


class Presign(SessionKind[PresignParams, None]):
    """Precompute presignatures, bound to this key epoch and this exact party set, and kept
    only in this node process's memory (keyshare.onetime): a restart discards them."""

    name = "presign"
    params_model = PresignParams
    active_secure = True  # protocols.ecdsa_active under security: malicious

    def check_vote(self, ctx, job):
        load_key(ctx, job.params.key_id)
        if ctx.presignatures.room() < job.params.count:
            raise JobRejected(f"no room for {job.params.count} more presignatures on this node"
                              f" ({ctx.presignatures.capacity} at most)")

    def plan(self, ctx, job):
        meta, share = load_key(ctx, job.params.key_id)
        points = committee.points(meta, ctx.roster, job.participants)
        if ctx.roster.security == "malicious":
            return MpcSession(protocols.ecdsa_active.presign, [share, points, job.params.count,
                                                               _names(job)])
        return MpcSession(protocols.ecdsa.presign, [share, points, job.params.count])

    def complete(self, ctx, job, output):
        params, participants = job.params, job.participants
        meta, _ = ctx.keystore.load(params.key_id)
        ids = []
        if ctx.presignatures.room() < len(output):  # all or none: never a partial pool
            raise JobRejected(f"no room left for {len(output)} more presignatures on this"
                              f" node (another presign job filled it meanwhile)")
        for presig in output:  # the id is the same on every party: it names the nonce point
            ids.append(hashlib.sha256(bytes.fromhex(presig["R"])).hexdigest()[:16])
            try:
                ctx.presignatures.add(params.key_id, ids[-1], meta.epoch, binding(participants),
                                      presig)
            except KeyShareError as exc:
                raise JobRejected(str(exc)) from None
        return {"key_id": params.key_id, "epoch": meta.epoch, "binding": binding(participants),
                "ids": ids}


class RefreshParams(_Params):
    key_id: str = KeyId
    epoch: int = Field(ge=1, description="the new epoch")


class Refresh(_AllParties[RefreshParams, None]):
    """Re-randomise every share (same public key) and stage them as the next epoch, which
    becomes current once every party committed it (`jobs.epochs`)."""

    name = "refresh"
    params_model = RefreshParams
    active_secure = True  # the new verification shares must interpolate to the public key

    def check_vote(self, ctx, job):
        params = job.params
        meta, _ = load_key(ctx, params.key_id)
        committee.require_current(meta, ctx.roster)  # every party, at its roster point
        if params.epoch != meta.epoch + 1:
            raise JobRejected(f"key {params.key_id} is at epoch {meta.epoch}; cannot refresh"
                              f" to epoch {params.epoch}")
        if params.epoch in ctx.keystore.promised(params.key_id):  # a stale unvoted one is replaced
            raise JobRejected(f"epoch {params.epoch} of key {params.key_id} is voted for commit"
                              f" here: finish it with mpcnet keys repair --key {params.key_id}")

    def plan(self, ctx, job):
        self.check_vote(ctx, job)
        meta, share = load_key(ctx, job.params.key_id)  # a stale unvoted stage is replaced
        return MpcSession(protocols.ecdsa.refresh, [share, meta.public_key],
                          threshold=ctx.roster.threshold)

    def complete(self, ctx, job, output):
        params = job.params
        meta, _ = ctx.keystore.load(params.key_id)
        new = meta.model_copy(update={"epoch": params.epoch,
                                      "verification_shares": output["verification_shares"]})
        try:
            ctx.keystore.stage(new, output["share"])
        except (KeyShareError, OSError) as exc:
            raise JobRejected(f"epoch {params.epoch} of key {params.key_id} not staged here:"
                              f" {exc}") from None
        return {"key_id": params.key_id, "epoch": params.epoch, "staged": True,
                "public_key": meta.public_key, "sharing": new.sharing,
                "verification_shares": output["verification_shares"]}

    def commit_params(self, params, output):
        return {"key_id": params.key_id, "epoch": params.epoch, "sharing": output["sharing"]}


KEY_JOBS = [Keygen(), Sign(), Presign(), Refresh()]


# -- the coordinator's side ------------------------------------------------------------
#
# The coordinator does not trust the parties' word for a result: it checks a new key
# against its verification shares before it records it in its ledger, and recovers the
# signer of every signed transaction (eth-account) and verifies the signature with
# libsecp256k1 before it reports success.  Presignatures are handed out from the ledger,
# each to one signing process (mpc_nodes.client.ledger).


PRESIGNED_TRIES = 3  # presignatures tried per sign when holders refuse the first ones


def check_signature(out: dict) -> str | None:
    """Why a reported signed transaction is not acceptable, or None."""
    r, s = int(out["r"], 16), int(out["s"], 16)
    if not verify(out["public_key"], bytes.fromhex(out["digest"]), r, s):
        return "signature does not verify under libsecp256k1 (or is high-s)"
    if transaction_sender(bytes.fromhex(out["raw"])) != out["address"]:
        return "the raw transaction does not recover to the vault address"
    if eth_address(out["public_key"]) != out["address"]:
        return "vault address does not match the key"
    return None


def boot_ids(c: Coordinator) -> dict[str, str]:
    """Each online party's boot id: presignatures live as long as the process that has them."""
    return {name: p.boot_id for name, p in c.presence.items() if p.state == "online"}


async def ecdsa_keygen(c: Coordinator, key_id: str, label: str = "",
                       progress=lambda text: None) -> JobOutcome:
    """Dealer-free t-of-n ECDSA key among all parties; checked, then recorded in the ledger."""
    outcome = await c.run_job("keygen", {"key_id": key_id, "scheme": SCHEME, "label": label},
                              progress=progress)
    if outcome.ok and (problem := reported_key_problem(outcome.output, c.roster)):
        outcome.ok, outcome.error = False, problem
    if outcome.ok:
        ledger = Ledger(c.config_path)
        ledger.key(key_id).update({k: outcome.output[k] for k in
                                   ("scheme", "public_key", "address", "epoch", "t", "n")})
        ledger.save()
    return outcome


async def sign_transaction(c: Coordinator, key_id: str, tx: dict, presigned: bool = False,
                           progress=lambda text: None, warn=lambda text: None) -> JobOutcome:
    """Threshold-sign an EIP-1559 transaction; it succeeds only once `check_signature` found
    nothing wrong.  `presigned`: with the ledger's next usable presignature (one online
    round; `warn` hears of each one dropped on the way).  Otherwise a party's refusal naming
    an unfinished epoch change of the key gets the key repaired and the job run again
    (epochs.run_repairing)."""
    params = {"key_id": key_id, "tx": tx}
    if presigned:
        outcome = await _sign_presigned(c, Ledger(c.config_path), params, progress, warn)
    else:
        outcome = await epochs.run_repairing(
            c, key_id, lambda: c.run_job("sign", params, progress=progress), progress)
    if outcome.ok and (problem := check_signature(outcome.output)):
        outcome.ok, outcome.error = False, problem
    return outcome


async def _sign_presigned(c: Coordinator, ledger: Ledger, params: dict, progress, warn):
    """Sign with the ledger's next usable presignature, taken for this process alone; one a
    holder refuses (it lacks it or used it) is dropped with the holder's reason and the next
    one tried."""
    key_id, dropped = params["key_id"], []
    for _ in range(PRESIGNED_TRIES):
        await c.status(wait=1.0)
        entry, gone = ledger.take_presignature(key_id, boot_ids(c))
        dropped += gone
        for d in gone:
            warn(f"dropped presignature {d['id']}: {d['reason']}")
        if entry is None:
            raise UserError(f"no presignatures left for {key_id}"
                            f"{f' ({len(dropped)} dropped, reasons above)' if dropped else ''}:"
                            f" run mpcnet presign --key {key_id}")
        outcome = await c.run_job("sign", {**params, "presignature": entry["id"]},
                                  progress=progress, only=entry["binding"].split(","))
        refusals = [f"{v.party}: {v.reason}" for v in outcome.votes
                    if not v.accept and f"presignature {entry['id']}" in v.reason]
        if outcome.ok or not refusals:
            return outcome
        ledger.drop_presignature(key_id, entry["id"], "; ".join(refusals))
        warn(f"dropped presignature {entry['id']}: {'; '.join(refusals)}")
    return outcome


async def presign(c: Coordinator, key_id: str, count: int,
                  progress=lambda text: None) -> JobOutcome:
    """Presignatures made by the parties online now, recorded in the ledger with each
    holder's boot id (they live in those processes' memory only)."""
    started = time.time()  # the nodes' lifetimes start later: ours ends first
    outcome = await epochs.run_repairing(c, key_id, lambda: c.run_job(
        "presign", {"key_id": key_id, "count": count}, progress=progress), progress)
    boots = boot_ids(c)
    if outcome.ok:  # every holder reported the same ids (a shared output)
        holders = outcome.output["binding"].split(",")
        if missing := [n for n in holders if n not in boots]:
            outcome.ok = False
            outcome.error = (f"{', '.join(missing)} went offline during presign: its"
                             f" presignatures may be gone, so none was recorded")
        else:
            Ledger(c.config_path).add_presignatures(
                key_id, outcome.output["ids"], outcome.output["binding"],
                outcome.output["epoch"], {n: boots[n] for n in holders},
                started + PRESIGNATURE_LIFETIME_S)
    return outcome


async def refresh(c: Coordinator, key_id: str, epoch: int | None = None,
                  progress=lambda text: None) -> JobOutcome:
    """Re-randomise every share of the key as `epoch` (default: the parties' committed epoch
    + 1, after finishing a change a crash left unfinished); the ledger follows the new epoch
    and drops the presignatures of the old one."""
    if epoch is None:
        epoch = await epochs.next_epoch(c, key_id, progress)
    outcome = await c.run_job("refresh", {"key_id": key_id, "epoch": epoch}, progress=progress)
    if outcome.ok:
        ledger = Ledger(c.config_path)
        ledger.key(key_id)["epoch"] = epoch
        ledger.save()
        ledger.drop_all_presignatures(key_id, f"bound to epoch {epoch - 1}; the key is at"
                                              f" epoch {epoch} now")
    return outcome
