"""Job kinds for FROST(Ed25519) signing (RFC 9591): the two rounds, each a bus job without an
MPC session, in which every signer reports its own part (shared_output=False).

frost-commit  each selected signer draws fresh nonces, keeps them in its memory only
              (keyshare.onetime: never on disk, so no snapshot or backup can bring them
              back) and reports its commitment.
frost-sign    each signer checks the request (its key, its own commitment exactly as it
              made it, the signer set), takes its nonces out of memory (so never used
              twice) and reports its share.  A node restarted in between has lost them: it
              refuses, and the coordinator starts again with fresh commitments.

Nonces are bound to the key epoch and to `frost/<request>/<signer names>`; their secret id
is derived from the commitment, so a request naming another commitment finds nothing.
Unused nonces expire after the cluster's request lifetime.
What a key signs depends on its purpose, fixed at keygen (mpc_nodes.frost_domain): a
"reports" key signs only the price report this node rebuilds from its own record of the
job; a "raw" key signs any message an authorised coordinator asks for, except one in the
reserved namespace of typed domains (raw messages are not checked against policy.yaml,
which describes EVM transactions).
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict, Field

from keyshare import KeyShareError
from protocols import frost
from protocols.ed25519_dkg import scalar

from .frost_domain import DomainError, check_raw, purpose_of
from .jobs import JobKind, JobRejected, NodeContext, _Params
from .keyjobs import FROST_SCHEME, KeyId, load_share
from .price_report import ReportError, rebuild_for_signing

RequestId = Field(pattern=r"^[0-9a-f]{16}$")
Hex32 = Field(pattern=r"^[0-9a-f]{64}$")
MAX_MESSAGE_BYTES = 64 * 1024

def identifier(party) -> int:
    """A party's FROST identifier: its Shamir evaluation point, roster index + 1."""
    return party.index + 1


def binding(request: str, names: list[str]) -> str:
    """What a signer's nonces are bound to: this signing request and this signer set."""
    return f"frost/{request}/{','.join(names)}"


def nonce_id(c: frost.SigningCommitment) -> str:
    """The secret id of the nonces behind a commitment (the same on both rounds)."""
    return hashlib.sha256(frost.encode_identifier(c.identifier) + c.hiding
                          + c.binding).hexdigest()[:16]


def load_frost_key(ctx: NodeContext, key_id: str):
    """This party's committed FROST share as a scalar, refused unless it matches its
    published verification share."""
    meta, share = load_share(ctx, key_id, FROST_SCHEME)
    sk = scalar(share)
    if frost.verification_share(sk).hex() != meta.verification_shares[ctx.party.index]:
        raise JobRejected(f"stored share of key {key_id} does not match this party's"
                          f" verification share: refusing to use it")
    return meta, sk


class _Signing(JobKind):
    shared_output = False

    def min_parties(self, roster):
        return roster.threshold + 1  # FROST needs t+1 signers, not an honest majority


class CommitParams(_Params):
    key_id: str = KeyId
    request: str = RequestId


class FrostCommit(_Signing):
    """Round one: fresh nonces, kept in memory as a one-time secret; report the commitment."""

    name = "frost-commit"
    params_model = CommitParams

    def local_check(self, ctx, params):
        load_frost_key(ctx, params.key_id)
        if ctx.nonces.room() < 1:
            raise JobRejected(f"this node already holds {ctx.nonces.capacity} unused nonces")

    def session_call(self, ctx, params, participants):
        self.local_check(ctx, params)
        return None

    def finish(self, ctx, params, output, participants):
        meta, sk = load_frost_key(ctx, params.key_id)
        nonces, c = frost.commit(identifier(ctx.party), sk)
        try:
            ctx.nonces.add(params.key_id, nonce_id(c), meta.epoch,
                           binding(params.request, [p.name for p in participants]),
                           {"hiding": nonces.hiding.hex(), "binding": nonces.binding.hex()})
        except KeyShareError as exc:
            raise JobRejected(str(exc)) from None
        return {"identifier": c.identifier, "hiding": c.hiding.hex(), "binding": c.binding.hex()}


class Commitment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    identifier: int = Field(ge=1, le=1000)
    hiding: str = Hex32
    binding: str = Hex32


class SignParams(_Params):
    key_id: str = KeyId
    request: str = RequestId
    message: str = Field(pattern=r"^(?:[0-9a-f]{2})*$", max_length=2 * MAX_MESSAGE_BYTES)
    commitments: list[Commitment] = Field(min_length=1, max_length=256)


class FrostSign(_Signing):
    """Round two: this signer's signature share over the message and commitment list."""

    name = "frost-sign"
    params_model = SignParams

    def _prepare(self, ctx, params):
        """Key, commitment list, own commitment and the binding; JobRejected if unusable."""
        meta, sk = load_frost_key(ctx, params.key_id)
        try:
            clist = [frost.SigningCommitment(c.identifier, bytes.fromhex(c.hiding),
                                             bytes.fromhex(c.binding)) for c in params.commitments]
        except frost.FrostError as exc:
            raise JobRejected(f"invalid commitment: {exc}") from None
        ids = [c.identifier for c in clist]
        signers = {identifier(p): p.name for p in ctx.roster.parties}
        if len(set(ids)) != len(ids) or not set(ids) <= set(signers):
            raise JobRejected(f"commitment identifiers {ids} are not distinct roster parties")
        if len(ids) < meta.t + 1:
            raise JobRejected(f"{len(ids)} signers; key {meta.key_id} needs {meta.t + 1}")
        own = [c for c in clist if c.identifier == identifier(ctx.party)]
        if not own:
            raise JobRejected("this party's commitment is not in the list")
        names = [signers[i] for i in sorted(ids)]
        bound = binding(params.request, names)
        try:  # a restarted node has lost them: the coordinator retries with fresh commitments
            ctx.nonces.check(params.key_id, nonce_id(own[0]), meta.epoch, bound)
        except KeyShareError as exc:
            raise JobRejected(f"no usable nonce behind this party's commitment: {exc}") from None
        return meta, sk, clist, own[0], names, bound

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

    def local_check(self, ctx, params):
        meta, *_ = self._prepare(ctx, params)
        self._check_message(ctx, params, meta)

    def session_call(self, ctx, params, participants):
        *_, names, _ = self._prepare(ctx, params)
        if [p.name for p in participants] != names:
            raise JobRejected(f"participants {[p.name for p in participants]} are not the"
                              f" signers of the commitment list {names}")
        return None

    def finish(self, ctx, params, output, participants):
        meta, sk, clist, own, _, bound = self._prepare(ctx, params)
        self._check_message(ctx, params, meta)
        try:  # out of memory before the share is computed: never taken twice
            secret = ctx.nonces.take(params.key_id, nonce_id(own), meta.epoch, bound)
        except KeyShareError as exc:
            raise JobRejected(f"nonce refused: {exc}") from None
        nonces = frost.SigningNonces(bytes.fromhex(secret["hiding"]),
                                     bytes.fromhex(secret["binding"]))
        try:
            z = frost.sign(own.identifier, sk, bytes.fromhex(meta.public_key), nonces,
                           bytes.fromhex(params.message), clist, min_signers=meta.t + 1)
        except frost.FrostError as exc:
            raise JobRejected(f"cannot sign: {exc}") from None
        return {"identifier": own.identifier, "share": z.hex()}


FROST_JOBS = [FrostCommit(), FrostSign()]
