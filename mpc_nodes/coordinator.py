"""The coordinator: publishes signed job requests, collects votes, starts the job among the
accepting parties, and reports success only when every participant reports the same result.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from . import client_ids, topics
from .bus import Bus, BusUnavailable
from .config import CoordinatorConfig, Roster, load_coordinator_config, load_roster, resolve
from .envelope import EnvelopeError, Verifier, seal
from .jobs import kind_for
from .keyepochs import complete_epoch
from .messages import (JobAbort, JobRequest, JobResult, JobStart, Presence, Vote, output_digest,
                       supersedes)
from .pki import client_context, load_identity, read_passphrase


@dataclass
class VoteInfo:
    party: str
    accept: bool
    reason: str
    code_digest: str


@dataclass
class JobOutcome:
    """What happened to one job, for humans (`describe`) and scripts (`as_dict`)."""

    job_id: str
    kind: str
    params: dict
    ok: bool
    output: dict | None = None
    error: str | None = None
    participants: list[str] = field(default_factory=list)
    votes: list[VoteInfo] = field(default_factory=list)
    party_errors: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    party_timings: dict[str, dict] = field(default_factory=dict)
    party_outputs: dict[str, dict] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"job_id": self.job_id, "kind": self.kind, "params": self.params, "ok": self.ok,
                "output": self.output, "error": self.error, "participants": self.participants,
                "votes": [v.__dict__ for v in self.votes], "party_errors": self.party_errors,
                "timings": self.timings, "party_timings": self.party_timings,
                **({"party_outputs": self.party_outputs} if self.party_outputs else {})}


OFFLINE_GRACE_S = 3.0


class CoordinatorError(RuntimeError):
    """The coordinator could not do what was asked (no broker, bad parameters...)."""


class Coordinator:
    """A connected coordinator; use as `async with Coordinator(...) as c:`."""

    def __init__(self, config_path: Path, broker: str | None = None):
        self.config_path = Path(config_path).resolve()
        self.config: CoordinatorConfig = load_coordinator_config(self.config_path)
        self.roster: Roster = load_roster(resolve(self.config_path, self.config.roster))
        if self.roster.coordinator(self.config.name) is None:
            raise CoordinatorError(f"coordinator {self.config.name!r} is not in the roster")
        passphrase = read_passphrase(self.config.passphrase, self.config_path)
        self.identity = load_identity(resolve(self.config_path, self.config.identity_key),
                                      passphrase)
        self.verifier = Verifier(self.roster)
        self.sender = f"coordinator/{self.config.name}"
        self.presence: dict[str, Presence] = {}
        self._votes: dict[str, asyncio.Queue] = {}  # job id -> queue, for jobs in flight only
        self._results: dict[str, asyncio.Queue] = {}
        self._presence_seen = asyncio.Event()
        cluster = self.roster.cluster_id
        url = broker or self.config.broker
        ca = (resolve(self.config_path, self.config.broker_ca).read_text()
              if self.config.broker_ca else self.roster.ca_cert)
        cert, key = (resolve(self.config_path, p) if p else None
                     for p in (self.config.tls_cert, self.config.tls_key))
        tls = client_context(cert, key, passphrase, ca) if url.startswith("mqtts") else None
        self.bus = Bus(url, client_ids.coordinator_id(cluster, self.config.name), tls,
                       [topics.all_nodes(cluster, leaf) for leaf in ("status", "votes", "results")],
                       self._on_message)
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "Coordinator":
        self._task = asyncio.ensure_future(self.bus.run())
        try:
            await self.bus.wait_connected(10.0)
        except Exception as exc:
            await self.__aexit__(None, None, None)
            raise CoordinatorError(str(exc)) from None
        return self

    async def __aexit__(self, *exc) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _on_message(self, topic: str, payload: bytes) -> None:
        where = topics.party_of(topic)
        if where is None:
            return
        try:
            v = self.verifier.open(payload, topic)
        except EnvelopeError:
            return
        if v.sender_kind != "party" or v.sender != where[0]:
            return
        msg = v.message
        if isinstance(msg, Presence):  # a late will of an older connection loses
            known = self.presence.get(v.sender)
            if known is None or supersedes(msg, known):
                self.presence[v.sender] = msg
            self._presence_seen.set()
        elif isinstance(msg, Vote) and msg.job_id in self._votes:
            self._votes[msg.job_id].put_nowait((v, payload))
        elif isinstance(msg, JobResult) and msg.job_id in self._results:
            self._results[msg.job_id].put_nowait(v)

    async def status(self, wait: float = 1.0) -> dict[str, Presence | None]:
        """Presence of every roster party (None: never seen), after waiting for retained ones."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while loop.time() < deadline and len(self.presence) < self.roster.n:
            await asyncio.sleep(0.02)
        return {p.name: self.presence.get(p.name) for p in self.roster.parties}

    def online(self) -> set[str]:
        return {name for name, p in self.presence.items() if p.state == "online"}

    async def run_job(self, kind_name: str, params: dict, ttl: float = 60.0,
                      vote_timeout: float = 5.0, result_timeout: float = 120.0,
                      progress=lambda text: None,
                      only: list[str] | None = None) -> JobOutcome:
        """Request a job and follow it to the end; never raises for a failed job.

        `only` restricts the participants to these parties (e.g. a presignature's set)."""
        kind = kind_for(kind_name)
        kind.parse(params)  # raises ValueError naming the bad parameter
        await self.status(wait=1.0)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        now = time.time()
        request = JobRequest(job_id=secrets.token_hex(16), kind=kind_name, params=params,
                             coordinator=self.config.name, issued_at=now, expires_at=now + ttl)
        raw, digest = self.seal_for_jobs(request)
        limit = self.roster.limits.max_message_bytes
        if len(raw) > limit:
            raise CoordinatorError(f"the {kind_name} request ({len(raw):,} bytes) exceeds the"
                                   f" cluster's message limit of {limit:,} bytes; split it")
        outcome = JobOutcome(request.job_id, kind_name, params, ok=False)
        jobs_topic = topics.jobs(self.roster.cluster_id)
        self._votes[request.job_id] = asyncio.Queue()
        self._results[request.job_id] = asyncio.Queue()
        try:
            await self.bus.publish(jobs_topic, raw)
            await self._follow(request, digest, kind, outcome, progress, t0, vote_timeout,
                               result_timeout, only)
        finally:
            self._votes.pop(request.job_id, None)
            self._results.pop(request.job_id, None)
        if outcome.ok and (commit := kind.commit_params(kind.parse(params), outcome.output)):
            await complete_epoch(self, outcome, commit, progress)  # stage -> commit -> drop
        return outcome

    async def _follow(self, request, digest, kind, outcome, progress, t0, vote_timeout,
                      result_timeout, only) -> None:
        """Votes, then start or abort, then results: fills in `outcome`."""
        loop = asyncio.get_running_loop()
        jobs_topic = topics.jobs(self.roster.cluster_id)
        progress(f"job {request.job_id[:8]} requested; collecting votes")
        approvals = kind.approvals_needed(self.roster)  # signing: the policy quorum
        votes = await self._collect_votes(request.job_id, digest, vote_timeout,
                                          None if approvals else only)
        order = {p.name: p.index for p in self.roster.parties}
        outcome.votes = [VoteInfo(v.sender, m.accept, m.reason, m.code_digest)
                         for v, m, _ in sorted(votes.values(), key=lambda x: order[x[0].sender])]
        approved = {name: raw_vote for name, (v, m, raw_vote) in votes.items() if m.accept}
        accepted = {name: raw for name, raw in approved.items() if only is None or name in only}
        embedded = approved if approvals else accepted
        outcome.timings["vote_s"] = loop.time() - t0
        needed = kind.min_parties(self.roster)
        problem = None
        missing = [p.name for p in self.roster.parties if p.name not in votes]
        digests = {votes[name][1].code_digest for name in embedded}
        if len(digests) > 1:
            problem = "parties run different protocol code: " + ", ".join(
                f"{name}={votes[name][1].code_digest[:12]}" for name in sorted(embedded))
        elif len(approved) < approvals:
            problem = (f"only {len(approved)} of the {approvals} policy approvals required"
                       f" (limits.policy_quorum) were given"
                       + (f"; no vote from {', '.join(missing)}" if missing else ""))
        elif len(accepted) < needed:
            problem = (f"only {len(accepted)} of the {needed} required parties accepted"
                       + (f"; no vote from {', '.join(missing)}" if missing else ""))
        elif only is not None and set(accepted) != set(only):
            problem = (f"the job needs exactly {', '.join(only)}; missing or refusing:"
                       f" {', '.join(sorted(set(only) - set(accepted)))}")
        if problem:
            outcome.error = problem
            await self.bus.publish(jobs_topic, self.seal_for_jobs(
                JobAbort(job_id=request.job_id, reason=problem[:2000]))[0])
            return

        outcome.participants = sorted(accepted, key=order.__getitem__)
        start = JobStart(job_id=request.job_id, request_digest=digest,
                         votes=[embedded[n].decode() for n in sorted(embedded, key=order.get)],
                         participants=outcome.participants if approvals else None)
        await self.bus.publish(jobs_topic, self.seal_for_jobs(start)[0])
        progress(f"job {request.job_id[:8]} started with {', '.join(outcome.participants)}")
        t1 = loop.time()
        results = await self._collect_results(request.job_id, digest, outcome.participants,
                                              result_timeout)
        outcome.timings["run_s"] = loop.time() - t1
        outcome.timings["total_s"] = loop.time() - t0
        self._judge(outcome, results, kind.output_is_shared(kind.parse(request.params)))
        if not outcome.ok:  # a participant still in the session (e.g. waiting to connect to
            # a party that died) stops now instead of holding up the next job
            abort = JobAbort(job_id=request.job_id, reason=(outcome.error or "failed")[:2000])
            try:
                await self.bus.publish(jobs_topic, self.seal_for_jobs(abort)[0])
            except BusUnavailable:
                pass  # best effort: such a node gives up at its own timeout

    async def solicit_votes(self, raw_request: bytes, job_id: str, digest: str,
                            timeout: float = 3.0) -> dict[str, Vote]:
        """Publish an already sealed request and return the votes it drew (for diagnostics
        and tests of the nodes' checks); the job is then aborted, never started."""
        self._votes[job_id] = asyncio.Queue()
        try:
            await self.bus.publish(topics.jobs(self.roster.cluster_id), raw_request)
            votes = await self._collect_votes(job_id, digest, timeout)
        finally:
            self._votes.pop(job_id, None)
        await self.bus.publish(topics.jobs(self.roster.cluster_id), self.seal_for_jobs(
            JobAbort(job_id=job_id, reason="votes solicited only"))[0])
        return {name: m for name, (_, m, _) in votes.items()}

    def seal_for_jobs(self, message, sender: str | None = None,
                      key=None) -> tuple[bytes, str]:
        """Seal a message for the jobs topic: (raw envelope, payload digest).  Tests pass
        another sender or key to forge one."""
        sealed = seal(key or self.identity, sender or self.sender, self.roster.cluster_id,
                      topics.jobs(self.roster.cluster_id), message)
        return sealed.raw, sealed.payload_digest

    async def _collect_votes(self, job_id: str, digest: str, timeout: float,
                             only: list[str] | None = None) -> dict:
        """Votes for this exact request from parties online now (or only from `only`), until
        all are in or timeout."""
        queue = self._votes[job_id]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        votes: dict = {}
        while True:
            expected = set(only) if only is not None else self.online() | set(votes)
            if expected and expected <= set(votes):
                return votes
            remaining = deadline - loop.time()
            if remaining <= 0:
                return votes
            try:
                v, raw = await asyncio.wait_for(queue.get(), min(remaining, 0.25))
            except asyncio.TimeoutError:
                continue
            if v.message.request_digest == digest and v.sender not in votes:
                votes[v.sender] = (v, v.message, raw)

    async def _collect_results(self, job_id: str, digest: str, participants: list[str],
                               timeout: float) -> dict[str, JobResult]:
        queue = self._results[job_id]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        results: dict[str, JobResult] = {}
        failed, all_gone_since = False, None
        while loop.time() < deadline:
            waiting = set(participants) - set(results)
            if not waiting:
                break
            # participants that went offline will not report: stop at once if the job has
            # failed anyway, else after a grace period (a node may just be reconnecting)
            if waiting & self.online():
                all_gone_since = None
            else:
                all_gone_since = all_gone_since or loop.time()
                if failed or loop.time() - all_gone_since > OFFLINE_GRACE_S:
                    break
            try:
                v = await asyncio.wait_for(queue.get(), min(0.1, deadline - loop.time()))
            except asyncio.TimeoutError:
                continue
            if v.sender in participants and v.message.request_digest == digest:
                results.setdefault(v.sender, v.message)
                if not v.message.ok and not failed:
                    # one failure fails the job; give the others a moment to report theirs
                    failed, deadline = True, min(deadline, loop.time() + 2.0)
        return results

    @staticmethod
    def _judge(outcome: JobOutcome, results: dict[str, JobResult],
               shared_output: bool = True) -> None:
        """Success only when every participant reported success with an output that has the
        digest it claims, and, for a shared output, all those digests agree.  No party's
        word is taken for its own digest: a party that reports a forged output under the
        honest digest, or a result the others do not share, is named and fails the job."""
        for name in outcome.participants:
            r = results.get(name)
            if r is None:
                outcome.party_errors[name] = "no result (offline, or timed out)"
            elif not r.ok:
                outcome.party_errors[name] = r.error or "failed"
            elif r.output_digest != output_digest(r.output):
                outcome.party_errors[name] = ("its output does not have the output digest it"
                                              " reported (a forged output?)")
            else:
                outcome.party_timings[name] = r.timings
        if not outcome.party_errors and shared_output:
            outcome.party_errors = _dissenters({n: results[n].output_digest
                                                for n in outcome.participants})
        if outcome.party_errors:
            outcome.error = "; ".join(f"{n}: {e}" for n, e in outcome.party_errors.items())
            return
        outcome.ok = True
        if shared_output:
            outcome.output = results[outcome.participants[0]].output
        else:  # each party reports its own part (an output share, a nonce...)
            outcome.party_outputs = {n: results[n].output for n in outcome.participants}


def _dissenters(digests: dict[str, str]) -> dict[str, str]:
    """The parties whose output digest differs from a strict majority's, each with why;
    every party when no majority agrees; none when all agree."""
    top, count = Counter(digests.values()).most_common(1)[0]
    if count == len(digests):
        return {}
    if 2 * count > len(digests):
        return {n: f"its result ({d[:12]}) disagrees with the other participants' ({top[:12]})"
                for n, d in digests.items() if d != top}
    return {n: f"reported result {d[:12]}; no majority of participants agrees"
            for n, d in digests.items()}
