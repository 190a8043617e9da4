"""Key commands of the `mpcnet` CLI: keygen, sign, presign, refresh (coordinator side, over the
bus) and `keys list/export-backup/import-backup` (an operator's own store).

The coordinator does not trust the parties' word for a result: it checks the verification
shares of a new key, and recovers the signer of every signed transaction (eth-account) and
verifies the signature with libsecp256k1 before it reports success.  FROST(Ed25519) keys
sign raw messages (`sign --message/--hex`); see `frost_coordinator`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
import time
from pathlib import Path

import click
from eth_account import Account
from rich.table import Table

from keyshare import KeyShareError, KeyStore, export_backup, import_backup
from protocols.secp256k1 import verify

from mpc_nodes.cli.common import (USER_ERRORS, _coordinate, _coordinator_config, _fail, _progress, _report,
                  common_broker, common_coord, common_dir, common_json, console, err)
from mpc_nodes.deploy.cluster import party_dirs
from mpc_nodes.config import load_node_config, load_roster, resolve
from mpc_nodes.jobs.evm import EvmError, parse_transaction
from mpc_nodes.jobs.frost import FrostSigningError, frost_keygen, frost_sign
from mpc_nodes.jobs.frost_domain import DEFAULT_PURPOSE
from mpc_nodes.node.context import PRESIGNATURE_LIFETIME_S
from mpc_nodes.jobs.epochs import RepairError, key_status, plan, repair, run_repairing, verdict
from mpc_nodes.jobs.keycheck import reported_key_problem
from mpc_nodes.jobs.ecdsa import FROST_SCHEME, SCHEME, eth_address
from mpc_nodes.client.ledger import Ledger
from mpc_nodes.pki import read_passphrase


def _ledger(cluster_dir, coordinator) -> Ledger:
    return Ledger(_coordinator_config(Path(cluster_dir), coordinator))


def _key_table(rows: list[dict]) -> Table:
    table = Table(title="keys")
    for col in ("key", "scheme", "address", "t-of-n", "epoch"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["key_id"], r["scheme"], r.get("address") or "-",
                      f"{r['t'] + 1}-of-{r['n']}", str(r["epoch"]))
    return table


def _boot_ids(c) -> dict[str, str]:
    """Each online party's boot id: presignatures live as long as the process that has them."""
    return {name: p.boot_id for name, p in c.presence.items() if p.state == "online"}


@click.command()
@common_dir
@click.option("--scheme", type=click.Choice([SCHEME, FROST_SCHEME]), default=SCHEME,
              show_default=True, help="ECDSA for EVM transactions, FROST for Ed25519 messages")
@click.option("--label", default="", help="a name for the key (also its id, when valid)")
@click.option("--purpose", type=click.Choice(["raw", "reports"]),
              help="FROST: what the key will sign, fixed now: raw messages (default) or only"
              " price reports the signers rebuild themselves (docs/FROST.md)")
@common_broker
@common_coord
@common_json
def keygen(cluster_dir, scheme, label, purpose, broker, coordinator, as_json):
    """Distributed key generation: every party gets a share; nobody sees the key."""
    if purpose and scheme != FROST_SCHEME:
        _fail("--purpose applies to FROST keys (--scheme frost-ed25519) only")
    slug = re.sub(r"[^a-z0-9-]+", "-", label.lower()).strip("-")[:40]
    key_id = slug if len(slug) >= 3 else f"key-{secrets.token_hex(4)}"

    async def action(c):
        if scheme == FROST_SCHEME:  # checked and recorded in the ledger there
            return await frost_keygen(c, key_id, label, _progress(as_json),
                                      purpose or DEFAULT_PURPOSE)
        outcome = await c.run_job("keygen", {"key_id": key_id, "scheme": scheme,
                                             "label": label}, progress=_progress(as_json))
        if outcome.ok and (problem := reported_key_problem(outcome.output, c.roster)):
            outcome.ok, outcome.error = False, problem
        return outcome
    outcome = _coordinate(cluster_dir, coordinator, broker, action)
    if scheme == FROST_SCHEME:
        _report(outcome, as_json, lambda o: console.print(
            f"key [bold]{key_id}[/] ({o.output['t'] + 1}-of-{o.output['n']} {scheme},"
            f" signs {o.output['purpose']})\npublic key [bold]{o.output['public_key']}[/]"))
        return
    if outcome.ok:
        ledger = _ledger(cluster_dir, coordinator)
        ledger.key(key_id).update({k: outcome.output[k] for k in
                                   ("scheme", "public_key", "address", "epoch", "t", "n")})
        ledger.save()
    _report(outcome, as_json, lambda o: console.print(
        f"key [bold]{key_id}[/] ({o.output['t'] + 1}-of-{o.output['n']} {scheme})\n"
        f"public key {o.output['public_key']}\naddress    [bold]{o.output['address']}[/]"))


def check_signature(out: dict) -> str | None:
    """Why a reported signed transaction is not acceptable, or None."""
    r, s = int(out["r"], 16), int(out["s"], 16)
    if not verify(out["public_key"], bytes.fromhex(out["digest"]), r, s):
        return "signature does not verify under libsecp256k1 (or is high-s)"
    if Account.recover_transaction(bytes.fromhex(out["raw"])) != out["address"]:
        return "the raw transaction does not recover to the vault address"
    if eth_address(out["public_key"]) != out["address"]:
        return "vault address does not match the key"
    return None


def _sign_frost(cluster_dir, coordinator, broker, key_id, message: bytes,
                signers: str | None, as_json: bool) -> None:
    """FROST signing of a raw message; exit 1 naming the excluded signers if it fails."""
    try:
        ids = [int(x) for x in signers.split(",")] if signers else None
    except ValueError:
        _fail(f"--signers must be identifiers like 1,3, got {signers!r}")

    async def action(c):
        try:
            return await frost_sign(c, key_id, message, ids, _progress(as_json))
        except FrostSigningError as exc:
            return exc
    result = _coordinate(cluster_dir, coordinator, broker, action)
    failed = isinstance(result, FrostSigningError)
    excluded = result.excluded if failed else result["excluded"]
    if as_json:
        print(json.dumps({"ok": False, "error": str(result), "excluded": excluded}
                         if failed else {"ok": True, "output": result}, indent=2))
    elif failed:
        err.print(f"[bold red]signing failed:[/] {result}")
    else:
        console.print(f"signature [bold]{result['signature']}[/]\npublic key"
                      f" {result['public_key']}\nsigners {', '.join(result['signers'])}"
                      f" · {1000 * result['timings']['total_s']:.0f} ms")
    if not as_json:
        for name, reason in excluded.items():
            err.print(f"  excluded {name}: {reason}")
    if failed:
        sys.exit(1)


@click.command()
@common_dir
@click.option("--key", "key_id", required=True)
@click.option("--tx", "tx_file", type=click.Path(path_type=Path, exists=True),
              help="EIP-1559 transaction as JSON (ECDSA key)")
@click.option("--message", "message_file", type=click.Path(path_type=Path, exists=True),
              help="file whose bytes are signed (FROST key)")
@click.option("--hex", "message_hex", help="message to sign, as hex (FROST key)")
@click.option("--signers", help="FROST: these identifiers (party index + 1), e.g. 1,3;"
              " default: any t+1 online parties")
@click.option("--presigned", is_flag=True, help="ECDSA: use a presignature (one round online)")
@common_broker
@common_coord
@common_json
def sign(cluster_dir, key_id, tx_file, message_file, message_hex, signers, presigned, broker,
         coordinator, as_json):
    """Threshold-sign a settlement transaction (ECDSA key; every party checks it against its
    policy) or a message (FROST key, RFC 9591 Ed25519 signature)."""
    if sum(x is not None for x in (tx_file, message_file, message_hex)) != 1:
        _fail("give exactly one of --tx, --message, --hex")
    if tx_file is None:
        if presigned:
            _fail("--presigned applies to ECDSA keys only")
        try:
            message = message_file.read_bytes() if message_file else bytes.fromhex(message_hex)
        except ValueError:
            _fail("--hex must be an even number of hex digits")
        _sign_frost(cluster_dir, coordinator, broker, key_id, message, signers, as_json)
        return
    scheme = _ledger(cluster_dir, coordinator).data.get(key_id, {}).get("scheme")
    if scheme == FROST_SCHEME or signers:
        _fail(f"{key_id} is a FROST key: sign a message with --message or --hex"
              if scheme == FROST_SCHEME else "--signers applies to FROST keys only")
    try:
        tx = json.loads(tx_file.read_text())
        parse_transaction(tx)
    except (json.JSONDecodeError, EvmError) as exc:
        _fail(f"{tx_file}: {exc}")
    params, ledger = {"key_id": key_id, "tx": tx}, _ledger(cluster_dir, coordinator)

    async def action(c):
        progress = _progress(as_json)
        if not presigned:
            return await run_repairing(c, key_id, lambda: c.run_job("sign", params,
                                                                    progress=progress), progress)
        return await _sign_presigned(c, ledger, params, progress)
    outcome = _coordinate(cluster_dir, coordinator, broker, action)
    if outcome.ok:
        problem = check_signature(outcome.output)
        if problem:
            outcome.ok, outcome.error = False, problem
    _report(outcome, as_json, lambda o: console.print(
        f"signed by {o.output['address']}\nhash {o.output['hash']}\nr {o.output['r']}\n"
        f"s {o.output['s']}\nyParity {o.output['y_parity']}\nraw 0x{o.output['raw']}"))


PRESIGNED_TRIES = 3  # presignatures tried per sign when holders refuse the first ones


async def _sign_presigned(c, ledger: Ledger, params: dict, progress):
    """Sign with the ledger's next usable presignature, taken for this process alone; one a
    holder refuses (it lacks it or used it) is dropped with the holder's reason and the next
    one tried."""
    key_id, dropped = params["key_id"], []
    for _ in range(PRESIGNED_TRIES):
        await c.status(wait=1.0)
        entry, gone = ledger.take_presignature(key_id, _boot_ids(c))
        dropped += gone
        for d in gone:
            err.print(f"[dim]… dropped presignature {d['id']}: {d['reason']}[/]")
        if entry is None:
            raise ValueError(f"no presignatures left for {key_id}"
                             f"{f' ({len(dropped)} dropped, reasons above)' if dropped else ''}:"
                             f" run mpcnet presign --key {key_id}")
        outcome = await c.run_job("sign", {**params, "presignature": entry["id"]},
                                  progress=progress, only=entry["binding"].split(","))
        refusals = [f"{v.party}: {v.reason}" for v in outcome.votes
                    if not v.accept and f"presignature {entry['id']}" in v.reason]
        if outcome.ok or not refusals:
            return outcome
        ledger.drop_presignature(key_id, entry["id"], "; ".join(refusals))
        err.print(f"[dim]… dropped presignature {entry['id']}: {'; '.join(refusals)}[/]")
    return outcome


@click.command()
@common_dir
@click.option("--key", "key_id", required=True)
@click.option("--count", type=click.IntRange(1, 100), default=10, show_default=True)
@common_broker
@common_coord
@common_json
def presign(cluster_dir, key_id, count, broker, coordinator, as_json):
    """Precompute presignatures for fast signing with the parties online now.  They live in
    those parties' memory only: a party that restarts loses them."""
    async def action(c):
        started = time.time()  # the nodes' lifetimes start later: ours ends first
        progress = _progress(as_json)
        outcome = await run_repairing(c, key_id, lambda: c.run_job(
            "presign", {"key_id": key_id, "count": count}, progress=progress), progress)
        return outcome, _boot_ids(c), started
    outcome, boots, started = _coordinate(cluster_dir, coordinator, broker, action)
    if outcome.ok:  # every holder reported the same ids (a shared output)
        holders = outcome.output["binding"].split(",")
        if missing := [n for n in holders if n not in boots]:
            outcome.ok = False
            outcome.error = (f"{', '.join(missing)} went offline during presign: its"
                             f" presignatures may be gone, so none was recorded")
        else:
            _ledger(cluster_dir, coordinator).add_presignatures(
                key_id, outcome.output["ids"], outcome.output["binding"],
                outcome.output["epoch"], {n: boots[n] for n in holders},
                started + PRESIGNATURE_LIFETIME_S)
    _report(outcome, as_json, lambda o: console.print(
        f"{len(o.output['ids'])} presignatures for {key_id} with {o.output['binding']}"))


@click.command()
@common_dir
@click.option("--key", "key_id", required=True)
@click.option("--epoch", type=int, help="the new epoch (default: the parties' epoch + 1)")
@common_broker
@common_coord
@common_json
def refresh(cluster_dir, key_id, epoch, broker, coordinator, as_json):
    """Re-randomise all shares of a key (same public key): stage on every party, commit once
    all staged, drop the old epoch once all committed.  A crash in between leaves the old
    epoch in use until `mpcnet keys repair` finishes or rolls back the change."""
    ledger = _ledger(cluster_dir, coordinator)
    params = {"key_id": key_id, "epoch": epoch}

    async def action(c):  # staged, committed and confirmed on every party (keyepochs)
        if params["epoch"] is None:  # the parties' word: a repair may have moved the epoch
            states, problems = await key_status(c, key_id)
            committed = {s["committed"] for s in states.values()}
            try:
                unfinished = not problems and plan(key_id, states,
                                                   [p.name for p in c.roster.parties])
            except RepairError:
                unfinished = False  # not reconcilable here: the check below says so
            if unfinished:
                _progress(as_json)(f"key {key_id}: an earlier epoch change is unfinished;"
                                   " repairing first")
                fixed = await repair(c, key_id, _progress(as_json))
                if fixed["error"]:
                    raise ValueError(f"key {key_id} needs a repair that failed:"
                                     f" {fixed['error']}")
                states, problems = fixed["states"], fixed["problems"]
                committed = {s["committed"] for s in states.values()}
            if problems or len(committed) != 1 or None in committed:
                raise ValueError(f"the parties do not agree on one committed epoch of {key_id}"
                                 f" (mpcnet keys status --key {key_id}); repair it or give"
                                 f" --epoch")
            params["epoch"] = committed.pop() + 1
        return await c.run_job("refresh", params, progress=_progress(as_json))
    outcome = _coordinate(cluster_dir, coordinator, broker, action)
    epoch = params["epoch"]
    if outcome.ok:
        ledger.key(key_id)["epoch"] = epoch
        ledger.save()
        ledger.drop_all_presignatures(key_id, f"bound to epoch {epoch - 1}; the key is at"
                                              f" epoch {epoch} now")
    _report(outcome, as_json, lambda o: console.print(
        f"key {key_id} refreshed: epoch {o.output['epoch']} committed on every party"))


@click.group()
def keys():
    """An operator's own key store (list, back up, restore), and every party's epochs of a
    key over the bus (status, repair)."""


def _stores(cluster_dir: Path | None, config: Path | None) -> list[tuple[str, KeyStore]]:
    configs = [config] if config else [d / "node.yaml" for d in party_dirs(cluster_dir)]
    stores = []
    for path in configs:
        cfg = load_node_config(path)
        roster = load_roster(resolve(path, cfg.roster))
        stores.append((cfg.party, KeyStore(resolve(path, cfg.data_dir) / "keys",
                                           read_passphrase(cfg.passphrase, path),
                                           roster.cluster_id, roster.party(cfg.party).index)))
    return stores


config_option = click.option("--config", type=click.Path(path_type=Path, exists=True),
                             help="one party's node.yaml (default: every party in --dir)")


@keys.command("list")
@click.option("--dir", "cluster_dir", type=click.Path(path_type=Path), default=".")
@config_option
@common_json
def keys_list(cluster_dir, config, as_json):
    """Keys, schemes, addresses, thresholds and epochs, per party.  Presignatures and FROST
    nonces are not here: they live only in each running node's memory (see the node's
    mpcnet_presignatures_left metric) and are gone when it restarts."""
    try:
        listing = {party: store.list_keys() for party, store in _stores(cluster_dir, config)}
    except (*USER_ERRORS, KeyShareError) as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps(listing, indent=2))
        return
    for party, rows in listing.items():
        console.print(f"[bold]{party}[/]")
        console.print(_key_table(rows) if rows else "  no keys")


@keys.command("presignatures")
@common_dir
@click.option("--key", "key_ids", multiple=True, help="only these keys (default: all ECDSA)")
@click.option("--reconcile", is_flag=True, help="ask which holders still run the process"
              " that made each presignature, and drop those some holder can no longer have")
@common_broker
@common_coord
@common_json
def keys_presignatures(cluster_dir, key_ids, reconcile, broker, coordinator, as_json):
    """The coordinator's presignature pool per key: how many are ready, and why others were
    dropped.  --reconcile makes it agree with the parties' pools (which live in memory)."""
    ledger = _ledger(cluster_dir, coordinator)
    key_ids = list(key_ids) or sorted(k for k, v in ledger.data.items()
                                      if v.get("scheme") == SCHEME)
    now = {}
    if reconcile:
        async def action(c):
            await c.status(wait=1.0)
            return {k: ledger.reconcile(k, _boot_ids(c)) for k in key_ids}
        now = _coordinate(cluster_dir, coordinator, broker, action)
    report = {k: {"ready": len(ledger.presignatures(k)),
                  "dropped_now": [{"id": d["id"], "reason": d["reason"]}
                                  for d in now.get(k, [])]} for k in key_ids}
    if as_json:
        print(json.dumps(report, indent=2))
        return
    for k, r in report.items():
        console.print(f"{k}: {r['ready']} ready")
        for d in r["dropped_now"]:
            console.print(f"  dropped {d['id']}: {d['reason']}")


def _state_table(key_id: str, states: dict[str, dict], problems: dict[str, str]) -> Table:
    table = Table(title=f"key {key_id}")
    for col in ("party", "committed", "staged", "older kept", "voted for commit", "sharing"):
        table.add_column(col)
    for name, s in states.items():
        committed = s["committed"]
        above = [e for e in s["epochs"] if committed is None or int(e) > committed]
        below = [e for e in s["epochs"] if committed is not None and int(e) < committed]
        current = s["epochs"].get(str(committed), "") if committed is not None else ""
        table.add_row(name, "-" if committed is None else str(committed),
                      ", ".join(above) or "-", ", ".join(below) or "-",
                      ", ".join(s["promised"]) or "-", current[:12] or "-")
    for name, why in problems.items():
        table.add_row(name, "?", "?", "?", "?", why)
    return table


@keys.command("status")
@common_dir
@click.option("--key", "key_id", required=True)
@common_broker
@common_coord
@common_json
def keys_status(cluster_dir, key_id, broker, coordinator, as_json):
    """Every party's committed, staged and older epochs of a key, and its commit votes: shows
    a refresh or keygen that a crash left half done.  Exit 1 if the parties disagree."""
    async def action(c):
        return *(await key_status(c, key_id)), [p.name for p in c.roster.parties]
    states, problems, names = _coordinate(cluster_dir, coordinator, broker, action)
    summary = verdict(key_id, states, names)
    if as_json:
        print(json.dumps({"key_id": key_id, "states": states, "problems": problems,
                          "verdict": summary}, indent=2))
    else:
        console.print(_state_table(key_id, states, problems))
        console.print(summary)
    if problems or not summary.startswith(("consistent", "no party")):
        sys.exit(1)


@keys.command("repair")
@common_dir
@click.option("--key", "key_id", required=True)
@common_broker
@common_coord
@common_json
def keys_repair(cluster_dir, key_id, broker, coordinator, as_json):
    """Reconcile the parties' epochs of a key after a crash: finish a commit some party voted
    for, drop older epochs every party has replaced, abort a stage (or a half-made key) that
    not every party has.  Every party must be online; each acts only on the others' signed
    votes."""
    async def action(c):
        return await repair(c, key_id, _progress(as_json))
    result = _coordinate(cluster_dir, coordinator, broker, action)
    if as_json:
        print(json.dumps({"key_id": key_id, **result}, indent=2))
    else:
        for step in result["steps"]:
            console.print(f"{step['kind']} epoch {step['epoch']}: "
                          + ("ok" if step["ok"] else f"failed: {step['error']}"))
        console.print(_state_table(key_id, result["states"], result["problems"]))
        if result["error"] is None:
            console.print(f"key {key_id} is consistent on every party")
    if result["error"] is not None:
        err.print(f"[bold red]repair of {key_id} incomplete:[/] {result['error']}")
        sys.exit(1)


def _backup_passphrase() -> bytes:
    value = os.environ.get("MPCNET_BACKUP_PASSPHRASE")
    if value:
        return value.encode()
    if not sys.stdin.isatty():
        _fail("set MPCNET_BACKUP_PASSPHRASE (no terminal to ask on)")
    return click.prompt("backup passphrase", hide_input=True,
                        confirmation_prompt=True).encode()


@keys.command("export-backup")
@click.option("--config", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--key", "key_ids", multiple=True, help="only these keys (default: all)")
def keys_export(config, out, key_ids):
    """Write an encrypted backup of this party's committed shares (presignatures and nonces
    are never on disk, so never in a backup)."""
    try:
        (_, store), = _stores(None, config)
        done = export_backup(store, out, _backup_passphrase(), list(key_ids) or None)
    except (*USER_ERRORS, KeyShareError) as exc:
        _fail(str(exc))
    console.print(f"backed up {', '.join(done) or 'no keys'} to {out}")


@keys.command("import-backup")
@click.option("--config", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--backup", "backup_file", type=click.Path(path_type=Path, exists=True),
              required=True)
@click.option("--overwrite", is_flag=True, help="replace existing shares of the same keys")
def keys_import(config, backup_file, overwrite):
    """Restore this party's shares from its own backup."""
    try:
        (_, store), = _stores(None, config)
        done = import_backup(store, backup_file, _backup_passphrase(), overwrite)
    except (*USER_ERRORS, KeyShareError) as exc:
        _fail(str(exc))
    console.print(f"restored {', '.join(done) or 'nothing (already present)'}")
