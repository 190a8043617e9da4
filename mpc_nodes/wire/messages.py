"""The bus messages, as strict schemas.  Every one travels inside a signed envelope."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal, Union

from pydantic import Field, TypeAdapter

from mpc_nodes.config import Name, Security
from mpc_nodes.models import StrictModel

JobId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
Digest = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Reason = Annotated[str, Field(max_length=2000)]


class JobRequest(StrictModel):
    """Coordinator → nodes: please run job `kind` with `params` before `expires_at`."""

    type: Literal["job_request"] = "job_request"
    job_id: JobId
    kind: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.-]{0,39}$")]
    params: dict[str, Any]
    coordinator: Name
    issued_at: float
    expires_at: float
    roster_version: int = Field(ge=1, description="the roster version the coordinator holds")
    roster_digest: Digest = Field(description=(
        "that roster's digest (mpc_nodes.governance): a node refuses a request made under"
        " another roster, so none outlives a membership change"))


class Vote(StrictModel):
    """Node → all: accept or reject a request (by its exact digest), and the code it runs."""

    type: Literal["vote"] = "vote"
    job_id: JobId
    request_digest: Digest
    accept: bool
    reason: Reason = ""
    code_digest: Digest
    version: Annotated[str, Field(max_length=40)]
    participates: bool = True  # False: an approval only (ApprovesOnly), never a participant


class JobStart(StrictModel):
    """Coordinator → nodes: run the job among the parties whose signed accept votes are
    embedded, or, if `participants` is given, among those of them (the other votes are
    approvals, e.g. the policy quorum of a signing job)."""

    type: Literal["job_start"] = "job_start"
    job_id: JobId
    request_digest: Digest
    votes: list[Annotated[str, Field(max_length=8192)]] = Field(max_length=256)
    participants: list[Name] | None = Field(default=None, max_length=256)


class JobAbort(StrictModel):
    """Coordinator → nodes: the job will not start (e.g. too few accepting parties)."""

    type: Literal["job_abort"] = "job_abort"
    job_id: JobId
    reason: Reason


class JobResult(StrictModel):
    """Node → all: the outcome of a job on this node."""

    type: Literal["result"] = "result"
    job_id: JobId
    request_digest: Digest
    session_id: Digest | None = None
    ok: bool
    output: dict[str, Any] | None = None
    error: Reason | None = None
    output_digest: Digest | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    observations: list[Reason] = Field(default_factory=list, max_length=16)
    """What this party saw another party do in the job (a signature share that failed its
    check): its claim, outside the output and its digest, which honest parties may not share."""


class JobQuery(StrictModel):
    """Coordinator → nodes: what became of these jobs?  Each asked party that finished one
    republishes its stored signed result; for every other it publishes a `JobState`."""

    type: Literal["job_query"] = "job_query"
    job_ids: list[JobId] = Field(min_length=1, max_length=64)
    parties: list[Name] | None = Field(default=None, max_length=256)  # None: every party


class JobState(StrictModel):
    """Node → all (on its `answers` topic): where a job stands on this node.  done: its
    result was republished; running: started (queued or in its session) in this boot;
    pending: accepted, no start yet; lost: started before this node restarted, no result;
    unknown: never started here (refused, not selected, or never seen)."""

    type: Literal["job_state"] = "job_state"
    job_id: JobId
    state: Literal["done", "running", "pending", "lost", "unknown"]
    boot_id: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]
    kind: Annotated[str, Field(max_length=40)] | None = None
    shared: bool | None = None
    participants: list[Name] = Field(default_factory=list, max_length=256)
    request_digest: Digest | None = None
    params: dict[str, Any] | None = None  # the request's, when small enough to keep


class Presence(StrictModel):
    """Node → all (retained): online, offline, or deaf (connected but its own heartbeat does
    not come back: it would miss requests), with version, code digest, and the roster version
    and security mode it holds (a node on another roster refuses the coordinator's jobs).
    `connection`
    numbers the node process's bus connections and `seq` its announcements, so that a will
    (sent by the broker, maybe late) can be ordered against them: see `supersedes`."""

    type: Literal["presence"] = "presence"
    state: Literal["online", "offline", "deaf"]
    version: Annotated[str, Field(max_length=40)]
    code_digest: Digest
    boot_id: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]
    ts: float
    connection: Annotated[int, Field(ge=0)]
    seq: Annotated[int, Field(ge=0)]
    roster_version: Annotated[int, Field(ge=1)] | None = None  # None: a node before these
    security: Security | None = None  # the held roster's security mode


def supersedes(new: Presence, old: Presence) -> bool:
    """Whether `new` is later news of a party than `old`.  Within one boot: a later connection
    wins, and within a connection its end ("offline", its will or a clean shutdown) wins over
    its announcements, which follow their order; across boots the later timestamp wins (a
    will of an earlier process carries the time of the connection it ends)."""
    if new.boot_id != old.boot_id:
        return new.ts > old.ts
    return ((new.connection, new.state == "offline", new.seq)
            > (old.connection, old.state == "offline", old.seq))


Message = Annotated[Union[JobRequest, Vote, JobStart, JobAbort, JobResult, JobQuery, JobState,
                          Presence],
                    Field(discriminator="type")]
message_adapter: TypeAdapter = TypeAdapter(Message)


def digest_bytes(data: bytes) -> str:
    """Hex SHA-256, the digest used throughout the bus."""
    return hashlib.sha256(data).hexdigest()


def output_digest(output) -> str:
    """Digest of a job's output as the participants report and compare it."""
    return digest_bytes(json.dumps(output, sort_keys=True, separators=(",", ":")).encode())
