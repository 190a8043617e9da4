"""The public Python client: how a program (a derivatives back end, a script) uses an mpcnet
network without shelling out to the CLI.

    from mpc_nodes.client import Client

    async with Client.connect("./cluster") as net:      # or a coordinator.yaml
        status = await net.status()
        key = await net.keygen(label="vault 1")
        signed = await net.sign(key.key_id, transaction)  # a dict: EIP-1559 fields

Every operation returns a typed result (mpc_nodes.client.results) and raises one of the errors
of mpc_nodes.errors: a UserError (UsageError for bad input) before anything is sent, or
JobFailed, carrying the outcome with each party's reason, when the network refused or failed
the job.  Any other exception is a bug.  docs/API.md has a whole example.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path

from keyshare.store import KEY_ID

from mpc_nodes.client import results as r
from mpc_nodes.client.coordinator import Coordinator, JobOutcome
from mpc_nodes.client.ledger import Ledger
from mpc_nodes.errors import InvalidReport, JobFailed, UsageError, UserError
from mpc_nodes.jobs import ecdsa, epochs, frost, pricing, reshare
from mpc_nodes.jobs.frost_domain import DEFAULT_PURPOSE
from mpc_nodes.jobs.keycheck import FROST_SCHEME, SCHEME
from mpc_nodes.jobs.registry import kind_for

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_REPORT_FILE_BYTES = 1 << 20  # a report is signed as one FROST message of at most 64 KiB


def coordinator_config(where: str | Path) -> Path:
    """The coordinator.yaml a cluster directory made by `mpcnet init` holds, or `where`
    itself when it is a file."""
    where = Path(where)
    path = where if where.is_file() else where / "coordinator" / "coordinator.yaml"
    if not path.exists():
        raise UserError(f"no coordinator config at {path} (give a cluster directory made by"
                        " mpcnet init, or a coordinator.yaml)")
    return path


def running_broker(cluster_dir: str | Path) -> str | None:
    """The broker of a cluster started in `cluster_dir` with `mpcnet cluster up`, if any."""
    from mpc_nodes.deploy.cluster import RunState
    state = RunState.load(Path(cluster_dir))
    return state.broker if state else None


def key_id_for(label: str) -> str:
    """A key id from a label (lowercase, hyphens), or a random one when the label gives
    fewer than three characters."""
    slug = re.sub(r"[^a-z0-9-]+", "-", label.lower()).strip("-")[:40]
    return slug if len(slug) >= 3 else f"key-{secrets.token_hex(4)}"


def check_key_id(key_id: str) -> str:
    if not isinstance(key_id, str) or not KEY_ID.fullmatch(key_id):
        raise UsageError(f"key id {key_id!r} is not valid: it must match {KEY_ID.pattern}"
                         " (3 to 64 lowercase letters, digits and hyphens)")
    return key_id


def check_job_params(kind: str, params: dict) -> None:
    """Validate a job's parameters as every node will (UsageError naming the field)."""
    try:
        kind_for(kind).parse(params)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def verify_report(signed: dict | str | Path, public_key: str | None = None) -> r.VerifiedReport:
    """Check a signed price report (a dict, or the path of its JSON file): its form, inputs
    hash, result digest and the Ed25519 signature (OpenSSL) over the price-report domain;
    against `public_key` (hex) when given, else against the report's own key (which anyone
    could have made).  InvalidReport names the first problem."""
    from mpc_nodes.jobs.price_report import ReportError, verify_signed_report
    try:
        if not isinstance(signed, dict):
            path = Path(signed)
            if path.stat().st_size > MAX_REPORT_FILE_BYTES:
                raise ReportError(f"the file is larger than {MAX_REPORT_FILE_BYTES:,} bytes")
            signed = json.loads(path.read_text())
        report = verify_signed_report(signed, public_key)
    except (ReportError, ValueError, RecursionError) as exc:  # JSON too: what a file holds
        raise InvalidReport(str(exc)) from None
    return r.VerifiedReport(report["job_id"], report["cluster_id"], report["key_id"],
                            signed["public_key"], public_key is not None,
                            report["inputs"]["underlying"], report["timestamp"], report)


class Client:
    """One coordinator's connection to an mpcnet network; use as
    `async with Client.connect(cluster_dir_or_coordinator_yaml) as net:`.

    `progress`, if given, is called with a line of text at each step of a job (votes
    collected, a repair run first...); `warn` with what the caller should hear of even
    without following progress (a presignature dropped on the way: default, logged)."""

    def __init__(self, coordinator_yaml: str | Path, broker: str | None = None,
                 progress: Callable[[str], None] | None = None,
                 warn: Callable[[str], None] | None = None):
        self.config_path = Path(coordinator_yaml)
        self.broker = broker
        self.progress = progress or (lambda text: None)
        self.warn = warn or logging.getLogger("mpcnet.client").warning
        self._c: Coordinator | None = None

    @classmethod
    def connect(cls, where: str | Path, broker: str | None = None,
                progress: Callable[[str], None] | None = None,
                warn: Callable[[str], None] | None = None) -> Client:
        """A client for the coordinator of cluster directory `where` (or of the
        coordinator.yaml `where`), connecting through `broker`: by default the broker of a
        cluster started there with `mpcnet cluster up`, else the one its config names."""
        config = coordinator_config(where)
        if broker is None and Path(where).is_dir():
            broker = running_broker(where)
        return cls(config, broker, progress, warn)

    async def __aenter__(self) -> Client:
        self._c = Coordinator(self.config_path, self.broker)
        await self._c.__aenter__()
        return self

    async def __aexit__(self, *exc) -> None:
        if self._c is not None:
            await self._c.__aexit__(*exc)
            self._c = None

    @property
    def coordinator(self) -> Coordinator:
        """The underlying coordinator (any job kind, raw outcomes)."""
        if self._c is None:
            raise UsageError("the client is not connected: use async with Client.connect(...)")
        return self._c

    def _ok(self, outcome: JobOutcome) -> JobOutcome:
        if not outcome.ok:
            raise JobFailed(outcome)
        return outcome

    async def _run(self, kind: str, params: dict, **options) -> JobOutcome:
        check_job_params(kind, params)
        return self._ok(await self.coordinator.run_job(kind, params, progress=self.progress,
                                                       **options))

    def _scheme(self, key_id: str) -> str | None:
        """The scheme the coordinator's ledger records for a key (None: no record)."""
        return Ledger(self.config_path).data.get(key_id, {}).get("scheme")

    # -- the network ------------------------------------------------------------------

    async def status(self, wait: float = 1.5) -> r.NetworkStatus:
        """Every roster party's presence: online, offline, deaf or unknown, with its version,
        protocol code digest, and the roster version and security mode it holds; with this
        coordinator's roster version and security mode."""
        from mpc_nodes.node.codedigest import code_digest
        presence = await self.coordinator.status(wait=wait)
        roster = self.coordinator.roster
        return r.NetworkStatus(code_digest(), tuple(
            r.PartyStatus(name, p.state if p else "unknown", p.version if p else None,
                          p.code_digest if p else None, p.ts if p else None,
                          p.roster_version if p else None, p.security if p else None)
            for name, p in presence.items()), roster.version, roster.security)

    async def wait_for_parties(self, timeout: float = 60.0) -> r.NetworkStatus:
        """Wait until every party is online, at most `timeout` seconds; the status then."""
        c = self.coordinator
        deadline = asyncio.get_running_loop().time() + timeout
        while len(c.online()) < c.roster.n and asyncio.get_running_loop().time() < deadline:
            await c.status(wait=0.2)
            await asyncio.sleep(0.1)
        return await self.status(wait=0)

    async def aggregate(self, input: str, method: str = "median") -> r.Aggregate:
        """The median or mean of every party's private number `input`, revealing only it.
        A node uses each value of an input in one aggregation only (docs/SECURITY.md)."""
        outcome = await self._run("aggregate", {"input": input, "method": method})
        return r.Aggregate(input, method, outcome.output["value"], outcome=outcome)

    async def ping(self, rounds: int = 20) -> r.Ping:
        """An MPC session among all online parties: its set-up and round latency per party."""
        outcome = await self._run("ping", {"rounds": rounds})
        roster = self.coordinator.roster  # the request is bound to it, on every participant
        return r.Ping(rounds, {name: r.RoundTrip(t["connect_s"], t["mpc_s"], t["mpc_s"] / rounds)
                               for name, t in outcome.party_timings.items()},
                      roster.version, roster.security, outcome=outcome)

    async def job(self, job_id: str, wait: float = 3.0) -> JobOutcome:
        """What became of a job, from every party's durable record, judged as for a job this
        coordinator follows.  Returns the outcome whether the job succeeded or not."""
        if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
            raise UsageError(f"a job id is 32 lowercase hex digits, got {job_id!r}")
        return await self.coordinator.show_job(job_id, wait)

    # -- keys -------------------------------------------------------------------------

    async def keygen(self, scheme: str = SCHEME, label: str = "", purpose: str | None = None,
                     key_id: str | None = None) -> r.Key:
        """Distributed key generation: every party gets a share, nobody sees the key.
        `scheme` ecdsa-secp256k1 (EVM transactions) or frost-ed25519 (messages; `purpose`
        "raw", the default, or "reports": only price reports its signers rebuild).  The key
        id is `key_id`, else made from `label`."""
        if purpose is not None and scheme != FROST_SCHEME:
            raise UsageError(f"a purpose applies to {FROST_SCHEME} keys only")
        key_id = check_key_id(key_id) if key_id is not None else key_id_for(label)
        params = {"key_id": key_id, "scheme": scheme, "label": label,
                  "purpose": (purpose or DEFAULT_PURPOSE) if scheme == FROST_SCHEME else None}
        check_job_params("keygen", params)
        if scheme == FROST_SCHEME:
            outcome = await frost.frost_keygen(self.coordinator, key_id, label, self.progress,
                                               params["purpose"])
        else:
            outcome = await ecdsa.ecdsa_keygen(self.coordinator, key_id, label, self.progress)
        out = self._ok(outcome).output
        return r.Key(key_id, out["scheme"], out["public_key"], out.get("address"), out["t"],
                     out["n"], out["epoch"], out.get("purpose"), outcome=outcome)

    async def sign(self, key_id: str, payload: dict | bytes | r.Priced, *,
                   presigned: bool = False, signers: list[int] | None = None
                   ) -> r.SignedTransaction | r.FrostSignature | r.SignedReport:
        """Threshold-sign with key `key_id`:

        - a dict: an EIP-1559 transaction, with an ECDSA key; every party checks it against
          its policy.  `presigned`: with a presignature (one online round).
        - bytes: a message, with a FROST key of purpose raw.  `signers`: exactly these
          identifiers (roster index + 1); default any t+1 online parties, a failing signer
          excluded and another set tried.
        - a Priced result: its report, with a FROST key of purpose reports."""
        check_key_id(key_id)
        if isinstance(payload, dict):
            return await self._sign_transaction(key_id, payload, presigned, signers)
        if presigned:
            raise UsageError("presigned applies to ECDSA transactions only")
        if isinstance(payload, (bytes, bytearray)):
            return await self._sign_message(key_id, bytes(payload), signers)
        if isinstance(payload, r.Priced):
            if signers is not None:
                raise UsageError("a report is signed by any t+1 online parties")
            return await self._sign_report(key_id, payload)
        raise UsageError(f"sign a transaction (dict), a message (bytes) or a Priced result,"
                         f" not a {type(payload).__name__}")

    async def _sign_transaction(self, key_id, tx, presigned, signers) -> r.SignedTransaction:
        from mpc_nodes.jobs.evm import EvmError, parse_transaction
        if self._scheme(key_id) == FROST_SCHEME:
            raise UsageError(f"{key_id} is a FROST key: it signs messages, not transactions")
        if signers is not None:
            raise UsageError("signers apply to FROST keys only")
        try:
            parse_transaction(tx)
        except EvmError as exc:
            raise UsageError(f"invalid transaction: {exc}") from None
        check_job_params("sign", {"key_id": key_id, "tx": tx})
        outcome = self._ok(await ecdsa.sign_transaction(self.coordinator, key_id, tx,
                                                        presigned, self.progress, self.warn))
        out = outcome.output
        return r.SignedTransaction(key_id, out["address"], out["public_key"],
                                   "0x" + out["hash"].removeprefix("0x"), bytes.fromhex(out["raw"]),
                                   int(out["r"], 16), int(out["s"], 16), out["y_parity"],
                                   outcome.params.get("presignature"), outcome=outcome)

    async def _sign_message(self, key_id, message, signers) -> r.FrostSignature:
        outcome = await frost.sign_message(self.coordinator, key_id, message, signers,
                                           self.progress)
        if not outcome.ok:
            raise frost.FrostSigningError(outcome.error, outcome.party_errors, outcome)
        out = outcome.output
        return r.FrostSignature(key_id, message, bytes.fromhex(out["signature"]),
                                bytes.fromhex(out["public_key"]), tuple(out["signers"]),
                                tuple(out["identifiers"]), out["excluded"], out["attempts"],
                                out["preprocessed"], outcome=outcome)

    async def _sign_report(self, key_id, priced: r.Priced) -> r.SignedReport:
        signed = await pricing.sign_report(self.coordinator, key_id, priced.params,
                                           priced.outcome, self.progress)
        return r.SignedReport(signed["report"], signed["signature"], signed["public_key"],
                              tuple(signed["signers"]))

    async def presign(self, key_id: str, count: int = 10
                      ) -> r.Presignatures | r.PreprocessedCommitments:
        """Presignatures (ECDSA key) or preprocessed nonce commitments (FROST key: `count`
        per party) for fast signing, made by and kept in the memory of the parties online
        now: a party that restarts loses them."""
        if self._scheme(check_key_id(key_id)) == FROST_SCHEME:
            check_job_params("frost-preprocess", {"key_id": key_id, "count": count})
            outcome = self._ok(await frost.preprocess(self.coordinator, key_id, count,
                                                      self.progress))
            out = outcome.output
            return r.PreprocessedCommitments(key_id, out["epoch"], out["recorded"],
                                             out["refused"], outcome=outcome)
        check_job_params("presign", {"key_id": key_id, "count": count})
        outcome = self._ok(await ecdsa.presign(self.coordinator, key_id, count, self.progress))
        out = outcome.output
        return r.Presignatures(key_id, tuple(out["ids"]), tuple(out["binding"].split(",")),
                               out["epoch"], outcome=outcome)

    async def refresh(self, key_id: str, epoch: int | None = None) -> r.Refreshed:
        """Re-randomise every share of a key (same public key): staged on every party,
        committed once all staged, the old epoch dropped once all committed.  `epoch`: the
        new epoch (default the parties' committed epoch + 1)."""
        check_key_id(key_id)
        if epoch is not None:
            check_job_params("refresh", {"key_id": key_id, "epoch": epoch})
        outcome = self._ok(await ecdsa.refresh(self.coordinator, key_id, epoch,
                                               self.progress))
        out = outcome.output
        return r.Refreshed(key_id, out["epoch"], out["public_key"], outcome=outcome)

    async def reshare(self, key_id: str) -> r.Reshared:
        """Move a key to the roster's parties and threshold, keeping its public key: its
        holders still in the roster deal new shares to every party, staged, committed once
        all staged, the old shares deleted once all committed (after a roster update that
        adds or removes operators or changes the threshold).  Every party must be online."""
        check_key_id(key_id)
        outcome = self._ok(await reshare.reshare_key(self.coordinator, key_id, self.progress))
        out = outcome.output
        return r.Reshared(key_id, out["epoch"], out["public_key"], tuple(out["holders"]),
                          out["t"], bool(out.get("unchanged")), outcome=outcome)

    def recorded_keys(self) -> list[str]:
        """The ids of the keys this coordinator's ledger records (made or moved through it)."""
        return sorted(Ledger(self.config_path).data)

    async def key_status(self, key_id: str) -> r.KeyStatus:
        """Every party's committed, staged and older epochs of a key and its commit votes,
        with a verdict (shows a refresh or keygen a crash left half done)."""
        check_key_id(key_id)
        c = self.coordinator
        states, problems = await epochs.key_status(c, key_id)
        names = [p.name for p in c.roster.parties]
        return r.KeyStatus(key_id, _states(states), problems,
                           epochs.verdict(key_id, states, names))

    async def repair(self, key_id: str) -> r.Repair:
        """Reconcile the parties' epochs of a key after a crash (every party online; each acts
        only on the others' signed votes).  The result's `error` is None once the key is
        consistent again."""
        check_key_id(key_id)
        done = await epochs.repair(self.coordinator, key_id, self.progress)
        return r.Repair(key_id, tuple(r.RepairStep(**s) for s in done["steps"]),
                        _states(done["states"]), done["problems"], done["error"])

    async def presignatures(self, key_ids: list[str] | None = None,
                            reconcile: bool = False) -> dict[str, r.PresignaturePool]:
        """The coordinator's pool per key (default every ECDSA and FROST key): ECDSA
        presignatures, FROST preprocessed commitments per party.  `reconcile` (connected
        only) drops those some holder can no longer have."""
        ledger = Ledger(self.config_path)
        key_ids = list(key_ids or sorted(k for k, v in ledger.data.items()
                                         if v.get("scheme") in (SCHEME, FROST_SCHEME)))
        frost_keys = {k for k in key_ids if ledger.data.get(k, {}).get("scheme") == FROST_SCHEME}
        dropped: dict[str, list] = {}
        if reconcile:
            await self.coordinator.status(wait=1.0)
            boots = ecdsa.boot_ids(self.coordinator)
            dropped = {k: ledger.reconcile_commitments(k, ledger.data[k].get("epoch", 0), boots)
                       if k in frost_keys else ledger.reconcile(k, boots) for k in key_ids}
        pools = {}
        for k in key_ids:
            gone = tuple(r.DroppedPresignature(frost.entry_id(d) if k in frost_keys else d["id"],
                                               d["reason"]) for d in dropped.get(k, []))
            if k in frost_keys:
                per_party = ledger.commitments(k)
                best = sorted(per_party.values(), reverse=True)
                t = ledger.data[k]["t"]
                pools[k] = r.PresignaturePool(k, best[t] if len(best) > t else 0, gone,
                                              per_party)
            else:
                pools[k] = r.PresignaturePool(k, len(ledger.presignatures(k)), gone)
        return pools

    # -- pricing ----------------------------------------------------------------------

    async def price(self, options, underlying: str, spot: float, rate: float,
                    dividend: float = 0.0, greeks: bool = False, method: str = "median",
                    reveal: str = "all", portfolio: bool = False,
                    valuation_date: date | None = None,
                    sign_with: str | None = None, sign_eip712: str | None = None,
                    chain_id: int | None = None, verifying_contract: str | None = None,
                    series: list | None = None) -> r.Priced:
        """Price options at the aggregate (`method`: median, mean, trimmed) of the parties'
        private vol surfaces for `underlying`; only prices (and Greeks) are revealed, to all
        parties or (`reveal="coordinator"`) to this coordinator alone, and a circuit
        breaker refuses options on which the parties disagree.

        `options`: an OptionBook, or the path of a CSV file (type,strike,expiry[,quantity]).
        `portfolio`: reveal only the quantity-weighted totals (JobFailed if an option
        breached the breaker: nothing is revealed then).  `sign_with`: a FROST key of
        purpose reports signs the report of the result (`signed_report`).  `sign_eip712`:
        an ECDSA key signs one EIP-712 mark per option (`marks`), for the verifier at
        `verifying_contract` on chain `chain_id`, with `series` the terms of each option's
        series (SeriesTerms or dicts: strike at 1e18, expiry in Unix seconds, is_call; the
        underlying is the job's), in the options' order."""
        from mpc_nodes.jobs.options_csv import OptionBook
        book = options if isinstance(options, OptionBook) else read_book(options,
                                                                         valuation_date)
        params = pricing.price_params(book, underlying, spot, rate, dividend, greeks, method,
                                      reveal, portfolio,
                                      recipient="-" if reveal == "coordinator" else None)
        pricing.check_params(params)
        if sign_with is not None:
            check_key_id(sign_with)
            if reveal == "coordinator":
                raise UsageError("signing a report needs reveal to all: the signers would see"
                                 " the prices in the report they sign")
            if len(book) > pricing.MAX_OPTIONS_PER_JOB:
                raise UsageError(f"{len(book):,} options need several jobs (at most"
                                 f" {pricing.MAX_OPTIONS_PER_JOB:,} each); a signed report"
                                 f" needs them in one: split the book")
            pricing.check_report_key(self.coordinator, sign_with)
        if sign_eip712 is not None:
            series = self._check_mark_request(sign_eip712, underlying, len(book), reveal,
                                              portfolio, chain_id, verifying_contract, series)
        self.progress(f"{len(book)} options on {underlying}")
        outcome = self._ok(await pricing.run_price_batches(self.coordinator, params,
                                                           self.progress))
        priced = _priced(params, outcome)
        if portfolio and priced.portfolio is None:
            outcome.ok = False
            outcome.error = (f"portfolio refused: {len(priced.breached)} option(s) breached the"
                             " circuit breaker; nothing was revealed")
            raise JobFailed(outcome)
        if sign_eip712 is not None:
            try:
                marks = [await self.sign_mark(sign_eip712, priced, i, chain_id,
                                              verifying_contract, terms)
                         for i, terms in enumerate(series)]
            except (JobFailed, UsageError) as exc:
                failed = getattr(exc, "outcome", outcome)
                raise JobFailed(failed, f"prices computed (job {outcome.job_id[:8]}) but the"
                                        f" marks were not signed: {exc}") from exc
            priced = replace(priced, marks=tuple(marks))
        if sign_with is None:
            return priced
        try:
            report = await self._sign_report(sign_with, priced)
        except frost.FrostSigningError as exc:
            raise JobFailed(exc.outcome, f"prices computed (job {outcome.job_id[:8]}) but the"
                                         f" report was not signed: {exc}") from exc
        return replace(priced, signed_report=report)


    def _check_mark_request(self, key_id, underlying, options, reveal, portfolio, chain_id,
                            verifying_contract, series) -> list:
        """UsageError unless marks can be signed for this price request; the series terms."""
        check_key_id(key_id)
        if reveal != "all" or portfolio:
            raise UsageError("marks need per-option prices revealed to all: their signers"
                             " rebuild each mark from the prices they computed")
        if options > pricing.MAX_OPTIONS_PER_JOB:
            raise UsageError(f"marks name one price job: at most"
                             f" {pricing.MAX_OPTIONS_PER_JOB:,} options, not {options:,}")
        if chain_id is None or verifying_contract is None or series is None:
            raise UsageError("sign_eip712 needs chain_id, verifying_contract and the series")
        if len(series) != options:
            raise UsageError(f"{len(series)} series for {options} options: give one per option")
        return [_series(terms, underlying) for terms in series]

    async def sign_mark(self, key_id: str, priced: r.Priced, option: int, chain_id: int,
                        verifying_contract: str, series,
                        valuation_time: int | None = None) -> r.SignedMark:
        """Have the network sign the EIP-712 mark of option `option` of a priced book (one
        reveal-to-all job) for the verifier at `verifying_contract` on chain `chain_id`,
        valued at `valuation_time` (default now; each node accepts ±60 s of its clock).
        `series`: the option's series (SeriesTerms or a dict).  Every signer rebuilds the
        mark from its own record of the price job, checks the series against the option it
        priced, and signs only a domain its policy lists."""
        from mpc_nodes.chain.eip712 import Domain, MarkError
        from mpc_nodes.jobs import marks
        check_key_id(key_id)
        if self._scheme(key_id) == FROST_SCHEME:
            raise UsageError(f"{key_id} is a FROST key: marks are signed with an ECDSA key")
        try:
            domain = Domain.of(chain_id, verifying_contract)
        except MarkError as exc:
            raise UsageError(str(exc)) from None
        params = marks.mark_request(
            key_id, domain, _series(series, priced.underlying), option, priced.params,
            priced.outcome, int(time.time()) if valuation_time is None else valuation_time)
        check_job_params("sign-mark", params)
        outcome = self._ok(await marks.sign_mark(self.coordinator, params, self.progress))
        out = outcome.output
        return r.SignedMark(key_id, out["address"], out["typed_data"],
                            bytes.fromhex(out["digest"]), bytes.fromhex(out["signature"]),
                            outcome=outcome)

    async def settle(self, key_id: str, contract: str, function: str, args: dict | None = None,
                     *, mark: r.SignedMark | None = None, value: int = 0, rpc=None,
                     chain_id: int | None = None, nonce: int | None = None,
                     **fees) -> r.Settlement:
        """Call `function` (list_series, open_position, settle, withdraw) of the settlement
        contract at `contract` with `args` (by name; for settle, give the signed `mark`
        instead) in a transaction the vault key `key_id` signs through every approver's
        policy.  `rpc`: a JSON-RPC URL (or an Endpoint such as an in-process LocalChain)
        that gives the chain id and nonce and receives the transaction; without it,
        `chain_id` and `nonce` are needed and the signed transaction is only returned.
        `fees`: gas, max_fee_per_gas, max_priority_fee_per_gas (defaults in
        mpc_nodes.chain.settlement)."""
        from mpc_nodes.chain.rpc import JsonRpc
        from mpc_nodes.chain.settlement import settle_args, settlement_transaction
        from mpc_nodes.jobs.calldata import CalldataError
        check_key_id(key_id)
        if mark is not None:
            if function != "settle" or args:
                raise UsageError("a mark is the argument of settle alone")
            args = settle_args(mark.typed_data, mark.digest, mark.signature)
        endpoint = JsonRpc(rpc) if isinstance(rpc, str) else rpc
        if endpoint is not None:
            address = Ledger(self.config_path).data.get(key_id, {}).get("address")
            if address is None:
                raise UsageError(f"the ledger has no address of key {key_id}")
            chain_id = await asyncio.to_thread(lambda: endpoint.chain_id)
            nonce = await asyncio.to_thread(endpoint.transaction_count, address)
        elif chain_id is None or nonce is None:
            raise UsageError("without an RPC endpoint, give chain_id and nonce")
        try:
            tx = settlement_transaction(chain_id, nonce, contract, function, args or {},
                                        value, **fees)
        except (ValueError, CalldataError) as exc:
            raise UsageError(f"{function}: {exc}") from None
        signed = await self._sign_transaction(key_id, tx, False, None)
        submitted = None
        if endpoint is not None:
            submitted = await asyncio.to_thread(endpoint.send_raw_transaction, signed.raw)
        return r.Settlement(function, contract, signed, submitted)


def _series(terms, underlying: str):
    """SeriesTerms from a SeriesTerms or a dict (underlying default: the job's)."""
    from mpc_nodes.jobs.marks import SeriesTerms
    if isinstance(terms, SeriesTerms):
        return terms
    try:
        return SeriesTerms.model_validate({"underlying": underlying, **terms})
    except (TypeError, ValueError) as exc:
        raise UsageError(f"series {terms!r}: {exc}") from None


def read_book(path, valuation_date):
    """The option book of a CSV file (UsageError naming what is wrong)."""
    from mpc_nodes.jobs.options_csv import MAX_FILE_BYTES, OptionsError, parse_options
    from mpc_nodes.wire.parsing import read_text
    path = Path(path)
    try:
        return parse_options(read_text(path, MAX_FILE_BYTES), valuation_date, source=path.name)
    except (OptionsError, ValueError) as exc:  # too large, or not UTF-8, too
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def _priced(params: dict, outcome: JobOutcome) -> r.Priced:
    out = outcome.output
    options = None
    if not params["portfolio"]:
        options = tuple(r.OptionResult(**o) for o in pricing.per_option(params, out))
    return r.Priced(params["underlying"], params["spot"], params["rate"], params["dividend"],
                    params["method"], params["reveal"], tuple(out["breached"]), out["limit"],
                    options, out.get("portfolio"), tuple(out.get("jobs", [outcome.job_id])),
                    None, params=params, outcome=outcome)


def _states(states: dict[str, dict]) -> dict[str, r.EpochState]:
    return {name: r.EpochState.from_node(s) for name, s in states.items()}
