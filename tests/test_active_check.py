"""The batch check of protocols.active.Checked over GF(2^31 - 1) in one in-process party
(threshold 0: the same code path, every round run, no peers): honest products of every kind
pass it, and one wrong product among many, wherever it is, fails it."""

import asyncio

import numpy as np
import pytest

from protocols.active import BLOCK, FINAL, M31, Checked, Deviation, ext_dot, ext_mul, ext_scale


def _run(circuit):
    from protocols.mpyc_seam import install_runtime
    rt = install_runtime(0, [("127.0.0.1", 0)], 0)
    return asyncio.run(circuit(Checked(rt, M31, [1])))


@pytest.mark.parametrize("n", [1, FINAL, FINAL + 1, 5 * FINAL + 3, 3 * BLOCK + 1])
def test_honest_products_pass_the_check_and_are_right(n):
    rng = np.random.default_rng(n)

    async def circuit(s):
        a, b = rng.integers(0, M31, n), rng.integers(0, M31, n)
        x, y = rng.integers(0, M31, (4, 3, 5)), rng.integers(0, M31, (4, 1, 5))
        c, outer, inner = await s.mul(a, b), await s.mul(a[:7, None], b[None, :3]), \
            await s.inner(x, y)
        s.record(a[:5], b[:5], c[:5])
        await s.verify()
        assert (c == a * b % M31).all()
        assert (outer == a[:7, None] * b[None, :3] % M31).all()
        assert (inner == (x * y % M31).sum(axis=0) % M31).all()
    _run(circuit)


@pytest.mark.parametrize("kind", ["mul", "inner", "record"])
@pytest.mark.parametrize("where", [0, 1, BLOCK + 7, 2 * BLOCK])
def test_one_wrong_product_among_many_fails_the_check(kind, where):
    rng = np.random.default_rng(where)
    n = 2 * BLOCK + 1  # the halvings work in blocks: several of them, and an odd count

    async def circuit(s):
        a, b = rng.integers(0, M31, n), rng.integers(0, M31, n)
        c = await s.mul(a, b)
        x, y = rng.integers(0, M31, (3, n)), rng.integers(0, M31, (3, n))
        z = await s.inner(x, y)
        target = {"mul": c, "inner": z}.get(kind)
        if target is None:
            target = (a * b % M31).copy()
            s.record(a, b, target)
        target[where] = (target[where] + 1) % M31  # the kept result: as a changed re-share
        with pytest.raises(Deviation, match="multiplication check failed"):
            await s.verify()
    _run(circuit)


def test_the_extension_field_is_the_gaussian_integers_mod_p():
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, M31, (2, 50)), rng.integers(0, M31, (2, 50))
    assert ext_mul((0, 1), (0, 1), M31) == (M31 - 1, 0)  # i² = −1
    for k in range(50):
        re = (int(x[0, k]) * int(y[0, k]) - int(x[1, k]) * int(y[1, k])) % M31
        im = (int(x[0, k]) * int(y[1, k]) + int(x[1, k]) * int(y[0, k])) % M31
        assert ext_mul(x[:, k], y[:, k], M31) == (re, im)
        assert tuple(ext_scale(y[:, k:k + 1], x[:, k], M31)[:, 0]) == (re, im)
    total = [0, 0]
    for k in range(50):
        total = [(t + e) % M31 for t, e in zip(total, ext_mul(x[:, k], y[:, k], M31))]
    assert ext_dot(x, y, M31) == tuple(total)
    assert ext_dot(x, y[0], M31) == tuple(int((x[i] * y[0] % M31).sum() % M31) for i in (0, 1))
