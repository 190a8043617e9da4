"""Per-sender budgets (mpc_nodes.node.ratelimit), on a clock the test moves."""

import pytest

from mpc_nodes.node.ratelimit import TokenBuckets


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_granted_then_only_the_rate():
    clock = Clock()
    budget = TokenBuckets(rate=16, burst=256, clock=clock)
    assert [budget.take("coord", 64) for _ in range(5)] == [64, 64, 64, 64, 0]
    clock.now += 1.0
    assert budget.take("coord", 64) == 16
    clock.now += 0.5
    assert budget.take("coord", 64) == 8


def test_each_sender_has_its_own_bucket_and_it_refills_to_the_burst_only():
    clock = Clock()
    budget = TokenBuckets(rate=16, burst=256, clock=clock)
    assert budget.take("a", 300) == 256
    assert budget.take("b", 10) == 10
    clock.now += 3600
    assert budget.take("a", 300) == 256


def test_a_bucket_without_rate_or_burst_is_refused():
    with pytest.raises(ValueError, match="rate > 0 and burst >= 1"):
        TokenBuckets(rate=0, burst=10)
