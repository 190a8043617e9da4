"""protocols.fixed_active's checked fixed-point operations against plain integer arithmetic,
in one in-process party (threshold 0: the same code path, every product, check and opening
run, no peers), bitwise.public_less_than and the secure mean's bit check."""

import asyncio
import random

import numpy as np
import pytest

from protocols import bitwise
from protocols.active import M31, Checked
from protocols.fixed_active import CheckedOps, subset_weight


def _run(circuit):
    from protocols.mpyc_seam import install_runtime
    rt = install_runtime(0, [("127.0.0.1", 0)], 0)

    async def main():
        field = rt.SecInt(108).field
        ops = CheckedOps(Checked(rt, field.modulus, [1]), field, Checked(rt, M31, [1]))
        out = await circuit(ops)
        return await ops.open(out)
    return asyncio.run(main())


def _values(bits: int, count: int = 150):
    rng = random.Random(bits)
    edge = [0, 1, -1, 2 ** (bits - 1) - 1, -(2 ** (bits - 1) - 1)]
    return edge + [rng.randrange(-2 ** (bits - 1) + 1, 2 ** (bits - 1)) for _ in range(count)]


@pytest.mark.parametrize("l", [2, 14, 51, 100])
def test_lt_zero_is_the_sign(l):
    a = _values(l)
    got = _run(lambda ops: ops.lt_zero(np.array(a, dtype=object), l, 2 ** (l - 1) - 1))
    assert list(got) == [int(v < 0) for v in a]


@pytest.mark.parametrize("f,l", [(16, 40), (48, 100)])
def test_trunc_rounds_down_within_one_unit(f, l):
    a = _values(l)  # one party: the PRSS mask has one piece, so it rounds up by 0 or 1
    got = _run(lambda ops: ops.trunc(np.array(a, dtype=object), f, l, 2 ** (l - 1) - 1))
    assert all(0 <= g - (v >> f) <= 1 for g, v in zip(got, a))


def test_mul_trunc_of_signed_products():
    x, y = _values(40), _values(40)[::-1]
    got = _run(lambda ops: ops.mul_trunc(np.array(x, dtype=object), np.array(y, dtype=object),
                                         32, 100, 2 ** 98))
    assert all(0 <= g - ((a * b) >> 32) <= 1 for g, a, b in zip(got, x, y))


def test_a_bound_beyond_the_declared_bits_is_refused():
    with pytest.raises(ValueError, match="beyond the declared"):
        _run(lambda ops: ops.lt_zero(np.array([1], dtype=object), 10, 2 ** 9))


def test_random_bits_are_bits_and_the_same_in_both_fields():
    async def both(ops):
        large, small = await ops.random_bits(500)
        assert list(await ops.small.open(small)) == list(await ops.open(large))
        return large
    got = _run(both)
    assert set(got) <= {0, 1} and 150 < sum(got) < 350


@pytest.mark.parametrize("pid", [0, 1, 2])
def test_subset_weights_are_mpyc_s_in_either_field(pid):
    # f_S(x) = (j + 1 − x)/(j + 1) for the one party j outside S (three parties, t = 1)
    from types import SimpleNamespace
    from protocols.mpyc_seam import install_runtime, prss_weight
    field = install_runtime(0, [("127.0.0.1", 0)], 0).SecInt(108).field
    three = SimpleNamespace(pid=pid, parties=[0, 1, 2])
    for j, subset in ((2, (0, 1)), (1, (0, 2)), (0, (1, 2))):
        assert subset_weight(three, field.modulus, subset) == prss_weight(three, field, subset)
        assert subset_weight(three, M31, subset) * (j + 1) % M31 == (j - pid) % M31


def test_public_less_than_against_plain_comparison():
    rng = random.Random(3)
    c = [0, 7, 7, 2 ** 20 - 1] + [rng.randrange(2 ** 20) for _ in range(100)]
    x = [0, 7, 8, 0] + [rng.randrange(2 ** 20) for _ in range(100)]
    bits = lambda v: np.array([[b >> i & 1 for i in range(20)] for b in v], dtype=object)
    got = _run(lambda ops: bitwise.public_less_than(ops.s, bits(c), bits(x)))
    assert list(got) == [int(a < b) for a, b in zip(c, x)]


def test_checked_operations_leave_mpyc_s_signed_integers_signed():
    # MPyC keeps one class per prime field: SecFld(p) would mark it unsigned, and every
    # SecInt of that prime (the semi-honest mean's) would then open negative values as p - x
    from protocols.mpyc_seam import install_runtime
    rt = install_runtime(0, [("127.0.0.1", 0)], 0)
    field = rt.SecInt(108).field
    CheckedOps(Checked(rt, field.modulus, [1]), field, Checked(rt, M31, [1]))
    assert rt.SecInt(108).field.is_signed
    with pytest.raises(ValueError, match="the session's"):
        CheckedOps(Checked(rt, field.modulus, [1]), rt.SecInt(64).field, Checked(rt, M31, [1]))


@pytest.mark.parametrize("dealt,named", [([0, 1, 1, 0], False), ([0, 1, 2, 0], True)])
def test_the_secure_mean_s_bit_check_names_a_dealer_of_a_non_bit(dealt, named):
    from protocols.active import Deviation
    from protocols.mpyc_seam import install_runtime
    from protocols.pricing_secure_active import _check_bits
    rt = install_runtime(0, [("127.0.0.1", 0)], 0)
    s = Checked(rt, rt.SecInt(108).field.modulus, [1], ["party0"])
    check = _check_bits(s, np.array([dealt], dtype=object))
    if named:
        with pytest.raises(Deviation, match="party0 dealt an input"):
            asyncio.run(check)
    else:
        asyncio.run(check)
