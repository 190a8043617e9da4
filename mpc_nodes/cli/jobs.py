"""`mpcnet job show ID`: what became of a job, from the parties' own durable records.

Every party is asked (a signed `job_query`); each that finished the job republishes the
signed result it stored, the others say where the job stands with them (running, pending,
lost in a restart, unknown).  The outcome is judged exactly as for a job the coordinator
follows itself, so a result lost to a broker restart or a coordinator that went away is
recovered, and a job a party lost is named.
"""

from __future__ import annotations

import json
import sys

import click
from rich.table import Table
from rich.text import Text

from mpc_nodes.cli.common import (call, common_broker, common_coord, common_dir, common_json,
                                  console, err, print_json, styled)


@click.group()
def job():
    """Jobs already requested: what became of them."""


@job.command("show")
@click.argument("job_id")
@common_dir
@click.option("--wait", type=float, default=3.0, show_default=True,
              help="seconds to wait for the parties' answers")
@common_broker
@common_coord
@common_json
def job_show(job_id, cluster_dir, wait, broker, coordinator, as_json):
    """Ask every party what became of JOB_ID (the 32 hex digits of the job id) and judge its
    outcome from their signed results.  Exit status 0 if it succeeded, 1 if not."""
    outcome = call(cluster_dir, coordinator, broker, as_json, lambda net: net.job(job_id, wait))
    if as_json:
        print_json(outcome.as_dict())
    else:
        table = Table(title=f"job {job_id} ({outcome.kind})")
        for col in ("party", "state", "result"):
            table.add_column(col)
        for name, state in outcome.party_states.items():
            said = (outcome.party_errors.get(name) or outcome.party_notes.get(name)
                    or ("ok" if name in outcome.participants and outcome.ok else ""))
            table.add_row(name, state, Text(said))
        console.print(table)
        if outcome.ok:
            shown = outcome.output if outcome.output is not None else outcome.party_outputs
            console.print(styled(("ok", "green"), f" · {', '.join(outcome.participants)}\n"
                                 f"{json.dumps(shown, indent=2)}"))
        else:
            err.print(styled((f"job {job_id[:8]} failed:", "bold red"), f" {outcome.error}"))
    sys.exit(0 if outcome.ok else 1)
