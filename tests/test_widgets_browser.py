"""EventStream in a real browser: JupyterLab (and Notebook 7) in headless Chromium.

Each test names the transport it exercises. Nothing here is faked: the kernel, the event
server, jupyter-server-proxy and the comm channel are the real ones.
"""

from __future__ import annotations

import json

import pytest
from browser import ARTIFACTS, JupyterServer, notebook
from helpers import wait_for
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
            # textContent: rows scrolled out of view are not rendered (content-visibility).
            texts = rows(nb, w).all_text_contents()
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


# -- the views (transport: direct) ---------------------------------------------------------

VIEWS_CELLS = [
    "from sse_widget import EventStream\n"
    "log = EventStream('log', title='log')\n"
    "last = EventStream('last', title='last')\n"
    "chart = EventStream('chart', title='chart')\n"
    "prog = EventStream('progress', title='progress')\n"
    "display(log, last, chart, prog)",
    "import math, time\n"
    "for i in range(60):\n"
    "    m = {'loss': round(math.exp(-i / 20), 4), 'acc': round(1 - math.exp(-i / 15), 4),\n"
    "         'lr': {'value': 0.01 * 0.97 ** i}}\n"
    "    log.send(m, event='metric'); chart.send(m, event='metric')\n"
    "    last.send({'step': i, **m}, event='metric')\n"
    "    if i % 10 == 0:\n"
    "        log.send(f'checkpoint {i}', event='note'); chart.send('not numeric', event='note')\n"
    "    time.sleep(0.01)\n"
    "bars = [('train', 100, 100, 'done', 0), ('epoch 3', 50, 20, 'running', 1),\n"
    "        ('export', 10, 3, 'error', 0), ('upload', 8, 5, 'interrupted', 0)]\n"
    "for desc, total, n, state, level in bars:\n"
    "    prog.send({'id': desc, 'desc': desc, 'n': n, 'total': total, 'elapsed': 5.0,\n"
    "               'rate': n / 5, 'state': state, 'level': level, 'postfix': {'loss': 0.1}},\n"
    "              event='progress')",
]


def check_views(nb) -> None:
    log, last, chart, prog = (nb.widget(i) for i in range(4))
    expect(log.locator(".sse-widget-row")).to_have_count(66, timeout=20_000)
    first = log.locator(".sse-widget-row[data-type='metric']").first
    first.click()
    expect(first.locator(".sse-widget-json")).to_contain_text('"loss": 1')
    expect(last.locator(".sse-widget-last-head")).to_contain_text("metric · id ")
    expect(last.locator(".sse-widget-last-value")).to_contain_text("step: 59")
    expect(chart.locator("canvas")).to_have_count(1)
    legend = chart.locator(".u-legend .u-series")
    expect(legend).to_have_count(4)  # time, then one per field
    for name in ("loss", "acc", "lr.value"):
        expect(chart.locator(".u-legend")).to_contain_text(name)
    bars = prog.locator(".sse-widget-bar")
    expect(bars).to_have_count(4)
    states = [bars.nth(i).get_attribute("data-state") for i in range(4)]
    assert states == ["done", "running", "error", "interrupted"]
    expect(bars.nth(0)).to_contain_text("100%")
    expect(bars.nth(1)).to_contain_text("40%")
    expect(bars.nth(1)).to_contain_text("20/50")


def test_each_view_renders_its_events(lab, chromium) -> None:
    with notebook(lab, chromium, VIEWS_CELLS) as nb:
        nb.run_cell(0)
        expect_live(nb, "direct", widget=3)
        nb.run_cell(1)
        check_views(nb)
        for i, name in enumerate(("log", "last", "chart", "progress")):
            nb.screenshot(f"view_{name}_light", widget=i)
        assert not nb.errors


def test_views_in_the_dark_theme(chromium) -> None:
    dark = JupyterServer(
        "lab", settings={"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"}}
    )
    try:
        with notebook(dark, chromium, VIEWS_CELLS) as nb:
            expect(nb.page.locator("body")).to_have_attribute("data-jp-theme-light", "false")
            nb.run_cell(0)
            expect_live(nb, "direct", widget=3)
            nb.run_cell(1)
            check_views(nb)
            # The theme's colours reach the widget: its text is light on a dark background.
            color = nb.widget(0).evaluate("el => getComputedStyle(el).color")
            r, g, b = (
                int(x) for x in color[color.index("(") + 1 : color.index(")")].split(",")[:3]
            )
            assert r + g + b > 3 * 150, color
            for i, name in enumerate(("log", "last", "chart", "progress")):
                nb.screenshot(f"view_{name}_dark", widget=i)
            assert not nb.errors
    finally:
        dark.stop()


def test_filter_pause_clear_and_view_switch(lab, chromium) -> None:
    cells = [
        MAKE,
        "for i in range(5):\n    stream.send(f'a{i}', event='a'); stream.send(f'b{i}', event='b')",
        "for i in range(3):\n    stream.send(f'late{i}', event='b')",
        "print(stream.view)",
    ]
    with notebook(lab, chromium, cells) as nb:
        nb.run_cell(0)
        expect_live(nb, "direct")
        nb.run_cell(1)
        w = nb.widget(0)
        expect(rows(nb)).to_have_count(10, timeout=10_000)
        w.locator(".sse-widget-filter").select_option("b")
        expect(rows(nb)).to_have_count(5)
        expect(w.locator(".sse-widget-row[data-type='a']")).to_have_count(0)
        w.locator(".sse-widget-filter").select_option("")
        expect(rows(nb)).to_have_count(10)
        pause = w.locator(".sse-widget-pause")
        pause.click()
        expect(pause).to_have_attribute("aria-pressed", "true")
        nb.run_cell(2)
        expect(pause).to_have_text("Resume (3 new)", timeout=10_000)
        expect(rows(nb)).to_have_count(10)
        # Keyboard: the controls are reachable with Tab and work with Enter.
        w.locator(".sse-widget-filter").focus()
        nb.page.keyboard.press("Tab")
        focused = "document.activeElement.shadowRoot?.activeElement?.className"
        assert nb.page.evaluate(focused) == "sse-widget-pause"  # inside the widget's shadow
        nb.page.keyboard.press("Enter")
        expect(pause).to_have_attribute("aria-pressed", "false")
        expect(rows(nb)).to_have_count(13)
        expect(rows(nb).last).to_contain_text("late2")
        w.locator(".sse-widget-clear").click()
        expect(rows(nb)).to_have_count(0)
        w.locator(".sse-widget-view-select").select_option("last")
        expect(w.locator(".sse-widget-body")).to_have_attribute("data-view", "last")
        nb.run_cell(3)
        assert nb.output_text(3).strip() == "last"  # the choice reached Python's trait
        assert not nb.errors


def test_ten_thousand_events_a_second_keep_the_page_responsive(lab, chromium) -> None:
    """5 s at 10,000 events/s from a busy cell: exact count, bounded DOM, no long task."""
    cells = [
        "from sse_widget import EventStream\nstream = EventStream(title='load', max_rows=200)\n"
        "stream",
        "import time\n"
        "t0 = time.perf_counter()\n"
        "for i in range(50_000):\n"
        "    stream.send(f'event {i}')\n"
        "    if i % 100 == 99:\n"
        "        time.sleep(max(0.0, t0 + (i + 1) / 10_000 - time.perf_counter()))\n"
        "took = round(time.perf_counter() - t0, 1)",
        "took",
    ]
    with notebook(lab, chromium, cells, record_long_tasks=True) as nb:
        nb.run_cell(0)
        expect_live(nb, "direct")
        nb.run_cell(1, wait=False)  # measured from here: the keypress itself is JupyterLab's
        start = nb.page.evaluate("performance.now()")
        nb.wait_cell_done(1, timeout=60)
        expect(status(nb)).to_contain_text("50,000 events", timeout=20_000)
        tasks = nb.page.evaluate("window.__longTasks")
        nb.run_cell(2)
        took = float(nb.output_text(2).strip().split()[-1])
        assert 4.5 <= took < 8, f"the sender took {took} s, not about 5 s"
        expect(rows(nb)).to_have_count(200)
        assert nb.widget(0).locator(".sse-widget-row").count() <= 200
        expect(rows(nb).last).to_contain_text("event 49999")
        during = [d for t, d in tasks if t >= start]
        print(f"long tasks during the load (ms): {during}")
        assert max(during, default=0) < 100, f"long tasks during the load (ms): {during}"
        nb.screenshot("load_10k")
        assert not nb.errors


def test_the_snapshot_is_saved_with_the_notebook_and_seeds_a_new_view(lab, chromium) -> None:
    """The snapshot trait: saved into the notebook's widget state, and shown by a new view.

    Then the saved notebook is rendered with no kernel and no event server. JupyterLab 4
    cannot do that itself: its widget manager loads a notebook's saved widgets only after
    loading the kernel's, and throws "Kernel not set" first when there is none (upstream:
    jupyterlab/jupyterlab#15361, jupyter-widgets/ipywidgets#3773). So a small page plays the
    widget manager's part, and only that part: it reads the saved notebook file, makes a
    model from the saved state and calls the saved bundle's render(), in real Chromium.
    """
    cells = [
        MAKE,
        "for i in range(5):\n    stream.send({'step': i}, event='update')",
        "stream",  # a second view of the same widget, rendered later
        "stream.send({'step': 5}, event='update')",
    ]
    with notebook(lab, chromium, cells) as nb:
        nb.run_cell(0)
        expect_live(nb, "direct")
        nb.run_cell(1)
        expect(rows(nb)).to_have_count(5)
        nb.page.wait_for_timeout(1500)  # the snapshot is taken about once a second
        nb.cell(1).locator(".jp-InputArea-prompt").click()
        nb.page.keyboard.press("Control+s")
        path = lab.root / nb.name
        wait_for(lambda: '"snapshot"' in path.read_text(), what="the saved widget state")
        state = json.loads(path.read_text())["metadata"]["widgets"]
        models = state["application/vnd.jupyter.widget-state+json"]["state"].values()
        (snap,) = [m["state"]["snapshot"] for m in models if "snapshot" in m["state"]]
        assert snap["count"] == 5
        assert [r["data"] for r in snap["rows"]] == [f'{{"step":{i}}}' for i in range(5)]
        # A view rendered now starts from the snapshot and resumes after its last id.
        nb.run_cell(2)
        second = nb.widget(1)
        expect(second.locator(".sse-widget-row")).to_have_count(5)
        nb.run_cell(3)
        expect(second.locator(".sse-widget-row")).to_have_count(6)
        expect(rows(nb)).to_have_count(6)
        ids = second.locator(".sse-widget-row").evaluate_all("rs => rs.map(r => r.dataset.id)")
        assert len(set(ids)) == 6
        assert not nb.errors
    lab.shutdown_kernels()  # the kernel, and the event server inside it, are gone
    render_saved(chromium, json.loads(path.read_text()))


# Plays a widget manager without a kernel: a model over the saved state, with no comm.
RENDER_SAVED = """
async ([state, modelId]) => {
  const s = state[modelId].state;
  const handlers = {};
  const model = {
    get: (k) => s[k],
    set: (k, v) => { s[k] = v; },
    save_changes: () => {},
    send: () => { throw new Error("no kernel"); },
    on: (ev, fn) => { (handlers[ev] ??= []).push(fn); },
    off: () => {},
  };
  const url = URL.createObjectURL(new Blob([s._esm], { type: "text/javascript" }));
  const mod = await import(url);
  const el = document.createElement("div");
  document.body.append(el);
  mod.default.render({ model, el });
}
"""


def render_saved(chromium, saved: dict) -> None:
    state = saved["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    (model_id,) = [k for k, m in state.items() if "snapshot" in m["state"]]
    context = chromium.new_context(viewport={"width": 900, "height": 500})
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.set_content("<!doctype html><html><body></body></html>")
        page.evaluate(RENDER_SAVED, [state, model_id])
        widget = page.locator(".sse-widget")
        expect(widget.locator(".sse-widget-row")).to_have_count(5, timeout=10_000)
        expect(widget.locator(".sse-widget-row").last).to_contain_text('{"step":4}')
        expect(widget.locator(".sse-widget-title")).to_have_text("t")
        expect(widget.locator(".sse-widget-status")).to_contain_text("5 events")
        page.wait_for_timeout(3000)  # its routes fail (nothing listens): the rows stay
        expect(widget.locator(".sse-widget-row")).to_have_count(5)
        page.screenshot(path=str(ARTIFACTS / "snapshot_no_kernel.png"))
        assert not errors, errors
    finally:
        context.close()
