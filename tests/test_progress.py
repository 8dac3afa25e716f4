"""Progress over SSE: tqdm's machinery, throttled, final states, threads and processes.

The bars publish to real EventStreams on the real kernel event server; what they sent is
read back from the stream's history. The browser tests run real JupyterLab in Chromium.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import pickle
import threading
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest
from browser import notebook
from playwright.sync_api import expect

from sse_widget import EventStream, ProgressReporter, progress, tqdm


@pytest.fixture
def stream() -> Any:
    s = EventStream("progress")
    yield s
    s.close()


def sent(stream: EventStream) -> list[dict[str, Any]]:
    return [e.json() for e in stream.history if e.event == "progress"]


def test_a_long_loop_sends_about_ten_updates_a_second(stream) -> None:
    t0 = time.perf_counter()
    for _ in progress(range(2_000_000), stream=stream, desc="fast"):
        pass
    took = time.perf_counter() - t0
    updates = sent(stream)
    # The first display, one per 0.1 s at most, and the final state.
    assert 2 <= len(updates) <= took / 0.1 + 3
    assert updates[-1] | {"elapsed": 0, "rate": 0} == {
        "id": updates[0]["id"],
        "n": 2_000_000,
        "total": 2_000_000,
        "desc": "fast",
        "unit": "it",
        "rate": 0,
        "elapsed": 0,
        "postfix": "",
        "state": "done",
        "level": 0,
        "leave": True,
    }


def test_mininterval_is_tqdms(stream) -> None:
    bar = tqdm(total=100, stream=stream, mininterval=0, miniters=1)
    for _ in range(10):
        bar.update()
    bar.close()
    assert [u["n"] for u in sent(stream)] == [*range(11), 10]


@pytest.mark.parametrize(
    ("exc", "state"), [(KeyboardInterrupt, "interrupted"), (ValueError, "error"), (None, "done")]
)
def test_the_final_state_is_always_sent_from_a_with_block(stream, exc, state) -> None:
    def block() -> None:
        with tqdm(total=10, stream=stream) as bar:
            bar.update(4)
            if exc:
                raise exc
            bar.update(6)

    with pytest.raises(exc) if exc else contextlib.nullcontext():
        block()
    last = sent(stream)[-1]
    assert (last["state"], last["n"]) == (state, 4 if exc else 10)


def test_a_loop_that_stops_early_ends_in_error_outside_a_notebook(stream) -> None:
    def loop() -> None:
        for i in progress(range(10), stream=stream):
            if i == 3:
                raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        loop()
    last = sent(stream)[-1]
    assert (last["state"], last["n"]) == ("error", 3)


def test_tqdm_arguments_and_methods_keep_working(stream) -> None:
    with tqdm(total=1000, stream=stream, desc="load", unit="B", unit_scale=True, leave=False) as b:
        b.update(10)
        b.set_postfix(loss=0.25, refresh=True)
        b.set_description("loading", refresh=True)
        b.update(990)
    updates = sent(stream)
    assert updates[-1]["desc"] == "loading"
    assert updates[-1]["unit"] == "B"
    assert updates[-1]["leave"] is False
    assert updates[-1]["state"] == "done"
    assert any(u["postfix"] == "loss=0.25" for u in updates)


def test_nested_bars_share_the_widget_and_are_indented(stream) -> None:
    for _ in stream.progress(range(2), desc="outer"):
        for _ in progress(range(3), desc="inner", leave=False):
            pass
    levels = {(u["desc"], u["level"]) for u in sent(stream)}
    assert levels == {("outer", 0), ("inner", 1)}
    assert len({u["id"] for u in sent(stream)}) == 3  # one outer bar, two inner ones


def test_outside_a_notebook_without_a_stream_it_is_tqdms_text_bar() -> None:
    out = io.StringIO()
    for _ in progress(range(5), desc="plain", file=out):
        pass
    assert "plain: 100%|" in out.getvalue()
    assert "5/5" in out.getvalue()


def test_bars_from_threads_and_asyncio_tasks(stream) -> None:
    def work(name: str) -> None:
        for _ in stream.progress(range(50), desc=name):
            time.sleep(0.001)

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    async def task() -> None:
        for _ in stream.progress(range(20), desc="task"):
            await asyncio.sleep(0)

    asyncio.run(task())
    done = {u["desc"] for u in sent(stream) if u["state"] == "done"}
    assert done == {"t0", "t1", "t2", "task"}


def _work(reporter: ProgressReporter, steps: int) -> int:
    with reporter:
        for _ in range(steps):
            reporter.update()
            time.sleep(0.002)
    return steps


def test_a_process_pool_reports_one_bar_each_and_one_shared_bar(stream) -> None:
    each = [stream.progress_reporter(total=40, desc=f"worker {i}") for i in range(4)]
    shared = stream.progress_reporter(total=160, desc="all workers")
    with ProcessPoolExecutor(4) as pool:
        assert sum(pool.map(_work, each, [40] * 4)) == 160
        assert sum(pool.map(_work, [shared] * 4, [40] * 4)) == 160
    time.sleep(0.3)
    added: dict[str, float] = defaultdict(float)
    desc = {}
    for u in sent(stream):
        added[u["id"]] += u["add"]
        desc[u["id"]] = u["desc"]
    assert sorted((desc[k], v) for k, v in added.items()) == [
        ("all workers", 160),
        ("worker 0", 40),
        ("worker 1", 40),
        ("worker 2", 40),
        ("worker 3", 40),
    ]


def test_one_reporter_shared_by_threads_loses_nothing(stream) -> None:
    rep = stream.progress_reporter(total=2400, desc="threads", mininterval=0)

    def work() -> None:
        for _ in range(300):
            rep.update()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rep.close()
    time.sleep(0.2)
    assert sum(u["add"] for u in sent(stream)) == 2400


def test_an_abandoned_or_disabled_bar_does_not_capture_later_bars(stream) -> None:
    disabled = stream.progress(range(3), disable=True)  # never iterated, never closed
    abandoned = tqdm(total=10, stream=stream)
    del abandoned  # never closed: collected, it must not stay "open"
    # A bar with no stream joins an open bar's widget; here none is open (and outside a
    # notebook it is then a text bar).
    later = tqdm(total=2, file=io.StringIO())
    assert later._sse is None
    later.close()
    assert disabled.disable


def test_a_reporter_pickles_and_marks_failures(stream) -> None:
    rep = pickle.loads(pickle.dumps(stream.progress_reporter(total=5, desc="p")))

    def interrupted() -> None:
        with rep:
            rep.update(2)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert sent(stream)[-1]["state"] == "interrupted"


# -- in a real browser: JupyterLab in headless Chromium -----------------------------------


@pytest.mark.browser
def test_a_bar_reaches_100_percent_while_its_cell_is_busy(lab, chromium) -> None:
    """Transport: direct."""
    cells = [
        "import time\nfrom sse_widget import progress\n"
        "for _ in progress(range(40), desc='busy'):\n    time.sleep(0.03)\n"
        "time.sleep(4)  # still busy after the loop",
    ]
    with notebook(lab, chromium, cells) as nb:
        nb.run_cell(0, wait=False)
        bar = nb.widget(0).locator(".sse-widget-bar")
        expect(bar).to_have_attribute("data-state", "done", timeout=20_000)
        expect(bar).to_contain_text("100%")
        expect(bar).to_contain_text("40/40")
        expect(nb.cell(0).locator(".jp-InputArea-prompt")).to_contain_text("*")
        nb.wait_cell_done(0)
        nb.screenshot("progress_busy", widget=0)
        assert not nb.errors


@pytest.mark.browser
def test_a_four_worker_pool_shows_four_bars_that_all_finish(lab, chromium) -> None:
    cells = [
        "import time\nfrom concurrent.futures import ProcessPoolExecutor\n"
        "from sse_widget import EventStream\n"
        "bars = EventStream('progress', title='pool')\nbars",
        "def work(reporter):\n"
        "    with reporter:\n"
        "        for _ in range(30):\n"
        "            reporter.update()\n"
        "            time.sleep(0.02)\n"
        "reporters = [bars.progress_reporter(total=30, desc=f'worker {i}') for i in range(4)]\n"
        "with ProcessPoolExecutor(4) as pool:\n"
        "    list(pool.map(work, reporters))",
    ]
    with notebook(lab, chromium, cells) as nb:
        nb.run_cell(0)
        nb.run_cell(1, timeout=90)
        rows = nb.widget(0).locator(".sse-widget-bar")
        expect(rows).to_have_count(4, timeout=20_000)
        for i in range(4):
            expect(rows.nth(i)).to_have_attribute("data-state", "done", timeout=20_000)
            expect(rows.nth(i)).to_contain_text("30/30")
        nb.screenshot("progress_pool", widget=0)
        assert not nb.errors


@pytest.mark.browser
def test_loops_that_fail_show_error_or_interrupted_and_many_bars_stay_readable(
    lab, chromium
) -> None:
    cells = [
        "from sse_widget import EventStream, progress\n"
        "s = EventStream('progress', title='endings')\ns",
        "for i in progress(range(10), stream=s, desc='fails'):\n"
        "    if i == 4:\n        raise ValueError('boom')",
        "for i in progress(range(10), stream=s, desc='stopped'):\n"
        "    if i == 6:\n        raise KeyboardInterrupt",
        "for i in progress(range(10), stream=s, desc='breaks'):\n    if i == 2:\n        break",
        "many = EventStream('progress', title='32 workers')\ndisplay(many)\n"
        "for w in range(32):\n"
        "    many.send({'id': w, 'desc': f'worker {w}', 'n': w, 'total': 31, 'elapsed': 2.0},\n"
        "              event='progress')",
    ]
    with notebook(lab, chromium, cells) as nb:
        for i in range(5):
            nb.run_cell(i)
        bars = nb.widget(0).locator(".sse-widget-bar")
        expect(bars).to_have_count(3)
        expect(bars.nth(0)).to_have_attribute("data-state", "error")
        expect(bars.nth(0)).to_contain_text("4/10")
        expect(bars.nth(1)).to_have_attribute("data-state", "interrupted")
        expect(bars.nth(2)).to_have_attribute("data-state", "done")  # a break is no failure
        many = nb.widget(1).locator(".sse-widget-bar")
        expect(many).to_have_count(32)
        expect(many.last).to_have_attribute("data-state", "done")
        body = nb.widget(1).locator(".sse-widget-body")
        # 32 bars scroll inside the widget instead of pushing the notebook down.
        assert body.evaluate("el => el.scrollHeight > el.clientHeight")
        nb.screenshot("progress_endings", widget=0)
        nb.screenshot("progress_32", widget=1)
        assert not nb.errors
