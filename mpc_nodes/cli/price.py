"""`mpcnet price`: price a file of options from the parties' private volatility surfaces."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import click
from rich.table import Table

from mpc_nodes.cli.common import (_coordinate, _fail, _progress, common_broker, common_coord, common_dir,
                  common_json, console, err)
from mpc_nodes.jobs.frost import FrostSigningError
from mpc_nodes.jobs.options_csv import MAX_FILE_BYTES, OptionsError, parse_options
from mpc_nodes.wire.parsing import read_text
from mpc_nodes.jobs.pricing import job_slices, per_option, price_params, run_price_batches, sign_report
from mpc_nodes.jobs.price_report import ReportError, verify_signed_report
from mpc_nodes.jobs.pricing import MAX_OPTIONS_PER_JOB, Price

SHOWN = 25  # rows printed to the terminal; --out or --json give all of them
MAX_REPORT_FILE_BYTES = 1 << 20  # a report is signed as one FROST message of at most 64 KiB


@click.command()
@common_dir
@click.option("--underlying", required=True, help="e.g. ETH: each node prices from its"
              " data/surfaces/ETH.yaml or .csv")
@click.option("--spot", type=float, required=True)
@click.option("--rate", type=float, required=True, help="continuously compounded, e.g. 0.03")
@click.option("--dividend", type=float, default=0.0, show_default=True,
              help="continuous dividend (or foreign / staking) yield")
@click.option("--options", "options_file", type=click.Path(path_type=Path, exists=True,
                                                         dir_okay=False), required=True,
              help="CSV: type,strike,expiry[,quantity]; expiry in years or YYYY-MM-DD")
@click.option("--greeks", is_flag=True, help="also delta, gamma, vega (per unit vol), theta"
              " (per year)")
@click.option("--aggregate", "method", type=click.Choice(["median", "mean", "trimmed"]),
              default="median", show_default=True, help="how the parties' vols are combined")
@click.option("--reveal-to", "reveal", type=click.Choice(["all", "coordinator"]),
              default="all", show_default=True,
              help="coordinator: parties send output shares encrypted to this coordinator")
@click.option("--portfolio", is_flag=True, help="reveal only quantity-weighted totals")
@click.option("--valuation-date", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="for expiries given as dates (default: today, UTC)")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False),
              help="also write the per-option results as CSV")
@click.option("--sign-with", "sign_with", metavar="KEY_ID",
              help="FROST key of purpose reports: return a report signed by a quorum of the"
              " operators")
@click.option("--report", "report_file", type=click.Path(path_type=Path, dir_okay=False),
              help="with --sign-with: write the signed report here")
@common_broker
@common_coord
@common_json
def price(cluster_dir, underlying, spot, rate, dividend, options_file, greeks, method, reveal,
          portfolio, valuation_date, out, sign_with, report_file, broker, coordinator,
          as_json):
    """Price options at the parties' aggregated private vols; only prices (and Greeks) are
    revealed, and a circuit breaker refuses options on which the parties disagree."""
    try:
        book = parse_options(read_text(options_file, MAX_FILE_BYTES),
                             valuation_date.date() if valuation_date else None,
                             source=options_file.name)
        params = price_params(book, underlying, spot, rate, dividend, greeks, method, reveal,
                              portfolio, recipient="-" if reveal == "coordinator" else None)
        for start, _, part in job_slices(params):  # named before anything is sent
            try:
                Price().parse(part)
            except ValueError as exc:
                raise ValueError(f"{exc} (counting from option {start})" if start else
                                 str(exc)) from None
    except (OptionsError, ValueError) as exc:
        _fail(str(exc))
    if sign_with and reveal == "coordinator":
        _fail("--sign-with needs --reveal-to all: the signers would see the prices in the"
              " report they sign")
    if len(book) > MAX_OPTIONS_PER_JOB and (portfolio or sign_with):
        _fail(f"{len(book):,} options need several jobs (at most {MAX_OPTIONS_PER_JOB:,}"
              " each); --portfolio and --sign-with need them in one: split the file")
    progress = _progress(as_json)
    progress(f"{len(book)} options on {underlying} from {options_file.name}")
    signed, sign_error = None, None

    async def action(c):
        nonlocal signed, sign_error
        outcome = await run_price_batches(c, params, progress)
        if outcome.ok and sign_with:
            try:
                signed = await sign_report(c, sign_with, params, outcome, progress)
            except (FrostSigningError, ValueError) as exc:
                sign_error = exc
        return outcome
    outcome = _coordinate(cluster_dir, coordinator, broker, action)
    if not outcome.ok:
        _failed(outcome, as_json)
    if sign_error:
        _fail(f"prices computed (job {outcome.job_id[:8]}) but the report was not signed:"
              f" {sign_error}", 1)
    records = per_option(params, outcome.output)
    if out:
        _write_csv(out, records)
    summary = {"job_id": outcome.job_id, "underlying": underlying, "spot": spot, "rate": rate,
               "dividend": dividend, "method": method, "reveal_to": reveal,
               "participants": outcome.participants, "breached": outcome.output["breached"],
               "breaker_limit": outcome.output["limit"], "timings": outcome.timings}
    if portfolio:
        summary["portfolio"] = outcome.output.get("portfolio")
    else:
        summary["options"] = records
    if signed:
        summary["signed_report"] = {k: signed[k] for k in ("signature", "public_key", "signers")}
        if report_file:
            report_file.write_text(json.dumps(signed, indent=2))
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        _render(summary, records, portfolio, out, report_file)
    if portfolio and summary["portfolio"] is None:
        sys.exit(1)


def _failed(outcome, as_json: bool):
    if as_json:
        print(json.dumps(outcome.as_dict(), indent=2))
    else:
        err.print(f"[bold red]price job {outcome.job_id[:8]} failed:[/] {outcome.error}")
        for v in outcome.votes:
            if not v.accept:
                err.print(f"  {v.party} rejected: {v.reason}")
    sys.exit(1)


def _write_csv(path: Path, records: list[dict]) -> None:
    columns = list(dict.fromkeys(k for r in records for k in r))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(records)


def _render(summary: dict, records: list[dict], portfolio: bool, out: Path | None,
            out_report: Path | None) -> None:
    limit = summary["breaker_limit"]
    if summary["breached"]:
        err.print(f"[yellow]circuit breaker:[/] the parties' vols disagree by more than"
                  f" {limit:.0%} of the aggregate for {len(summary['breached'])} option(s):"
                  f" {', '.join(map(str, summary['breached'][:20]))}"
                  f"{' …' if len(summary['breached']) > 20 else ''}")
    if portfolio:
        totals = summary["portfolio"]
        if totals is None:
            err.print("[bold red]portfolio refused:[/] options above breached the breaker;"
                      " nothing was revealed")
            return
        table = Table(title=f"{summary['underlying']} portfolio ({summary['method']} vol)")
        for name in totals:
            table.add_column(name, justify="right")
        table.add_row(*(f"{v:,.6f}" for v in totals.values()))
        console.print(table)
    else:
        names = [k for k in ("price", "delta", "gamma", "vega", "theta") if k in records[0]
                 or any(k in r for r in records)]
        table = Table(title=f"{summary['underlying']} options ({summary['method']} vol,"
                            f" spot {summary['spot']:g})")
        for col in ("#", "type", "strike", "expiry (y)", *names):
            table.add_column(col, justify="right")
        for r in records[:SHOWN]:
            cells = [f"{r[n]:.6g}" if r["status"] == "ok" else "[yellow]breaker[/]"
                     for n in names]
            table.add_row(str(r["index"]), r["type"], f"{r['strike']:g}",
                          f"{r['expiry_years']:.4f}", *cells)
        console.print(table)
        if len(records) > SHOWN:
            console.print(f"[dim]{len(records) - SHOWN} more rows"
                          f"{f' in {out}' if out else ' (use --out FILE or --json)'}[/]")
    if "signed_report" in summary:
        r = summary["signed_report"]
        console.print(f"report signed by {', '.join(r['signers'])} with key"
                      f" {r['public_key'][:16]}…{f' → {out_report}' if out_report else ''}")
    t = summary["timings"]
    console.print(f"[dim]job {summary['job_id'][:8]} · {', '.join(summary['participants'])} ·"
                  f" revealed to {summary['reveal_to']} · {1000 * t.get('total_s', 0):.0f} ms[/]")


@click.command("verify-report")
@click.argument("report_file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--public-key", help="the network's price-report key you expect (hex); without"
              " it the report's own key is used, which anyone could have made")
@common_json
def verify_report(report_file, public_key, as_json):
    """Check a signed price report (from price --sign-with --report): type and version, every
    field's form, the inputs hash and result digest, and the Ed25519 signature (OpenSSL) over
    the price-report domain and the canonical report."""
    try:
        if report_file.stat().st_size > MAX_REPORT_FILE_BYTES:
            raise ReportError(f"the file is larger than {MAX_REPORT_FILE_BYTES:,} bytes")
        signed = json.loads(report_file.read_text())
        report = verify_signed_report(signed, public_key)
    except (ReportError, ValueError, RecursionError) as exc:
        if as_json:
            print(json.dumps({"ok": False, "error": str(exc)}))
            sys.exit(1)
        err.print(f"[bold red]invalid report:[/] {exc}")
        sys.exit(1)
    if as_json:
        print(json.dumps({"ok": True, "job_id": report["job_id"], "key": signed["public_key"],
                          "key_pinned": public_key is not None}))
        return
    console.print(f"[green]valid[/]: job {report['job_id'][:8]} of cluster"
                  f" {report['cluster_id']}, {report['inputs']['underlying']} at"
                  f" {report['timestamp']}, key {report['key_id']} {signed['public_key']}")
    if public_key is None:
        err.print("[yellow]the key was not pinned:[/] compare it with the network's"
                  " price-report key, or pass --public-key")
