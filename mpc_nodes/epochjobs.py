"""Two-phase epoch changes of a key, the same for keygen (epoch 0) and refresh (epoch e), and
later resharing: stage on every party -> commit once every party staged it -> drop the older
epochs once every party committed.  None runs an MPC session; the evidence is the signed
votes that every start embeds, so a node acts on what the other parties signed, never on
the coordinator's word:

  key-commit    a party votes ACCEPT only if it holds the staged epoch with exactly the
                requested sharing, and first records that promise durably (it will never
                discard that epoch); the start carries all n ACCEPTs, so every party staged
                it and each can commit it -- then or later, by a repeated, idempotent commit.
  key-finalise  a party votes ACCEPT only if that epoch is its committed one; the start
                carries all n, so every party committed it and the older epochs can go.
  key-abort     a party discards the staged epoch when it votes ACCEPT, which it does only if
                it has not promised to commit it: after that no commit of it can gather n
                ACCEPTs.  A promised epoch is finished, never aborted.
  key-status    each party's committed epoch, the epochs on its disk and its promises.
"""

from __future__ import annotations

from pydantic import Field

from keyshare import KeyShareError

from .jobs import JobKind, JobRejected, _Params
from .keyjobs import KeyId


class KeyParams(_Params):
    key_id: str = KeyId


class EpochParams(KeyParams):
    epoch: int = Field(ge=0)


class CommitParams(EpochParams):
    sharing: str = Field(pattern=r"^[0-9a-f]{64}$",
                         description="keyshare.store.sharing_digest of the staged epoch")


class _EveryParty(JobKind):
    def min_parties(self, roster):
        return roster.n

    def session_call(self, ctx, params, participants):
        self.local_check(ctx, params)  # again: the state may have changed since the vote
        return None


class KeyCommit(_EveryParty):
    """Make a staged epoch current, on evidence that every party staged the same sharing."""

    name = "key-commit"
    params_model = CommitParams

    def local_check(self, ctx, params):
        try:  # durable before the vote says so
            ctx.keystore.promise(params.key_id, params.epoch, params.sharing)
        except KeyShareError as exc:
            raise JobRejected(f"cannot commit key {params.key_id}: {exc}") from None

    def finish(self, ctx, params, output, participants):
        ctx.keystore.commit(params.key_id, params.epoch, params.sharing)
        ctx.presignatures.retire(params.key_id, params.epoch)  # bound to the old shares
        return {"key_id": params.key_id, "epoch": params.epoch, "sharing": params.sharing,
                "committed": True}


class KeyFinalise(_EveryParty):
    """Delete the epochs older than the committed one, on evidence that every party
    committed it."""

    name = "key-finalise"
    params_model = EpochParams

    def local_check(self, ctx, params):
        try:
            committed = ctx.keystore.committed_epoch(params.key_id)
        except KeyShareError as exc:
            raise JobRejected(f"cannot finalise key {params.key_id}: {exc}") from None
        if committed != params.epoch:
            raise JobRejected(f"key {params.key_id} is committed at epoch {committed} here,"
                              f" not {params.epoch}")

    def finish(self, ctx, params, output, participants):
        ctx.keystore.drop_older(params.key_id)
        return {"key_id": params.key_id, "epoch": params.epoch, "confirmed": True}


class KeyAbort(JobKind):
    """Discard a staged epoch that not every party staged (the vote does it)."""

    name = "key-abort"
    params_model = EpochParams

    def min_parties(self, roster):
        return 1  # each party discards on its own; none needs another's word

    def local_check(self, ctx, params):
        try:
            ctx.keystore.abort(params.key_id, params.epoch)
        except KeyShareError as exc:
            raise JobRejected(f"cannot abort key {params.key_id}: {exc}") from None

    def session_call(self, ctx, params, participants):
        return None

    def finish(self, ctx, params, output, participants):
        return {"key_id": params.key_id, "epoch": params.epoch, "aborted": True}


class KeyStatus(JobKind):
    """Each party's view of one key's epochs, for `mpcnet keys status` and repair."""

    name = "key-status"
    params_model = KeyParams
    shared_output = False

    def min_parties(self, roster):
        return 1

    def local_check(self, ctx, params):
        try:
            ctx.keystore.state(params.key_id)
        except KeyShareError as exc:
            raise JobRejected(f"cannot read key {params.key_id}: {exc}") from None

    def session_call(self, ctx, params, participants):
        return None

    def finish(self, ctx, params, output, participants):
        return {"key_id": params.key_id, **ctx.keystore.state(params.key_id)}


EPOCH_JOBS = [KeyCommit(), KeyFinalise(), KeyAbort(), KeyStatus()]
