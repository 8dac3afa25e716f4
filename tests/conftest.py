"""Shared fixtures: real servers on loopback ports, real clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from browser import JupyterServer, launch_chromium
from helpers import RawSSE
from playwright.sync_api import Browser, sync_playwright

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


@pytest.fixture(scope="session")
def lab() -> Iterator[JupyterServer]:
    """One real JupyterLab for every browser test (each test opens its own notebook)."""
    srv = JupyterServer("lab")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Headless Debian Chromium driven by Python Playwright.

    Per module, not per session: Playwright's sync API keeps an asyncio loop running on the
    main thread while it is open, and tests after it must not find one (asyncio.run() and
    our dispatcher both look). Browser tests therefore come last in their modules.
    """
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        yield browser
        browser.close()
