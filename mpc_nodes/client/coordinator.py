"""The coordinator: publishes signed job requests, collects votes, starts the job among the
accepting parties, and reports success only when every participant reports the same result.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from mpc_nodes import governance
from mpc_nodes.config import (CoordinatorConfig, Roster, load_coordinator_config, load_roster,
                              resolve)
from mpc_nodes.errors import UserError
from mpc_nodes.jobs.epochs import complete_epoch
from mpc_nodes.jobs.registry import KINDS, kind_for
from mpc_nodes.node.held_roster import adopt
from mpc_nodes.pki import client_context, load_identity, read_passphrase
from mpc_nodes.wire import client_ids, topics
from mpc_nodes.wire.bus import Bus, BusUnavailable
from mpc_nodes.wire.envelope import EnvelopeError, Verifier, seal
from mpc_nodes.wire.messages import (JobAbort, JobQuery, JobRequest, JobResult, JobStart, JobState,
                                     Presence, Vote, output_digest, supersedes)


@dataclass
class VoteInfo:
    party: str
    accept: bool
    reason: str
    code_digest: str
    participates: bool = True
    """False: an approval only (the party approves but cannot take part)."""


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
    party_notes: dict[str, str] = field(default_factory=dict)
    """Participants that failed in a job that succeeded all the same (a signature that one
    party lost after it was made)."""
    party_states: dict[str, str] = field(default_factory=dict)
    """For `job show`: each party's own account (done, running, pending, lost, unknown, or
    no answer)."""
    observations: dict[str, list[str]] = field(default_factory=dict)
    """What each party reported seeing others do (a signature share that failed its check):
    claims, one party's word each."""

    def as_dict(self) -> dict:
        return {"job_id": self.job_id, "kind": self.kind, "params": self.params, "ok": self.ok,
                "output": self.output, "error": self.error, "participants": self.participants,
                "votes": [v.__dict__ for v in self.votes], "party_errors": self.party_errors,
                "timings": self.timings, "party_timings": self.party_timings,
                **({"party_outputs": self.party_outputs} if self.party_outputs else {}),
                **({"party_notes": self.party_notes} if self.party_notes else {}),
                **({"party_states": self.party_states} if self.party_states else {}),
                **({"observations": self.observations} if self.observations else {})}


OFFLINE_GRACE_S = 3.0
RESTART_ANSWER_S = 5.0
"""How long a participant that restarted mid-job has to say it kept the job's result."""
QUERY_EVERY_S = 5.0
"""How often participants whose result has not come are asked what became of the job."""
WAIT_FOR_PARTIES_S = 30.0
"""How long a job waits, before its request, for parties reconnecting after a broker restart."""


class CoordinatorError(UserError, RuntimeError):
    """The coordinator could not do what was asked (no broker, bad parameters...)."""


class Coordinator:
    """A connected coordinator; use as `async with Coordinator(...) as c:`."""

    def __init__(self, config_path: Path, broker: str | None = None):
        self.config_path = Path(config_path).resolve()
        self.config: CoordinatorConfig = load_coordinator_config(self.config_path)
        self.roster: Roster = load_roster(resolve(self.config_path, self.config.roster))
        if self.roster.coordinator(self.config.name) is None:
            raise CoordinatorError(f"coordinator {self.config.name!r} is not in the roster")
        # trusted as a node trusts it: every operator's signature, then quorum-signed updates
        adopt(self.config_path.parent, self.roster, None)
        passphrase = read_passphrase(self.config.passphrase, self.config_path)
        self.identity = load_identity(resolve(self.config_path, self.config.identity_key),
                                      passphrase)
        self.verifier = Verifier(self.roster)
        self.sender = f"coordinator/{self.config.name}"
        self.presence: dict[str, Presence] = {}
        self._votes: dict[str, asyncio.Queue] = {}  # job id -> queue, for jobs in flight only
        self._results: dict[str, asyncio.Queue] = {}
        self._answers: dict[str, asyncio.Queue] = {}  # job id -> JobState answers
        self._heard: dict[str, int] = {}  # party -> our connection its presence came on
        self._online_at: dict[str, float] = {}  # party -> when it last announced online
        self._presence_seen = asyncio.Event()
        cluster = self.roster.cluster_id
        url = broker or self.config.broker
        ca = (resolve(self.config_path, self.config.broker_ca).read_text()
              if self.config.broker_ca else self.roster.broker_trust_pem)
        cert, key = (resolve(self.config_path, p) if p else None
                     for p in (self.config.tls_cert, self.config.tls_key))
        tls = client_context(cert, key, passphrase, ca) if url.startswith("mqtts") else None
        self.bus = Bus(url, client_ids.coordinator_id(cluster, self.config.name), tls,
                       [topics.all_nodes(cluster, leaf)
                        for leaf in ("status", "votes", "results", "answers")],
                       self._on_message, on_connect=self._on_connect)
        self._connected_at = 0.0  # loop time of our latest (re)connection
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
                if msg.state == "online":
                    self._online_at[v.sender] = asyncio.get_running_loop().time()
            self._heard[v.sender] = self.bus.connects
            self._presence_seen.set()
        elif isinstance(msg, Vote) and msg.job_id in self._votes:
            self._votes[msg.job_id].put_nowait((v, payload))
        elif isinstance(msg, JobResult) and msg.job_id in self._results:
            self._results[msg.job_id].put_nowait(v)
        elif isinstance(msg, JobState) and msg.job_id in self._answers:
            self._answers[msg.job_id].put_nowait(v)

    async def status(self, wait: float = 1.0) -> dict[str, Presence | None]:
        """Presence of every roster party (None: never seen), after waiting for retained ones."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while loop.time() < deadline and len(self.presence) < self.roster.n:
            await asyncio.sleep(0.02)
        return {p.name: self.presence.get(p.name) for p in self.roster.parties}

    def online(self) -> set[str]:
        """Parties whose presence, heard on our current broker connection, is online: after a
        broker restart an earlier "online" says nothing until the party announces again."""
        return {name for name, p in self.presence.items()
                if p.state == "online" and self._heard.get(name) == self.bus.connects}

    async def _on_connect(self) -> None:
        self._connected_at = asyncio.get_running_loop().time()

    def _reconnecting(self) -> set[str]:
        """Parties heard on an earlier connection of ours but not yet on this one, while they
        may still be coming back (WAIT_FOR_PARTIES_S after our reconnect)."""
        if asyncio.get_running_loop().time() - self._connected_at > WAIT_FOR_PARTIES_S:
            return set()
        return {name for name in self.presence if self._heard.get(name) != self.bus.connects}

    async def wait_for_parties(self, needed: int, only: list[str] | None,
                               timeout: float) -> None:
        """Wait, at most `timeout`, until we are connected and `needed` parties (and all of
        `only`) are online — while parties that were online before a broker restart may
        still come back.  A request sent in that gap would find no voters."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        must = set(only or ())
        while loop.time() < deadline:
            if self.bus.connected.is_set():
                online = self.online()
                if len(online) >= needed and must <= online:
                    return
                possible = online | self._reconnecting()
                if len(possible) < needed or not must <= possible:
                    return  # the votes will say who is missing
            await asyncio.sleep(0.05)

    async def query(self, job_ids: list[str], parties: list[str] | None = None) -> None:
        """Ask parties what became of jobs (they republish stored results, answer states)."""
        try:
            await self.bus.publish(topics.jobs(self.roster.cluster_id), self.seal_for_jobs(
                JobQuery(job_ids=job_ids, parties=parties))[0], timeout=5.0)
        except BusUnavailable:
            pass  # asked again at the next reconnect or period

    async def run_job(self, kind_name: str, params: dict, ttl: float = 60.0,
                      vote_timeout: float = 5.0, result_timeout: float = 120.0,
                      progress=lambda text: None,
                      only: list[str] | None = None,
                      wait_for_parties: float = WAIT_FOR_PARTIES_S) -> JobOutcome:
        """Request a job and follow it to the end; never raises for a failed job.

        `only` restricts the participants to these parties (e.g. a presignature's set).
        Parties reconnecting after a broker restart are waited for, up to
        `wait_for_parties` (and half the request's ttl)."""
        kind = kind_for(kind_name)
        if refused := kind.refused_under(self.roster):  # every node would vote no
            raise CoordinatorError(refused)
        kind.parse(params)  # raises ValueError naming the bad parameter
        await self.status(wait=1.0)
        await self.wait_for_parties(max(kind.min_parties(self.roster),
                                        kind.approvals_needed(self.roster)), only,
                                    min(wait_for_parties, ttl / 2))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        now = time.time()
        request = JobRequest(job_id=secrets.token_hex(16), kind=kind_name, params=params,
                             coordinator=self.config.name, issued_at=now, expires_at=now + ttl,
                             **governance.request_binding(self.roster))
        raw, digest = self.seal_for_jobs(request)
        limit = self.roster.limits.max_message_bytes
        if len(raw) > limit:
            raise CoordinatorError(f"the {kind_name} request ({len(raw):,} bytes) exceeds the"
                                   f" cluster's message limit of {limit:,} bytes; split it")
        outcome = JobOutcome(request.job_id, kind_name, params, ok=False)
        jobs_topic = topics.jobs(self.roster.cluster_id)
        self._votes[request.job_id] = asyncio.Queue()
        self._results[request.job_id] = asyncio.Queue()
        self._answers[request.job_id] = asyncio.Queue()
        try:
            await self.bus.publish(jobs_topic, raw)
            await self._follow(request, raw, digest, kind, outcome, progress, t0, vote_timeout,
                               result_timeout, only)
        finally:
            self._votes.pop(request.job_id, None)
            self._results.pop(request.job_id, None)
            self._answers.pop(request.job_id, None)
        if outcome.ok and (commit := kind.commit_params(kind.parse(params), outcome.output)):
            await complete_epoch(self, outcome, commit, progress)  # stage -> commit -> drop
        return outcome

    async def _follow(self, request, raw, digest, kind, outcome, progress, t0, vote_timeout,
                      result_timeout, only) -> None:
        """Votes, then start or abort, then results: fills in `outcome`."""
        loop = asyncio.get_running_loop()
        jobs_topic = topics.jobs(self.roster.cluster_id)
        progress(f"job {request.job_id[:8]} requested; collecting votes")
        approvals = kind.approvals_needed(self.roster)  # signing: the policy quorum
        votes = await self._collect_votes(request.job_id, digest, vote_timeout,
                                          None if approvals else only, raw,
                                          t0 + request.expires_at - request.issued_at)
        order = {p.name: p.index for p in self.roster.parties}
        outcome.votes = [VoteInfo(v.sender, m.accept, m.reason, m.code_digest, m.participates)
                         for v, m, _ in sorted(votes.values(), key=lambda x: order[x[0].sender])]
        approved = {name: raw_vote for name, (v, m, raw_vote) in votes.items() if m.accept}
        accepted = {name: raw for name, raw in approved.items()  # approvals only left out
                    if (only is None or name in only) and votes[name][1].participates}
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
        start_raw = self.seal_for_jobs(start)[0]
        await self.bus.publish(jobs_topic, start_raw)
        progress(f"job {request.job_id[:8]} started with {', '.join(outcome.participants)}")
        t1 = loop.time()
        failures: dict[str, str] = {}
        results = await self._collect_results(request.job_id, digest, outcome.participants,
                                              result_timeout, failures, start_raw)
        outcome.timings["run_s"] = loop.time() - t1
        outcome.timings["total_s"] = loop.time() - t0
        self._judge(outcome, results, kind.output_is_shared(kind.parse(request.params)),
                    failures, self._suffices(kind, request.params))
        if not outcome.ok:  # a participant still in the session (e.g. waiting to connect to
            # a party that died) stops now instead of holding up the next job
            abort = JobAbort(job_id=request.job_id, reason=(outcome.error or "failed")[:2000])
            try:
                await self.bus.publish(jobs_topic, self.seal_for_jobs(abort)[0])
            except BusUnavailable:
                pass  # best effort: such a node gives up at its own timeout

    def seal_for_jobs(self, message) -> tuple[bytes, str]:
        """Seal a message for the jobs topic: (raw envelope, payload digest)."""
        sealed = seal(self.identity, self.sender, self.roster.cluster_id,
                      topics.jobs(self.roster.cluster_id), message)
        return sealed.raw, sealed.payload_digest

    async def _collect_votes(self, job_id: str, digest: str, timeout: float,
                             only: list[str] | None = None, raw: bytes | None = None,
                             until: float | None = None) -> dict:
        """Votes for this exact request from parties online now (or only from `only`), until
        all are in or timeout.  With the sealed request (`raw`), a bus outage does not lose
        votes: the clock stops while we are disconnected (up to `until`, the request's
        expiry), and the request is published again after we reconnect or when a party
        that has not voted comes online (a node answers a copy with the vote it gave)."""
        queue = self._votes[job_id]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        until = until if until is not None else deadline
        votes: dict = {}
        sent_on, sent_at, copies = self.bus.connects, loop.time(), 0
        while True:
            expected = set(only) if only is not None else self.online() | set(votes)
            if expected and expected <= set(votes):
                return votes
            now = loop.time()
            if not self.bus.connected.is_set():
                deadline = min(max(deadline, now + 1.0), until)
            elif raw is not None and copies < 5:
                came = {n for n in expected - set(votes) if self._online_at.get(n, 0) > sent_at}
                if self.bus.connects != sent_on or came:
                    await self.bus.publish(topics.jobs(self.roster.cluster_id), raw)
                    sent_on, sent_at, copies = self.bus.connects, loop.time(), copies + 1
                    deadline = min(max(deadline, sent_at + timeout), until)
            remaining = deadline - loop.time()
            if remaining <= 0:
                return votes
            try:
                v, raw_vote = await asyncio.wait_for(queue.get(), min(remaining, 0.25))
            except asyncio.TimeoutError:
                continue
            if v.message.request_digest == digest and v.sender not in votes:
                votes[v.sender] = (v, v.message, raw_vote)

    async def _collect_results(self, job_id: str, digest: str, participants: list[str],
                               timeout: float, failures: dict[str, str] | None = None,
                               start_raw: bytes | None = None) -> dict[str, JobResult]:
        """The participants' results, until all are in, the job has failed, or timeout.

        A participant that restarts meanwhile (its presence has a new boot id) is asked what
        became of the job: a result it stored counts; a job it lost, or no answer within
        RESTART_ANSWER_S, fails it at once (written to `failures`, naming it).  Participants
        still missing are asked again after our own reconnect and every QUERY_EVERY_S (a
        broker restart may have lost their result; one still waiting for the start, lost in
        the outage, gets it again)."""
        queue = self._results[job_id]
        answers = self._answers.setdefault(job_id, asyncio.Queue())
        failures = {} if failures is None else failures
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        boots = {p: self.presence[p].boot_id for p in participants if p in self.presence}
        restarted: dict[str, float] = {}  # participant -> when we saw its new boot
        results: dict[str, JobResult] = {}
        failed, all_gone_since, gone = False, None, set()
        asked_on, asked_at = self.bus.connects, loop.time()
        while loop.time() < deadline:
            waiting = set(participants) - set(results) - set(failures)
            if not waiting:
                break
            now = loop.time()
            for name in sorted(waiting):
                presence = self.presence.get(name)
                if name not in restarted and presence is not None \
                        and boots.get(name, presence.boot_id) != presence.boot_id:
                    restarted[name] = now
                    await self.query([job_id], [name])
                elif name in restarted and now - restarted[name] > RESTART_ANSWER_S:
                    failures[name] = ("restarted during the job (new boot id) and did not say"
                                      " it kept a result")
            ask = sorted(waiting - set(restarted))
            if ask and self.bus.connected.is_set() and (self.bus.connects != asked_on
                                                       or now - asked_at > QUERY_EVERY_S):
                await self.query([job_id], ask)
                asked_on, asked_at = self.bus.connects, loop.time()
            while not answers.empty():
                v = answers.get_nowait()
                if v.sender in waiting:
                    await self._heed(v.message, v.sender, boots, restarted, failures,
                                     start_raw)
            if failures and not failed:  # the job has failed; let the others report
                failed, deadline = True, min(deadline, loop.time() + 2.0)
            # participants that went offline (said so on our current connection) will not
            # report: stop at once if the job has failed anyway, else after a grace period
            # (a node may just be reconnecting)
            gone = {n for n in waiting if n not in self.online()
                    and self._heard.get(n) == self.bus.connects}
            if waiting - gone:
                all_gone_since = None
            else:
                all_gone_since = all_gone_since or loop.time()
                if failed or loop.time() - all_gone_since > OFFLINE_GRACE_S:
                    break
            try:
                v = await asyncio.wait_for(queue.get(), max(0.01, min(0.1,
                                                                      deadline - loop.time())))
            except asyncio.TimeoutError:
                continue
            if v.sender in participants and v.message.request_digest == digest:
                results.setdefault(v.sender, v.message)  # a result outweighs a lost-job note
                if not v.message.ok and not failed:
                    # one failure fails the job; give the others a moment to report theirs
                    failed, deadline = True, min(deadline, loop.time() + 2.0)
        if failed:  # the others are still in the session the abort is about to stop
            for name in set(participants) - set(results) - set(failures):
                failures[name] = (
                    "restarted during the job (new boot id); no result from it"
                    if name in restarted else
                    "no result: it went offline during the job (stopped, or its link dropped)"
                    if name in gone else "no result yet when the job failed")
        return results

    async def _heed(self, state: JobState, name: str, boots: dict[str, str],
                    restarted: dict[str, float], failures: dict[str, str],
                    start_raw: bytes | None) -> None:
        """Act on a participant's answer about the job it has not reported a result of."""
        if state.boot_id != boots.get(name, state.boot_id):
            restarted.setdefault(name, asyncio.get_running_loop().time())
        if state.state == "lost":
            failures[name] = ("restarted during the job and lost it (it was running the job"
                              " when it stopped)")
        elif state.state == "unknown":
            failures[name] = ("does not know the job"
                              + (" (it restarted before it recorded the start)"
                                 if name in restarted else ""))
        elif state.state == "pending" and start_raw is not None:
            await self.bus.publish(topics.jobs(self.roster.cluster_id), start_raw)

    async def show_job(self, job_id: str, wait: float = 3.0) -> JobOutcome:
        """What became of a job, from the parties' own durable records: every party is asked,
        those that finished it republish their signed results, and the outcome is judged as
        for a job this coordinator follows (results checked against their digests, one
        agreed output, a signature verified)."""
        await self.status(wait=1.0)
        loop = asyncio.get_running_loop()
        self._results[job_id], self._answers[job_id] = asyncio.Queue(), asyncio.Queue()
        states: dict[str, JobState] = {}
        results: dict[str, JobResult] = {}
        try:
            await self.query([job_id])
            deadline = loop.time() + wait
            while loop.time() < deadline:
                while not self._answers[job_id].empty():
                    v = self._answers[job_id].get_nowait()
                    states[v.sender] = v.message
                while not self._results[job_id].empty():
                    v = self._results[job_id].get_nowait()
                    results.setdefault(v.sender, v.message)
                expected = self.online() | set(states)
                if expected and expected <= set(states) and all(
                        n in results for n, st in states.items() if st.state == "done"):
                    break
                await asyncio.sleep(0.05)
        finally:
            self._results.pop(job_id, None)
            self._answers.pop(job_id, None)
        return self._account(job_id, states, results)

    def _account(self, job_id: str, states: dict[str, JobState],
                 results: dict[str, JobResult]) -> JobOutcome:
        """Judge a job from the parties' answers (see show_job)."""
        started = {n: st for n, st in states.items() if st.state in ("done", "running", "lost")}

        def agreed(values):
            values = [v for v in values if v is not None]
            return Counter(values).most_common(1)[0][0] if values else None
        kind_name = agreed(st.kind for st in states.values()) or "unknown"
        digest = agreed(st.request_digest for st in started.values())
        participants = list(agreed(tuple(st.participants) for st in started.values()
                                   if st.participants) or ())
        params = agreed(json.dumps(st.params, sort_keys=True) for st in started.values()
                        if st.params is not None and st.request_digest == digest)
        outcome = JobOutcome(job_id, kind_name, json.loads(params) if params else {}, ok=False,
                             participants=participants)
        outcome.party_states = {p.name: states[p.name].state if p.name in states
                                else "no answer" for p in self.roster.parties}
        if not participants:
            outcome.error = ("no party says it took part in the job"
                             + (" (none answered)" if not states else ""))
            return outcome
        busy = [n for n in participants if outcome.party_states[n] in ("running", "pending")]
        if busy:
            outcome.error = f"still running on {', '.join(busy)}"
            return outcome
        why = {"lost": "lost the job: it restarted while running it",
               "unknown": "does not know the job", "no answer": "no answer (offline?)",
               "done": "said it finished, but its result did not arrive"}
        failures = {n: why.get(outcome.party_states[n], outcome.party_states[n])
                    for n in participants}
        results = {n: r for n, r in results.items() if r.request_digest == digest}
        kind = KINDS.get(kind_name)
        shared = agreed(st.shared for st in started.values())
        try:
            suffices = (self._suffices(kind, outcome.params)
                        if kind is not None and params is not None else None)
        except ValueError:  # parameters no node would have accepted
            suffices = None
        self._judge(outcome, results, shared is not False, failures, suffices)
        return outcome

    def _suffices(self, kind, params: dict):
        """For kinds where one verified output is the result: (how many participants must
        report it alike, the check); else None.  More than t alike include an honest one."""
        if not kind.one_output_suffices:
            return None
        parsed = kind.parse(params)
        return self.roster.threshold + 1, lambda output: kind.verify_output(parsed, output)

    @staticmethod
    def _judge(outcome: JobOutcome, results: dict[str, JobResult],
               shared_output: bool = True, failures: dict[str, str] | None = None,
               suffices=None) -> None:
        """Success only when every participant reported success with an output that has the
        digest it claims, and, for a shared output, all those digests agree.  No party's
        word is taken for its own digest: a party that reports a forged output under the
        honest digest, or a result the others do not share, is named and fails the job.

        `failures` says why a participant has no result (it restarted and lost the job...).
        With `suffices` (kinds whose output proves itself, a signature): the job succeeded
        though some participants failed or have no result, when no report is forged, every
        successful report agrees, at least `suffices[0]` of them, and the output passes the
        coordinator's own check `suffices[1]`; the failed participants become notes."""
        forged = set()
        outcome.observations = {n: list(r.observations) for n, r in results.items()
                                if r.observations}
        for name in outcome.participants:
            r = results.get(name)
            if r is None:
                outcome.party_errors[name] = (failures or {}).get(
                    name, "no result (offline, or timed out)")
            elif not r.ok:
                outcome.party_errors[name] = r.error or "failed"
            elif r.output_digest != output_digest(r.output):
                forged.add(name)
                outcome.party_errors[name] = ("its output does not have the output digest it"
                                              " reported (a forged output?)")
            else:
                outcome.party_timings[name] = r.timings
        if not outcome.party_errors and shared_output:
            outcome.party_errors = _dissenters({n: results[n].output_digest
                                                for n in outcome.participants})
        if outcome.party_errors and suffices and shared_output and not forged:
            good = [n for n in outcome.participants if n not in outcome.party_errors]
            dissent = _dissenters({n: results[n].output_digest for n in good}) if good else {}
            problem = suffices[1](results[good[0]].output) if good and not dissent else None
            if dissent or problem:
                outcome.party_errors.update(dissent or {
                    n: f"its output does not verify: {problem}" for n in good})
            elif len(good) >= suffices[0]:
                outcome.party_notes, outcome.party_errors = outcome.party_errors, {}
        if outcome.party_errors:
            outcome.error = "; ".join(f"{n}: {e}" for n, e in outcome.party_errors.items())
            return
        outcome.ok = True
        if shared_output:
            first = next(n for n in outcome.participants if n not in outcome.party_notes)
            outcome.output = results[first].output
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
