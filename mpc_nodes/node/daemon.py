"""The party daemon: presence on the bus, vote on signed job requests, run MPC sessions with
the other chosen parties, publish signed results.

Lifecycle of a job on a node (the kind's hooks: mpc_nodes.jobs.kind):
  request  -> verify (signature of an authorised coordinator, fresh, not replayed, kind
              known and allowed by the roster's security mode, parse, sealed_to, prepare,
              check_vote) -> signed vote carrying the request digest
  start    -> verify the embedded signed accept votes, derive the participant set from them,
              check every participant runs our code digest -> queue the job
  executor -> one job at a time, in start order: plan, then an MPC session or run_locally,
              then complete -> signed result (ok or a clear error)
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import shutil
import signal
import sqlite3
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from mpc_nodes import __version__, governance
from mpc_nodes.config import (ConfigError, NodeConfig, PartyInfo, load_node_config, load_roster,
                              resolve)
from mpc_nodes.jobs.kind import JobKind, LocalStep, MpcSession, NodeJob
from mpc_nodes.jobs.registry import kind_for
from mpc_nodes.node.audit import AuditLog, AuditWriteError
from mpc_nodes.node.codedigest import code_digest
from mpc_nodes.node.context import ApprovesOnly, JobRejected, NodeContext
from mpc_nodes.node.engine import MpcEngine
from mpc_nodes.node.held_roster import adopt
from mpc_nodes.node.job_records import JobRecords
from mpc_nodes.node.metrics import HealthServer, NodeMetrics
from mpc_nodes.node.ratelimit import TokenBuckets
from mpc_nodes.node.replay import ReplayGuard
from mpc_nodes.node.session import SessionError, SessionPeer, SessionSpec
from mpc_nodes.pki import client_context, load_identity, public_hex, read_passphrase
from mpc_nodes.wire import client_ids, topics
from mpc_nodes.wire.bus import NODE_KEEPALIVE_S, Bus, BusUnavailable
from mpc_nodes.wire.envelope import EnvelopeError, Verified, Verifier, envelope_fields, seal
from mpc_nodes.wire.messages import (JobAbort, JobQuery, JobRequest, JobResult, JobStart, JobState,
                                     Presence, Vote, digest_bytes, output_digest, supersedes)

log = logging.getLogger("mpcnet.node")
CLOCK_SKEW_S = 30.0
QUERY_BURST = 256  # job ids a coordinator may ask about at once (a query holds <= 64)
QUERY_RATE = 16  # and a second, on average: a follower asks about a few jobs at a time
MiB = 1 << 20


@dataclass
class PendingJob:
    """A request this node accepted and is waiting to start."""

    request: JobRequest
    digest: str
    kind: JobKind
    node_job: NodeJob  # what the kind's hooks see: parameters, what prepare made of them
    received: float = field(default_factory=time.monotonic)
    vote: bytes | None = None  # our signed vote, sent again if the same request comes again
    aborted: str | None = None  # the requester aborted it after it was started here


def session_id(request_digest: str, participants: list[str], digest: str) -> str:
    """The id both ends of every session connection must agree on."""
    return digest_bytes(f"{request_digest}|{','.join(participants)}|{digest}".encode())


class Node:
    """One operator's party."""

    def __init__(self, config_path: Path, broker: str | None = None):
        self.config_path = Path(config_path).resolve()
        self.config: NodeConfig = load_node_config(self.config_path)
        self.roster = load_roster(resolve(self.config_path, self.config.roster))
        party = self.roster.party(self.config.party)
        if party is None:
            raise ConfigError(f"{self.config_path}: party {self.config.party!r} is not in the roster")
        self.party = party
        self.passphrase = read_passphrase(self.config.passphrase, self.config_path)
        self.ctx = NodeContext(self.roster, party, self.config, self.config_path,
                               read_passphrase(self.config.shares_passphrase_source,
                                               self.config_path))
        self.identity = load_identity(self.ctx.path(self.config.identity_key), self.passphrase)
        if public_hex(self.identity) != party.identity_key:
            raise ConfigError(f"identity key {self.config.identity_key} does not match the roster"
                             f" entry for {party.name}")
        self.tls_cert = str(self.ctx.path(self.config.tls_cert))
        self.tls_key = str(self.ctx.path(self.config.tls_key))
        self.data_dir = self.ctx.path(self.config.data_dir)
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.replay = ReplayGuard(self.data_dir / "seen_jobs.sqlite")
        self.audit = AuditLog(self.data_dir / "audit.log")
        adopt(self.data_dir, self.roster, self.audit)  # before anything trusts the roster
        self.records = JobRecords(self.data_dir / "jobs.sqlite")
        self.verifier = Verifier(self.roster)
        self.code_digest = code_digest()
        self.boot_id = secrets.token_hex(8)
        self.metrics = NodeMetrics(party.name)
        self.metrics.info.labels(party.name, __version__, self.code_digest).set(1)
        self.metrics.data_dir_free_bytes.set_function(self.free_bytes)
        self.engine = MpcEngine(on_restart=self.metrics.engine_restarts.inc)
        self.query_budget = TokenBuckets(rate=QUERY_RATE, burst=QUERY_BURST)
        self.pending: dict[str, PendingJob] = {}
        self.approved_only: dict[str, tuple[str, bytes, float]] = {}  # job -> digest, vote,
        # expiry: an approval-only vote, sent again if the same request comes again
        self._requests: set[asyncio.Task] = set()  # requests being checked
        self._checking: set[str] = set()  # their job ids
        self.queue: asyncio.Queue = asyncio.Queue()
        self.running: PendingJob | None = None  # the job in the engine now
        self.queued: dict[str, PendingJob] = {}  # started here, waiting for the engine
        cluster = self.roster.cluster_id
        self.jobs_topic = topics.jobs(cluster)
        broker_url = broker or self.config.broker
        tls = (client_context(self.tls_cert, self.tls_key, self.passphrase, self._broker_ca())
               if broker_url.startswith("mqtts") else None)  # our cert doubles as broker login
        self._presence_seq, self._announced = 0, None  # our latest announcement
        self._announcing: asyncio.Future | None = None  # one after a roster reload
        status = self._topic("status")  # ours too: to correct a stale will the broker kept
        self.bus = Bus(broker_url, client_ids.node_id(cluster, party.name), tls,
                       [self.jobs_topic, status], self.on_message,
                       will=lambda attempt: (status, self._presence("offline", attempt)[1]),
                       on_connect=self._announce, heartbeat=self._topic("heartbeat"),
                       on_hearing=self._on_hearing, keepalive=NODE_KEEPALIVE_S)
        self.metrics.bus_connected.set_function(lambda: float(self.bus.connected.is_set()))
        self.metrics.bus_deaf.set_function(lambda: float(self.bus.deaf))
        self._stopping = asyncio.Event()

    def _broker_ca(self) -> str:
        if self.config.broker_ca:
            return self.ctx.path(self.config.broker_ca).read_text()
        return self.roster.broker_trust_pem

    def _topic(self, leaf: str) -> str:
        return topics.node(self.roster.cluster_id, self.party.name, leaf)

    def _seal(self, leaf: str, message) -> bytes:
        topic = self._topic(leaf)
        return seal(self.identity, f"party/{self.party.name}", self.roster.cluster_id, topic,
                    message).raw

    def _presence(self, state: str, connection: int | None = None) -> tuple[Presence, bytes]:
        """A presence of this process: of the current bus connection unless given (a will)."""
        self._presence_seq += 1
        presence = Presence(state=state, version=__version__, code_digest=self.code_digest,
                            boot_id=self.boot_id, ts=time.time(),
                            connection=self.bus.attempt if connection is None else connection,
                            seq=self._presence_seq, roster_version=self.roster.version,
                            security=self.roster.security)
        return presence, self._seal("status", presence)

    async def _announce(self) -> None:
        self.metrics.bus_connects.inc()
        await self._on_hearing(not self.bus.deaf)

    async def _on_hearing(self, hearing: bool) -> None:
        """Presence follows whether our own heartbeat comes back: "deaf" tells coordinators
        this node would miss their requests, though it is connected."""
        self._announced, raw = self._presence("online" if hearing else "deaf")
        try:
            await self.bus.publish(self._topic("status"), raw, retain=True, timeout=5.0)
        except BusUnavailable as exc:
            log.warning("could not publish presence: %s", exc)

    async def _on_own_presence(self, payload: bytes) -> None:
        """The broker's retained presence of ours should be our latest announcement.  If it
        is older news (a will of an earlier connection that the broker sent late, or kept),
        every coordinator that connects would read us as offline: announce again."""
        try:
            verified = self.verifier.open(payload, self._topic("status"))
        except EnvelopeError as exc:
            log.warning("rejected message on our status topic: %s", exc)
            return
        seen, ours = verified.message, self._announced
        if (verified.sender != self.party.name or not isinstance(seen, Presence) or ours is None
                or ours.connection != self.bus.attempt):
            return  # not ours, or our announcement on this connection is still on its way
        earlier = seen.boot_id != ours.boot_id or seen.connection < ours.connection
        if earlier and supersedes(ours, seen):  # (our own echoes on this connection are not)
            log.info("the broker holds a stale presence of ours (%s, connection %d of boot"
                     " %s); announcing %s again", seen.state, seen.connection, seen.boot_id,
                     ours.state)
            await self._on_hearing(not self.bus.deaf)

    def _update_key_metrics(self) -> None:
        """Presignatures and FROST nonces this node process holds per key (in memory only:
        none after a restart)."""
        store = self.ctx.keystore
        epochs = {key_id: store.committed_epoch(key_id) for key_id in store.key_ids()}
        for gauge, pool in ((self.metrics.presignatures_left, self.ctx.presignatures),
                            (self.metrics.frost_nonces_left, self.ctx.nonces)):
            for key_id, held in pool.held(epochs).items():
                gauge.labels(key_id).set(held)

    def free_bytes(self) -> int:
        try:
            return shutil.disk_usage(self.data_dir).free
        except OSError:
            return 0

    def low_disk(self) -> str:
        """Why this node refuses jobs for lack of space in its data directory, or ""."""
        free, minimum = self.free_bytes(), self.config.min_free_mib
        if free >= minimum * MiB:
            return ""
        return (f"low disk: {free / MiB:.1f} MiB free in data dir (this node needs"
                f" {minimum:g} MiB to take jobs)")

    def _audit(self, event: str, **fields) -> str:
        """Append to the audit log; return "" or why that failed (logged, counted, the log
        left as it was): the caller fails its operation, the node goes on."""
        try:
            self.audit.append(event, **fields)
            return ""
        except AuditWriteError as exc:
            self.metrics.write_failures.inc()
            log.error("%s", exc)
            return str(exc)

    def health(self) -> dict:
        """What /healthz reports: healthy while connected to the broker and hearing from it
        (our own heartbeat comes back), with room in the data directory."""
        connected, deaf = self.bus.connected.is_set(), self.bus.deaf
        low = self.low_disk()
        return {"healthy": connected and not deaf and not low, "party": self.party.name,
                "disk": low or "ok", "data_dir_free_bytes": self.free_bytes(),
                "version": __version__, "code_digest": self.code_digest,
                "bus": "deaf" if deaf else "connected" if connected else "disconnected",
                "broker": self.bus.url, "bus_error": self.bus.last_error,
                "jobs_queued": self.queue.qsize(), "engine_restarts": self.engine.restarts}

    # -- lifecycle ----------------------------------------------------------------------

    async def run(self) -> None:
        """Run until SIGTERM/SIGINT, then leave cleanly."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload_roster)
        self.engine.start()
        if legacy := self.ctx.keystore.remove_legacy_secrets():
            log.warning("deleted the on-disk presignatures and nonces of %d key(s) left by an"
                        " earlier version: one-time secrets now live in memory only", legacy)
        self._update_key_metrics()
        health = None
        if self.config.metrics_port:
            health = HealthServer(self.metrics, self.health, self.config.metrics_host,
                                  self.config.metrics_port)
            await health.start()
        tasks = [asyncio.ensure_future(self.bus.run()), asyncio.ensure_future(self._executor())]
        log.info("%s up: cluster %s, roster version %d (security: %s), broker %s, code %s",
                 self.party.name, self.roster.cluster_id, self.roster.version,
                 self.roster.security, self.bus.url, self.code_digest[:12])
        try:
            await self._stopping.wait()
        finally:
            log.info("%s shutting down", self.party.name)
            try:
                await self.bus.publish(self._topic("status"), self._presence("offline")[1],
                                       retain=True, timeout=2.0)
            except BusUnavailable:
                pass
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.engine.close()
            if health:
                await health.stop()
            self.replay.close()
            self.records.close()

    # -- messages -----------------------------------------------------------------------

    async def on_message(self, topic: str, payload: bytes) -> None:
        """Entry point for every bus message; never raises on bad input."""
        if topic == self._topic("status"):
            await self._on_own_presence(payload)
            return
        try:
            verified = self.verifier.open(payload, topic)
        except EnvelopeError as exc:
            self.metrics.rejected_messages.inc()
            log.warning("rejected message on %s: %s", topic, exc)
            self._audit("rejected_message", topic=topic[:200], reason=str(exc)[:500],
                        size=len(payload))
            return
        if verified.sender_kind != "coordinator":
            self.metrics.rejected_messages.inc()
            log.warning("rejected %s on %s: only coordinators publish jobs", verified.sender, topic)
            self._audit("rejected_message", topic=topic[:200], size=len(payload),
                        reason=f"{verified.sender} is not a coordinator")
            return
        msg = verified.message
        if isinstance(msg, JobRequest):  # its own task: a slow local check stalls no vote
            task = asyncio.ensure_future(self._on_request(verified))
            self._requests.add(task)
            task.add_done_callback(self._request_done)
        elif isinstance(msg, JobStart):
            await self._on_start(verified)
        elif isinstance(msg, JobAbort):
            self._on_abort(verified)
        elif isinstance(msg, JobQuery):
            await self._on_query(verified)
        else:
            self.metrics.rejected_messages.inc()
            log.warning("ignored %s from %s on the jobs topic", msg.type, verified.sender)

    def _request_done(self, task: asyncio.Task) -> None:
        self._requests.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("handling a request failed: %r", task.exception())

    async def _check_request(self, verified: Verified) -> tuple[JobKind, NodeJob]:
        """Return the job's kind and the job as its hooks see it, or raise JobRejected with
        the reason."""
        req: JobRequest = verified.message
        now = time.time()
        if req.coordinator != verified.sender:
            raise JobRejected(f"request names coordinator {req.coordinator} but is signed by"
                              f" {verified.sender}")
        if other := governance.binding_mismatch(self.roster, req.roster_version,
                                                req.roster_digest):
            raise JobRejected(other)
        if req.expires_at <= now:
            raise JobRejected(f"request expired {now - req.expires_at:.1f}s ago")
        if req.issued_at > now + CLOCK_SKEW_S:
            raise JobRejected("request issued in the future (clock skew?)")
        ttl = self.roster.limits.max_request_ttl_s
        if req.expires_at - max(req.issued_at, now - CLOCK_SKEW_S) > ttl:
            raise JobRejected(f"request lifetime exceeds the cluster limit of {ttl:g}s")
        if low := self.low_disk():  # every job writes the replay guard and the audit log
            raise JobRejected(low)
        if not self.replay.first_time(req.job_id, req.expires_at):
            raise JobRejected(f"replayed request: job {req.job_id} was seen before")
        try:
            kind = kind_for(req.kind)
        except ValueError as exc:
            raise JobRejected(str(exc)) from None
        if refused := kind.refused_under(self.roster):  # the roster's security mode
            raise JobRejected(refused)
        try:
            params = kind.parse(req.params)
        except ValueError as exc:
            raise JobRejected(str(exc)) from None
        sealed_to = kind.sealed_to(params)
        if sealed_to is not None and sealed_to != req.coordinator:
            raise JobRejected(f"outputs are sealed only to the requesting coordinator"
                              f" ({req.coordinator}), not to {sealed_to}")
        # e.g. a surface of up to 1 MiB takes seconds to parse: off the event loop, once
        # (kinds with nothing to prepare skip the thread hop)
        prepares = type(kind).prepare is not JobKind.prepare
        job = NodeJob(params, await asyncio.to_thread(kind.prepare, self.ctx, params)
                      if prepares else None)
        kind.check_vote(self.ctx, job)
        return kind, job

    async def _on_request(self, verified: Verified) -> None:
        req: JobRequest = verified.message
        again = self.pending.get(req.job_id)
        if again is not None and again.digest == verified.payload_digest:
            # the coordinator republished it (its votes were lost to a bus outage): same vote
            if again.vote is not None:
                await self.bus.publish(self._topic("votes"), again.vote)
            return
        approved = self.approved_only.get(req.job_id)
        if approved is not None and approved[0] == verified.payload_digest:
            await self.bus.publish(self._topic("votes"), approved[1])
            return
        if req.job_id in self._checking:
            return  # a second copy while we check the first: that one gets the vote
        self._checking.add(req.job_id)
        try:
            await self._vote(verified)
        finally:
            self._checking.discard(req.job_id)

    async def _vote(self, verified: Verified) -> None:
        req: JobRequest = verified.message
        checked, participates = None, True
        try:
            checked = await self._check_request(verified)
            accept, reason = True, ""
        except ApprovesOnly as exc:  # approves, takes no part: nothing is kept for a start
            accept, reason, participates = True, str(exc), False
        except JobRejected as exc:
            accept, reason = False, str(exc)
        except (OSError, sqlite3.Error) as exc:  # replay guard, policy state: e.g. disk full
            self.metrics.write_failures.inc()
            log.error("job %s: cannot read or write this node's state: %s", req.job_id[:8], exc)
            accept, reason = False, f"cannot read or write this node's state: {exc}"
        except Exception as exc:  # a bug in a job kind's check must refuse, not drop, the job
            log.exception("job %s: checking the request crashed", req.job_id[:8])
            accept, reason = False, f"internal error: {type(exc).__name__}: {exc}"
        params_json = json.dumps(req.params, sort_keys=True)
        problem = self._audit("request", job_id=req.job_id, kind=req.kind,
                              params=req.params if len(params_json) <= 2048 else None,
                              params_digest=digest_bytes(params_json.encode()),
                              coordinator=verified.sender,
                              request_digest=verified.payload_digest, accept=accept,
                              participates=participates, reason=reason)
        if problem and accept:  # a job the audit log cannot show does not run
            accept, reason = False, problem
        self.metrics.votes.labels(req.kind, "accept" if accept else "reject").inc()
        if accept and participates:
            self.pending[req.job_id] = PendingJob(req, verified.payload_digest, *checked)
        elif not accept:
            self.metrics.policy_rejections.labels(req.kind).inc()
        log.info("job %s (%s) from %s: %s%s", req.job_id[:8], req.kind, verified.sender,
                 "accept" if accept else "reject: ", reason)
        vote = Vote(job_id=req.job_id, request_digest=verified.payload_digest, accept=accept,
                    reason=reason, code_digest=self.code_digest, version=__version__,
                    participates=participates)
        raw_vote = self._seal("votes", vote)
        if accept and participates:
            self.pending[req.job_id].vote = raw_vote
        elif accept:
            self.approved_only[req.job_id] = (verified.payload_digest, raw_vote,
                                              req.expires_at)
        self._sweep()
        await self.bus.publish(self._topic("votes"), raw_vote)

    def _sweep(self) -> None:
        """Forget accepted jobs that were never started before they expired."""
        now = time.time()
        for job_id in [j for j, p in self.pending.items() if p.request.expires_at < now]:
            del self.pending[job_id]
        for job_id in [j for j, a in self.approved_only.items() if a[2] < now]:
            del self.approved_only[job_id]

    def participants_from(self, start: JobStart, job: PendingJob) -> list[str]:
        """Verify the embedded votes (every one an ACCEPT of this request: the approvals);
        return the participant names in roster order: the approvers, or those the start
        names among them.  A job kind may need more approvals than participants."""
        names, takers = set(), set()
        for raw in start.votes:
            try:
                vote_sender = envelope_fields(raw.encode()).get("sender", "")
                name = vote_sender.removeprefix("party/")
                v = self.verifier.open(raw.encode(), topics.node(self.roster.cluster_id, name,
                                                                 "votes"))
            except (EnvelopeError, ValueError, AttributeError) as exc:
                raise JobRejected(f"start carries an invalid vote: {exc}") from None
            vote = v.message
            if v.sender_kind != "party" or not isinstance(vote, Vote):
                raise JobRejected("start carries something other than a party vote")
            if vote.job_id != start.job_id or vote.request_digest != job.digest:
                raise JobRejected(f"vote of {v.sender} is for another request")
            if not vote.accept:
                raise JobRejected(f"start includes {v.sender}, which rejected the job")
            if vote.code_digest != self.code_digest:
                raise JobRejected(f"{v.sender} runs protocol code {vote.code_digest[:12]}, we run"
                                  f" {self.code_digest[:12]}: digests must agree")
            names.add(v.sender)
            if vote.participates:
                takers.add(v.sender)
        approvals = job.kind.approvals_needed(self.roster)
        if len(names) < approvals:
            raise JobRejected(f"start carries {len(names)} approvals, {approvals} required"
                              f" (the roster's policy quorum)")
        if start.participants is not None:
            if len(set(start.participants)) != len(start.participants) \
                    or not set(start.participants) <= names:
                raise JobRejected("start names participants that did not approve the job")
            if not set(start.participants) <= takers:
                raise JobRejected("start names participants that only approved the job")
            takers = set(start.participants)
        order = {p.name: p.index for p in self.roster.parties}
        return sorted(takers, key=order.__getitem__)

    async def _on_start(self, verified: Verified) -> None:
        start: JobStart = verified.message
        job = self.pending.pop(start.job_id, None)
        if job is None:
            return  # we rejected it, never saw it, or it already ran
        try:
            if start.request_digest != job.digest:
                raise JobRejected("start refers to a different request digest (split view?)")
            if verified.sender != job.request.coordinator:
                raise JobRejected(f"start from {verified.sender}, request from"
                                  f" {job.request.coordinator}")
            participants = self.participants_from(start, job)
            needed = job.kind.min_parties(self.roster)
            if len(participants) < needed:
                raise JobRejected(f"only {len(participants)} participants, {needed} required")
        except JobRejected as exc:
            await self._publish_result(job, None, ok=False, error=str(exc))
            return
        if self.party.name in participants:
            try:  # first: without the row, a query after a crash answers "unknown"
                self.records.started(start.job_id, job.digest, job.request.kind,
                                     job.kind.output_is_shared(job.node_job.params),
                                     participants, self.boot_id, job.request.params)
            except sqlite3.Error as exc:
                log.error("could not record the start of job %s: %s", start.job_id[:8], exc)
        problem = self._audit("start", job_id=start.job_id, participants=participants,
                              selected=self.party.name in participants)
        if problem and self.party.name in participants:  # unrecorded, it does not run here
            await self._publish_result(job, None, ok=False, error=problem)
            return
        if self.party.name not in participants:
            log.info("job %s: not selected (participants %s)", start.job_id[:8], participants)
            return
        self.queued[start.job_id] = job
        await self.queue.put((job, participants))

    async def _on_query(self, verified: Verified) -> None:
        """Tell a coordinator what became of jobs here: republish the stored signed result of
        each finished one (not retained: the retained result is the latest job's), and a
        JobState for every one asked about.  Each coordinator has a budget of job ids
        (QUERY_BURST at once, QUERY_RATE a second): beyond it the rest go unanswered, so
        queries cannot make a node republish without bound."""
        query: JobQuery = verified.message
        if query.parties is not None and self.party.name not in query.parties:
            return
        granted = self.query_budget.take(verified.sender, len(query.job_ids))
        if granted < len(query.job_ids):
            self.metrics.rejected_messages.inc()
            log.warning("job_query from %s: answering %d of %d job ids, over its budget of"
                        " %d a second", verified.sender, granted, len(query.job_ids),
                        QUERY_RATE)
        for job_id in query.job_ids[:granted]:
            record, pending = self.records.get(job_id), self.pending.get(job_id)
            if record is not None and record.result is not None:
                await self.bus.publish(self._topic("results"), record.result)
                state = "done"
            elif record is not None:  # started: by this process, or by one that stopped
                state = "running" if record.boot_id == self.boot_id else "lost"
            else:
                state = "pending" if pending else "unknown"
            answer = JobState(job_id=job_id, state=state, boot_id=self.boot_id,
                              kind=record.kind if record else
                              pending.request.kind if pending else None,
                              shared=record.shared if record else None,
                              participants=record.participants if record else [],
                              request_digest=record.request_digest if record else
                              pending.digest if pending else None,
                              params=record.params if record else None)
            await self.bus.publish(self._topic("answers"), self._seal("answers", answer))

    def _on_abort(self, verified: Verified) -> None:
        """Drop a pending job, or stop the running one, when the coordinator that requested
        it aborts it.  Another roster coordinator's abort is ignored: it could otherwise
        cancel every job of the coordinator the operators actually serve."""
        msg: JobAbort = verified.message
        job = self.pending.get(msg.job_id) or self.queued.get(msg.job_id)
        if job is None and self.running and self.running.request.job_id == msg.job_id:
            job = self.running
        if job is None:
            return
        if verified.sender != job.request.coordinator:
            self.metrics.rejected_messages.inc()
            log.warning("job %s: ignored an abort from %s; only %s, which requested it, may"
                        " abort it", msg.job_id[:8], verified.sender, job.request.coordinator)
            self._audit("rejected_message", topic=self.jobs_topic, size=len(verified.raw),
                        reason=f"abort of job {msg.job_id} from {verified.sender}, which"
                        f" did not request it")
            return
        reason = f"the job failed elsewhere ({msg.reason[:300]})"
        if self.pending.pop(msg.job_id, None) is not None:
            log.info("job %s aborted by %s: %s", msg.job_id[:8], verified.sender, msg.reason)
        elif job is self.running and self.engine.abort(reason):
            log.info("job %s: stopped its session, the coordinator says it failed: %s",
                     msg.job_id[:8], msg.reason)
        else:  # queued, or running but not in the engine yet: _execute stops before the session
            job.aborted = reason

    def reload_roster(self) -> None:
        """SIGHUP: run at once with the next roster version the config's roster file holds,
        if governance accepts it and this party keeps its place (else keep the held one and
        say why).  From then on a removed operator's messages and votes are refused and its
        certificate fails MPC links; jobs and one-time secrets of the old version are dropped."""
        try:
            offered = load_roster(resolve(self.config_path, self.config.roster))
            if governance.roster_digest(offered) == governance.roster_digest(self.roster):
                return
            if offered.party(self.party.name) != self.party:
                raise ConfigError(f"roster version {offered.version} moves or removes"
                                  f" {self.party.name}: restart the node to use it")
            adopt(self.data_dir, offered, self.audit)
        except ConfigError as exc:
            log.error("roster not reloaded, still version %d: %s", self.roster.version, exc)
            return
        reason = f"the roster changed to version {offered.version}"
        for job in [*self.pending.values(), *self.queued.values()]:
            job.aborted = reason
        self.pending.clear()
        self.approved_only.clear()
        if self.running is not None and not self.engine.abort(reason):
            self.running.aborted = reason
        self.roster, self.verifier = offered, Verifier(offered)
        self.ctx = NodeContext(offered, self.party, self.config, self.config_path,
                               self.ctx.share_passphrase)  # presignatures, nonces: dropped
        log.info("%s runs with roster version %d now (%s, security: %s)", self.party.name,
                 offered.version, governance.roster_digest(offered).hex()[:16],
                 offered.security)
        if self.bus.connected.is_set():  # presence shows the version and mode: announce them
            self._announcing = asyncio.ensure_future(self._on_hearing(not self.bus.deaf))

    # -- execution ----------------------------------------------------------------------

    async def _executor(self) -> None:
        """Run queued jobs one at a time, in the order their starts arrived."""
        while True:
            job, participants = await self.queue.get()
            self.queued.pop(job.request.job_id, None)
            self.running = job
            try:
                await self._execute(job, participants)
            finally:
                self.running = None

    async def _execute(self, job: PendingJob, participants: list[str]) -> None:
        started = time.monotonic()
        req = job.request
        sid = session_id(job.digest, participants, self.code_digest)
        kind = job.kind
        if time.time() > req.expires_at:
            await self._publish_result(job, sid, ok=False, error="job expired before it started")
            return
        node_job = replace(job.node_job, participants=[self.roster.party(name)
                                                       for name in participants])
        try:
            self._check_aborted(job)
            step = kind.plan(self.ctx, node_job)
            connect_s = mpc_s = 0.0
            if isinstance(step, LocalStep):
                output = kind.run_locally(self.ctx, node_job)
            else:
                spec = self._session_spec(step, sid, node_job.participants)
                self._check_aborted(job)  # no await between this and the engine's own check
                ran = await self.engine.run(spec)
                output, connect_s, mpc_s = ran.output, ran.connect_s, ran.mpc_s
                self.metrics.session_seconds.labels(req.kind).observe(connect_s + mpc_s)
            output = kind.complete(self.ctx, node_job, output)
            timings = {"queue_s": started - job.received, "connect_s": connect_s,
                       "mpc_s": mpc_s, "node_s": time.monotonic() - started}
            self.metrics.jobs.labels(req.kind, "ok").inc()
            self._update_key_metrics()
            await self._publish_result(job, sid, ok=True, output=output, timings=timings,
                                       observations=node_job.observations)
        except (SessionError, JobRejected) as exc:
            self.metrics.jobs.labels(req.kind, "failed").inc()
            log.warning("job %s failed: %s", req.job_id[:8], exc)
            await self._publish_result(job, sid, ok=False, error=str(exc))
        except Exception as exc:  # a bug in a job kind must fail the job, not the node
            self.metrics.jobs.labels(req.kind, "failed").inc()
            log.exception("job %s crashed", req.job_id[:8])
            await self._publish_result(job, sid, ok=False,
                                       error=f"internal error: {type(exc).__name__}: {exc}")

    def _session_spec(self, step: MpcSession, sid: str,
                      parties: list[PartyInfo]) -> SessionSpec:
        """What the engine needs to run this party's part of a job's session."""
        return SessionSpec(
            session_id=sid, my_pid=[p.name for p in parties].index(self.party.name),
            peers=[SessionPeer(p.name, p.host, p.mpc_port, p.tls_cert) for p in parties],
            bind_host=self.config.mpc_bind,
            bind_port=self.config.mpc_listen_port or self.party.mpc_port,
            tls_cert=self.tls_cert, tls_key=self.tls_key,
            tls_passphrase=self.passphrase, ca_pem=self.roster.peer_certs_pem,
            protocol=step.protocol, args=step.args, threshold=step.threshold,
            connect_timeout=self.config.connect_timeout_s,
            session_timeout=max(self.config.session_timeout_s, step.timeout or 0.0))

    @staticmethod
    def _check_aborted(job: PendingJob) -> None:
        if job.aborted is not None:
            raise SessionError(f"aborted: {job.aborted}")

    async def _publish_result(self, job: PendingJob, sid: str | None, ok: bool, output=None,
                              error: str | None = None, timings: dict | None = None,
                              observations: list[str] | None = None) -> None:
        result = JobResult(job_id=job.request.job_id, request_digest=job.digest, session_id=sid,
                           ok=ok, output=output, error=error,
                           output_digest=output_digest(output) if ok else None,
                           timings=timings or {}, observations=(observations or [])[:16])
        raw = self._seal("results", result)
        limit = self.roster.limits.max_message_bytes
        if len(raw) > limit:  # the coordinator would drop it unread: say so instead
            error = (f"the result ({len(raw):,} bytes) exceeds the cluster's message limit of"
                     f" {limit:,} bytes; ask for less per job")
            log.error("job %s: %s", job.request.job_id[:8], error)
            result = JobResult(job_id=job.request.job_id, request_digest=job.digest,
                               session_id=sid, ok=False, error=error, timings=timings or {})
            raw, ok = self._seal("results", result), False
        shared = job.kind.output_is_shared(job.node_job.params)
        try:  # durable before it is published: a lost delivery can be asked for again
            self.records.finished(result.job_id, job.digest, job.request.kind, shared,
                                  self.boot_id, raw)
        except sqlite3.Error as exc:
            log.error("could not store the result of job %s: %s", job.request.job_id[:8], exc)
        # published even if the log cannot record it (logged, counted): the session ran,
        # and the other participants' logs record the result
        self._audit("result", job_id=result.job_id, session_id=sid, ok=ok,
                    output_digest=result.output_digest, error=error, shared=shared)
        try:
            # retained: a coordinator that reconnects after a broker restart still gets it
            await self.bus.publish(self._topic("results"), raw, retain=True)
            log.info("job %s: result published (%s)", job.request.job_id[:8],
                     "ok" if ok else "failed")
        except BusUnavailable as exc:
            log.error("could not publish the result of job %s: %s", job.request.job_id[:8], exc)


def run_node(config_path: Path, broker: str | None = None) -> None:
    """Entry point of `mpcnet node`."""
    async def main():
        await Node(config_path, broker).run()
    asyncio.run(main())
