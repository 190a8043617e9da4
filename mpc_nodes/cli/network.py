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
    """Show every party: online/offline/deaf, version, protocol code digest."""
    network = call(cluster_dir, coordinator, broker, as_json, lambda net: net.status(wait=1.5))
    if as_json:
        print_json(network.as_dict())
        return
    ours = network.coordinator_code_digest
    table = Table(title="mpcnet parties")
    for col in ("party", "state", "version", "code digest"):
        table.add_column(col)
    for p in network.parties:
        digest = p.code_digest or "-"
        table.add_row(p.party, Text(p.state, STATE_COLOURS.get(p.state, "yellow")),
                      Text(p.version or "-"), styled(digest[:16], (
                          "" if digest in ("-", ours) else " (differs from ours)", "red")))
    console.print(table)


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

    def render():
        table = Table(title=f"ping: {rounds} rounds")
        for col in ("party", "set-up ms", "MPC ms", "ms / round"):
            table.add_column(col, justify="right")
        for name, t in result.parties.items():
            table.add_row(name, f"{1000 * t.connect_s:.1f}", f"{1000 * t.mpc_s:.1f}",
                          f"{1000 * t.per_round_s:.2f}")
        console.print(table)
    report(result.outcome, as_json, render)
