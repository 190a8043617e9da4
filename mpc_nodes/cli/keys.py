"""Key commands: keygen, sign, presign, refresh (the client, over the bus) and `keys`: an
operator's own store (list, export-backup, import-backup) and every party's epochs of a key
(status, repair) or the coordinator's presignature pool (presignatures).

The coordinator's checks (a new key against its verification shares, every signed
transaction with libsecp256k1 and eth-account) are in mpc_nodes.jobs.ecdsa and .frost.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import click
from rich.table import Table
from rich.text import Text

from mpc_nodes.cli.common import (call, client, common_broker, common_coord, common_dir,
                                  common_json, console, err, exits, fail, footer, network_options,
                                  print_json, report, styled)
from mpc_nodes.client.results import PreprocessedCommitments
from mpc_nodes.errors import UsageError
from mpc_nodes.jobs.keycheck import FROST_SCHEME, SCHEME


@click.command()
@common_dir
@click.option("--scheme", type=click.Choice([SCHEME, FROST_SCHEME]), default=SCHEME,
              show_default=True,
              help="ECDSA for EVM transactions, FROST for Ed25519 messages")
@click.option("--label", default="", help="a name for the key (also its id, when valid)")
@click.option("--purpose", type=click.Choice(["raw", "reports"]),
              help="FROST: what the key will sign, fixed now: raw messages (default) or only"
              " price reports the signers rebuild themselves (docs/FROST.md)")
@common_broker
@common_coord
@common_json
def keygen(cluster_dir, scheme, label, purpose, broker, coordinator, as_json):
    """Distributed key generation: every party gets a share; nobody sees the key."""
    key = call(cluster_dir, coordinator, broker, as_json,
               lambda net: net.keygen(scheme, label, purpose))

    def render():
        console.print(styled("key ", (key.key_id, "bold"),
                             f" ({key.t + 1}-of-{key.n} {key.scheme}"
                             + (f", signs {key.purpose})" if key.purpose else ")")))
        if key.address:
            console.print(styled(f"public key {key.public_key}\naddress    ",
                                 (key.address, "bold")))
        else:
            console.print(styled("public key ", (key.public_key, "bold")))
    report(key.outcome, as_json, render)


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
    """Threshold-sign a settlement transaction (ECDSA key) or a message (FROST key): every
    party checks a transaction against its policy; a message gets an RFC 9591 Ed25519
    signature."""
    if sum(x is not None for x in (tx_file, message_file, message_hex)) != 1:
        fail("give exactly one of --tx, --message, --hex")
    try:
        ids = [int(x) for x in signers.split(",")] if signers else None
    except ValueError:
        fail(f"--signers must be identifiers like 1,3, got {signers!r}")
    if tx_file is not None:
        try:
            payload = json.loads(tx_file.read_text())
        except json.JSONDecodeError as exc:
            fail(f"{tx_file}: {exc}")
    elif message_file is not None:
        payload = message_file.read_bytes()
    else:
        try:
            payload = bytes.fromhex(message_hex)
        except ValueError:
            fail("--hex must be an even number of hex digits")
    signed = call(cluster_dir, coordinator, broker, as_json,
                  lambda net: net.sign(key_id, payload, presigned=presigned, signers=ids))
    if tx_file is not None:
        report(signed.outcome, as_json, lambda: console.print(
            f"signed by {signed.address}\nhash {signed.hash.removeprefix('0x')}\n"
            f"r {hex(signed.r)}\ns {hex(signed.s)}\nyParity {signed.y_parity}\n"
            f"raw 0x{signed.raw.hex()}",
            markup=False))
        return
    if as_json:
        print_json(signed.outcome.as_dict())
        return
    console.print(styled("signature ", (signed.signature.hex(), "bold"),
                         f"\npublic key {signed.public_key.hex()}"))
    footer(signed.outcome, f"{signed.attempts} attempt(s)"
           + (", one job from preprocessed commitments" if signed.preprocessed else ""))
    for name, reason in signed.excluded.items():
        err.print(f"  excluded {name}: {reason}", markup=False)


@click.command()
@common_dir
@click.option("--key", "key_id", required=True)
@click.option("--count", type=click.IntRange(1, 100), default=10, show_default=True)
@common_broker
@common_coord
@common_json
def presign(cluster_dir, key_id, count, broker, coordinator, as_json):
    """Precompute presignatures for fast signing with the parties online now.  For a FROST
    key: COUNT nonce commitments per party (RFC 9591 preprocessing), so that a signature is
    one job.  They live in those parties' memory only: a party that restarts loses them."""
    made = call(cluster_dir, coordinator, broker, as_json, lambda net: net.presign(key_id, count))
    if isinstance(made, PreprocessedCommitments):
        report(made.outcome, as_json, lambda: console.print(
            f"{count} preprocessed commitments each for {key_id} from"
            f" {','.join(made.recorded)}", markup=False))
        for name, reason in made.refused.items() if not as_json else ():
            err.print(f"  none from {name}: {reason}", markup=False)
        return
    report(made.outcome, as_json, lambda: console.print(
        f"{len(made.ids)} presignatures for {key_id} with {','.join(made.holders)}",
        markup=False))


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
    done = call(cluster_dir, coordinator, broker, as_json, lambda net: net.refresh(key_id, epoch))
    report(done.outcome, as_json, lambda: console.print(
        f"key {key_id} refreshed: epoch {done.epoch} committed on every party", markup=False))


@click.command()
@common_dir
@click.option("--key", "key_ids", multiple=True, help="a key to move (repeat)")
@click.option("--all", "every", is_flag=True, help="every key in the coordinator's ledger")
@common_broker
@common_coord
@common_json
def reshare(cluster_dir, key_ids, every, broker, coordinator, as_json):
    """Move keys to the roster's parties and threshold after a roster update (same public
    keys): the holders still in the roster deal, every party receives, the new shares are
    committed once all staged and the old ones deleted once all committed.  Every party must
    be online.  A key already shared as the roster says is left alone."""
    if bool(key_ids) == every:
        fail("give --key (one or more) or --all")

    async def run(net):
        ids = list(key_ids) or net.recorded_keys()
        if not ids:
            raise UsageError("the coordinator's ledger records no key; give --key")
        return [await net.reshare(key_id) for key_id in ids]

    done = call(cluster_dir, coordinator, broker, as_json, run)
    if as_json:
        print_json([d.as_dict() for d in done])
        return
    for d in done:
        what = "already" if d.unchanged else "now"
        console.print(f"key {d.key_id} is {what} {d.threshold}-of-{len(d.holders)} among"
                      f" {', '.join(d.holders)} (epoch {d.epoch}, same public key)",
                      markup=False)
        if not d.unchanged:
            footer(d.outcome)


@click.group()
def keys():
    """An operator's own key store (list, back up, restore), and every party's epochs of a
    key over the bus (status, repair)."""


def _stores(cluster_dir: Path | None, config: Path | None) -> list:
    """(party, KeyStore) of one node.yaml, or of every party in a cluster directory."""
    from keyshare import KeyStore

    from mpc_nodes.config import load_node_config, load_roster, resolve
    from mpc_nodes.deploy.cluster import party_dirs
    from mpc_nodes.pki import read_passphrase
    configs = [config] if config else [d / "node.yaml" for d in party_dirs(cluster_dir)]
    stores = []
    for path in configs:
        cfg = load_node_config(path)
        roster = load_roster(resolve(path, cfg.roster))
        stores.append((cfg.party, KeyStore(resolve(path, cfg.data_dir) / "keys",
                                           read_passphrase(cfg.shares_passphrase_source, path),
                                           roster.cluster_id, roster.party(cfg.party).index,
                                           party_name=cfg.party)))
    return stores


def _store_errors() -> tuple[type[Exception], ...]:
    from keyshare import KeyShareError
    return (KeyShareError, OSError)


config_option = click.option("--config", type=click.Path(path_type=Path, exists=True),
                             help="one party's node.yaml (default: every party in --dir)")


def _key_table(rows: list[dict]) -> Table:
    table = Table(title="keys")
    for col in ("key", "scheme", "address", "t-of-n", "epoch"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["key_id"], r["scheme"], r.get("address") or "-",
                      f"{r['t'] + 1}-of-{r['n']}", str(r["epoch"]))
    return table


@keys.command("list")
@click.option("--dir", "cluster_dir", type=click.Path(path_type=Path), default=".")
@config_option
@common_json
def keys_list(cluster_dir, config, as_json):
    """Keys, schemes, addresses, thresholds and epochs, per party.  Presignatures and FROST
    nonces are not here: they live only in each running node's memory (see the node's
    mpcnet_presignatures_left metric) and are gone when it restarts."""
    with exits(also=_store_errors()):
        listing = {party: store.list_keys() for party, store in _stores(cluster_dir, config)}
    if as_json:
        print_json(listing)
        return
    for party, rows in listing.items():
        console.print(party, style="bold", markup=False)
        console.print(_key_table(rows) if rows else "  no keys")


@keys.command("presignatures")
@common_dir
@click.option("--key", "key_ids", multiple=True,
              help="only these keys (default: all ECDSA and FROST keys)")
@click.option("--reconcile", is_flag=True, help="ask which holders still run the process"
              " that made each presignature, and drop those some holder can no longer have")
@common_broker
@common_coord
@common_json
def keys_presignatures(cluster_dir, key_ids, reconcile, broker, coordinator, as_json):
    """The coordinator's pool per key: ECDSA presignatures ready, or for a FROST key the
    preprocessed commitments ready per party (and the signatures they serve); why others
    were dropped.  --reconcile makes it agree with the parties' pools (which live in
    memory)."""
    if reconcile:
        pools = call(cluster_dir, coordinator, broker, as_json,
                     lambda net: net.presignatures(list(key_ids), reconcile=True))
    else:  # the ledger alone: no connection
        with exits(as_json):
            pools = asyncio.run(client(cluster_dir, coordinator, broker, as_json)
                                .presignatures(list(key_ids)))
    if as_json:
        print_json({k: {"ready": p.ready, "dropped_now": [d.__dict__ for d in p.dropped_now],
                        **({} if p.per_party is None else {"per_party": p.per_party})}
                    for k, p in pools.items()})
        return
    for k, p in pools.items():
        console.print(f"{k}: {p.ready} ready" + ("" if p.per_party is None else
                      " signatures (preprocessed commitments: " + ", ".join(
                          f"{name} {n}" for name, n in p.per_party.items()) + ")"),
                      markup=False)
        for d in p.dropped_now:
            console.print(f"  dropped {d.id}: {d.reason}", markup=False)


def _state_table(key_id: str, states, problems: dict[str, str]) -> Table:
    table = Table(title=f"key {key_id}")
    for col in ("party", "committed", "staged", "older kept", "voted for commit", "sharing",
                "holders"):
        table.add_column(col)
    for name, s in states.items():
        committed = s.committed
        above = [e for e in s.epochs if committed is None or int(e) > committed]
        below = [e for e in s.epochs if committed is not None and int(e) < committed]
        current = s.epochs.get(str(committed), "") if committed is not None else ""
        table.add_row(name, "-" if committed is None else str(committed),
                      ", ".join(above) or "-", ", ".join(below) or "-",
                      ", ".join(s.promised) or "-", current[:12] or "-",
                      ", ".join(s.holders) or "-")
    for name, why in problems.items():
        table.add_row(name, "?", "?", "?", "?", Text(why), "?")
    return table


@keys.command("status")
@common_dir
@click.option("--key", "key_id", required=True)
@network_options
def keys_status(cluster_dir, key_id, broker, coordinator, as_json):
    """Every party's committed, staged and older epochs of a key, and its commit votes: shows
    a refresh or keygen that a crash left half done.  Exit 1 if the parties disagree."""
    status = call(cluster_dir, coordinator, broker, as_json, lambda net: net.key_status(key_id))
    if as_json:
        print_json(status.as_dict())
    else:
        console.print(_state_table(key_id, status.states, status.problems))
        console.print(status.verdict, markup=False)
    if not status.consistent:
        sys.exit(1)


@keys.command("repair")
@common_dir
@click.option("--key", "key_id", required=True)
@network_options
def keys_repair(cluster_dir, key_id, broker, coordinator, as_json):
    """Reconcile the parties' epochs of a key after a crash: finish a commit some party voted
    for, drop older epochs every party has replaced, abort a stage (or a half-made key) that
    not every party has.  Every party must be online; each acts only on the others' signed
    votes."""
    done = call(cluster_dir, coordinator, broker, as_json, lambda net: net.repair(key_id))
    if as_json:
        print_json(done.as_dict())
    else:
        for step in done.steps:
            console.print(f"{step.kind} epoch {step.epoch}: "
                          + ("ok" if step.ok else f"failed: {step.error}"), markup=False)
        console.print(_state_table(key_id, done.states, done.problems))
        if done.ok:
            console.print(f"key {key_id} is consistent on every party", markup=False)
    if not done.ok:
        err.print(styled((f"repair of {key_id} incomplete:", "bold red"), f" {done.error}"))
        sys.exit(1)


def _backup_passphrase() -> bytes:
    value = os.environ.get("MPCNET_BACKUP_PASSPHRASE")
    if value:
        return value.encode()
    if not sys.stdin.isatty():
        fail("set MPCNET_BACKUP_PASSPHRASE (no terminal to ask on)")
    return click.prompt("backup passphrase", hide_input=True,
                        confirmation_prompt=True).encode()


@keys.command("export-backup")
@click.option("--config", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--key", "key_ids", multiple=True, help="only these keys (default: all)")
def keys_export(config, out, key_ids):
    """Write an encrypted backup of this party's committed shares (presignatures and nonces
    are never on disk, so never in a backup)."""
    from keyshare import export_backup
    with exits(also=_store_errors()):
        (_, store), = _stores(None, config)
        done = export_backup(store, out, _backup_passphrase(), list(key_ids) or None)
    console.print(f"backed up {', '.join(done) or 'no keys'} to {out}", markup=False)


@keys.command("import-backup")
@click.option("--config", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--backup", "backup_file", type=click.Path(path_type=Path, exists=True),
              required=True)
@click.option("--overwrite", is_flag=True, help="replace existing shares of the same keys")
def keys_import(config, backup_file, overwrite):
    """Restore this party's shares from its own backup."""
    from keyshare import import_backup
    with exits(also=_store_errors()):
        (_, store), = _stores(None, config)
        done = import_backup(store, backup_file, _backup_passphrase(), overwrite)
    console.print(f"restored {', '.join(done) or 'nothing (already present)'}", markup=False)


@keys.command("rekey")
@click.option("--config", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--new-passphrase-env", metavar="VAR",
              help="read the new share passphrase from this environment variable")
@click.option("--new-passphrase-file", type=click.Path(path_type=Path),
              help="read the new share passphrase from this 0600 file")
def keys_rekey(config, new_passphrase_env, new_passphrase_file):
    """Re-encrypt this party's key shares under a new passphrase (stop the node first).
    Crash-safe: if interrupted, run it again with the same passphrases.  Then point
    `share_passphrase` in node.yaml at the new one."""
    from keyshare.rekey import rekey

    from mpc_nodes.cli.operator import ask_passphrase
    from mpc_nodes.config import load_node_config, resolve
    from mpc_nodes.pki import read_passphrase
    with exits(also=_store_errors()):
        cfg = load_node_config(config)
        old = read_passphrase(cfg.shares_passphrase_source, config)
        new = ask_passphrase(new_passphrase_env, new_passphrase_file, confirm=True,
                             prompt="new passphrase for this party's key shares")
        count = rekey(resolve(config, cfg.data_dir) / "keys", old, new)
    console.print(f"re-encrypted {count} share files; now set share_passphrase in {config} to"
                  f" the new passphrase's source", markup=False)
