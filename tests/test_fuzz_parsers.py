"""Property-based fuzzing of every parser the network exposes on the node side: envelopes,
job parameters, node/roster/coordinator configs, private inputs files.  Each must reject
bad input with its own error type and a reason — never crash, never hang.

MPCNET_FUZZ_EXAMPLES sets the examples per parser: 2,000 by default (`make test`),
10,000 in `make soak`.
"""

import json
import os

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpc_nodes.config import (ConfigError, CoordinatorConfig, NodeConfig, Roster,
                              load_yaml_model)
from mpc_nodes.envelope import EnvelopeError, Verifier, seal
from mpc_nodes.inputs import InputError, load_input
from mpc_nodes.jobs import KINDS
from tests.test_envelope import KEYS, TOPIC, job, roster

EXAMPLES = int(os.environ.get("MPCNET_FUZZ_EXAMPLES", "2000"))
fuzz = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))

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

