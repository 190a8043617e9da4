"""The job-kind lifecycle: what a kind of job declares, and the hooks the node and the
coordinator call, in the order they call them.

On each node (mpc_nodes.node.daemon), for one job:

  request  refused_under(roster)                  a SessionKind not active_secure under a
                                                  malicious roster: the vote rejects
           parse(raw params) -> params            a bad field: the vote rejects, naming it
           sealed_to(params)                      must be the requesting coordinator, if any
           prepare(ctx, params) -> prepared       slow work, in a thread, once per job
           check_vote(ctx, job)                   JobRejected: the vote rejects with its reason
  start    plan(ctx, job) -> MpcSession           a SessionKind: the protocol runs in an MPyC
                          |  LocalStep            session; a LocalKind: run_locally(ctx, job)
           complete(ctx, job, output) -> result   persist; the public result this node reports

`job` is a NodeJob: the parsed parameters, what `prepare` returned, and from the start on the
participants.  Any node hook may raise JobRejected; the job then fails on this node with
that reason; check_vote may raise ApprovesOnly instead: the node approves, takes no part.

On the coordinator (mpc_nodes.client.coordinator): refused_under and parse before the
request is sent (the same checks, so a request every node would refuse never leaves),
min_parties and approvals_needed to start it, output_is_shared, one_output_suffices and
verify_output to judge the results, commit_params once a key epoch was staged.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import Field, ValidationError

from keyshare.store import KEY_ID

from mpc_nodes.config import PartyInfo, Roster
from mpc_nodes.models import StrictModel
from mpc_nodes.node.context import ApprovesOnly, JobRejected, NodeContext
from mpc_nodes.node.session import ProtocolFunction


@dataclass(frozen=True)
class MpcSession:
    """Run `protocol(rt, *args)` in an MPyC session among the participants: this party's
    private arguments, the MPyC threshold (None: the largest the session allows, (m-1)//2),
    and for long jobs the time the protocol may take (None: the node's session_timeout_s)."""

    protocol: ProtocolFunction
    args: list
    threshold: int | None = None
    timeout: float | None = None


@dataclass(frozen=True)
class LocalStep:
    """No MPC session: each participant does the job's work alone, in its kind's
    `run_locally`."""


class _Params(StrictModel):
    """A job kind's parameters."""


KeyId = Field(pattern=KEY_ID.pattern)
"""The parameter that names a threshold key, in every key family's parameters."""


P = TypeVar("P", bound=_Params)  # a kind's parameters model
R = TypeVar("R")  # what a kind's prepare returns (NodeJob.prepared)


@dataclass(frozen=True)
class NodeJob(Generic[P, R]):
    """One job on a node as its kind's hooks see it: the parsed parameters, what `prepare`
    made of them, and (from the start on) the participants in session order."""

    params: P
    prepared: R = None
    participants: list[PartyInfo] = field(default_factory=list)
    observations: list[str] = field(default_factory=list)
    """What `complete` saw other parties do, published beside the result (JobResult)."""


class JobKind(ABC, Generic[P, R]):
    """Base class of every kind: override the hooks that differ.  A kind derives from
    SessionKind or LocalKind, which says how its work is done."""

    name: ClassVar[str]
    params_model: ClassVar[type[_Params]]

    one_output_suffices: ClassVar[bool] = False
    """True: one output that the coordinator verifies on its own (a signature), reported alike
    by more than t participants, is the job's result even if other participants failed or
    were lost after it was produced (they are named in JobOutcome.party_notes)."""

    # hooks both sides call

    def parse(self, params: dict) -> P:
        """Validate parameters; raise ValueError naming the bad field."""
        try:
            return self.params_model.model_validate(params)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ValueError(f"{self.name}: parameter {'.'.join(map(str, first['loc']))}:"
                             f" {first['msg']}") from None

    def min_parties(self, roster: Roster) -> int:
        """Fewest participants with which the job is safe: an honest majority above t
        (and never fewer than two: a joint computation needs someone to compute with)."""
        return max(2, 2 * roster.threshold + 1)

    def approvals_needed(self, roster: Roster) -> int:
        """Signed ACCEPT votes a start must carry, from participants or not (0: only the
        participants' own).  Signing needs the roster's policy quorum."""
        return 0

    def refused_under(self, roster: Roster) -> str | None:
        """Why no node runs this kind under `roster`'s security mode (None: it may run).
        Checked by every node before its vote and by the coordinator before it asks."""
        return None

    def sealed_to(self, params: P) -> str | None:
        """The coordinator this job's outputs are encrypted to (None: they are not).  A node
        refuses a request whose outputs are sealed to anyone but its requester."""
        return None

    def output_is_shared(self, params: P) -> bool:
        """True: every participant must report the same output.  False: each reports its own
        part (an encrypted output share, a signature share) in JobOutcome.party_outputs."""
        return True

    # hooks the coordinator calls

    def verify_output(self, params: P, output: dict) -> str | None:
        """Why `output` is not a valid result of these parameters, None if it is; checked by
        the coordinator, without the parties' word, for kinds with one_output_suffices."""
        return "this kind's outputs cannot be verified on their own"

    def commit_params(self, params: P, output: dict) -> dict | None:
        """For a kind that stages a key epoch (keygen, refresh): the `key-commit` parameters
        that make it current, which the coordinator runs once every participant staged it
        (see `mpc_nodes.jobs.epochs`); None for other kinds."""
        return None

    # hooks the node calls, in this order

    def prepare(self, ctx: NodeContext, params: P) -> R:
        """Slow, thread-safe work before the vote (reading and parsing big files, decrypting
        a key share), run once per job in a worker thread so that votes on other jobs keep
        flowing.  What it returns is kept with the job (`NodeJob.prepared`) for the later
        hooks.  Nothing else may run in that thread: one-time secrets are checked in
        check_vote."""
        return None

    def check_vote(self, ctx: NodeContext, job: NodeJob[P, R]) -> None:
        """Raise JobRejected if this node cannot or will not take part (its reason is the
        vote's), ApprovesOnly if it approves a job it cannot take part in (a kind with
        approvals_needed); a kind whose vote is its action (promise, abort, reserve) takes it
        here."""

    @abstractmethod
    def plan(self, ctx: NodeContext, job: NodeJob[P, R]) -> MpcSession | LocalStep:
        """At the start, with `job.participants`: check again what may have changed since
        the vote, bind the private inputs handed to a session to the participants, and say
        what runs."""

    def complete(self, ctx: NodeContext, job: NodeJob[P, R], output: Any) -> dict:
        """Persist what must be kept and return the public result this node reports, from
        the protocol's output (or run_locally's)."""
        return output


class SessionKind(JobKind[P, R]):
    """A kind whose work is an MPC protocol: `plan` returns the MpcSession to run."""

    active_secure: ClassVar[bool] = False
    """True: this kind's protocol is secure with abort against t malicious parties (a job
    returns the correct output or fails, never a wrong one): it may run under a roster that
    says `security: malicious`.  False: semi-honest only; refused under such a roster."""

    def refused_under(self, roster: Roster) -> str | None:
        if roster.security != "malicious" or self.active_secure:
            return None
        return (f"job kind {self.name!r} is refused: the roster (version {roster.version})"
                f" says security: malicious, and this kind's protocol is secure against"
                f" semi-honest parties only (not hardened yet, issue 13); it runs under a"
                f" roster with security: semi-honest")

    @abstractmethod
    def plan(self, ctx: NodeContext, job: NodeJob[P, R]) -> MpcSession:
        """The protocol this party runs, with its private arguments (see JobKind.plan)."""


class LocalKind(JobKind[P, R]):
    """A kind whose work needs no MPC session: each participant does it in `run_locally`."""

    def plan(self, ctx: NodeContext, job: NodeJob[P, R]) -> LocalStep:
        return LocalStep()

    @abstractmethod
    def run_locally(self, ctx: NodeContext, job: NodeJob[P, R]) -> Any:
        """This participant's work, at the start and after `plan`; its output goes to
        `complete`."""
