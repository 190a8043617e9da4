import statistics

import pytest

from tests.mpc_harness import run_parties


@pytest.mark.heavy
@pytest.mark.timeout(90)
@pytest.mark.parametrize("method", ["median", "mean"])
def test_aggregate_three_processes(method):
    values = [0.61, 0.55, 0.72]
    results = run_parties("protocols.aggregate:aggregate", [[v, method] for v in values])
    expected = statistics.median(values) if method == "median" else statistics.mean(values)
    assert len(results) == 3 and len(set(results)) == 1
    assert results[0] == pytest.approx(expected, abs=1e-8)
