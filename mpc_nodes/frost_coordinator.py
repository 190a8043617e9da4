"""The coordinator's side of FROST(Ed25519) (RFC 9591): key generation checked against the
verification shares and recorded in the ledger, and signing over the bus as the RFC's
coordinator — commitments, signature shares, each share verified against its signer's
verification share, cheaters named and excluded, the aggregate checked by OpenSSL.
"""

from __future__ import annotations

import asyncio
import secrets

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocols import frost

from .coordinator import Coordinator, JobOutcome
from .frost_domain import DEFAULT_PURPOSE
from .frostjobs import MAX_MESSAGE_BYTES
from .keycheck import reported_key_problem
from .keyjobs import FROST_SCHEME
from .ledger import Ledger


class FrostSigningError(RuntimeError):
    """No signature: too few usable signers, or a pinned signer failed or cheated.
    `excluded` names each party left out, with the reason."""

    def __init__(self, message: str, excluded: dict[str, str]):
        super().__init__(message)
        self.excluded = excluded


async def frost_keygen(c: Coordinator, key_id: str, label: str = "",
                       progress=lambda text: None, purpose: str = DEFAULT_PURPOSE) -> JobOutcome:
    """Dealer-free t-of-n FROST key among all parties, for one purpose ("raw" messages or
    price "reports", mpc_nodes.frost_domain); checked, then recorded in the ledger."""
    outcome = await c.run_job("keygen", {"key_id": key_id, "scheme": FROST_SCHEME,
                                         "label": label, "purpose": purpose},
                              progress=progress)
    if outcome.ok and (problem := reported_key_problem(outcome.output, c.roster)):
        outcome.ok, outcome.error = False, problem
    if outcome.ok and outcome.output.get("purpose") != purpose:
        outcome.ok = False
        outcome.error = f"the parties stored purpose {outcome.output.get('purpose')!r}," \
                        f" not {purpose!r}"
    if outcome.ok:
        ledger = Ledger(c.config_path)
        ledger.key(key_id).update({k: outcome.output[k] for k in (
            "scheme", "public_key", "epoch", "t", "n", "verification_shares", "purpose")})
        ledger.save()
    return outcome


def _refusals(outcome: JobOutcome, names: list[str]) -> dict[str, str]:
    """The signers a failed round names: refused, silent, or failed while running."""
    votes = {v.party: v for v in outcome.votes}
    bad = {}
    for name in names:
        v = votes.get(name)
        if v is None:
            bad[name] = "no vote (offline or unreachable)"
        elif not v.accept:
            bad[name] = f"refused: {v.reason}"
        elif name in outcome.party_errors:
            bad[name] = f"failed: {outcome.party_errors[name]}"
    return bad


class _Attempt:
    """One run of both rounds with a fixed signer set."""

    def __init__(self, c: Coordinator, key: dict, key_id: str, message: bytes,
                 ids: list[int], progress):
        self.c, self.key_id, self.message, self.ids = c, key_id, message, ids
        self.progress = progress
        self.pk = bytes.fromhex(key["public_key"])
        self.vshares = {i + 1: bytes.fromhex(v) for i, v in enumerate(key["verification_shares"])}
        names = {p.index + 1: p.name for p in c.roster.parties}
        self.names = [names[i] for i in ids]
        self.bad: dict[str, str] = {}
        self.timings: dict[str, float] = {}

    async def _round(self, kind: str, params: dict) -> dict[str, dict] | None:
        t = asyncio.get_running_loop().time()
        outcome = await self.c.run_job(kind, params, only=self.names, progress=self.progress)
        self.timings[f"{kind}_s"] = asyncio.get_running_loop().time() - t
        if outcome.ok:
            return outcome.party_outputs
        self.bad = _refusals(outcome, self.names)
        if not self.bad:
            raise FrostSigningError(f"{kind} failed: {outcome.error}", {})
        return None

    async def run(self) -> bytes | None:
        """The signature, or None with `bad` naming the signers to exclude."""
        request = secrets.token_hex(8)
        outputs = await self._round("frost-commit", {"key_id": self.key_id, "request": request})
        if outputs is None:
            return None
        clist = []
        for i, name in zip(self.ids, self.names):
            out = outputs[name]
            try:
                if out.get("identifier") != i:
                    raise frost.FrostError(f"identifier {out.get('identifier')}, expected {i}")
                clist.append(frost.SigningCommitment(i, bytes.fromhex(out["hiding"]),
                                                     bytes.fromhex(out["binding"])))
            except (frost.FrostError, KeyError, TypeError, ValueError) as exc:
                self.bad[name] = f"invalid commitment: {exc}"
        if self.bad:
            return None
        outputs = await self._round("frost-sign", {
            "key_id": self.key_id, "request": request, "message": self.message.hex(),
            "commitments": [{"identifier": c.identifier, "hiding": c.hiding.hex(),
                             "binding": c.binding.hex()} for c in clist]})
        if outputs is None:
            return None
        t = asyncio.get_running_loop().time()
        shares = {}
        for c, name in zip(clist, self.names):
            try:
                z = bytes.fromhex(outputs[name]["share"])
                ok = outputs[name].get("identifier") == c.identifier and frost.verify_share(
                    c.identifier, self.vshares[c.identifier], c, z, self.message, clist,
                    self.pk)
            except (KeyError, TypeError, ValueError):
                ok = False
            if ok:
                shares[c.identifier] = z
            else:
                self.bad[name] = "invalid signature share (RFC 9591 verify_signature_share failed)"
        if self.bad:
            return None
        try:
            signature = frost.aggregate(clist, self.message, self.pk, shares)
            Ed25519PublicKey.from_public_bytes(self.pk).verify(signature, self.message)
        except (frost.FrostError, InvalidSignature) as exc:
            raise FrostSigningError(f"the aggregate signature does not verify: {exc!r}",
                                    {}) from None
        self.timings["aggregate_s"] = asyncio.get_running_loop().time() - t
        return signature


def _key(c: Coordinator, key_id: str) -> dict:
    key = Ledger(c.config_path).data.get(key_id)
    if not key or key.get("scheme") != FROST_SCHEME:
        raise ValueError(f"the coordinator has no record of a {FROST_SCHEME} key {key_id!r}"
                         f" (make one with mpcnet keygen --scheme {FROST_SCHEME})")
    return key


def _check_signers(signers: list[int], t: int, n: int) -> list[int]:
    if len(set(signers)) != len(signers) or not all(1 <= i <= n for i in signers):
        raise ValueError(f"signers must be distinct identifiers in 1..{n}, got {signers}")
    if len(signers) < t + 1:
        raise ValueError(f"{len(signers)} signers given; the key needs {t + 1}")
    return sorted(signers)


async def frost_sign(c: Coordinator, key_id: str, message: bytes,
                     signers: list[int] | None = None, progress=lambda text: None) -> dict:
    """Sign `message` with FROST key `key_id` (from the coordinator's ledger).

    `signers`: identifiers (roster index + 1) to use exactly; default any t+1 online parties,
    and after a signer refuses, fails or sends an invalid share it is excluded and another
    set is tried.  Returns {key_id, signature, public_key (hex), signers (names),
    identifiers, excluded {name: reason}, attempts, timings}; raises FrostSigningError when
    no signature can be made, ValueError for an unknown key or bad `signers`."""
    key = _key(c, key_id)
    if len(message) > MAX_MESSAGE_BYTES:
        raise ValueError(f"message of {len(message)} bytes; at most {MAX_MESSAGE_BYTES}")
    t, n = key["t"], key["n"]
    fixed = None if signers is None else _check_signers(signers, t, n)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    excluded: dict[str, str] = {}
    attempts = 0
    while True:
        await c.status(wait=1.0)
        ids = fixed or sorted(p.index + 1 for p in c.roster.parties
                              if p.name in c.online() and p.name not in excluded)[:t + 1]
        if len(ids) < t + 1:
            raise FrostSigningError(f"only {len(ids)} usable online signers; key {key_id}"
                                    f" needs {t + 1}", excluded)
        attempts += 1
        attempt = _Attempt(c, key, key_id, message, ids, progress)
        signature = await attempt.run()
        excluded.update(attempt.bad)
        for name, reason in attempt.bad.items():
            progress(f"excluding {name}: {reason}")
        if signature is not None:
            return {"key_id": key_id, "signature": signature.hex(),
                    "public_key": key["public_key"], "signers": attempt.names,
                    "identifiers": ids, "excluded": excluded, "attempts": attempts,
                    "timings": {**attempt.timings, "total_s": loop.time() - t0}}
        if fixed:
            raise FrostSigningError("signing with the given signers failed: " + "; ".join(
                f"{name}: {reason}" for name, reason in attempt.bad.items()), excluded)
