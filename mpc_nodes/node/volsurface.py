"""An operator's private implied-volatility surfaces: files, validation, interpolation, reload.

One file per underlying in the node's ``<data_dir>/surfaces/`` directory, ``ETH.yaml`` or
``ETH.csv``.  The axis is strike (absolute) or moneyness (strike / spot)::

    # ETH.yaml
    axis: moneyness            # or strike
    expiries: [0.083, 0.25, 0.5, 1.0]       # years, increasing
    points: [0.8, 0.9, 1.0, 1.1, 1.2]       # strikes or moneyness, increasing
    vols:                                   # one row per expiry
      - [0.82, 0.74, 0.70, 0.73, 0.79]
      ...

    # ETH.csv: the first cell names the axis, the first row holds the points,
    # each further row an expiry (years) and its vols
    moneyness,0.8,0.9,1.0,1.1,1.2
    0.083,0.82,0.74,0.70,0.73,0.79

Interpolation: linear in the strike axis within an expiry, flat beyond the first and last
point; across expiries linear in total variance σ²·T, flat volatility before the first and
after the last expiry.  A surface never leaves the node except as secret shares.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from protocols.domain import VOL_MAX, VOL_MIN

from mpc_nodes.wire.parsing import ParseBoundError, load_yaml, plain_number, read_text

log = logging.getLogger(__name__)

UNDERLYING = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,31}$")
MAX_POINTS = 10_000
MAX_FILE_BYTES = 1024 * 1024  # a 100 x 100 grid is 60 kB; pure-Python YAML reads ~0.3 MB/s


class SurfaceError(ValueError):
    """A surface file is missing or invalid; the message names the file and the problem."""


class NoSurface(SurfaceError):
    """There is no surface for the underlying (the message contains no surface data)."""


@dataclass(frozen=True)
class Surface:
    """A validated volatility grid: vols[i][j] at expiries[i] and points[j]."""

    underlying: str
    axis: str
    expiries: np.ndarray
    points: np.ndarray
    vols: np.ndarray

    def vol(self, strikes, expiries, spot: float) -> np.ndarray:
        """Implied vols for options (arrays of strikes and expiries in years)."""
        strikes = np.asarray(strikes, dtype=float)
        expiries = np.asarray(expiries, dtype=float)
        x = strikes / spot if self.axis == "moneyness" else strikes
        # every expiry slice interpolated at every option's strike point: (n_exp, m)
        slices = np.array([np.interp(x, self.points, row) for row in self.vols])
        if len(self.expiries) == 1:
            return slices[0]
        total_var = slices ** 2 * self.expiries[:, None]
        t = np.clip(expiries, self.expiries[0], self.expiries[-1])
        hi = np.clip(np.searchsorted(self.expiries, t), 1, len(self.expiries) - 1)
        lo = hi - 1
        cols = np.arange(len(t))
        t0, t1 = self.expiries[lo], self.expiries[hi]
        w = (t - t0) / (t1 - t0)
        var = (1 - w) * total_var[lo, cols] + w * total_var[hi, cols]
        # between the grid's smallest and largest vol in exact arithmetic; the clip only
        # undoes float rounding, so the protocol's vol bounds (protocols.domain) hold
        return np.clip(np.sqrt(var / t), VOL_MIN, VOL_MAX)


def parse_surface(text: str, underlying: str, fmt: str, source: str = "surface") -> Surface:
    """Parse and validate a surface given as YAML or CSV text; SurfaceError says why not."""
    text = text.removeprefix("\ufeff")
    try:
        if fmt == "yaml":
            doc = load_yaml(text)
            if not isinstance(doc, dict):
                raise SurfaceError(f"{source}: expected a mapping with axis, expiries, points,"
                                   " vols")
            unknown = set(doc) - {"axis", "expiries", "points", "vols", "underlying"}
            if unknown:
                names = ", ".join(sorted(map(repr, unknown)))  # YAML keys need not be strings
                raise SurfaceError(f"{source}: unknown field(s) {names}")
            axis, expiries, points, vols = (doc.get(k) for k in ("axis", "expiries", "points",
                                                                  "vols"))
            if doc.get("underlying") not in (None, underlying):
                raise SurfaceError(f"{source}: says underlying {doc['underlying']!r}, file is"
                                   f" for {underlying!r}")
        else:
            rows = [r for r in csv.reader(io.StringIO(text, newline=""))
                    if r and any(c.strip() for c in r)]
            if len(rows) < 2:
                raise SurfaceError(f"{source}: needs a header row and at least one expiry row")
            axis, points = rows[0][0].strip(), rows[0][1:]
            expiries = [r[0] for r in rows[1:]]
            vols = [r[1:] for r in rows[1:]]
        return _validate(underlying, axis, expiries, points, vols, source)
    except yaml.YAMLError as exc:
        raise SurfaceError(f"{source}: not valid YAML: {exc}") from None
    except csv.Error as exc:
        raise SurfaceError(f"{source}: not valid CSV: {exc}") from None


def _numbers(values, what: str, source: str) -> np.ndarray:
    if not isinstance(values, (list, tuple)) or not values:
        raise SurfaceError(f"{source}: {what} must be a non-empty list")
    if len(values) > MAX_POINTS:
        raise SurfaceError(f"{source}: too many {what} ({len(values)} > {MAX_POINTS})")
    out = []
    for i, v in enumerate(values):
        try:
            x = plain_number(v) if isinstance(v, str) else (
                float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None)
        except OverflowError:  # an integer beyond float range
            x = math.inf
        if x is None:
            raise SurfaceError(f"{source}: {what}[{i}] = {v!r} is not a number (a plain"
                               " decimal)")
        if not math.isfinite(x):
            raise SurfaceError(f"{source}: {what}[{i}] = {v!r} is not finite")
        out.append(x)
    return np.array(out)


def _validate(underlying, axis, expiries, points, vols, source) -> Surface:
    if axis not in ("strike", "moneyness"):
        raise SurfaceError(f"{source}: axis must be 'strike' or 'moneyness', not {axis!r}")
    e = _numbers(expiries, "expiries", source)
    p = _numbers(points, "points", source)
    if np.any(e <= 0) or np.any(e > 30):
        raise SurfaceError(f"{source}: expiries must be in (0, 30] years")
    if np.any(np.diff(e) <= 0):
        raise SurfaceError(f"{source}: expiries must be strictly increasing")
    if np.any(p <= 0):
        raise SurfaceError(f"{source}: {axis} points must be positive")
    if np.any(np.diff(p) <= 0):
        raise SurfaceError(f"{source}: {axis} points must be strictly increasing")
    if len(p) < 2:
        raise SurfaceError(f"{source}: needs at least 2 {axis} points per expiry")
    if not isinstance(vols, (list, tuple)) or len(vols) != len(e):
        raise SurfaceError(f"{source}: needs one row of vols per expiry ({len(e)})")
    rows = []
    for i, row in enumerate(vols):
        r = _numbers(row, f"vols row {i}", source)
        if len(r) != len(p):
            raise SurfaceError(f"{source}: vols row {i} has {len(r)} values, expected {len(p)}")
        rows.append(r)
    grid = np.array(rows)
    bad = np.argwhere((grid < VOL_MIN) | (grid > VOL_MAX))
    if len(bad):
        i, j = bad[0]
        raise SurfaceError(f"{source}: vol {grid[i, j]:g} at expiry {e[i]:g}, {axis} {p[j]:g}"
                           f" is outside [{VOL_MIN}, {VOL_MAX}]")
    return Surface(underlying, axis, e, p, grid)


class SurfaceBook:
    """The surfaces in one directory, reloaded when a file changes.  A file that becomes
    invalid is reported and the last good surface stays in use; a removed file means no
    surface."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self._cache: dict[str, tuple[tuple, Surface]] = {}
        self._refused: dict[str, tuple] = {}  # the stamp of a file found bad: not reparsed
        self.problems: dict[str, str] = {}
        self._lock = threading.Lock()  # nodes check jobs in worker threads

    def _file(self, underlying: str) -> Path | None:
        found = [self.directory / f"{underlying}.{ext}" for ext in ("yaml", "yml", "csv")]
        found = [p for p in found if p.is_file()]
        if len(found) > 1:
            raise NoSurface(f"both {found[0].name} and {found[1].name} exist; keep one")
        return found[0] if found else None

    def get(self, underlying: str) -> Surface:
        """The current surface for an underlying, or SurfaceError naming what is wrong."""
        with self._lock:
            return self._get(underlying)

    def _get(self, underlying: str) -> Surface:
        if not UNDERLYING.match(underlying or ""):
            raise NoSurface(f"invalid underlying name {underlying!r}")
        path = self._file(underlying)
        cached = self._cache.get(underlying)
        if path is None:  # never there, or removed by the operator: no surface
            self._cache.pop(underlying, None)
            raise NoSurface(f"no volatility surface for {underlying}"
                            f" (surfaces/{underlying}.yaml or .csv)")
        st = path.stat()
        stamp = (str(path), st.st_mtime_ns, st.st_size)
        if cached and cached[0] == stamp:
            return cached[1]
        try:
            if self._refused.get(underlying) == stamp:
                raise SurfaceError(self.problems[underlying])
            fmt = "csv" if path.suffix == ".csv" else "yaml"
            try:
                text = read_text(path, MAX_FILE_BYTES)
            except ParseBoundError as exc:
                raise SurfaceError(str(exc)) from None
            surface = parse_surface(text, underlying, fmt, path.name)
        except SurfaceError as exc:
            if self.problems.get(underlying) != str(exc):
                log.error("%s%s", exc, "; keeping the last good surface" if cached else "")
            self.problems[underlying] = str(exc)
            self._refused[underlying] = stamp
            if cached:
                return cached[1]
            raise
        if cached:
            log.info("reloaded the %s surface from %s", underlying, path.name)
        self._cache[underlying] = (stamp, surface)
        self.problems.pop(underlying, None)
        self._refused.pop(underlying, None)
        return surface


def example_surface_yaml(underlying: str, atm_vol: float, rng) -> str:
    """A plausible smile for examples and demos: skewed, flattening with expiry; ``rng``
    perturbs it so that each operator's view differs a little."""
    expiries = [7 / 365, 30 / 365, 91 / 365, 182 / 365, 1.0, 2.0]
    points = [0.5, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.4, 2.0]
    rows = []
    for t in expiries:
        level = atm_vol * (1 + 0.15 * math.exp(-4 * t)) * (1 + rng.uniform(-0.04, 0.04))
        rows.append([round(level * (1 + (0.35 * math.log(k) ** 2 - 0.1 * math.log(k))
                                    / math.sqrt(t + 0.25)), 4) for k in points])
    return ("# This operator's private implied-volatility surface for " + underlying + ".\n"
            "# It leaves this machine only as secret shares.\n"
            + yaml.safe_dump({"axis": "moneyness", "expiries": [round(t, 6) for t in expiries],
                              "points": points, "vols": rows}, default_flow_style=None,
                             sort_keys=False))
