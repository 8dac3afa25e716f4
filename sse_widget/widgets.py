"""The notebook widgets: :class:`EventStream` and its transport traits.

State that must survive a page reload (which stream, where the server is, the view)
lives in traitlets; the events themselves travel over SSE, or over comm messages where
SSE cannot reach.
"""

from __future__ import annotations

import concurrent.futures
import os
import pathlib
from typing import Any

import anywidget
import traitlets

from .channels import Channel
from .comm import TRANSPORTS, CommPump, default_transport
from .protocol import Event
from .publisher import Publisher
from .server import EventServer, get_server

__all__ = ["VIEWS", "EventStream"]

VIEWS = ("log", "last", "chart", "progress")

_STATIC = pathlib.Path(__file__).parent / "static"
_MISSING_BUNDLE = """
export default { render({ el }) {
  el.textContent = "sse_widget: the JavaScript bundle is missing. Build it with "
    + "`pip install -e .` or `npm run build` in the sse_widget checkout.";
} };
"""


def _bundle(name: str, fallback: str) -> pathlib.Path | str:
    """The built file's text, or ``fallback`` if it was not built.

    Text, not the path: anywidget turns a path into a watched file and ties every widget
    to that file's change signal with a closure, so no closed stream (nor its history)
    would ever be freed (manzt/anywidget#929). With ``ANYWIDGET_HMR=1`` (anywidget's
    switch for live reloading while developing) the path is kept, for that reload.
    """
    path = _STATIC / name
    if not path.exists():
        return fallback
    if os.environ.get("ANYWIDGET_HMR") == "1":
        return path
    return path.read_text(encoding="utf-8")


class EventStream(anywidget.AnyWidget):
    """A live event stream and the widget that shows it.

    Parameters
    ----------
    view:
        How the browser shows the events (switchable in the widget):

        - ``"log"``: a table of time, type, id and data; click a row for its JSON;
        - ``"last"``: the latest value, large, JSON as a collapsible tree;
        - ``"chart"``: the numeric fields of JSON data over time, one line per field
          (nested fields by dotted name);
        - ``"progress"``: one bar per id of ``event: progress`` payloads, JSON objects
          ``{"id", "n", "total", "desc", "unit", "rate", "elapsed", "postfix", "state",
          "level", "leave"}`` (``state``: running, done, error or interrupted).
    history:
        How many events the server keeps for replay (default 10,000).
    history_bytes:
        Optional bound on the history's encoded size.
    name:
        The stream's name on the server (default: a random one). Unique per kernel.
    title:
        A heading shown above the events.
    max_rows:
        How many rows the view keeps (default 500).
    transport:
        ``"auto"`` (default, or ``$SSE_WIDGET_TRANSPORT``): direct, then proxy, then comm.

    Examples
    --------
    >>> stream = EventStream(title="training")  # doctest: +SKIP
    >>> stream                                   # doctest: +SKIP
    >>> stream.send({"loss": 0.3}, event="update")  # doctest: +SKIP
    """

    _closed = True  # until __init__ has made the channel: close() then has nothing to do
    _esm = _bundle("widget.js", _MISSING_BUNDLE)
    _css = _bundle("widget.css", "")

    stream = traitlets.Unicode(read_only=True).tag(sync=True)
    server_url = traitlets.Unicode(read_only=True).tag(sync=True)
    port = traitlets.Int(read_only=True).tag(sync=True)
    key = traitlets.Unicode(read_only=True).tag(sync=True)
    transport = traitlets.Enum(TRANSPORTS, default_value="auto").tag(sync=True)
    view = traitlets.Enum(VIEWS, default_value="log").tag(sync=True)
    # The last rows the page showed, set by the page about once a second: a notebook saved
    # with its widget state shows them again with no kernel running.
    snapshot = traitlets.Dict().tag(sync=True)
    max_rows = traitlets.Int(500).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self,
        view: str = "log",
        *,
        history: int = 10_000,
        history_bytes: int | None = None,
        name: str | None = None,
        title: str = "",
        max_rows: int = 500,
        transport: str | None = None,
        **kwargs: Any,
    ) -> None:
        if transport is None:
            transport = default_transport()
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}; got {transport!r}")
        if view not in VIEWS:
            raise ValueError(f"view must be one of {', '.join(VIEWS)}; got {view!r}")
        if not isinstance(max_rows, int) or max_rows < 1:
            raise ValueError(f"max_rows must be a positive int; got {max_rows!r}")
        server = get_server()
        channel = server.create_channel(name, max_events=history, max_bytes=history_bytes)
        self._server: EventServer = server
        self._channel = channel
        self._closed = False
        # The fast path of send(): an instance attribute is found before the method, so a
        # sending loop calls the channel's publish() directly, one Python call fewer per
        # event (a sixth of a loop's cost at a million events a second). It does exactly
        # what send() below does (a closed channel refuses). A subclass that defines its
        # own send() keeps it.
        if type(self).send is _SEND:
            self.__dict__["send"] = channel.publish
        try:
            super().__init__(
                view=view, title=title, max_rows=max_rows, transport=transport, **kwargs
            )
        except BaseException:
            # A bad trait (title=5, an unknown keyword) must not leave the name taken by a
            # stream nobody holds and so nobody can close.
            server.remove_channel(channel.name)
            self._closed = True  # nothing left for close() (or ipywidgets' __del__) to do
            raise
        self.set_trait("stream", channel.name)
        self.set_trait("server_url", server.url)
        self.set_trait("port", server.port)
        self.set_trait("key", server.key)
        self._pump = CommPump(channel, self.send_message, server.call_soon)
        self.on_msg(self._on_frontend_message)
        if transport == "comm":
            # Python knows SSE can't work: push at once, without waiting for the page to ask
            # (a busy cell handles no browser messages until it finishes).
            self._pump.start(None)

    # -- sending ---------------------------------------------------------------------

    def send(self, data: object, event: str | None = None) -> int:
        # The docstring is Channel.publish's (set below the class): what help(stream.send)
        # shows either way, since an instance's send is the channel's publish itself.
        return self._channel.publish(data, event)

    def send_message(self, content: dict[str, Any]) -> None:
        """Send a custom message to the frontend (ipywidgets' ``Widget.send``)."""
        super().send(content)

    def progress(self, iterable: Any = None, *args: Any, **kwargs: Any) -> Any:
        """A tqdm-compatible bar drawn in this widget (several bars share it).

        ``for x in stream.progress(items, desc="load"):``; every ``tqdm`` argument works.
        """
        from .progress import tqdm

        return tqdm(iterable, *args, stream=self, **kwargs)

    def progress_reporter(self, total: float | None = None, desc: str = "", **kwargs: Any) -> Any:
        """A picklable progress handle for worker processes: ``reporter.update(n)``.

        Pass one reporter to several workers for a shared bar, or make one per worker.
        """
        from .progress import ProgressReporter

        if self.view != "progress":
            self.view = "progress"
        return ProgressReporter(self.publisher(), total=total, desc=desc, **kwargs)

    def publisher(self) -> Publisher:
        """A picklable handle whose ``.send()`` publishes here from any process."""
        return Publisher(self._server.local_url, self._server.key, self._channel.name)

    # -- looking -----------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The stream's name on the server."""
        return self._channel.name

    @property
    def url(self) -> str:
        """A plain SSE URL for this stream (curl, another tab, any SSE client)."""
        return self._server.stream_url(self._channel.name)

    @property
    def clients(self) -> int:
        """How many HTTP clients are reading this stream right now."""
        return len(self._channel.subscribers)

    @property
    def count(self) -> int:
        """How many events were sent to this stream."""
        return self._channel.published

    @property
    def history(self) -> list[Event]:
        """The events the server still holds for replay, oldest first."""
        if not self._server.running:
            # Stopped (it drained on the way out), or this is a forked child: no loop is
            # left to take the snapshot, and none to race with.
            return self._channel.events()
        fut: concurrent.futures.Future[list[Event]] = concurrent.futures.Future()

        def snapshot() -> None:
            self._server._drain()
            fut.set_result(self._channel.events())

        self._server.call_soon(snapshot)
        return fut.result(timeout=10)

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.count} events"
        return f"<EventStream {self._channel.name!r}: {state}, view={self.view!r}>"

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Stop the stream: readers see it end, the widget closes, send() then raises."""
        if self._closed:
            return
        self._closed = True
        self._pump.stop()
        self._server.remove_channel(self._channel.name)
        super().close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _on_frontend_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "comm_subscribe":
            after = content.get("after")
            self._pump.start(after if isinstance(after, int) and after >= 0 else None)
        elif kind == "comm_unsubscribe" and self.transport != "comm":
            self._pump.stop()


EventStream.send.__doc__ = Channel.publish.__doc__
# send() as the class defines it, to tell whether a subclass (or a patch) replaced it.
_SEND = EventStream.send
