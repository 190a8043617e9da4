"""The operators' ceremony (docs/OPERATOR.md): `operator init` makes one operator's own
secrets and join bundle on its own machine, `operator rotate` its new keys and then switches
to them; `roster assemble` builds a first roster from bundles, `roster update` the next
version, `roster sign` adds one operator's signature and `roster verify` says whether a node
would accept it."""

from __future__ import annotations

import os
from pathlib import Path

import click

from mpc_nodes.cli.common import console, exits, print_json
from mpc_nodes.config import SECURITY_MODES
from mpc_nodes.onboarding import NEW_SECURITY


def ask_passphrase(env: str | None, file: Path | None, confirm: bool,
                   prompt: str = "passphrase for this operator's identity and TLS keys") -> bytes:
    """An operator's passphrase from an environment variable, a file or a prompt; the tool
    never writes it anywhere."""
    from mpc_nodes.config import PassphraseSource
    from mpc_nodes.pki import read_passphrase
    if env or file:
        source = PassphraseSource(env=env, file=str(file.resolve()) if file else None)
        return read_passphrase(source, Path.cwd())
    value = click.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    return value.encode()


passphrase_options = [
    click.option("--passphrase-env", metavar="VAR",
                 help="read the passphrase from this environment variable"),
    click.option("--passphrase-file", type=click.Path(path_type=Path),
                 help="read the passphrase from this 0600 file (keep it apart from the keys)"),
]


def with_passphrase(f):
    for option in reversed(passphrase_options):
        f = option(f)
    return f


@click.group()
def operator():
    """One operator's own identity key, TLS key and certificate, and its signed join bundle
    (on its own machine)."""


@operator.command("init")
@click.option("--dir", "directory", type=click.Path(path_type=Path), required=True,
              help="this operator's directory (made 0700)")
@click.option("--name", required=True, help="operator name: a-z, 0-9, '-'")
@click.option("--role", type=click.Choice(["node", "coordinator"]), default="node",
              show_default=True)
@click.option("--host", help="host the other parties reach this node's MPC port at")
@click.option("--mpc-port", type=int, help="this node's MPC port")
@with_passphrase
def operator_init(directory, name, role, host, mpc_port, passphrase_env, passphrase_file):
    """Create identity key, TLS key and self-signed certificate; write and print the signed
    join bundle (public parts only) to send to the other operators."""
    from mpc_nodes.onboarding import BUNDLE, create_operator
    with exits(also=(OSError,)):
        bundle = create_operator(directory, name, role,
                                 ask_passphrase(passphrase_env, passphrase_file, confirm=True),
                                 host, mpc_port)
    console.print(f"created operator {bundle.name} ({bundle.role}) in {directory};"
                  f" send {directory / BUNDLE} to the other operators")
    console.print(f"identity key {bundle.identity_key}")


@operator.command("rotate")
@click.option("--dir", "directory", type=click.Path(path_type=Path), required=True,
              help="this operator's directory")
@click.option("--finish", is_flag=True,
              help="switch to the new keys (once --roster pins them)")
@click.option("--roster", "roster_path", type=click.Path(path_type=Path),
              help="with --finish: the signed roster version that pins the new keys")
@click.option("--current", type=click.Path(path_type=Path),
              help="with --finish: the roster the node holds now (data/roster.accepted.yaml;"
              " a coordinator's roster.accepted.yaml beside coordinator.yaml)")
@with_passphrase
def operator_rotate(directory, finish, roster_path, current, passphrase_env, passphrase_file):
    """Make new identity and TLS keys beside the ones in use (identity.next.key,
    tls.next.key, tls.next.crt) and write their rotation bundle (bundle.next.yaml) for
    `mpcnet roster update --rotate`; the keys in use stay in use.  With --finish, once the
    signed roster that pins the new keys is there, move them into place (the old ones are
    kept as identity.prev.key, ...); then restart the node on that roster."""
    from mpc_nodes.config import load_roster
    from mpc_nodes.errors import UsageError
    from mpc_nodes.onboarding import NEXT, finish_rotation, start_rotation
    with exits(also=(OSError,)):
        if finish and not (roster_path and current):
            raise UsageError("--finish needs --roster (the new version) and --current")
        if not finish and (roster_path or current):
            raise UsageError("--roster and --current go with --finish")
        passphrase = ask_passphrase(passphrase_env, passphrase_file, confirm=False)
        if not finish:
            bundle = start_rotation(directory, passphrase)
            console.print(f"made new keys for {bundle.name} in {directory}; send"
                          f" {directory / NEXT.bundle} to the other operators (mpcnet roster"
                          f" update --rotate), sign the update with this directory, and switch"
                          f" with --finish once it is signed")
            console.print(f"new identity key {bundle.identity_key}")
            return
        offered = load_roster(roster_path)
        bundle = finish_rotation(directory, passphrase, offered, load_roster(current))
    if bundle is None:
        console.print(f"{directory} already uses the keys roster version {offered.version}"
                      f" pins; nothing to move")
        return
    console.print(f"{bundle.name} now uses the keys roster version {offered.version} pins"
                  f" (identity key {bundle.identity_key}); restart its node on that roster")


@click.group()
def roster():
    """Assemble, update, sign and verify the roster (every operator signs the first, a quorum
    each next version)."""


def _write(path: Path, value) -> None:
    from keyshare.atomic import write_atomic

    from mpc_nodes.config import dump_yaml
    tmp = path.with_name(path.name + ".new")
    dump_yaml(tmp, value)
    write_atomic(path, tmp.read_bytes(), mode=0o644)
    os.unlink(tmp)


@roster.command("assemble")
@click.option("--bundle", "bundles", type=click.Path(path_type=Path), multiple=True,
              required=True, help="a join bundle (repeat; nodes in party order)")
@click.option("--cluster-id", required=True)
@click.option("--threshold", "-t", type=int, required=True)
@click.option("--broker-cert", type=click.Path(path_type=Path), required=True,
              help="the broker's certificate (PEM), pinned")
@click.option("--update-quorum", type=int, help="party signatures an update needs (n - t)")
@click.option("--security", type=click.Choice(SECURITY_MODES), default=NEW_SECURITY,
              show_default=True, help="the adversary every MPC job must withstand"
              " (docs/OPERATOR.md)")
@click.option("--out", type=click.Path(path_type=Path), required=True)
def roster_assemble(bundles, cluster_id, threshold, broker_cert, update_quorum, security, out):
    """A version-1 roster of the bundles' operators, not yet signed."""
    from mpc_nodes.onboarding import assemble, load_bundle
    with exits(also=(OSError,)):
        result = assemble([load_bundle(b) for b in bundles], cluster_id, threshold,
                          broker_cert=broker_cert.read_text(), update_quorum=update_quorum,
                          security=security)
        _write(out, result)
    console.print(f"wrote {out}: version 1, {result.n} parties, threshold {result.threshold},"
                  f" security {result.security}; every operator now checks and signs it"
                  f" (mpcnet roster sign)")


@roster.command("update")
@click.option("--current", type=click.Path(path_type=Path), required=True)
@click.option("--add", "add", type=click.Path(path_type=Path), multiple=True,
              help="join bundle of an operator to add (repeat)")
@click.option("--remove", multiple=True, help="name of an operator to remove (repeat)")
@click.option("--rotate", type=click.Path(path_type=Path), multiple=True,
              help="rotation bundle (mpcnet operator rotate) of an operator whose keys change"
              " (repeat)")
@click.option("--threshold", "-t", type=int)
@click.option("--limit", "limits", multiple=True, metavar="NAME=VALUE",
              help="set a limit (repeat): max_message_bytes, max_request_ttl_s,"
              " vol_spread_limit, policy_quorum (none: every party)")
@click.option("--update-quorum", type=int,
              help="party signatures the version after this one needs (n - t to n)")
@click.option("--security", type=click.Choice(SECURITY_MODES),
              help="change the security mode (docs/OPERATOR.md)")
@click.option("--out", type=click.Path(path_type=Path), required=True)
def roster_update(current, add, remove, rotate, threshold, limits, update_quorum, security, out):
    """The next version of the current roster, not yet signed."""
    from mpc_nodes.config import load_roster
    from mpc_nodes.onboarding import changed_limits, load_bundle, next_version
    with exits(also=(OSError,)):
        held = load_roster(current)
        result = next_version(held, [load_bundle(b) for b in add], remove, threshold,
                              [load_bundle(b) for b in rotate],
                              changed_limits(held.limits, limits) if limits else None,
                              update_quorum, security)
        _write(out, result)
    console.print(f"wrote {out}: version {result.version} (security {result.security}); a"
                  f" quorum of the current parties and every added or re-keyed operator (with"
                  f" its new key) sign it (mpcnet roster sign)")


@roster.command("sign")
@click.option("--roster", "path", type=click.Path(path_type=Path), required=True)
@click.option("--dir", "directory", type=click.Path(path_type=Path), required=True,
              help="this operator's directory (its identity.key)")
@with_passphrase
def roster_sign(path, directory, passphrase_env, passphrase_file):
    """Add this operator's signature to the roster file (after checking its contents).  During
    a rotation (identity.next.key), when the roster pins the new key, sign with the new key
    and with the one in use (which the current roster pins: it counts towards the quorum)."""
    from mpc_nodes import governance
    from mpc_nodes.config import ConfigError, load_roster
    from mpc_nodes.onboarding import IDENTITY_KEY, NEXT
    from mpc_nodes.pki import load_identity
    with exits(also=(OSError,)):
        current = load_roster(path)
        passphrase = ask_passphrase(passphrase_env, passphrase_file, confirm=False)
        keys = [load_identity(directory / IDENTITY_KEY, passphrase)]
        name = governance.signed_by(current, keys[0])
        if name is None and (directory / NEXT.identity).exists():
            keys.insert(0, load_identity(directory / NEXT.identity, passphrase))
            name = governance.signed_by(current, keys[0])
        if name is None:
            raise ConfigError(f"{path}: this operator's identity key is not in the roster")
        signed = current
        for key in keys:
            signed = governance.sign(signed, name, key)
        _write(path, signed)
    which = " with its new key and the key in use" if len(keys) > 1 else ""
    console.print(f"{name} signed {path}{which} (version {current.version}, digest"
                  f" {governance.roster_digest(current).hex()[:16]})")


@roster.command("verify")
@click.option("--roster", "path", type=click.Path(path_type=Path), required=True)
@click.option("--current", type=click.Path(path_type=Path),
              help="the roster the nodes hold now (omit for a first roster)")
def roster_verify(path, current):
    """Whether a node holding --current (or none) accepts the roster."""
    from mpc_nodes import governance
    from mpc_nodes.config import load_roster
    with exits(also=(OSError,)):
        offered = load_roster(path)
        governance.accept(load_roster(current) if current else None, offered)
    print_json({"roster": str(path), "version": offered.version, "accepted": True,
                "digest": governance.roster_digest(offered).hex(),
                "signers": sorted({s.signer for s in offered.signatures})})
