"""Property-based fuzzing of every parser the network exposes on the node side: envelopes,
job parameters, node/roster/coordinator configs, private inputs files, options files and
volatility surfaces.  Each must reject bad input with its own error type and a reason —
never crash, never hang.

How many examples, and whether the same ones, is set once for every property test in
tests/conftest.py: `make test` and `make check` replay the same 50 per parser every run
(MPCNET_FUZZ_REPLAY sets the count); MPCNET_FUZZ_EXAMPLES asks for that many fresh ones
(`make soak`: 10,000).
"""

import datetime as dt
import json

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpc_nodes.config import (ConfigError, CoordinatorConfig, NodeConfig, Roster,
                              load_yaml_model)
from mpc_nodes.wire.envelope import EnvelopeError, Verifier, seal
from mpc_nodes.node.inputs import InputError, load_input
from mpc_nodes.jobs.registry import KINDS
from mpc_nodes.jobs.options_csv import OptionsError, parse_options
from mpc_nodes.node.volsurface import VOL_MAX, VOL_MIN, SurfaceError, parse_surface
from tests.test_envelope import KEYS, TOPIC, job, roster

# the example count and replay come from the profile tests/conftest.py loads
fuzz = settings(suppress_health_check=list(HealthCheck))

scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
           | st.text(max_size=30))
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(
    st.text(max_size=12), c, max_size=5), max_leaves=15)
VERIFIER = Verifier(roster())
VALID = json.loads(seal(KEYS["coord"], "coordinator/coord", "test-cluster", TOPIC, job()).raw)


def mutated_envelopes():
    """Valid envelopes with one field replaced, plus JSON-level junk."""
    field = st.sampled_from(["v", "sender", "payload", "sig"])
    return st.one_of(
        st.builds(lambda k, v: json.dumps({**VALID, k: v}).encode(), field, json_values),
        st.builds(lambda p: json.dumps({**VALID, "payload": json.dumps(p)}).encode(),
                  json_values),
        st.binary(max_size=400),
        json_values.map(lambda v: json.dumps(v).encode()))


@pytest.mark.timeout(600)
@fuzz
@given(mutated_envelopes())
def test_envelopes(raw):
    with pytest.raises(EnvelopeError):
        VERIFIER.open(raw, TOPIC)


@pytest.mark.timeout(600)
@fuzz
@given(st.sampled_from(sorted(KINDS)), st.dictionaries(
    st.sampled_from(["input", "method", "rounds", "x"]) | st.text(max_size=8), json_values,
    max_size=4))
def test_job_parameters(kind, params):
    try:
        KINDS[kind].parse(params)
    except ValueError as exc:
        assert str(exc).startswith(f"{kind}: parameter")


CONFIG_MODELS = [NodeConfig, CoordinatorConfig, Roster]
CONFIG_KEYS = sorted({k for m in CONFIG_MODELS for k in m.model_fields})


@pytest.mark.timeout(600)
@fuzz
@given(st.sampled_from(CONFIG_MODELS), st.one_of(
    st.dictionaries(st.sampled_from(CONFIG_KEYS), json_values, max_size=8),
    json_values, st.text(max_size=200)))
def test_configs(tmp_path_factory, model, content):
    path = tmp_path_factory.getbasetemp() / "fuzz.yaml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    try:
        load_yaml_model(path, model)
    except ConfigError as exc:
        assert str(exc).startswith(str(path))


@pytest.mark.timeout(600)
@fuzz
@given(st.one_of(st.dictionaries(st.sampled_from(["eth_vol_30d", "x"]), json_values,
                                 max_size=3), json_values, st.text(max_size=100)))
def test_inputs_files(tmp_path_factory, content):
    path = tmp_path_factory.getbasetemp() / "inputs.yaml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    try:
        value = load_input(path, "eth_vol_30d")
        assert isinstance(value, float)
    except InputError as exc:
        assert str(exc)



def _csv_rows(rows):
    return "\n".join(",".join(map(str, r)) for r in rows) + "\n"


option_cells = st.one_of(st.sampled_from(["call", "put", "c", "P", "straddle", ""]),
                         st.floats(allow_nan=True, allow_infinity=True).map(repr),
                         st.integers(-10, 10**7).map(str),
                         st.sampled_from(["2027-01-01", "2020-02-30", "1e400", "-0", "0x10"]),
                         st.text(max_size=12))
option_rows = st.lists(st.lists(option_cells, min_size=0, max_size=5), max_size=8)


@pytest.mark.timeout(600)
@fuzz
@given(st.one_of(
    option_rows.map(lambda rows: _csv_rows([["type", "strike", "expiry", "quantity"], *rows])),
    option_rows.map(_csv_rows), st.text(max_size=300)))
def test_options_csv(text):
    try:
        book = parse_options(text, valuation=dt.date(2026, 11, 25))
    except OptionsError as exc:
        assert str(exc)
        return
    assert 0 < len(book) and all(k > 0 for k in book.strikes)
    assert all(0 < t <= 10 for t in book.expiries)


grid_numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                         st.integers(-5, 50), st.text(max_size=6), st.none(), st.booleans())
surface_docs = st.fixed_dictionaries(
    {"axis": st.sampled_from(["strike", "moneyness", "delta", 1]),
     "expiries": st.lists(grid_numbers, max_size=4),
     "points": st.lists(grid_numbers, max_size=4),
     "vols": st.lists(st.lists(grid_numbers, max_size=4) | grid_numbers, max_size=4)},
    optional={"underlying": st.sampled_from(["ETH", "BTC", 3]), "extra": json_values})


@pytest.mark.timeout(600)
@fuzz
@given(st.one_of(surface_docs.map(lambda d: ("yaml", yaml.safe_dump(d))),
                 st.tuples(st.just("yaml"), st.text(max_size=200)),
                 option_rows.map(lambda rows: ("csv", _csv_rows(rows))),
                 st.tuples(st.just("csv"), st.text(max_size=200))))
def test_vol_surfaces(case):
    fmt, text = case
    try:
        surface = parse_surface(text, "ETH", fmt)
    except SurfaceError as exc:
        assert str(exc)
        return
    vols = surface.vol([1.0, 100.0, 5000.0], [0.01, 1.0, 9.0], 3000.0)
    assert np.all((vols >= VOL_MIN) & (vols <= VOL_MAX))
