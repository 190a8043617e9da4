"""`key-reshare`: move a threshold key to the roster's committee and threshold, keeping its
public key (protocols.reshare, Feldman VSS).

After a roster update a key still belongs to the committee it was made for (its holders,
`jobs.committee`).  A resharing runs among every party of the roster in force: the key's
holders that are still in it deal their shares (at least t+1 of them: any qualified subset),
and every party receives a new share at its roster point, of the roster's threshold.  Like a
refresh it only stages the next epoch; the two-phase `jobs.epochs` commits it once every
party staged the same sharing and deletes the old shares once every party committed, so a
crash leaves the key usable by its old holders or by the new ones, never neither.

The coordinator names the key's public part in the request (it read it from the holders'
key-status).  A holder accepts only if that is exactly what it holds; a party new to the key
takes it on the holders' signed votes (embedded in the start) and on the protocol's own checks:
every dealing is checked against the old verification shares, and the new ones must add up
to the same public key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from keyshare import KeyMeta, KeyShareError

from mpc_nodes.client.ledger import Ledger
from mpc_nodes.config import Name
from mpc_nodes.errors import UserError
from mpc_nodes.jobs import committee
from mpc_nodes.jobs.ecdsa import KEYGEN, load_share
from mpc_nodes.jobs.epochs import key_status, plan, repair
from mpc_nodes.jobs.keycheck import FROST_SCHEME, SCHEME, key_problem
from mpc_nodes.jobs.kind import JobRejected, KeyId, MpcSession, SessionKind, _Params
from mpc_nodes.models import StrictModel

if TYPE_CHECKING:
    from mpc_nodes.client.coordinator import Coordinator, JobOutcome


class PublicKey(StrictModel):
    """A key's public part as its holders committed it (key-status reports it)."""

    scheme: Literal["ecdsa-secp256k1", "frost-ed25519"]
    public_key: str = Field(pattern=r"^[0-9a-f]{64,66}$")
    t: int = Field(ge=0)
    holders: list[Name] = Field(min_length=2, max_length=256)
    verification_shares: list[str] = Field(max_length=256)
    label: str = Field(default="", max_length=100)
    address: str | None = None
    purpose: str | None = None


class ReshareParams(_Params):
    key_id: str = KeyId
    epoch: int = Field(ge=1, description="the new epoch: the holders' committed epoch + 1")
    key: PublicKey


def _differences(meta: KeyMeta, key: PublicKey, roster) -> list[str]:
    """The fields in which the request's public key differs from the stored one."""
    held = {"scheme": meta.scheme, "public_key": meta.public_key, "t": meta.t,
            "holders": committee.holders(meta, roster),
            "verification_shares": meta.verification_shares, "label": meta.label,
            "address": meta.address, "purpose": meta.purpose}
    return [name for name, value in held.items() if getattr(key, name) != value]


class KeyReshare(SessionKind[ReshareParams, None]):
    """Deal the key from its holders to every roster party at the roster's threshold, and
    stage the new shares as the next epoch."""

    name = "key-reshare"
    params_model = ReshareParams
    active_secure = True  # Feldman-checked dealings, commitments echoed (docs/SECURITY.md)

    def min_parties(self, roster):
        return roster.n  # every party receives a share

    def _old_share(self, ctx, params) -> int | None:
        """This party's committed share if it holds the key as the request says; None if
        the key is new to it; JobRejected otherwise."""
        key, me = params.key, ctx.party.name
        if ctx.keystore.state(params.key_id)["committed"] is None:
            if me in key.holders:
                raise JobRejected(f"{me} is a holder of key {params.key_id} but has no"
                                  f" committed share of it here")
            return None
        meta, share = load_share(ctx, params.key_id, key.scheme)
        if differ := _differences(meta, key, ctx.roster):
            raise JobRejected(f"key {params.key_id} is not held here as requested: its"
                              f" {', '.join(differ)} differ")
        if params.epoch != meta.epoch + 1:
            raise JobRejected(f"key {params.key_id} is at epoch {meta.epoch} here; cannot"
                              f" reshare to epoch {params.epoch}")
        return share

    def check_vote(self, ctx, job) -> int | None:
        """The checks of the vote; returns this party's old share (None: it deals none)."""
        params, roster = job.params, ctx.roster
        dealers = [n for n in params.key.holders if n in {p.name for p in roster.parties}]
        if len(dealers) < params.key.t + 1:
            raise JobRejected(f"only {len(dealers)} of the holders of key {params.key_id} are"
                              f" in roster version {roster.version}; its resharing needs"
                              f" {params.key.t + 1} of them")
        if params.epoch in ctx.keystore.promised(params.key_id):
            raise JobRejected(f"epoch {params.epoch} of key {params.key_id} is voted for"
                              f" commit here: finish it with mpcnet keys repair --key"
                              f" {params.key_id}")
        return self._old_share(ctx, params)

    def plan(self, ctx, job):
        params, names = job.params, [p.name for p in job.participants]
        share = self.check_vote(ctx, job)  # again: the store may have changed since the vote
        key = params.key
        raw = {"curve": KEYGEN[key.scheme][1], "public_key": key.public_key,
               "old_threshold": key.t, "old_verification_shares": key.verification_shares,
               "old_points": [key.holders.index(n) + 1 if n in key.holders else None
                              for n in names],
               "new_threshold": ctx.roster.threshold,
               "new_points": list(range(1, len(names) + 1))}
        import protocols.reshare  # (MPyC: loaded where a session runs, never on a coordinator)
        return MpcSession(protocols.reshare.reshare, [raw, share])

    def complete(self, ctx, job, output):
        params, names = job.params, [p.name for p in job.participants]
        key, index = params.key, names.index(ctx.party.name)
        meta = KeyMeta(key_id=params.key_id, scheme=key.scheme, curve=KEYGEN[key.scheme][1],
                       cluster_id=ctx.roster.cluster_id, n=len(names), t=output["threshold"],
                       party_index=index, holders=names, epoch=params.epoch,
                       public_key=key.public_key,
                       verification_shares=output["verification_shares"], label=key.label,
                       address=key.address, purpose=key.purpose)
        problem = key_problem(meta.model_dump(), names, meta.t, own=(index, output["share"]))
        if problem:
            raise JobRejected(f"key {params.key_id} reshared inconsistently, not staged:"
                              f" {problem}")
        try:
            ctx.keystore.stage(meta, output["share"])
        except (KeyShareError, OSError) as exc:
            raise JobRejected(f"epoch {params.epoch} of key {params.key_id} not staged here:"
                              f" {exc}") from None
        return {"key_id": params.key_id, "epoch": params.epoch, "public_key": key.public_key,
                "holders": names, "n": meta.n, "t": meta.t,
                "verification_shares": meta.verification_shares, "sharing": meta.sharing,
                "scheme": key.scheme, "address": key.address}

    def commit_params(self, params, output):
        return {"key_id": params.key_id, "epoch": params.epoch, "sharing": output["sharing"]}


RESHARE_JOBS = [KeyReshare()]


# -- the coordinator's side ------------------------------------------------------------


async def held_key(c: Coordinator, key_id: str, progress=lambda text: None
                   ) -> tuple[int, PublicKey, bool]:
    """The key's committed epoch and public part as its holders report them, and whether
    their share files name the holders (files from before resharing do not), after finishing
    an epoch change a crash left unfinished; UserError if the holders disagree."""
    names = [p.name for p in c.roster.parties]
    states, problems = await key_status(c, key_id)
    if problems:
        raise UserError(f"every party must answer to reshare key {key_id}: " + "; ".join(
            f"{n}: {why}" for n, why in problems.items()))
    if plan(key_id, states, names):
        progress(f"key {key_id}: an earlier epoch change is unfinished; repairing first")
        fixed = await repair(c, key_id, progress)
        if fixed["error"]:
            raise UserError(f"key {key_id} needs a repair that failed: {fixed['error']}")
        states = fixed["states"]
    held = {n: s["key"] for n, s in states.items() if s.get("key")}
    if not held:
        raise UserError(f"no party holds a key {key_id!r}")
    views = {repr(sorted(k.items())) for k in held.values()}
    if len(views) > 1:
        raise UserError(f"the holders of key {key_id} report different public parts; see"
                        f" mpcnet keys status --key {key_id}")
    key = next(iter(held.values()))
    return key["epoch"], PublicKey.model_validate(
        {k: v for k, v in key.items() if k in PublicKey.model_fields}), \
        key.get("holders_recorded", True)


def check_reshared(c: Coordinator, key: PublicKey, output: dict) -> str | None:
    """Why a reshared key is not the same key shared among the roster at its threshold."""
    names = [p.name for p in c.roster.parties]
    if output.get("public_key") != key.public_key:
        return "the reshared key has another public key"
    if output.get("holders") != names:
        return f"the reshared key is held by {output.get('holders')}, not the roster's parties"
    return key_problem({**output, "scheme": key.scheme, "address": key.address}, names,
                       c.roster.threshold)


async def reshare_key(c: Coordinator, key_id: str, progress=lambda text: None) -> JobOutcome:
    """Move a key to the roster's parties and threshold (stage, commit, drop the old shares);
    an outcome with output `unchanged` if it is already shared so.  A key whose share files
    predate resharing (they name no holders) is reshared among the same parties, which
    records them: do it before a roster change renumbers the parties.  The ledger follows the new
    sharing and drops the presignatures of the old one."""
    from mpc_nodes.client.coordinator import JobOutcome  # it imports the job kinds
    epoch, key, recorded = await held_key(c, key_id, progress)
    names = [p.name for p in c.roster.parties]
    if key.holders == names and key.t == c.roster.threshold and recorded:
        return JobOutcome(None, "key-reshare", {"key_id": key_id}, ok=True, output={
            "key_id": key_id, "epoch": epoch, "holders": names, "t": key.t,
            "public_key": key.public_key, "unchanged": True})
    progress(f"key {key_id}: from {key.t}-of-{len(key.holders)} ({', '.join(key.holders)})"
             f" to {c.roster.threshold}-of-{len(names)} ({', '.join(names)})")
    outcome = await c.run_job("key-reshare", {"key_id": key_id, "epoch": epoch + 1,
                                              "key": key.model_dump()}, progress=progress)
    if outcome.ok and (problem := check_reshared(c, key, outcome.output)):
        outcome.ok, outcome.error = False, problem
    if outcome.ok:
        record(c, key_id, outcome.output)
    return outcome


def record(c: Coordinator, key_id: str, output: dict) -> None:
    """The coordinator's ledger follows a reshared key (its FROST signing checks each share
    against the new verification shares) and drops the old epoch's presignatures."""
    ledger = Ledger(c.config_path)
    if key_id not in ledger.data:
        return
    ledger.key(key_id).update({k: output[k] for k in
                               ("epoch", "t", "n", "holders", "verification_shares")})
    ledger.save()
    ledger.drop_all_presignatures(key_id, f"the key was reshared as epoch {output['epoch']}")
