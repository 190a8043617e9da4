"""Volatility surfaces and options files: parsing, validation with clear errors,
interpolation, and reloading that keeps the last good surface."""

import datetime as dt
import math
import os
import time

import pytest

from mpc_nodes.jobs.options_csv import OptionsError, parse_options
from mpc_nodes.node.volsurface import SurfaceBook, SurfaceError, parse_surface

YAML = """\
axis: moneyness
expiries: [0.25, 1.0]
points: [0.8, 1.0, 1.2]
vols:
  - [0.8, 0.7, 0.75]
  - [0.7, 0.6, 0.65]
"""
CSV = "strike,2000,3000,4000\n0.5,0.9,0.8,0.85\n2.0,0.7,0.6,0.65\n"


def test_interpolation_is_linear_in_strike_and_in_total_variance():
    s = parse_surface(YAML, "ETH", "yaml")
    assert s.vol([3000], [0.25], 3000)[0] == pytest.approx(0.7)
    assert s.vol([2700], [0.25], 3000)[0] == pytest.approx(0.75)       # halfway 0.8 .. 1.0
    var = (0.49 * 0.25 * 2 / 3 + 0.36 * 1.0 / 3) / 0.5                 # a third of the way
    assert s.vol([3000], [0.5], 3000)[0] == pytest.approx(math.sqrt(var))
    # flat beyond the grid, in both directions
    assert s.vol([100, 9000], [0.01, 5.0], 3000).tolist() == pytest.approx([0.8, 0.65])


def test_csv_surfaces_use_strikes_when_the_header_says_so():
    s = parse_surface(CSV, "ETH", "csv")
    assert s.axis == "strike"
    assert s.vol([2500], [0.5], 1.0)[0] == pytest.approx(0.85)


@pytest.mark.parametrize("text,fmt,message", [
    ("axis: delta\nexpiries: [1]\npoints: [1, 2]\nvols: [[0.5, 0.5]]", "yaml", "axis must be"),
    ("axis: strike\nexpiries: [1, 0.5]\npoints: [1, 2]\nvols: [[0.5, 0.5], [0.5, 0.5]]",
     "yaml", "strictly increasing"),
    ("axis: strike\nexpiries: [1]\npoints: [2, 1]\nvols: [[0.5, 0.5]]", "yaml",
     "strictly increasing"),
    ("axis: strike\nexpiries: [1]\npoints: [1]\nvols: [[0.5]]", "yaml", "at least 2"),
    ("axis: strike\nexpiries: [1]\npoints: [1, 2]\nvols: [[0.5, 5.5]]", "yaml", "outside"),
    ("axis: strike\nexpiries: [1]\npoints: [1, 2]\nvols: [[0.5, 0]]", "yaml", "outside"),
    ("axis: strike\nexpiries: [1]\npoints: [1, 2]\nvols: [[0.5, .nan]]", "yaml", "not finite"),
    ("axis: strike\nexpiries: [1]\npoints: [1, 2]\nvols: [[0.5]]", "yaml", "has 1 values"),
    ("axis: strike\nexpiries: [1]\npoints: [1, 2]\nvols: [[0.5, x]]", "yaml", "not a number"),
    ("axis: strike\nexpiries: [1]\npoints: [1, 2]\nvols: [[0.5, 0.5]]\nextra: 1", "yaml",
     "unknown field"),
    ("- 1", "yaml", "expected a mapping"),
    ("?", "yaml", "unknown field"),  # {None: None}: found by the fuzzer
    ("axis: [", "yaml", "not valid YAML"),
    ("strike,1,2\n", "csv", "at least one expiry"),
    ("strike,1,2\n1,0.5\n", "csv", "has 1 values"),
    ("strike,1,2\n-1,0.5,0.5\n", "csv", "expiries must be in"),
])
def test_bad_surfaces_are_refused_with_a_reason(text, fmt, message):
    with pytest.raises(SurfaceError, match=message):
        parse_surface(text, "ETH", fmt)


def _touch_later(path):
    later = time.time() + 5
    os.utime(path, (later, later))


def test_the_book_reloads_on_change_and_keeps_the_last_good_surface(tmp_path, caplog):
    book = SurfaceBook(tmp_path)
    with pytest.raises(SurfaceError, match="no volatility surface for ETH"):
        book.get("ETH")
    path = tmp_path / "ETH.yaml"
    path.write_text(YAML)
    assert book.get("ETH").vols[0][1] == 0.7
    path.write_text(YAML.replace("0.7, 0.75", "0.71, 0.75"))
    _touch_later(path)
    assert book.get("ETH").vols[0][1] == 0.71            # reloaded
    path.write_text("axis: strike\n")                     # broken: report, keep the last good
    _touch_later(path)
    assert book.get("ETH").vols[0][1] == 0.71
    assert "ETH" in book.problems and "keeping the last good surface" in caplog.text
    path.unlink()                                         # removed: no surface any more
    with pytest.raises(SurfaceError, match="no volatility surface"):
        book.get("ETH")
    with pytest.raises(SurfaceError, match="invalid underlying"):
        book.get("../etc")
    (tmp_path / "BTC.yaml").write_text(YAML)
    (tmp_path / "BTC.csv").write_text(CSV)
    with pytest.raises(SurfaceError, match="keep one"):
        book.get("BTC")


def test_options_files_parse_types_dates_and_quantities():
    book = parse_options("type,expiry,strike,quantity\ncall,0.5,3000,2\nP,2027-11-25,2800,\n"
                         "# a comment\n\nc,1,3500,-1.5\n", valuation=dt.date(2026, 11, 25))
    assert book.is_call == [True, False, True]
    assert book.strikes == [3000, 2800, 3500]
    assert book.expiries == [0.5, 1.0, 1.0]
    assert book.quantities == [2.0, 1.0, -1.5]


@pytest.mark.parametrize("text,message", [
    ("", "no options"),
    ("type,strike\ncall,1\n", "header must name"),
    ("type,strike,expiry,colour\ncall,1,1,red\n", "header must name"),
    ("type,strike,expiry\nstraddle,1,1\n", "line 2: type"),
    ("type,strike,expiry\ncall,-5,1\n", "line 2: strike -5 must be > 0"),
    ("type,strike,expiry\ncall,abc,1\n", "line 2: strike 'abc' is not a number"),
    ("type,strike,expiry\ncall,inf,1\n", "not finite"),
    ("type,strike,expiry\ncall,1,0\n", "must be > 0 years"),
    ("type,strike,expiry\ncall,1,10.5\n", "beyond 10"),
    ("type,strike,expiry\ncall,1,2020-01-01\n", "not after the valuation date"),
    ("type,strike,expiry\ncall,1,2027-13-01\n", "neither years nor"),
    ("type,strike,expiry\ncall,1\n", "2 fields, expected 3"),
    ("type,strike,expiry,quantity\ncall,1,1,1e9\n", "exceeds"),
])
def test_bad_options_files_name_the_line_and_problem(text, message):
    with pytest.raises(OptionsError, match=message):
        parse_options(text, valuation=dt.date(2026, 11, 25))
