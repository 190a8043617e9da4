"""Small protocols that exist only to test building blocks in real party processes."""

from protocols import fixedpoint as fx


async def open_xor_bits(rt, n: int) -> list[int]:
    """Open n secret random bits drawn by fixedpoint.xor_bits (three parties)."""
    secint = rt.SecInt(44)
    shares = await fx.xor_bits(rt, secint.field, n)
    return [int(v) for v in await rt.output(secint.array(shares))]


async def truncate(rt, values: list[int], f: int, l: int, type_bits: int) -> list[int]:
    """Open fixedpoint.trunc of party 0's values (|v| < 2^(l-1))."""
    import numpy as np
    secint = rt.SecInt(type_bits)
    x = rt.input(secint.array(np.array(values, dtype=object)), senders=0)
    return [int(v) for v in await rt.output(fx.trunc(rt, x, f, l))]


class _MakesADirectory:
    """What a hostile peer pickles: unpickling it would call os.mkdir(path)."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        import os
        return os.mkdir, (self.path,)


async def pickled_code(rt, path: str) -> str:
    """Party 0 sends, through MPyC's transfer, a pickle that would create ``path`` when
    loaded."""
    return repr(await rt.transfer(_MakesADirectory(path) if rt.pid == 0 else rt.pid))
