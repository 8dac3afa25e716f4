"""Running callbacks where user code expects them.

Events arrive on the server thread. Trait updates and user callbacks must not run there:
ipykernel 7 has open reports of trouble with trait updates made from other threads
(ipywidgets #4001, #4020; ipykernel #1450, #1451). In a kernel they run on the main
thread's event loop (so, like messages from the browser, while the kernel is idle); in a
plain Python process, where no loop runs on the main thread, on a daemon thread of ours.
Either way work is batched: one hop per burst of events, never one per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable

__all__ = ["Dispatcher", "dispatcher_for_caller"]


class Dispatcher:
    """Runs callables in order, on one chosen thread, off the caller's thread."""

    def __init__(
        self, post: Callable[[Callable[[], None]], None], where: str, thread: int | None = None
    ) -> None:
        self._post = post
        self.where = where
        self.thread = thread  # the ident of the thread it runs on, when that is fixed

    def may_run_here(self) -> bool:
        """Whether the calling thread may run this dispatcher's work itself, right now.

        In a kernel only the loop's own thread may (trait updates stay on the main thread);
        with our dispatcher thread any thread may, since no kernel is there to mind.
        """
        return self.thread is None or self.thread == threading.get_ident()

    def __call__(self, fn: Callable[[], None]) -> None:
        """Schedule ``fn``; safe from any thread; never blocks."""
        with contextlib.suppress(RuntimeError):  # the target loop has closed: nobody to tell
            self._post(fn)


class _ThreadRunner:
    def __init__(self) -> None:
        self.q: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="sse_widget-dispatch", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            fn = self.q.get()
            try:
                fn()
            except Exception:  # pragma: no cover - callers wrap user code themselves
                import traceback

                traceback.print_exc()


_runner: _ThreadRunner | None = None
_runner_lock = threading.Lock()


def _thread_runner() -> _ThreadRunner:
    global _runner
    with _runner_lock:
        if _runner is None or not _runner.thread.is_alive():
            _runner = _ThreadRunner()
        return _runner


def dispatcher_for_caller() -> Dispatcher:
    """A dispatcher for the calling thread's event loop, or our own thread if none runs.

    Called on the thread that creates a feed: in a notebook that is the kernel's main
    thread, whose loop is running while a cell executes.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        runner = _thread_runner()
        return Dispatcher(runner.q.put, "dispatcher thread")

    def post(fn: Callable[[], None]) -> None:
        loop.call_soon_threadsafe(fn)

    return Dispatcher(post, "event loop", threading.get_ident())
