"""`mpcnet price`: price a file of options from the parties' private volatility surfaces;
`mpcnet verify-report`: check a signed price report."""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import replace
from pathlib import Path

import click
from rich.table import Table

from mpc_nodes.cli.common import (call, common_broker, common_coord, common_dir, common_json,
                                  console, err, exits, print_json, styled)
from mpc_nodes.errors import InvalidReport

SHOWN = 25  # rows printed to the terminal; --out or --json give all of them


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
@click.option("--sign-eip712", "sign_eip712", metavar="KEY_ID",
              help="ECDSA key: the network signs one EIP-712 mark per option, for the"
              " settlement contract (docs/SETTLEMENT.md)")
@click.option("--chain-id", type=int, help="with --sign-eip712: the chain of the verifier")
@click.option("--verifying-contract", metavar="ADDRESS",
              help="with --sign-eip712: the OracleMarkVerifier the marks are for")
@click.option("--series-expiry", type=int, metavar="UNIX_S",
              help="with --sign-eip712: every option's series expires then (strike and"
              " call/put are the option's)")
@click.option("--marks", "marks_file", type=click.Path(path_type=Path, dir_okay=False),
              help="with --sign-eip712: write the signed marks (JSON list) here")
@common_broker
@common_coord
@common_json
def price(cluster_dir, underlying, spot, rate, dividend, options_file, greeks, method, reveal,
          portfolio, valuation_date, out, sign_with, report_file, sign_eip712, chain_id,
          verifying_contract, series_expiry, marks_file, broker, coordinator, as_json):
    """Price options at the parties' aggregated private vols; only prices (and Greeks) are
    revealed, and a circuit breaker refuses options on which the parties disagree."""
    day = valuation_date.date() if valuation_date else None
    with exits(as_json, also=(OSError,)):
        series = _series(options_file, day, series_expiry) if sign_eip712 else None
    priced = call(cluster_dir, coordinator, broker, as_json, lambda net: net.price(
        options_file, underlying, spot, rate, dividend, greeks, method, reveal, portfolio,
        day, sign_with, sign_eip712, chain_id, verifying_contract, series))
    with exits(as_json, also=(OSError,)):
        if marks_file and priced.marks:
            marks_file.write_text(json.dumps([m.as_dict() for m in priced.marks], indent=2))
        if out and priced.options is not None:
            _write_csv(out, [o.as_dict() for o in priced.options])
        if report_file and priced.signed_report:
            report_file.write_text(json.dumps(priced.signed_report.as_dict(), indent=2))
    if as_json:
        print_json(replace(priced.outcome, output=priced.summary()).as_dict())
    else:
        _render(priced, out, report_file)


def _series(options_file: Path, day, expiry: int | None) -> list[dict]:
    """Each option's series: its strike and call/put, expiring at `expiry`."""
    from mpc_nodes.chain.eip712 import to_fixed
    from mpc_nodes.client.api import read_book
    from mpc_nodes.errors import UsageError
    if expiry is None:
        raise UsageError("--sign-eip712 needs --series-expiry (and --chain-id,"
                         " --verifying-contract)")
    book = read_book(options_file, day)
    return [{"strike": to_fixed(k), "expiry": expiry, "is_call": c}
            for c, k in zip(book.is_call, book.strikes)]


def _write_csv(path: Path, records: list[dict]) -> None:
    columns = list(dict.fromkeys(k for r in records for k in r))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(records)


def _render(priced, out: Path | None, out_report: Path | None) -> None:
    if priced.breached:
        err.print(styled(("circuit breaker:", "yellow"),
                         f" the parties' vols disagree by more than {priced.breaker_limit:.0%}"
                         f" of the aggregate for {len(priced.breached)} option(s):"
                         f" {', '.join(map(str, priced.breached[:20]))}"
                         f"{' …' if len(priced.breached) > 20 else ''}"))
    if priced.portfolio is not None:
        table = Table(title=f"{priced.underlying} portfolio ({priced.method} vol)")
        for name in priced.portfolio:
            table.add_column(name, justify="right")
        table.add_row(*(f"{v:,.6f}" for v in priced.portfolio.values()))
        console.print(table)
    else:
        names = [k for k in ("price", "delta", "gamma", "vega", "theta")
                 if any(getattr(o, k) is not None for o in priced.options)]
        table = Table(title=f"{priced.underlying} options ({priced.method} vol,"
                            f" spot {priced.spot:g})")
        for col in ("#", "type", "strike", "expiry (y)", *names):
            table.add_column(col, justify="right")
        for o in priced.options[:SHOWN]:
            cells = [f"{getattr(o, n):.6g}" if o.status == "ok" else styled(("breaker", "yellow"))
                     for n in names]
            table.add_row(str(o.index), o.type, f"{o.strike:g}", f"{o.expiry_years:.4f}",
                          *cells)
        console.print(table)
        if len(priced.options) > SHOWN:
            console.print(styled((f"{len(priced.options) - SHOWN} more rows"
                                  f"{f' in {out}' if out else ' (use --out FILE or --json)'}",
                                  "dim")))
    if priced.signed_report:
        r = priced.signed_report
        console.print(f"report signed by {', '.join(r.signers)} with key {r.public_key[:16]}…"
                      f"{f' → {out_report}' if out_report else ''}", markup=False)
    for i, m in enumerate(priced.marks):
        console.print(f"mark {i} signed by {m.signer}: digest 0x{m.digest.hex()[:16]}…",
                      markup=False)
    t = priced.outcome.timings
    console.print(styled((f"job {priced.outcome.job_id[:8]} ·"
                          f" {', '.join(priced.outcome.participants)} · revealed to"
                          f" {priced.reveal} · {1000 * t.get('total_s', 0):.0f} ms", "dim")))


@click.command("verify-report")
@click.argument("report_file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--public-key", help="the network's price-report key you expect (hex); without"
              " it the report's own key is used, which anyone could have made")
@common_json
def verify_report(report_file, public_key, as_json):
    """Check a signed price report (from price --sign-with --report): type and version, every
    field's form, the inputs hash and result digest, and the Ed25519 signature (OpenSSL) over
    the price-report domain and the canonical report."""
    from mpc_nodes.client.api import verify_report as verify
    try:
        checked = verify(report_file, public_key)
    except InvalidReport as exc:
        if as_json:
            print(json.dumps({"ok": False, "error": str(exc)}))
        else:
            err.print(styled(("invalid report:", "bold red"), f" {exc}"))
        sys.exit(1)
    if as_json:
        print(json.dumps({"ok": True, "job_id": checked.job_id, "key": checked.public_key,
                          "key_pinned": checked.key_pinned}))
        return
    console.print(styled(("valid", "green"), f": job {checked.job_id[:8]} of cluster"
                         f" {checked.cluster_id}, {checked.underlying} at {checked.timestamp},"
                         f" key {checked.key_id} {checked.public_key}"))
    if not checked.key_pinned:
        err.print(styled(("the key was not pinned:", "yellow"), " compare it with the network's"
                         " price-report key, or pass --public-key"))
