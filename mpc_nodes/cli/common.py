"""What every command shares: the terminal, the client connection, the exit statuses, the
outcome rendered as text or JSON, and the common options.

Messages are printed literally: text from elsewhere (an error, a party's reason, a label)
never goes through rich markup, so `[a-z]` in a message is printed as it is.
"""

from __future__ import annotations

import asyncio
import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click
from rich.console import Console
from rich.text import Text

from mpc_nodes.errors import JobFailed, UserError

if TYPE_CHECKING:
    from mpc_nodes.client.api import Client
    from mpc_nodes.client.coordinator import JobOutcome

console = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def styled(*parts: str | tuple[str, str]) -> Text:
    """Plain strings and (text, style) pairs as one line; nothing in them is markup."""
    return Text.assemble(*parts)


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(styled(("error:", "bold red"), " ", message))
    sys.exit(code)


def print_json(value) -> None:
    print(json.dumps(value, indent=2))


def progress(as_json: bool):
    """Where a job's steps are reported: stderr, dim; nowhere with --json."""
    if as_json:
        return lambda text: None
    return lambda text: err.print(styled((f"… {text}", "dim")))


def warn(text: str) -> None:
    """What the user should see even with --json (on stderr)."""
    err.print(styled(("warning:", "yellow"), " ", text))


@contextmanager
def exits(as_json: bool = False, also: tuple[type[Exception], ...] = ()):
    """Known failures become exit statuses: a JobFailed 1, with its outcome (the JSON of
    --json); a UserError (or one of `also`) 2, with its message.  Anything else is a bug
    and goes up as a traceback."""
    try:
        yield
    except JobFailed as exc:
        show_failure(exc, as_json)
        sys.exit(1)
    except (UserError, *also) as exc:
        fail(str(exc))


def client(cluster_dir: Path, coordinator: Path | None, broker: str | None,
           as_json: bool) -> Client:
    """The client of --dir's coordinator (or --coordinator's), through --broker, else the
    broker of a cluster started in --dir with `cluster up`, else the configured one."""
    from mpc_nodes.client.api import Client, running_broker
    if coordinator is not None and broker is None:
        broker = running_broker(cluster_dir)
    return Client.connect(coordinator or cluster_dir, broker, progress(as_json), warn)


def call(cluster_dir, coordinator, broker, as_json: bool, action):
    """Connect, return `await action(net)`; failures become exit statuses (`exits`)."""
    async def run():
        async with client(cluster_dir, coordinator, broker, as_json) as net:
            return await action(net)
    with exits(as_json):
        return asyncio.run(run())


def footer(outcome: JobOutcome, *more: str) -> None:
    """The job's id, participants and time, dim; the notes of a job that succeeded all the
    same (a participant lost after the signature was made), and what parties report seeing
    others do (a signature share that failed its check)."""
    line = [f"job {outcome.job_id[:8]}" if outcome.job_id else outcome.kind,
            ", ".join(outcome.participants), *more,
            f"{1000 * outcome.timings.get('total_s', 0):.0f} ms"]
    console.print(styled((" · ".join(line), "dim")))
    for name, note in outcome.party_notes.items():
        err.print(f"  note: {name}: {note}", markup=False)
    for name, seen in outcome.observations.items():
        for note in seen:
            err.print(f"  {name} reports: {note}", markup=False)


def report(outcome: JobOutcome, as_json: bool, render) -> None:
    """A successful job: its outcome as JSON, or `render()` and the footer."""
    if as_json:
        print_json(outcome.as_dict())
        return
    render()
    footer(outcome)


def show_failure(exc: JobFailed, as_json: bool) -> None:
    """A failed job: its outcome as JSON, or why it failed and each party's reason."""
    outcome = exc.outcome
    if as_json:
        print_json(outcome.as_dict())
        return
    what = f"job {outcome.job_id}" if outcome.job_id else outcome.kind
    err.print(styled((f"{what} failed:", "bold red"), " ", str(exc)))
    if outcome.participants and outcome.job_id:  # it started: the parties keep its result
        err.print(f"  (mpcnet job show {outcome.job_id} asks them again)", markup=False)
    refused = {v.party: v.reason for v in outcome.votes if not v.accept}
    for party, reason in refused.items():
        err.print(f"  {party} rejected: {reason}", markup=False)
    for party, reason in exc.reasons.items():
        if party not in refused and reason not in str(exc):
            err.print(f"  {party}: {reason}", markup=False)


common_dir = click.option("--dir", "cluster_dir", type=click.Path(path_type=Path), default=".",
                          show_default=True, help="cluster directory made by mpcnet init")
common_broker = click.option("--broker", help="broker URL, e.g. mqtt://127.0.0.1:1883")
common_coord = click.option("--coordinator", type=click.Path(path_type=Path),
                            help="coordinator.yaml (default: DIR/coordinator/coordinator.yaml)")
common_json = click.option("--json", "as_json", is_flag=True, help="machine-readable output")


def network_options(command):
    """--broker, --coordinator and --json: the options of every command that runs jobs."""
    return common_broker(common_coord(common_json(command)))
