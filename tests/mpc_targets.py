"""Small protocols that exist only to test building blocks in real party processes."""

from protocols import fixedpoint as fx


async def open_parity_bits(rt, n: int) -> list[int]:
    """Open n secret random bits drawn by fixedpoint.parity_bits (three parties)."""
    secint = rt.SecInt(44)
    shares = await fx.parity_bits(rt, secint.field, n)
    return [int(v) for v in await rt.output(secint.array(shares))]
