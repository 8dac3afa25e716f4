"""EventStream in a real browser: JupyterLab (and Notebook 7) in headless Chromium.

Each test names the transport it exercises. Nothing here is faked: the kernel, the event
server, jupyter-server-proxy and the comm channel are the real ones.
"""

from __future__ import annotations

import pytest
from browser import JupyterServer, notebook
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

MAKE = "from sse_widget import EventStream\nstream = EventStream(title='t')\nstream"


def rows(nb, widget: int = 0):
    return nb.widget(widget).locator(".sse-widget-row")


def status(nb, widget: int = 0):
    return nb.widget(widget).locator(".sse-widget-status")


def expect_live(nb, transport: str, widget: int = 0, timeout: float = 20_000) -> None:
    st = status(nb, widget)
    expect(st).to_have_attribute("data-state", "live", timeout=timeout)
    expect(st).to_have_attribute("data-transport", transport)
    expect(st).to_contain_text(f"{transport} · live")


def busy_loop(n: int, pause: float, event: str = "tick") -> str:
    return (
        "import time\n"
        f"for i in range({n}):\n"
        f"    stream.send(f'event {{i}}', event='{event}')\n"
        f"    time.sleep({pause})\n"
    )


def expect_rows_while_busy(nb, n: int = 40) -> None:
    """Run cell 1 (a busy loop) and check its rows show up before it finishes."""
    nb.run_cell(1, wait=False)
    expect(rows(nb).nth(4)).to_be_attached(timeout=10_000)
    # Rows arrived while the cell was still running.
    expect(nb.cell(1).locator(".jp-InputArea-prompt")).to_contain_text("*")
    nb.wait_cell_done(1)
    expect(rows(nb)).to_have_count(n)


def test_events_from_a_busy_cell_appear_live_direct(lab, chromium) -> None:
    with notebook(lab, chromium, [MAKE, busy_loop(40, 0.1)]) as nb:
        nb.run_cell(0)
        expect_live(nb, "direct")
        expect_rows_while_busy(nb)
        expect(rows(nb).last).to_contain_text("event 39")
        nb.screenshot("live_direct")
        assert not nb.errors


def test_ten_widgets_share_one_eventsource(lab, chromium) -> None:
    cells = [
        "from sse_widget import EventStream\n"
        "streams = [EventStream(title=f'w{i}') for i in range(10)]\n"
        "for s in streams:\n    display(s)",
        "for i, s in enumerate(streams):\n    for j in range(3):\n        s.send(f'w{i}-{j}')",
        "from sse_widget.server import get_server\nprint(len(get_server().clients))",
    ]
    with notebook(lab, chromium, cells) as nb:
        nb.run_cell(0)
        for w in range(10):
            expect_live(nb, "direct", widget=w)
        nb.run_cell(1)
        for w in range(10):
            expect(rows(nb, w)).to_have_count(3)
            texts = rows(nb, w).all_inner_texts()
            assert all(f"w{w}-" in t for t in texts), texts
        nb.page.wait_for_function("window.__esStats.open === 1", timeout=10_000)
        nb.run_cell(2)
        assert nb.output_text(2).strip() == "1"  # and one connection on the server
        nb.screenshot("ten_widgets")


def test_reload_restores_the_log_exactly_once(lab, chromium) -> None:
    send = "for i in range(60):\n    stream.send(f'event {i}')"
    with notebook(lab, chromium, [MAKE, send]) as nb:
        nb.run_cell(0)
        expect_live(nb, "direct")
        nb.run_cell(1)
        expect(rows(nb)).to_have_count(60)
        nb.page.keyboard.press("Control+s")
        nb.page.wait_for_timeout(1000)
        nb.page.reload()
        nb.open()
        expect_live(nb, "direct")
        expect(rows(nb)).to_have_count(60)
        ids = rows(nb).evaluate_all("rs => rs.map(r => r.dataset.id)")
        assert len(set(ids)) == 60
        texts = rows(nb).all_inner_texts()
        assert [f"event {i}" in t for i, t in enumerate(texts)] == [True] * 60


def test_falls_back_to_the_proxy_when_direct_is_unreachable(lab, chromium) -> None:
    make = (
        "import os\n"
        "os.environ['SSE_WIDGET_PUBLIC_URL'] = 'http://127.0.0.1:9'  # nothing listens there\n"
        + MAKE
    )
    with notebook(lab, chromium, [make, busy_loop(20, 0.05)]) as nb:
        nb.run_cell(0)
        expect_live(nb, "proxy", timeout=30_000)
        nb.run_cell(1)
        expect(rows(nb)).to_have_count(20)
        urls = nb.page.evaluate("window.__esStats.urls")
        assert any("/proxy/" in u for u in urls), urls


def test_forced_comm_is_live_from_a_busy_cell(lab, chromium) -> None:
    make = "import os\nos.environ['SSE_WIDGET_TRANSPORT'] = 'comm'\n" + MAKE
    with notebook(lab, chromium, [make, busy_loop(40, 0.1)]) as nb:
        nb.run_cell(0)
        expect_live(nb, "comm")
        expect_rows_while_busy(nb)
        assert nb.page.evaluate("window.__esStats.created") == 0  # never tried SSE


def test_falls_back_to_comm_when_nothing_else_reaches(lab, chromium) -> None:
    make = (
        "import os\n"
        "os.environ['SSE_WIDGET_PUBLIC_URL'] = 'http://127.0.0.1:9'\n"
        "os.environ['SSE_WIDGET_HOST'] = '127.0.0.2'  # the proxy dials 127.0.0.1: refused\n" + MAKE
    )
    with notebook(lab, chromium, [make, busy_loop(40, 0.1)]) as nb:
        nb.run_cell(0)
        expect_live(nb, "comm", timeout=30_000)
        expect_rows_while_busy(nb)
        nb.screenshot("fallback_comm")


def test_markup_in_data_and_types_is_shown_as_text(lab, chromium) -> None:
    send = (
        "stream.send('<img src=x onerror=\"window.__xss=1\">')\n"
        "stream.send('<b>bold?</b>', event='<img src=y onerror=\"window.__xss=2\">')"
    )
    with notebook(lab, chromium, [MAKE, send]) as nb:
        nb.run_cell(0)
        expect_live(nb, "direct")
        nb.run_cell(1)
        expect(rows(nb)).to_have_count(2)
        expect(rows(nb).first).to_contain_text('<img src=x onerror="window.__xss=1">')
        expect(rows(nb).last).to_contain_text("<b>bold?</b>")
        expect(rows(nb).last).to_contain_text('<img src=y onerror="window.__xss=2">')
        assert nb.widget().locator("img, b").count() == 0
        nb.page.wait_for_timeout(500)
        assert nb.page.evaluate("window.__xss") is None


def test_notebook7_smoke(chromium) -> None:
    server = JupyterServer("notebook")
    try:
        with notebook(server, chromium, [MAKE, busy_loop(10, 0.05)]) as nb:
            nb.run_cell(0)
            expect_live(nb, "direct")
            nb.run_cell(1)
            expect(rows(nb)).to_have_count(10)
            nb.screenshot("notebook7")
    finally:
        server.stop()
