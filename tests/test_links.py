"""Warm MPC links (mpc_nodes.node.links): what an idle link holds before a session takes it."""

from __future__ import annotations

from mpc_nodes.node.links import LinkPool, _Idle


class _Transport:
    """The two members of an asyncio transport that an idle link uses."""

    def __init__(self):
        self.closed = False

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def idle_link(pool: LinkPool) -> tuple[_Idle, _Transport]:
    transport = _Transport()
    link = _Idle(pool)
    link.connection_made(transport)
    return link, transport


def test_an_idle_link_buffers_a_preamble_for_the_next_session():
    pool = LinkPool()
    link, transport = idle_link(pool)
    link.data_received(b"\x01" * 32)  # a session id, no session in set-up yet
    assert bytes(link.data) == b"\x01" * 32 and not transport.closed and link in pool.idle


def test_an_idle_link_that_floods_is_closed_not_buffered():
    pool = LinkPool()
    link, transport = idle_link(pool)
    link.data_received(b"\x00" * (LinkPool.MAX_BUFFERED + 1))
    assert transport.closed


def test_the_oldest_idle_links_go_beyond_the_cap():
    pool = LinkPool()
    links = [idle_link(pool) for _ in range(LinkPool.MAX_IDLE + 2)]
    assert len(pool.idle) == LinkPool.MAX_IDLE
    assert [t.closed for _, t in links[:3]] == [True, True, False]
