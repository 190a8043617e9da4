"""The `mpcnet` command line: cluster set-up, the node daemon, and coordinator commands.

Each command lives in the module COMMANDS names, imported only when that command runs, so
`mpcnet --help` imports none of them (nor eth-account, numpy, MPyC).  The coordinator
commands are a thin layer over the Python client (mpc_nodes.client.api): parse, call,
render a table or, with --json, the outcome (docs/API.md).  Exit status: 0 success, 1 the
job failed, 2 bad usage or configuration; a bug prints a traceback.

    python -m mpc_nodes.cli.app --help
"""

from __future__ import annotations

import logging
import os
import sys
from importlib import import_module

import click

from mpc_nodes import __version__

_TABLE = """
aggregate         network   Median (or mean) of every party's private number NAME, revealing
                            only that.
audit             audit     Check the nodes' hash-chained audit logs.
broker            cluster   -
cluster           cluster   Run a whole cluster on this machine (embedded broker + one process
                            per party).
demo              demo      Create a temporary cluster, start it, run joint computations, stop
                            it.
demo-jobs         deploy    Run the demo's jobs (private median and mean, and a job no party can
                            serve) against a running cluster.
deploy            deploy    Deployment files for a cluster directory made by mpcnet init.
init              cluster   One-machine shortcut: a cluster directory with every operator's keys
                            and configs, a signed roster, a coordinator.
job               jobs      Jobs already requested: what became of them.
keygen            keys      Distributed key generation: every party gets a share; nobody sees
                            the key.
keys              keys      An operator's own key store (list, back up, restore), and every
                            party's epochs of a key over the bus (status, repair).
mosquitto-config  deploy    Write mosquitto.conf, ACL and certificates for this cluster's
                            broker.
node              cluster   Run one party as a daemon until SIGTERM/SIGINT.
operator          operator  One operator's own identity key, TLS key and certificate, and its
                            signed join bundle (on its own machine).
ping              network   Open an MPC session among all online parties and measure the round
                            latency.
presign           keys      Precompute presignatures for fast signing with the parties online
                            now.
price             price     Price options at the parties' aggregated private vols; only prices
                            (and Greeks) are revealed.
refresh           keys      Re-randomise all shares of a key (same public key).
reshare           keys      Move keys to the roster's parties and threshold after a roster
                            update (same public keys).
roster            operator  Assemble, update, sign and verify the roster (every operator signs
                            the first, a quorum each next version).
settle            settle    Call the settlement contract in a transaction the vault key signs;
                            submit it to --rpc.
sign              keys      Threshold-sign a settlement transaction (ECDSA key) or a message
                            (FROST key).
status            network   Show every party: online/offline/deaf, version, protocol code
                            digest, roster version and security mode.
verify-report     price     Check a signed price report (from price --sign-with --report).
"""
"""Every command: its name, the module of mpc_nodes.cli that holds it, and the one-line help
`mpcnet --help` shows (a line that starts with spaces continues the help above it; "-" hides
the command: development tools)."""


def _commands(table: str) -> dict[str, tuple[str, str]]:
    commands: dict[str, tuple[str, str]] = {}
    for line in table.strip().splitlines():
        if line.startswith(" "):
            name, (module, helptext) = commands.popitem()
            commands[name] = (module, f"{helptext} {line.strip()}")
        else:
            name, module, helptext = line.split(None, 2)
            commands[name] = (module, "" if helptext == "-" else helptext)
    return commands


COMMANDS = _commands(_TABLE)


class LazyGroup(click.Group):
    """A group whose commands are imported by name when invoked; `--help` lists them from
    COMMANDS without importing any."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module = import_module(f"mpc_nodes.cli.{COMMANDS[name][0]}")
        return getattr(module, name.replace("-", "_"))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, text) for name, (_, text) in sorted(COMMANDS.items()) if text]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mpcnet")
@click.option("--log-level", default=os.environ.get("MPCNET_LOG_LEVEL", "WARNING"),
              show_default=True, help="DEBUG, INFO, WARNING, ERROR")
def main(log_level):
    """mpcnet: a multi-party computation network for decentralised derivatives."""
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    os.environ["MPCNET_LOG_LEVEL"] = log_level.upper()


if __name__ == "__main__":
    main()
