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

The coordinator's side (below): finish a stage job that succeeded on every party (commit, then
finalise), read every party's epochs of a key, and repair a key whose parties disagree --
finish an epoch some party voted for or committed, finish or abort a stage, drop older epochs
once every party committed.  A repair needs every party online.  The coordinator only
proposes: each node commits, drops or discards on the signed votes of the other parties, so a
wrong plan fails at the vote instead of harming a key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from keyshare import KeyShareError

from mpc_nodes.jobs import committee
from mpc_nodes.jobs.kind import JobRejected, KeyId, LocalKind, LocalStep, P, _Params


class KeyParams(_Params):
    key_id: str = KeyId


class EpochParams(KeyParams):
    epoch: int = Field(ge=0)


class CommitParams(EpochParams):
    sharing: str = Field(pattern=r"^[0-9a-f]{64}$",
                         description="keyshare.store.sharing_digest of the staged epoch")


class _EveryParty(LocalKind[P, None]):
    def min_parties(self, roster):
        return roster.n

    def plan(self, ctx, job):
        self.check_vote(ctx, job)  # again: the state may have changed since the vote
        return LocalStep()


class KeyCommit(_EveryParty[CommitParams]):
    """Make a staged epoch current, on evidence that every party staged the same sharing."""

    name = "key-commit"
    params_model = CommitParams

    def check_vote(self, ctx, job):
        params = job.params
        try:  # durable before the vote says so
            ctx.keystore.promise(params.key_id, params.epoch, params.sharing)
        except KeyShareError as exc:
            raise JobRejected(f"cannot commit key {params.key_id}: {exc}") from None

    def run_locally(self, ctx, job):
        params = job.params
        ctx.keystore.commit(params.key_id, params.epoch, params.sharing)
        ctx.presignatures.retire(params.key_id, params.epoch)  # bound to the old shares
        ctx.nonces.retire(params.key_id, params.epoch)  # and so are FROST nonces
        return {"key_id": params.key_id, "epoch": params.epoch, "sharing": params.sharing,
                "committed": True}


class KeyFinalise(_EveryParty[EpochParams]):
    """Delete the epochs older than the committed one, on evidence that every party
    committed it."""

    name = "key-finalise"
    params_model = EpochParams

    def check_vote(self, ctx, job):
        params = job.params
        try:
            committed = ctx.keystore.committed_epoch(params.key_id)
        except KeyShareError as exc:
            raise JobRejected(f"cannot finalise key {params.key_id}: {exc}") from None
        if committed != params.epoch:
            raise JobRejected(f"key {params.key_id} is committed at epoch {committed} here,"
                              f" not {params.epoch}")

    def run_locally(self, ctx, job):
        ctx.keystore.drop_older(job.params.key_id)
        return {"key_id": job.params.key_id, "epoch": job.params.epoch, "confirmed": True}


class KeyAbort(LocalKind[EpochParams, None]):
    """Discard a staged epoch that not every party staged (the vote does it)."""

    name = "key-abort"
    params_model = EpochParams

    def min_parties(self, roster):
        return 1  # each party discards on its own; none needs another's word

    def check_vote(self, ctx, job):
        try:
            ctx.keystore.abort(job.params.key_id, job.params.epoch)
        except KeyShareError as exc:
            raise JobRejected(f"cannot abort key {job.params.key_id}: {exc}") from None

    def run_locally(self, ctx, job):
        return {"key_id": job.params.key_id, "epoch": job.params.epoch, "aborted": True}


class KeyStatus(LocalKind[KeyParams, None]):
    """Each party's view of one key's epochs, for `mpcnet keys status` and repair."""

    name = "key-status"
    params_model = KeyParams

    def output_is_shared(self, params):
        return False  # each party reports its own view

    def min_parties(self, roster):
        return 1

    def check_vote(self, ctx, job):
        try:
            ctx.keystore.state(job.params.key_id)
        except KeyShareError as exc:
            raise JobRejected(f"cannot read key {job.params.key_id}: {exc}") from None

    def run_locally(self, ctx, job):
        key_id = job.params.key_id
        state = ctx.keystore.state(key_id)
        key = None
        if state["committed"] is not None:  # its public part: what a resharing starts from
            meta, _ = ctx.keystore.load(key_id)
            key = {**meta.model_dump(mode="json", include=PUBLIC_FIELDS),
                   "holders": committee.holders(meta, ctx.roster),
                   "holders_recorded": bool(meta.holders)}  # False: a file from before
        return {"key_id": key_id, **state, "key": key}


PUBLIC_FIELDS = {"scheme", "curve", "public_key", "t", "n", "epoch", "verification_shares",
                 "label", "address", "purpose"}
"""A committed key's public facts that key-status reports (with its holders)."""


EPOCH_JOBS = [KeyCommit(), KeyFinalise(), KeyAbort(), KeyStatus()]


# -- the coordinator's side ------------------------------------------------------------

from mpc_nodes.errors import UserError  # noqa: E402

if TYPE_CHECKING:
    from mpc_nodes.client.coordinator import Coordinator, JobOutcome


class RepairError(RuntimeError):
    """The parties' epochs cannot be reconciled by the coordinator (named reason)."""


async def complete_epoch(c: Coordinator, outcome: JobOutcome, commit: dict,
                         progress=lambda text: None) -> None:
    """After a stage job succeeded on every party: commit the epoch everywhere, then drop the
    older ones.  A failure fails `outcome` and says how to finish it."""
    key_id, epoch = commit["key_id"], commit["epoch"]
    phases = [("key-commit", commit)]
    if epoch > 0:  # a new key has no older epoch to drop
        phases.append(("key-finalise", {"key_id": key_id, "epoch": epoch}))
    for kind, params in phases:
        phase = await c.run_job(kind, params, progress=progress)
        outcome.timings[f"{kind}_s"] = phase.timings.get("total_s", 0.0)
        if not phase.ok:
            outcome.ok = False
            outcome.error = (f"epoch {epoch} of key {key_id} was staged on every party, but"
                             f" {kind} failed: {phase.error}; mpcnet keys repair --key"
                             f" {key_id} finishes it")
            return
    outcome.output = {**outcome.output, "committed": True}


async def key_status(c: Coordinator, key_id: str) -> tuple[dict[str, dict], dict[str, str]]:
    """Every answering party's state of the key, and why the others did not answer."""
    await c.status(wait=1.0)
    outcome = await c.run_job("key-status", {"key_id": key_id})
    states = dict(outcome.party_outputs)
    problems = {v.party: f"refused: {v.reason}" for v in outcome.votes if not v.accept}
    problems.update(outcome.party_errors)
    for p in c.roster.parties:
        if p.name not in states and p.name not in problems:
            problems[p.name] = "no answer (offline?)"
    return states, problems


def plan(key_id: str, states: dict[str, dict], names: list[str]) -> list[tuple[str, dict]]:
    """The jobs that reconcile the parties' epochs of a key (empty: nothing to do)."""
    if missing := [n for n in names if n not in states]:
        raise RepairError(f"every party must answer before key {key_id} can be repaired;"
                          f" missing: {', '.join(missing)}")
    committed = {n: s["committed"] for n, s in states.items()}
    held = {n: {int(e): d for e, d in s["epochs"].items()} for n, s in states.items()}
    # the lowest committed epoch; a party that committed none is new to the key (a keygen,
    # or a resharing to it): what it must finish shows in the promises and stages above
    floor = min((c for c in committed.values() if c is not None), default=-1)
    # an epoch that some party voted for or committed is one every party staged: finish it
    voted = {(int(e), d) for s in states.values() for e, d in s["promised"].items()}
    voted |= {(c, held[n][c]) for n, c in committed.items() if c is not None and c > floor}
    staged = {(e, d) for h in held.values() for e, d in h.items() if e > floor}
    if voted:
        target = max(voted)
        if len({d for e, d in voted if e == target[0]}) > 1:
            raise RepairError(f"parties voted for different sharings of epoch {target[0]} of"
                              f" key {key_id}")
    elif staged and all(max(staged) in {(e, d) for e, d in h.items()} for h in held.values()):
        target = max(staged)  # staged by every party, voted by none: finish it too
    else:
        target = None
    steps: list[tuple[str, dict]] = []
    if target is not None:
        steps.append(("key-commit", {"key_id": key_id, "epoch": target[0],
                                     "sharing": target[1]}))
        top = target[0]
    else:  # nothing to finish: every stage above the committed epochs goes
        for e in sorted({e for e, _ in staged}, reverse=True):
            steps.append(("key-abort", {"key_id": key_id, "epoch": e}))
        top = None if floor < 0 else floor
        if top is not None and any(c not in (None, top) for c in committed.values()):
            raise RepairError(f"parties committed different epochs of key {key_id} that no"
                              f" party voted to finish: {committed}")
    if top is not None and top > 0 and any(e < top for h in held.values() for e in h):
        steps.append(("key-finalise", {"key_id": key_id, "epoch": top}))
    return steps


def verdict(key_id: str, states: dict[str, dict], names: list[str]) -> str:
    """One line for an operator: consistent, what a repair would do, or why it cannot."""
    try:
        steps = plan(key_id, states, names)
    except RepairError as exc:
        return f"cannot repair: {exc}"
    if not steps:
        committed = {s["committed"] for s in states.values()} - {None}
        if not committed:
            return "no party holds this key"
        outside = sorted(n for n, s in states.items() if s["committed"] is None)
        if not outside:
            return f"consistent: every party at epoch {committed.pop()}"
        return (f"consistent: every holder at epoch {committed.pop()}; {', '.join(outside)}"
                f" hold no share (mpcnet keys reshare moves the key to them)")
    return "needs repair: " + ", then ".join(f"{k} epoch {p['epoch']}" for k, p in steps)


async def repair(c: Coordinator, key_id: str, progress=lambda text: None) -> dict:
    """Reconcile the parties' epochs of a key; returns the steps run, the parties' states
    afterwards and an error (None when the key is consistent again)."""
    names = [p.name for p in c.roster.parties]
    states, problems = await key_status(c, key_id)
    if set(states) != set(names):
        return {"steps": [], "states": states, "problems": problems,
                "error": "every party must answer: " + "; ".join(
                    f"{n}: {why}" for n, why in problems.items())}
    try:
        steps = plan(key_id, states, names)
    except RepairError as exc:
        return {"steps": [], "states": states, "problems": problems, "error": str(exc)}
    done, error = [], None
    for kind, params in steps:
        progress(f"{kind} epoch {params['epoch']} of {key_id}")
        outcome = await c.run_job(kind, params, progress=progress)
        done.append({"kind": kind, "epoch": params["epoch"], "ok": outcome.ok,
                     "error": outcome.error})
        if not outcome.ok:
            error = f"{kind} epoch {params['epoch']} failed: {outcome.error}"
            break
    states, problems = await key_status(c, key_id)
    if error is None and set(states) == set(names) and plan(key_id, states, names):
        error = "the parties still disagree: " + verdict(key_id, states, names)
    return {"steps": done, "states": states, "problems": problems, "error": error}


def needs_repair(outcome: JobOutcome, key_id: str) -> bool:
    """Whether a party refused or failed the job because an epoch change of the key is
    unfinished on it (the nodes' reasons name `keys repair`)."""
    hint = f"keys repair --key {key_id}"
    reasons = [v.reason for v in outcome.votes if not v.accept]
    return any(hint in r for r in [*reasons, *outcome.party_errors.values()])


async def run_repairing(c: Coordinator, key_id: str, run, progress=lambda text: None):
    """Run a key job (`run()` returns its outcome); where a party stopped it because an
    epoch change of the key was left unfinished by a crash, reconcile the parties' epochs
    (`repair`: each node finishes or rolls back on the others' signed votes) and run it once
    more, so no operator has to step in after a crash during a refresh or keygen."""
    outcome = await run()
    if outcome.ok or not needs_repair(outcome, key_id):
        return outcome
    progress(f"key {key_id}: an epoch change is unfinished on some party; repairing")
    fixed = await repair(c, key_id, progress)
    if fixed["error"]:
        outcome.error = f"{outcome.error}; automatic repair failed: {fixed['error']}"
        return outcome
    progress(f"key {key_id} repaired; running the job again")
    return await run()


async def next_epoch(c: Coordinator, key_id: str, progress=lambda text: None) -> int:
    """The epoch a refresh of the key moves to: the parties' committed epoch + 1, after
    finishing (`repair`) an epoch change a crash left unfinished.  UserError when the
    parties do not agree on one committed epoch."""
    states, problems = await key_status(c, key_id)
    try:
        unfinished = not problems and plan(key_id, states, [p.name for p in c.roster.parties])
    except RepairError:
        unfinished = False  # not reconcilable here: the check below says so
    if unfinished:
        progress(f"key {key_id}: an earlier epoch change is unfinished; repairing first")
        fixed = await repair(c, key_id, progress)
        if fixed["error"]:
            raise UserError(f"key {key_id} needs a repair that failed: {fixed['error']}")
        states, problems = fixed["states"], fixed["problems"]
    committed = {s["committed"] for s in states.values()}
    if problems or len(committed) != 1 or None in committed:
        raise UserError(f"the parties do not agree on one committed epoch of {key_id}"
                        f" (mpcnet keys status --key {key_id}); repair it or give --epoch")
    return committed.pop() + 1
