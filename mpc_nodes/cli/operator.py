"""The operators' ceremony (docs/OPERATOR.md): `operator init` makes one operator's own
secrets and join bundle on its own machine; `roster assemble` builds a first roster from
bundles, `roster update` the next version, `roster sign` adds one operator's signature and
`roster verify` says whether a node would accept it."""

from __future__ import annotations

import os
from pathlib import Path

import click

from mpc_nodes.cli.common import console, exits, print_json


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
@click.option("--out", type=click.Path(path_type=Path), required=True)
def roster_assemble(bundles, cluster_id, threshold, broker_cert, update_quorum, out):
    """A version-1 roster of the bundles' operators, not yet signed."""
    from mpc_nodes.onboarding import assemble, load_bundle
    with exits(also=(OSError,)):
        result = assemble([load_bundle(b) for b in bundles], cluster_id, threshold,
                          broker_cert=broker_cert.read_text(), update_quorum=update_quorum)
        _write(out, result)
    console.print(f"wrote {out}: version 1, {result.n} parties, threshold {result.threshold};"
                  f" every operator now checks and signs it (mpcnet roster sign)")


@roster.command("update")
@click.option("--current", type=click.Path(path_type=Path), required=True)
@click.option("--add", "add", type=click.Path(path_type=Path), multiple=True,
              help="join bundle of an operator to add (repeat)")
@click.option("--remove", multiple=True, help="name of an operator to remove (repeat)")
@click.option("--threshold", "-t", type=int)
@click.option("--out", type=click.Path(path_type=Path), required=True)
def roster_update(current, add, remove, threshold, out):
    """The next version of the current roster, not yet signed."""
    from mpc_nodes.config import load_roster
    from mpc_nodes.onboarding import load_bundle, next_version
    with exits(also=(OSError,)):
        result = next_version(load_roster(current), [load_bundle(b) for b in add], remove,
                              threshold)
        _write(out, result)
    console.print(f"wrote {out}: version {result.version}; a quorum of the current parties"
                  f" and every added operator sign it (mpcnet roster sign)")


@roster.command("sign")
@click.option("--roster", "path", type=click.Path(path_type=Path), required=True)
@click.option("--dir", "directory", type=click.Path(path_type=Path), required=True,
              help="this operator's directory (its identity.key)")
@with_passphrase
def roster_sign(path, directory, passphrase_env, passphrase_file):
    """Add this operator's signature to the roster file (after checking its contents)."""
    from mpc_nodes import governance
    from mpc_nodes.config import ConfigError, load_roster
    from mpc_nodes.onboarding import IDENTITY_KEY
    from mpc_nodes.pki import load_identity
    with exits(also=(OSError,)):
        current = load_roster(path)
        key = load_identity(directory / IDENTITY_KEY,
                            ask_passphrase(passphrase_env, passphrase_file, confirm=False))
        name = governance.signed_by(current, key)
        if name is None:
            raise ConfigError(f"{path}: this operator's identity key is not in the roster")
        _write(path, governance.sign(current, name, key))
    console.print(f"{name} signed {path} (version {current.version}, digest"
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
                "signers": sorted(s.signer for s in offered.signatures)})
