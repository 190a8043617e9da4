"""protocols.bitwise circuits against plain integer arithmetic, in one in-process party
(threshold 0: the same code path, every product and check run, no peers)."""

import asyncio
import random

import numpy as np
import pytest

from protocols import bitwise
from protocols.active import M31, Checked

WIDTH = 20


def _bits(values, width=WIDTH):
    return (np.array(values, dtype=np.int64)[:, None] >> np.arange(width)) & 1


def _run(circuit):
    from protocols.mpyc_seam import install_runtime
    rt = install_runtime(0, [("127.0.0.1", 0)], 0)

    async def main():
        s = Checked(rt, M31, [1])
        out = await circuit(s)
        await s.verify()
        return out
    return asyncio.run(main())


def test_less_than_on_random_and_edge_values():
    rng = random.Random(1)
    x = [0, 5, 5, 2**WIDTH - 1, 0] + [rng.randrange(2**WIDTH) for _ in range(200)]
    y = [0, 5, 6, 0, 2**WIDTH - 1] + [rng.randrange(2**WIDTH) for _ in range(200)]
    got = _run(lambda s: bitwise.less_than(s, _bits(x), _bits(y)))
    assert list(got) == [int(a < b) for a, b in zip(x, y)]


@pytest.mark.parametrize("terms", [1, 2, 3, 4, 7])
def test_greater_than_sum_never_forms_the_sum_but_decides_it(terms):
    rng = random.Random(terms)
    count = 300
    rows = [[rng.randrange(2**(WIDTH - 3)) for _ in range(count)] for _ in range(terms)]
    a = [sum(col) + rng.randrange(-3, 4) for col in zip(*rows)]  # near the boundary
    a = [min(max(v, 0), 2**WIDTH - 1) for v in a]
    got = _run(lambda s: bitwise.greater_than_sum(s, _bits(a), [_bits(r) for r in rows], WIDTH))
    assert list(got) == [int(v > sum(col)) for v, col in zip(a, zip(*rows))]


def test_ranks_break_ties_by_party_order_and_indicators_pick_them():
    values = np.array([[3, 1, 4], [1, 1, 9], [2, 1, 4]])  # party a's numbers, per column

    async def circuit(s):
        ranks = await bitwise.ranks(s, _bits(values.ravel()).reshape(3, 3, WIDTH))
        return ranks, await bitwise.rank_indicators(s, ranks, [0, 1, 2])
    ranks, indicators = _run(circuit)
    assert ranks.tolist() == [[2, 0, 0], [0, 1, 2], [1, 2, 1]]
    for k, ind in enumerate(indicators):
        assert (ind == (ranks == k)).all()


def test_the_check_refuses_to_run_while_a_product_is_in_flight():
    """A product started and awaited only after the check would escape it."""
    async def circuit(s):
        pending = s.mul(_bits([1, 2]), _bits([3, 1]))
        with pytest.raises(RuntimeError, match="still in flight"):
            await s.verify()
        await pending
        return True
    assert _run(circuit)
