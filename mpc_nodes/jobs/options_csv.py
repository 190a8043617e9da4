"""The options file of `mpcnet price`: one option per row, checked before any MPC runs.

    type,strike,expiry,quantity
    call,3000,0.25,10
    put,2800,2026-12-31,-5

``type`` is call or put (c/p accepted); ``expiry`` is in years or an ISO date (ACT/365 from
the valuation date); ``quantity`` is optional (default 1) and only matters for
``--portfolio``.  Columns may come in any order; the header row is required.  Numbers are
plain decimals (``3000``, ``0.25``, ``1e-3``: no ``3_000``, ``inf`` or hex); a UTF-8 byte
order mark is ignored.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass, field

from protocols.domain import EXPIRY_MAX, EXPIRY_MIN

from mpc_nodes.wire.parsing import plain_number

MAX_OPTIONS = 100_000
MAX_FILE_BYTES = 16 * 1024 * 1024  # 100,000 rows of up to 160 bytes
MAX_QUANTITY = 1e6
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
COLUMNS = ("type", "strike", "expiry", "quantity")


class OptionsError(ValueError):
    """The options file is unusable; the message names the line and the problem."""


@dataclass
class OptionBook:
    """Parallel lists, as the pricing job sends them."""

    is_call: list[bool] = field(default_factory=list)
    strikes: list[float] = field(default_factory=list)
    expiries: list[float] = field(default_factory=list)
    quantities: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.strikes)


def _number(text: str, what: str, where: str) -> float:
    x = plain_number(text)
    if x is None:
        kind = "finite" if text.strip().lower().lstrip("+-") in ("inf", "infinity", "nan") \
            else "a number (a plain decimal)"
        raise OptionsError(f"{where}: {what} {text!r} is not {kind}")
    return x


def _expiry(text: str, where: str, valuation: dt.date) -> float:
    if _DATE.fullmatch(text.strip()):
        try:
            day = dt.date.fromisoformat(text.strip())
        except ValueError:
            raise OptionsError(f"{where}: expiry {text!r} is neither years nor a valid"
                               " YYYY-MM-DD date") from None
        years = (day - valuation).days / 365.0
        if years <= 0:
            raise OptionsError(f"{where}: expiry {day} is not after the valuation date"
                               f" {valuation}")
    else:
        years = plain_number(text)
        if years is None:
            raise OptionsError(f"{where}: expiry {text!r} is neither years (a plain decimal)"
                               " nor a YYYY-MM-DD date")
        if years <= 0:
            raise OptionsError(f"{where}: expiry {years:g} must be > 0 years")
    if years > EXPIRY_MAX:
        raise OptionsError(f"{where}: expiry {years:.4g} years is beyond {EXPIRY_MAX:g}")
    if years < EXPIRY_MIN:
        raise OptionsError(f"{where}: expiry {years:.4g} years is below {EXPIRY_MIN:g}"
                           f" ({EXPIRY_MIN * 365 * 24:.3g} hours)")
    return years


def _printable(cell: str) -> str:
    """A header cell as the reader should see it: invisible characters escaped."""
    return cell if cell.isprintable() else ascii(cell)


def parse_options(text: str, valuation: dt.date | None = None,
                  source: str = "options") -> OptionBook:
    """Parse and validate an options file; OptionsError names the first problem."""
    valuation = valuation or dt.datetime.now(dt.timezone.utc).date()
    text = text.removeprefix("\ufeff")
    try:
        return _parse(csv.reader(io.StringIO(text, newline="")), valuation, source)
    except csv.Error as exc:
        raise OptionsError(f"{source}: not valid CSV: {exc}") from None


def _parse(rows, valuation: dt.date, source: str) -> OptionBook:
    header, book = None, OptionBook()
    for line, row in enumerate(rows, start=1):
        if not row or not any(c.strip() for c in row) or row[0].lstrip().startswith("#"):
            continue
        where = f"{source} line {line}"
        if header is None:
            header = [c.strip().lower() for c in row]
            missing = [c for c in COLUMNS[:3] if c not in header]
            unknown = [c for c in header if c not in COLUMNS]
            if missing or unknown or len(set(header)) != len(header):
                raise OptionsError(f"{where}: header must name the columns"
                                   f" {', '.join(COLUMNS)} (quantity optional);"
                                   f" got {', '.join(map(_printable, header))}")
            continue
        if len(row) != len(header):
            raise OptionsError(f"{where}: {len(row)} fields, expected {len(header)}")
        cell = dict(zip(header, (c.strip() for c in row)))
        kind = cell["type"].lower()
        if kind not in ("call", "put", "c", "p"):
            raise OptionsError(f"{where}: type {cell['type']!r} must be call or put")
        strike = _number(cell["strike"], "strike", where)
        if strike <= 0:
            raise OptionsError(f"{where}: strike {strike:g} must be > 0")
        quantity = _number(cell["quantity"], "quantity", where) if cell.get("quantity") else 1.0
        if abs(quantity) > MAX_QUANTITY:
            raise OptionsError(f"{where}: |quantity| {quantity:g} exceeds {MAX_QUANTITY:g}")
        book.is_call.append(kind.startswith("c"))
        book.strikes.append(strike)
        book.expiries.append(_expiry(cell["expiry"], where, valuation))
        book.quantities.append(quantity)
        if len(book) > MAX_OPTIONS:
            raise OptionsError(f"{source}: more than {MAX_OPTIONS} options; split the file")
    if header is None or not len(book):
        raise OptionsError(f"{source}: no options (a header row and at least one option)")
    return book
