"""Shared fixtures: real servers on loopback ports, real clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import RawSSE

from sse_widget.server import EventServer


@pytest.fixture
def server() -> Iterator[EventServer]:
    """A fresh, started EventServer of the test's own (not the process-wide one)."""
    srv = EventServer(keepalive=15.0).start()
    yield srv
    srv.stop()


@pytest.fixture
def raw_sse() -> Iterator[Callable[..., RawSSE]]:
    opened: list[RawSSE] = []

    def open_(server: EventServer, path: str, **kw: Any) -> RawSSE:
        r = RawSSE("127.0.0.1", server.port, path, **kw)
        opened.append(r)
        return r

    yield open_
    for r in opened:
        r.close()
