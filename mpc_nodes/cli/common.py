"""What every command shares: consoles, the coordinator connection, progress and outcome output,
and the common options."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click
from rich.console import Console

from mpc_nodes.client.coordinator import Coordinator, CoordinatorError, JobOutcome
from mpc_nodes.config import ConfigError
from mpc_nodes.deploy.cluster import ClusterError, RunState
from mpc_nodes.pki import KeyFileError
from mpc_nodes.wire.bus import BusUnavailable

console = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
USER_ERRORS = (ClusterError, ConfigError, CoordinatorError, KeyFileError, BusUnavailable,
               ValueError)


def _fail(message: str, code: int = 2):
    err.print(f"[bold red]error:[/] {message}")
    sys.exit(code)


def _coordinator_config(cluster_dir: Path, explicit: Path | None) -> Path:
    path = explicit or Path(cluster_dir) / "coordinator" / "coordinator.yaml"
    if not path.exists():
        _fail(f"no coordinator config at {path} (give --dir of a cluster made by mpcnet init,"
              " or --coordinator)")
    return path


def _broker(cluster_dir: Path, explicit: str | None) -> str | None:
    """--broker, else the broker of a cluster started here with `cluster up`."""
    if explicit:
        return explicit
    state = RunState.load(cluster_dir)
    return state.broker if state else None


def _coordinate(cluster_dir, coordinator, broker, action):
    """Connect a coordinator and run `action(c)`, turning known failures into clean errors."""
    async def main():
        async with Coordinator(_coordinator_config(Path(cluster_dir), coordinator),
                               _broker(Path(cluster_dir), broker)) as c:
            return await action(c)
    try:
        return asyncio.run(main())
    except USER_ERRORS as exc:
        _fail(str(exc))


def _progress(as_json: bool):
    return (lambda text: None) if as_json else (lambda text: err.print(f"[dim]… {text}[/]"))


def _report(outcome: JobOutcome, as_json: bool, render) -> None:
    if as_json:
        print(json.dumps(outcome.as_dict(), indent=2))
    elif outcome.ok:
        render(outcome)
        t = outcome.timings
        console.print(f"[dim]job {outcome.job_id[:8]} · {', '.join(outcome.participants)} ·"
                      f" {1000 * t.get('total_s', 0):.0f} ms[/]")
        for name, note in outcome.party_notes.items():  # it succeeded all the same
            err.print(f"  note: {name}: {note}")
    else:
        err.print(f"[bold red]job {outcome.job_id} failed:[/] {outcome.error}")
        if outcome.participants:  # it started: the parties keep what became of it
            err.print(f"  (mpcnet job show {outcome.job_id} asks them again)")
        for v in outcome.votes:
            if not v.accept:
                err.print(f"  {v.party} rejected: {v.reason}")
    if not outcome.ok:
        sys.exit(1)


common_dir = click.option("--dir", "cluster_dir", type=click.Path(path_type=Path), default=".",
                          show_default=True, help="cluster directory made by mpcnet init")
common_broker = click.option("--broker", help="broker URL, e.g. mqtt://127.0.0.1:1883")
common_coord = click.option("--coordinator", type=click.Path(path_type=Path),
                            help="coordinator.yaml (default: DIR/coordinator/coordinator.yaml)")
common_json = click.option("--json", "as_json", is_flag=True, help="machine-readable output")
