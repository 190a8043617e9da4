"""Network commands: the parties' `status`, a private `aggregate`, and `ping`."""

from __future__ import annotations

import click
from rich.table import Table
from rich.text import Text

from mpc_nodes.cli.common import (call, common_broker, common_coord, common_dir, common_json,
                                  console, print_json, report, styled)

STATE_COLOURS = {"online": "green", "offline": "red", "deaf": "red"}


@click.command()
@common_dir
@common_broker
@common_coord
@common_json
def status(cluster_dir, broker, coordinator, as_json):
    """Show every party: online/offline/deaf, version, protocol code digest, roster version
    and security mode; and the security mode in force (the coordinator's roster's)."""
    network = call(cluster_dir, coordinator, broker, as_json, lambda net: net.status(wait=1.5))
    if as_json:
        print_json(network.as_dict())
        return
    ours = network.coordinator_code_digest
    table = Table(title="mpcnet parties")
    for col in ("party", "state", "version", "code digest", "roster"):
        table.add_column(col)
    for p in network.parties:
        digest = p.code_digest or "-"
        table.add_row(p.party, Text(p.state, STATE_COLOURS.get(p.state, "yellow")),
                      Text(p.version or "-"), styled(digest[:16], (
                          "" if digest in ("-", ours) else " (differs from ours)", "red")),
                      _roster_cell(p, network))
    console.print(table)
    console.print(_security_line(network.security, network.roster_version))


def _security_line(security: str, version: int) -> Text:
    """The security mode in force for this coordinator's jobs (its roster's)."""
    meaning = ("only job kinds secure against malicious parties run" if security == "malicious"
               else "jobs are secure against parties that follow the protocol")
    return styled("security: ", (security, "bold"), f" (roster version {version}): {meaning}")


def _roster_cell(p, network) -> Text:
    """The roster version and mode a party holds, red when it is not the coordinator's (the
    party refuses this coordinator's jobs)."""
    if p.roster_version is None:
        return Text("-")
    same = (p.roster_version, p.security) == (network.roster_version, network.security)
    return styled(f"v{p.roster_version} {p.security}",
                  ("" if same else " (differs from ours)", "red"))


@click.command()
@common_dir
@click.option("--input", "input_name", required=True, help="name of each party's private input")
@click.option("--method", type=click.Choice(["median", "mean"]), default="median",
              show_default=True)
@common_broker
@common_coord
@common_json
def aggregate(cluster_dir, input_name, method, broker, coordinator, as_json):
    """Median (or mean) of every party's private number NAME, revealing only that."""
    result = call(cluster_dir, coordinator, broker, as_json,
                  lambda net: net.aggregate(input_name, method))
    report(result.outcome, as_json, lambda: console.print(styled(
        f"{method} of {input_name} over {len(result.outcome.participants)} parties: ",
        (f"{result.value:.6f}", "bold"))))


@click.command()
@common_dir
@click.option("--rounds", type=int, default=20, show_default=True, help="sequential MPC rounds")
@common_broker
@common_coord
@common_json
def ping(cluster_dir, rounds, broker, coordinator, as_json):
    """Open an MPC session among all online parties and measure the round latency."""
    result = call(cluster_dir, coordinator, broker, as_json, lambda net: net.ping(rounds))
    if as_json:
        print_json({**result.outcome.as_dict(), "roster_version": result.roster_version,
                    "security": result.security})
        return

    def render():
        table = Table(title=f"ping: {rounds} rounds")
        for col in ("party", "set-up ms", "MPC ms", "ms / round"):
            table.add_column(col, justify="right")
        for name, t in result.parties.items():
            table.add_row(name, f"{1000 * t.connect_s:.1f}", f"{1000 * t.mpc_s:.1f}",
                          f"{1000 * t.per_round_s:.2f}")
        console.print(table)
        console.print(_security_line(result.security, result.roster_version))
    report(result.outcome, False, render)
