"""Progress bars over SSE: tqdm's own machinery, shown by the progress view.

:class:`tqdm` is a subclass of ``tqdm.std.tqdm``: its meter, rate, ETA, postfix, nesting and
its cheap per-iteration check are tqdm's, so a bar costs what a tqdm bar costs. Only the
display differs: at most every ``mininterval`` (0.1 s by default) it publishes one
``event: progress`` payload to an :class:`~sse_widget.EventStream` whose view is
``"progress"``. The page draws it while the cell is busy, in any frontend the widget reaches,
and the notebook's message channel never sees a trait update per iteration.

In a plain Python process (no notebook) and with no stream given, a bar is tqdm's usual text
bar on stderr.

Worker processes report through :meth:`EventStream.progress_reporter`, a picklable handle
built on :class:`~sse_widget.Publisher`: one bar per worker, or one bar shared by many.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import threading
import time
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from tqdm.std import tqdm as std_tqdm

from .publisher import Publisher

if TYPE_CHECKING:
    from .widgets import EventStream

__all__ = ["PROGRESS_EVENT", "ProgressReporter", "progress", "tqdm"]

PROGRESS_EVENT = "progress"
_ids = itertools.count(1)


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython") and _ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _ipython() -> Any:
    with contextlib.suppress(Exception):
        from IPython import get_ipython

        return get_ipython()
    return None


class _Null:
    """Where a bar's text would go in SSE mode: nowhere."""

    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        pass


def _state_for(exc_type: type[BaseException] | None) -> str:
    if exc_type is None:
        return "done"
    return "interrupted" if issubclass(exc_type, KeyboardInterrupt) else "error"


# Bars that stopped early inside a loop, whose cause only the cell's end tells (a generator
# closed by an exception cannot see that exception). Corrected by a post_run_cell hook.
# (Strong references: the loop's bar is usually gone by then; the list is emptied each cell.)
_early: list[tqdm] = []
_hook_lock = threading.Lock()
_hooked = False


def _hook_cell_end() -> bool:
    """Have IPython tell us how each cell ended; False outside IPython."""
    global _hooked
    with _hook_lock:
        if not _hooked:
            shell = _ipython()
            if shell is None:
                return False
            shell.events.register("post_run_cell", _after_cell)
            _hooked = True
        return True


def _after_cell(result: Any) -> None:
    error = getattr(result, "error_in_exec", None)
    bars = list(_early)
    _early.clear()
    for bar in bars:
        # A loop left by `break` is not a failure: it ended where the user chose.
        bar._publish(_state_for(type(error) if error is not None else None))


if TYPE_CHECKING:
    _Tqdm = std_tqdm[Any]  # generic in the stubs only
else:
    _Tqdm = std_tqdm


class tqdm(_Tqdm):  # the name people already use
    """A tqdm progress bar drawn by sse_widget's progress view.

    Takes every ``tqdm.tqdm`` argument, plus:

    stream:
        The :class:`~sse_widget.EventStream` to draw in (its view is set to
        ``"progress"``). By default a bar opened while another of ours is open joins its
        widget (nested bars, as with ``position``); otherwise, in a notebook, it gets a new
        widget, displayed at once; outside a notebook it is tqdm's text bar.

    The final state is always sent: ``done``, or ``error`` / ``interrupted`` (each with
    its own colour) when the loop or ``with`` block ended in an exception or a
    ``KeyboardInterrupt``.
    """

    def __init__(self, *args: Any, stream: EventStream | None = None, **kwargs: Any) -> None:
        if stream is None and not kwargs.get("disable"):
            stream = _open_stream()
        self._sse = stream
        self._sse_tid = threading.get_ident()
        self._sse_id = f"b{next(_ids)}"
        self._sse_exc: type[BaseException] | None = None
        self._sse_final = False
        if stream is not None:
            kwargs["file"] = _Null()
            kwargs.setdefault("dynamic_ncols", False)
            if stream.view != "progress":
                stream.view = "progress"
        super().__init__(*args, **kwargs)
        if stream is not None and not self.disable:
            _open_bars.append(weakref.ref(self))

    # -- what tqdm calls to draw -------------------------------------------------------

    def display(self, msg: str | None = None, pos: int | None = None) -> None:
        """Draw the bar: an SSE update (throttled by tqdm's ``mininterval``), or text."""
        if self._sse is None:
            super().display(msg, pos)
        elif not self._sse_final:
            self._publish("running")

    def _payload(self, state: str) -> dict[str, Any]:
        fd = self.format_dict
        n, total, elapsed = fd["n"], fd["total"], fd["elapsed"]
        rate = fd.get("rate")
        if rate is None and elapsed > 0:
            rate = (n - fd.get("initial", 0)) / elapsed
        return {
            "id": self._sse_id,
            "n": n,
            "total": total,
            "desc": (self.desc or "").removesuffix(": "),  # set_description() adds ": "
            "unit": fd.get("unit") or "it",
            "rate": rate,
            "elapsed": elapsed,
            "postfix": str(self.postfix or "").lstrip(", "),
            "state": state,
            "level": abs(getattr(self, "pos", 0) or 0),
            "leave": bool(self.leave) if self.leave is not None else getattr(self, "pos", 0) == 0,
        }

    def _publish(self, state: str) -> None:
        stream = self._sse
        if stream is None or stream._closed:
            return
        with contextlib.suppress(Exception):  # a bar never breaks the loop it measures
            stream.send(self._payload(state), event=PROGRESS_EVENT)

    # -- endings -----------------------------------------------------------------------

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        self._sse_exc = exc_type
        super().__exit__(exc_type, exc_value, traceback)

    def close(self) -> None:
        if self._sse is None:
            return super().close()
        if self.disable:
            return None
        exc = self._sse_exc
        if exc is None and self.total is None and _hook_cell_end():
            # No total to compare with: done, unless the cell ends in an exception.
            state = "done"
            _early.append(self)
        elif exc is None and self.total is not None and self.n < self.total:
            # Stopped early: an exception or KeyboardInterrupt in the loop's body, a break,
            # or close() by hand. A loop's generator cannot see which; the cell's end can.
            state = "error"
            if _hook_cell_end():
                _early.append(self)
        else:
            state = _state_for(exc)
        self._sse_final = True
        self.disable = True
        _forget(self)
        self._decr_instances(self)  # type: ignore[attr-defined]
        self._publish(state)
        return None


# The bars open now, weakly: one dropped without close() must not keep later bars nested.
_open_bars: list[weakref.ref[tqdm]] = []


def _forget(bar: tqdm) -> None:
    _open_bars[:] = [r for r in _open_bars if r() is not None and r() is not bar]


def _open_stream() -> EventStream | None:
    """The widget a new bar draws in: an open bar's (nesting), a new one, or None (text)."""
    for ref in reversed(_open_bars):
        bar = ref()
        if bar is None or bar.disable:
            continue
        # Nesting follows threads, as tqdm's positions do.
        if bar._sse is not None and not bar._sse._closed and bar._sse_tid == threading.get_ident():
            return bar._sse
    if not _in_notebook():
        return None
    from IPython.display import display

    from .widgets import EventStream

    stream = EventStream("progress")
    display(stream)  # type: ignore[no-untyped-call]
    return stream


def progress(iterable: Iterable[Any] | None = None, *args: Any, **kwargs: Any) -> tqdm:
    """A progress bar over ``iterable``, drawn live in the notebook: :class:`tqdm` by name.

    ``for x in progress(items, desc="work"):`` takes every ``tqdm.tqdm`` argument
    (``total``, ``desc``, ``unit``, ``mininterval``, ``leave``...) and ``stream=``, the
    :class:`~sse_widget.EventStream` to draw in. Without an iterable it is a manual bar:
    ``with progress(total=n) as bar: ... bar.update(k)``. Outside a notebook it is tqdm's
    text bar. Returns the bar (a :class:`tqdm`).
    """
    return tqdm(iterable, *args, **kwargs)


class ProgressReporter:
    """A picklable progress handle for worker processes (and threads).

    Made by :meth:`EventStream.progress_reporter`. Pass the same reporter to several
    workers for one shared bar (each sends what it added), or make one per worker for a bar
    each. Updates are throttled to one every ``mininterval`` seconds per process; the last
    one is always sent by :meth:`close` (or the end of a ``with`` block, which also marks an
    exception as ``error`` / ``interrupted``).
    """

    def __init__(
        self,
        publisher: Publisher,
        *,
        total: float | None = None,
        desc: str = "",
        unit: str = "it",
        mininterval: float = 0.1,
    ) -> None:
        self.publisher = publisher
        self.id = f"r{os.getpid()}-{next(_ids)}"
        self.total = total
        self.desc = desc
        self.unit = unit
        self.mininterval = mininterval
        self.start = time.time()  # wall clock: the same in every process
        self._reset_local()

    def _reset_local(self) -> None:
        self._pid = os.getpid()
        self._pending = 0.0
        self._last = 0.0
        self._postfix = ""
        # Threads of one process share the reporter and its HTTP connection: one at a time.
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_pending"] = 0.0
        state.pop("_lock", None)  # locks do not pickle; each process makes its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_local()

    def update(self, n: float = 1) -> None:
        """Add ``n`` to the bar; sends at most every ``mininterval`` seconds."""
        if self._pid != os.getpid():
            self._reset_local()
        with self._lock:
            self._pending += n
            now = time.monotonic()
            if now - self._last >= self.mininterval:
                self._flush("running")
                self._last = now

    def set_postfix(self, **values: Any) -> None:
        """Show ``key=value`` pairs after the bar, as tqdm's ``set_postfix``."""
        self._postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def _flush(self, state: str) -> None:
        # Called with the lock held.
        add, self._pending = self._pending, 0.0
        payload = {
            "id": self.id,
            "add": add,
            "total": self.total,
            "desc": self.desc,
            "unit": self.unit,
            "elapsed": time.time() - self.start,
            "state": state,
        }
        if self._postfix:
            payload["postfix"] = self._postfix
        try:
            self.publisher.send(payload, event=PROGRESS_EVENT)
        except Exception:  # progress never breaks the work it measures: keep it for next time
            self._pending += add

    def close(self, state: str | None = None) -> None:
        """Send what is pending; ``state`` ("error", "interrupted") marks a failure.

        With a ``total`` the bar is done when the workers' updates reach it (so one worker
        finishing does not end a shared bar); without one, ``close()`` marks it done.
        """
        if self._pid != os.getpid():
            self._reset_local()
        with self._lock:
            self._flush(state or ("done" if self.total is None else "running"))

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.close(None if exc_type is None else _state_for(exc_type))

    def __repr__(self) -> str:
        return f"<ProgressReporter {self.desc or self.id!r} total={self.total}>"
