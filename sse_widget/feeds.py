"""External feeds: :func:`connect` turns any SSE endpoint into an observable widget.

The HTTP client runs on the event server's loop thread: Tornado's ``AsyncHTTPClient``
with a ``streaming_callback`` → :class:`~sse_widget.protocol.EventParser` → a
:class:`~sse_widget.channels.Channel`, so the browser shows a feed through exactly the
same transport as an :class:`~sse_widget.EventStream`. Python sees every event three
ways: a thread-safe record (:attr:`EventFeed.events`, :meth:`EventFeed.wait`,
``async for``), which works even inside a busy cell, and traits and ``on()``
callbacks, which run on the kernel's main thread (never on ours: ipykernel 7 has open
reports of trouble with trait updates made from other threads).

Reconnection follows the WHATWG "Server-sent events" processing model
(https://html.spec.whatwg.org/multipage/server-sent-events.html#processing-model), and
goes further where the spec leaves things to the user agent: exponential back-off with
jitter for repeated failures, ``Retry-After`` on 429, and de-duplication by id across
reconnects. A request that is not a GET is never sent twice unless asked for: re-sending
an LLM prompt repeats its tokens and its cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import json as _json
import operator
import random
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import traitlets
from tornado.httpclient import HTTPRequest, HTTPResponse
from tornado.httputil import HTTPHeaders, parse_response_start_line
from tornado.iostream import IOStream, StreamClosedError
from tornado.simple_httpclient import SimpleAsyncHTTPClient
from tornado.tcpclient import TCPClient

from .channels import RESERVED_PREFIX
from .dispatch import Dispatcher, dispatcher_for_caller
from .errors import FeedError, LineTooLongError, SSEError
from .protocol import Event, EventParser, Row
from .widgets import EventStream

__all__ = ["FEED_STATES", "EventFeed", "connect"]

FEED_STATES = ("connecting", "open", "retrying", "closed", "error")
VIAS = ("kernel", "browser")
DEFAULT_TIMEOUT = 60.0
DEFAULT_RETRY_MS = 1000
DEFAULT_MAX_BACKOFF = 30.0
ERROR_BODY_BYTES = 2048
_MAX_REDIRECTS = 5

Callback = Callable[[Event], object]
F = TypeVar("F", bound=Callback)


def _version() -> str:
    from . import __version__

    return __version__


# -- what the user passed ------------------------------------------------------------------


def _check_url(url: object, params: Mapping[str, Any] | None) -> str:
    if not isinstance(url, str):
        raise TypeError(f"url must be a str; got {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"url must be an absolute http:// or https:// URL; got {url!r}")
    if params:
        extra = urlencode(params, doseq=True)
        query = f"{parts.query}&{extra}" if parts.query else extra
        url = urlunsplit(parts._replace(query=query))
    return url


def _shown_url(url: str) -> str:
    """The URL without credentials or query string: query parameters often hold API keys,
    and widget state can be saved into the notebook file."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path or "/", "", ""))


def _request_body(method: str, json: Any, body: bytes | str | None) -> bytes | None:
    data: bytes | None
    if json is not None and body is not None:
        raise ValueError("pass json= or body=, not both")
    if json is not None:
        try:
            data = _json.dumps(json, ensure_ascii=False).encode()
        except (TypeError, ValueError) as exc:
            raise TypeError(f"json= must be JSON-serialisable: {exc}") from None
    elif isinstance(body, str):
        data = body.encode()
    elif body is None or isinstance(body, (bytes, bytearray)):
        data = bytes(body) if body is not None else None
    else:
        raise TypeError(f"body must be bytes, str or None; got {type(body).__name__}")
    if data is not None and method in ("GET", "HEAD"):
        raise ValueError(f"a {method} request has no body; pass method='POST' to send one")
    return data


def _request_headers(
    headers: Mapping[str, str] | None, last_event_id: str | None, has_json: bool
) -> HTTPHeaders:
    out = HTTPHeaders()
    out["Accept"] = "text/event-stream"
    out["Cache-Control"] = "no-store"
    out["User-Agent"] = f"sse_widget/{_version()}"
    if has_json:
        out["Content-Type"] = "application/json"
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(
                f"headers must map str to str; got {type(name).__name__}: {type(value).__name__}"
                f" for {name!r}"
            )
        if any(c in name + value for c in "\r\n\0"):
            raise ValueError(f"header {name!r} may not contain CR, LF or NUL; got {value!r}")
        out[name] = value
    # Last-Event-ID is not among them: each request sends the one in force then (_fetch).
    if last_event_id and any(c in last_event_id for c in "\r\n\0"):
        raise ValueError(f"last_event_id may not contain CR, LF or NUL; got {last_event_id!r}")
    return out


def _positive(name: str, value: float | None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds; got {value!r}")


def _retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError, IndexError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - now)
    return None


def _is_event_stream(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() == "text/event-stream"


# -- the thread-safe record ----------------------------------------------------------------


class _Record:
    """The events a feed received, and its state, shared by every thread.

    The server thread appends; :meth:`EventFeed.wait` blocks on the condition, ``async
    for`` iterators are woken on their own loops, and :attr:`EventFeed.events` copies.
    Events are held as plain tuples of strings, which the garbage collector stops
    tracking: a full history of :class:`Event` objects would make every full collection
    walk it (a third of the ingest time, measured).
    """

    def __init__(self, maxlen: int) -> None:
        self.cond = threading.Condition()
        self.rows: deque[Row] = deque(maxlen=maxlen)
        self.total = 0  # events ever added; rows[-1] is event number `total` (from 1)
        self.status = "connecting"
        self.error = ""
        self.done = threading.Event()  # set once the status is final (join() waits on it)
        self.waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def ended(self) -> bool:
        return self.status in ("closed", "error")

    def add(self, rows: list[Row]) -> None:
        with self.cond:
            self.total += len(rows)
            self.rows.extend(rows)
            self._wake()

    def events(self) -> list[Event]:
        with self.cond:
            return [Event(*row) for row in self.rows]

    def set_status(self, status: str, error: str = "") -> None:
        with self.cond:
            self.status = status
            self.error = error
            if self.ended:
                self.done.set()
            self._wake()

    def _wake(self) -> None:
        # Called with the condition held.
        self.cond.notify_all()
        waiters, self.waiters = self.waiters, []
        for loop, fut in waiters:
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(_resolve, fut)

    def next_after(self, cursor: int, event: str | None) -> tuple[int, Event | None]:
        """The first event after number ``cursor`` that matches, and the new cursor.

        Called with the condition held. Events that no longer fit the record are skipped.
        """
        rows = self.rows
        first = self.total - len(rows) + 1  # the number of rows[0]
        for i in range(max(cursor + 1, first) - first, len(rows)):
            row = rows[i]
            if event is None or row[0] == event:
                return first + i, Event(*row)
        return self.total, None


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


# -- the HTTP side, on the server thread ---------------------------------------------------


def _ignore_close_callback(callback: Callable[[], None] | None) -> None:
    pass


def _fail_soon(exc: StreamClosedError) -> asyncio.Future[bytes]:
    fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(fut.set_exception, exc)
    return fut


def _later(fut: Awaitable[bytes]) -> Awaitable[bytes]:
    if isinstance(fut, asyncio.Future) and fut.done() and not fut.cancelled():
        exc = fut.exception()
        if isinstance(exc, StreamClosedError):
            return _fail_soon(exc)
    return fut


def _lossless(stream: IOStream) -> None:
    """Make a client stream pass on every byte that arrived before the server hung up.

    Two things in Tornado 6.6 lose the tail of a response that ends by closing the
    connection, which is how many SSE servers end a stream (and how a dropped one ends):

    - the client reports the close as soon as the socket closes, possibly before the body
      reader has passed on what is still in the read buffer;
    - the chunked-body reader gathers small chunks and passes them on only when its next
      read would wait; a read on a closed stream raises at once instead, and the gathered
      chunks are dropped.

    So the close callback is not installed (the body reader then drains the buffer and
    fails with StreamClosedError, which the client reports as the same 599), and a read on
    a closed stream, which Tornado fails at once, fails one loop iteration later instead,
    after the gathered chunks went out.
    """
    read_until, read_bytes = stream.read_until, stream.read_bytes

    def read_until_later(delimiter: bytes, max_bytes: int | None = None) -> Awaitable[bytes]:
        try:
            return _later(read_until(delimiter, max_bytes))
        except StreamClosedError as exc:
            return _fail_soon(exc)

    def read_bytes_later(num_bytes: int, partial: bool = False) -> Awaitable[bytes]:
        try:
            return _later(read_bytes(num_bytes, partial))
        except StreamClosedError as exc:
            return _fail_soon(exc)

    stream.set_close_callback = _ignore_close_callback  # type: ignore[method-assign]
    stream.read_until = read_until_later  # type: ignore[method-assign]
    stream.read_bytes = read_bytes_later  # type: ignore[method-assign]


class _TrackingTCPClient(TCPClient):
    """Remembers the socket it opened, so that :meth:`EventFeed.close` can cut it at once
    (Tornado's client has no way to abort a streaming fetch)."""

    def __init__(self) -> None:
        super().__init__()
        self.stream: IOStream | None = None
        self.aborted = False

    async def connect(self, *args: Any, **kwargs: Any) -> IOStream:
        stream = await super().connect(*args, **kwargs)
        self.stream = stream
        _lossless(stream)
        if self.aborted:
            stream.close()
        return stream

    def abort(self) -> None:
        self.aborted = True
        if self.stream is not None:
            self.stream.close()


@dataclasses.dataclass(frozen=True)
class _Request:
    """What to send, and how to treat what comes back (checked by :class:`EventFeed`)."""

    url: str
    method: str
    headers: HTTPHeaders
    body: bytes | None
    last_event_id: str
    timeout: float | None
    validate_cert: bool
    ca_certs: str | None
    reconnect: bool
    dispatch_incomplete: bool
    retry_ms: int
    max_backoff: float
    max_line_bytes: int
    via: str = "kernel"
    browser_events: tuple[str, ...] = ("message",)


class _Attempt:
    """One HTTP request and what its response turned out to be."""

    def __init__(self) -> None:
        self.code = 0
        self.reason = ""
        self.headers = HTTPHeaders()
        self.head_done = False
        self.kind = ""  # "events" | "empty" | "refused" once the head is in
        self.body = bytearray()  # the start of a refused response's body
        self.events = 0
        self.fatal = ""  # an error that ends the feed whatever the method
        self.error: BaseException | None = None  # how the request failed, if it did
        self.timed_out = False
        self.why = ""  # why we reconnect


class _FeedClient:
    """Runs one feed's requests, reconnections and parsing on the server's loop."""

    def __init__(self, feed: EventFeed, request: _Request) -> None:
        self.feed = feed
        self.request = request
        self.parser = EventParser(
            dispatch_incomplete=request.dispatch_incomplete,
            max_line_bytes=request.max_line_bytes,
        )
        self.last_event_id = request.last_event_id
        self.retry_ms: float = request.retry_ms
        self.failures = 0
        self.connections = 0
        self.closing = False
        self.tcp: _TrackingTCPClient | None = None
        self.task: asyncio.Task[None] | None = None
        self.wake: asyncio.Event | None = None
        self.idle: asyncio.TimerHandle | None = None
        self.attempt = _Attempt()
        # The ids delivered before this connection, which it must not deliver again: those
        # of the events the record holds (the last `history` of them).
        self.seen: set[str] = set()
        self.prev_id = ""
        self.dropping = False

    # -- lifecycle (server thread) ---------------------------------------------------------

    def start(self) -> None:
        self.wake = asyncio.Event()
        self.task = asyncio.ensure_future(self.run())

    def abort(self) -> None:
        # Cut the socket rather than cancel the task: Tornado's fetch then ends at once
        # with an error we expect (a cancelled fetch would log one we don't).
        self.closing = True
        if self.tcp is not None:
            self.tcp.abort()
        if self.wake is not None:
            self.wake.set()
        self.feed._state("closed")

    def stopped(self) -> bool:
        return self.closing

    async def run(self) -> None:
        try:
            await self._loop()
        except asyncio.CancelledError:
            # The server's loop is stopping (interpreter exit, server.stop()): end for good,
            # so that join() and async-for do not wait for ever.
            self.feed._state("closed")
            raise
        except Exception as exc:  # pragma: no cover - a bug of ours: say so, don't hang
            self.feed._state("error", f"sse_widget's feed client failed: {exc!r}")
            traceback.print_exc()
        finally:
            self._cancel_idle()

    async def _loop(self) -> None:
        self.feed._state("connecting")
        while not self.closing:
            # A reconnection stays "retrying", with its reason, until the stream opens.
            self.connections += 1
            att = await self._fetch()
            if self.stopped():
                return
            delay = self._outcome(att)
            if delay is None:
                return
            self.feed._state("retrying", att.why)
            assert self.wake is not None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.wake.wait(), delay)

    # -- one request -----------------------------------------------------------------------

    async def _fetch(self) -> _Attempt:
        req = self.request
        self.attempt = att = _Attempt()
        self.dropping = False
        self.prev_id = ""  # the parser's id buffer, which each new stream starts empty
        headers = HTTPHeaders(req.headers)
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        client = SimpleAsyncHTTPClient(
            force_instance=True, max_body_size=1 << 62, max_buffer_size=1 << 26
        )
        self.tcp = client.tcp_client = _TrackingTCPClient()
        if self.closing:
            self.tcp.abort()
        timeout = req.timeout
        request = HTTPRequest(
            req.url,
            method=req.method,
            headers=headers,
            body=req.body,
            connect_timeout=timeout or 0,
            request_timeout=0,  # a stream may last for days; idleness is watched instead
            follow_redirects=True,
            max_redirects=_MAX_REDIRECTS,
            validate_cert=req.validate_cert,
            ca_certs=req.ca_certs,
            decompress_response=True,
            allow_nonstandard_methods=True,
            header_callback=self._on_header,
            streaming_callback=self._on_chunk,
        )
        error: BaseException | None = None
        # The idle clock runs from the start: a server that accepts the connection and never
        # answers is as dead as one that goes silent mid-stream.
        self._touch()
        try:
            response: HTTPResponse = await client.fetch(request, raise_error=False)
            error = response.error if response.code >= 599 else None
        except Exception as exc:  # network errors, our own abort, TLS
            error = exc
        finally:
            self._cancel_idle()
            client.close()
            self.tcp = None
        self._end_stream(att, error)
        return att

    def _on_header(self, line: str) -> None:
        att = self.attempt
        self._touch()
        if not att.code:
            start = parse_response_start_line(line.strip())
            att.code, att.reason = start.code, start.reason
        elif line in ("\r\n", "\n", ""):
            self._on_head(att)
        else:
            att.headers.parse_line(line)

    def _on_head(self, att: _Attempt) -> None:
        att.head_done = True
        self._touch()
        if att.code == 204:
            att.kind = "empty"
        elif att.code == 200 and _is_event_stream(att.headers.get("Content-Type")):
            att.kind = "events"
            self.feed._state("open")
        else:
            att.kind = "refused"

    def _on_chunk(self, chunk: bytes) -> None:
        att = self.attempt
        if self.closing or att.fatal:
            return
        self._touch()
        if att.kind == "refused":
            att.body += chunk[: ERROR_BODY_BYTES - len(att.body)]
            if len(att.body) >= ERROR_BODY_BYTES and self.tcp is not None:
                self.tcp.abort()  # that is all we show: don't read the rest
            return
        if att.kind != "events":
            return
        try:
            events = self.parser.feed_rows(chunk)
        except LineTooLongError as exc:
            att.fatal = f"{exc} (raise max_line_bytes= in connect() if such lines are expected)"
            if self.tcp is not None:
                self.tcp.abort()
            return
        if events:
            self._deliver(events)

    def _end_stream(self, att: _Attempt, error: BaseException | None) -> None:
        # A stream that ended without error may dispatch its unterminated last event (opt in).
        tail = self.parser.close()
        if att.kind == "events" and error is None and not att.fatal and tail:
            self._deliver([(ev.event, ev.data, ev.id, ev.retry) for ev in tail])
        self.last_event_id = self.parser.last_event_id
        if self.parser.retry is not None:
            self.retry_ms = self.parser.retry
        if self.request.reconnect:
            # What the next connection must not deliver again: the ids the record holds.
            with self.feed._record.cond:
                self.seen = set(map(_ID, self.feed._record.rows))
            self.seen.discard("")
        att.error = error

    # -- idleness --------------------------------------------------------------------------

    def _touch(self) -> None:
        timeout = self.request.timeout
        if timeout is None:
            return
        self._cancel_idle()
        loop = asyncio.get_running_loop()
        self.idle = loop.call_later(timeout, self._on_idle)

    def _cancel_idle(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None

    def _on_idle(self) -> None:
        self.idle = None
        self.attempt.timed_out = True
        if self.tcp is not None:
            self.tcp.abort()

    # -- events ----------------------------------------------------------------------------

    def _deliver(self, rows: list[Row]) -> None:
        seen = self.seen
        if not seen:  # the first connection: nothing can be a repeat
            fresh = rows
            prev = rows[-1][2]
        else:
            # An event without an id field carries the id in force on this stream (at
            # first ""): only an id that changed names an event of its own. What a server
            # that ignored Last-Event-ID replays is dropped, with the id-less events that
            # follow it.
            prev = self.prev_id
            fresh = []
            dropping = self.dropping
            for row in rows:
                key = row[2]
                if key != prev:
                    prev = key
                    dropping = key in seen
                if not dropping:
                    fresh.append(row)
            self.dropping = dropping
        self.prev_id = prev
        if fresh:
            self.attempt.events += len(fresh)
            self.feed._deliver(fresh)

    # -- what next -------------------------------------------------------------------------

    def _outcome(self, att: _Attempt) -> float | None:
        """The delay before reconnecting, or None when the feed is over (state set)."""
        req = self.request
        feed = self.feed
        error = att.error
        if att.fatal:
            feed._state("error", att.fatal)
            return None
        if att.kind == "empty":
            feed._state("closed")
            return None
        if att.kind == "refused":
            return self._refused(att)
        if att.kind == "events" and att.events:
            self.failures = 0
        else:
            self.failures += 1
        if att.timed_out:
            why = f"no data for {req.timeout:g} s"
        elif error is not None:
            why = (
                f"the connection dropped: {_describe(error)}"
                if att.head_done
                else f"cannot reach {feed.source}: {_describe(error)}"
            )
        else:
            why = ""
        if not req.reconnect:
            if why:
                feed._state(
                    "error",
                    f"{why} ({att.events} events on this connection; a "
                    f"{req.method} is not re-sent unless reconnect=True)",
                )
            else:
                feed._state("closed")
            return None
        att.why = why or "the server ended the stream"
        return self._backoff()

    def _refused(self, att: _Attempt) -> float | None:
        req = self.request
        body = bytes(att.body[:ERROR_BODY_BYTES]).decode("utf-8", "replace")
        status = f"HTTP {att.code} {att.reason}".rstrip()
        if 200 <= att.code < 300:
            ctype = att.headers.get("Content-Type") or "none"
            message = f"expected Content-Type text/event-stream; got {ctype!r}"
            if att.code != 200:
                message = f"expected HTTP 200 with text/event-stream; got {status} ({ctype!r})"
            self.feed._state("error", f"{message}: {body}" if body else message)
            return None
        retryable = att.code >= 500 or att.code == 429
        att.why = f"{status}: {body}" if body else status
        if not (retryable and req.reconnect):
            self.feed._state("error", att.why)
            return None
        self.failures += 1
        delay = self._backoff()
        if att.code == 429:
            after = _retry_after(att.headers.get("Retry-After"), time.time())
            if after is not None:
                delay = after
        return delay

    def _backoff(self) -> float:
        base = self.retry_ms / 1000.0
        if self.failures <= 1:
            return base  # the spec's reconnection time, as a browser would wait
        cap = self.request.max_backoff
        delay = min(cap, base * 2.0 ** (self.failures - 1))
        # Jitter, so that many clients of a recovering server don't come back in step.
        return min(cap, delay * random.uniform(0.5, 1.0) + base * 0.5)


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if text.startswith(type(error).__name__) else f"{type(error).__name__}: {text}"


# -- the widget ----------------------------------------------------------------------------


_TYPE, _DATA, _ID = operator.itemgetter(0), operator.itemgetter(1), operator.itemgetter(2)


def _channel_type(event: str) -> str | None:
    if event == "message":
        return None
    # A feed may not speak for us: types we reserve are shown with a marker instead.
    return f"external:{event}" if event.startswith(RESERVED_PREFIX) else event


class EventFeed(EventStream):
    """An external SSE endpoint, observed from Python and shown in the notebook.

    Made by :func:`connect`, which checks the request; see there for the parameters.

    Python sees the events in three ways that work even while a cell is busy
    (:attr:`events`, :meth:`wait`, ``async for``), and through traits and :meth:`on`
    callbacks, which run on the kernel's main thread once the cell is idle.
    """

    status = traitlets.Enum(FEED_STATES, default_value="connecting", read_only=True).tag(sync=True)
    error = traitlets.Unicode("", read_only=True).tag(sync=True)
    source = traitlets.Unicode("", read_only=True).tag(sync=True)
    via = traitlets.Enum(VIAS, default_value="kernel", read_only=True).tag(sync=True)
    browser_url = traitlets.Unicode("", read_only=True).tag(sync=True)
    browser_events = traitlets.List(traitlets.Unicode(), read_only=True).tag(sync=True)
    last_event = traitlets.Instance(Event, allow_none=True, read_only=True)
    count = traitlets.Int(0, read_only=True)

    def __init__(
        self, request: _Request, *, view: str = "log", history: int = 10_000, **kwargs: Any
    ) -> None:
        if not isinstance(request, _Request):
            raise TypeError("make an EventFeed with sse_widget.connect(url, ...)")
        self._record = _Record(history)
        self._handlers: dict[str, list[Callback]] = {}
        self._reported: set[int] = set()
        self._lock = threading.Lock()
        self._apply_lock = threading.RLock()
        self._applying = threading.local()
        self._main_queue: list[tuple[str, Any]] = []  # ("events", rows) or ("status", ...)
        self._main_scheduled = False
        self._main_rows = 0  # events waiting for the main thread
        self._main_limit = history
        self._enqueued = 0  # events ever queued for it (the count trait)
        self._skipped = 0
        self._wait_cursor = 0
        self._client: _FeedClient | None = None
        self._types: dict[str, str | None] = {}  # event type -> the channel's type for it
        super().__init__(view, history=history, **kwargs)
        self._dispatch: Dispatcher = dispatcher_for_caller()
        self.set_trait("source", f"{request.method} {_shown_url(request.url)}")
        self.set_trait("via", request.via)
        if request.via == "browser":
            self.set_trait("browser_url", request.url)
            self.set_trait("browser_events", list(request.browser_events))
            self._record.set_status("open")
            self.set_trait("status", "open")
            return
        self._client = _FeedClient(self, request)
        self._server.call_soon(self._client.start)

    # -- from the server thread ------------------------------------------------------------

    def _deliver(self, rows: list[Row]) -> None:
        types = self._types
        names = list(map(_TYPE, rows))
        for name in set(names):
            if name not in types:
                types[name] = _channel_type(name)
        try:
            self._channel.publish_many(list(map(types.__getitem__, names)), list(map(_DATA, rows)))
        except SSEError:
            if not self._channel.closed:
                raise
            # The server was stopped under a running feed: Python still gets the rows.
        # Queued for the main thread before a waiter can see it: wait() and join() then
        # always find the traits' share of what they saw.
        self._to_main("events", rows)
        self._record.add(rows)

    def _state(self, status: str, error: str = "") -> None:
        rec = self._record
        if rec.ended:
            return  # closed or failed: that is final
        if status == rec.status and error == rec.error:
            return
        self._to_main("status", (status, error))
        rec.set_status(status, error)

    def _to_main(self, kind: str, payload: Any) -> None:
        with self._lock:
            q = self._main_queue
            if kind == "events":
                self._enqueued += len(payload)
                self._main_rows += len(payload)
                if q and q[-1][0] == "events":
                    q[-1][1].extend(payload)
                else:
                    q.append((kind, list(payload)))
                if self._main_rows > self._main_limit:
                    self._trim_main()
            else:
                q.append((kind, payload))
            if self._main_scheduled:
                return
            self._main_scheduled = True
        self._dispatch(self._apply)

    def _trim_main(self) -> None:
        # Called with the lock held. A kernel that stays busy runs no callbacks: keep the
        # newest `history` events for them rather than let memory grow without bound.
        extra = self._main_rows - self._main_limit
        for kind, rows in self._main_queue:
            if kind == "events" and extra > 0:
                k = min(extra, len(rows))
                del rows[:k]
                extra -= k
                self._main_rows -= k
                self._skipped += k

    # -- on the main thread ----------------------------------------------------------------

    def _catch_up(self) -> None:
        """Apply what waits for the main thread now, if this thread may (see Dispatcher).

        Not from inside a callback (which may call close(), wait() or join()): the events
        after the current one would then run before the rest of its batch.
        """
        if self._dispatch.may_run_here() and not getattr(self._applying, "on", False):
            self._apply()

    def _apply(self) -> None:
        # One apply at a time, so that callbacks run in order whoever applies.
        with self._apply_lock:
            self._applying.on = True
            try:
                self._apply_queued()
            finally:
                self._applying.on = False

    def _apply_queued(self) -> None:
        with self._lock:
            queue, self._main_queue = self._main_queue, []
            self._main_scheduled = False
            self._main_rows = 0
            skipped, self._skipped = self._skipped, 0
            count = self._enqueued
            handlers = {k: list(v) for k, v in self._handlers.items() if v}
        if skipped and handlers:
            print(
                f"sse_widget: callbacks of {self.source} fell {skipped:,} events behind while "
                "the kernel was busy, and the oldest were skipped; feed.events and feed.wait() "
                "still have them (up to history=)",
                file=sys.stderr,
            )
        every = handlers.get("*", [])
        for kind, payload in queue:
            if kind == "status":
                status, error = payload
                with self.hold_trait_notifications():
                    self.set_trait("error", error)
                    self.set_trait("status", status)
                continue
            if not payload:
                continue
            self.set_trait("last_event", Event(*payload[-1]))
            if not handlers:
                continue
            for row in payload:
                ev = Event(*row)
                for cb in handlers.get(ev.event, []) + every:
                    self._call(cb, ev)
        self.set_trait("count", count)

    def _call(self, cb: Callback, ev: Event) -> None:
        try:
            cb(ev)
        except Exception as exc:
            if id(cb) in self._reported:
                return
            self._reported.add(id(cb))
            name = getattr(cb, "__qualname__", repr(cb))
            print(
                f"sse_widget: the callback {name} for {ev.event!r} events of {self.source} raised "
                f"{type(exc).__name__}: {exc}. The feed goes on; later errors from this callback "
                "are not shown.",
                file=sys.stderr,
            )
            traceback.print_exception(exc, file=sys.stderr)

    # -- observing -------------------------------------------------------------------------

    def on(self, event: str, callback: F | None = None) -> Any:
        """Call ``callback(event)`` for each event of type ``event`` (``"*"``: all events).

        Callbacks run in order, once per event, on the kernel's main thread: when it is
        idle, or inside :meth:`wait`, :meth:`join` and :meth:`close`. (In a plain Python
        process, on a thread of ours, or inside those calls.) A callback that raises is
        reported once and the feed goes on. Without ``callback``, returns a decorator.
        """
        if not isinstance(event, str) or not event:
            raise TypeError(f"event must be an event type such as 'message', or '*'; got {event!r}")

        def register(cb: F) -> F:
            if not callable(cb):
                raise TypeError(f"callback must be callable; got {type(cb).__name__}")
            with self._lock:
                self._handlers.setdefault(event, []).append(cb)
            return cb

        return register if callback is None else register(callback)

    def off(self, event: str, callback: Callback) -> None:
        """Stop calling ``callback`` for ``event``; does nothing if it was not registered."""
        with self._lock, contextlib.suppress(KeyError, ValueError):
            self._handlers[event].remove(callback)

    @property
    def events(self) -> list[Event]:
        """The events received so far (the last ``history`` of them), oldest first."""
        self._no_browser("feed.events")
        return self._record.events()

    def __len__(self) -> int:
        """How many events arrived, also while a cell is busy (``count`` lags until idle)."""
        return self._record.total

    def wait(self, event: str | None = None, timeout: float | None = 30.0) -> Event:
        """Block until the next event (of type ``event``, if given) and return it.

        Each call returns the event after the one the previous call returned, starting with
        the feed's first event, so ``while True: feed.wait()`` sees every event. It waits on
        a thread-safe condition, so it works inside a busy cell. Before it returns, the
        traits and ``on()`` callbacks catch up with what arrived (on the kernel's thread).

        Raises
        ------
        TimeoutError
            If no such event arrives within ``timeout`` seconds (None: wait for ever).
        sse_widget.FeedError
            If the feed ends first.
        """
        self._no_browser("feed.wait()")
        rec = self._record
        deadline = None if timeout is None else time.monotonic() + timeout
        scan = self._wait_cursor
        with rec.cond:
            while True:
                # The cursor moves only with an event returned: a call that times out
                # consumes nothing; `scan` just avoids looking at the same events twice.
                scan, ev = rec.next_after(scan, event)
                if ev is not None:
                    self._wait_cursor = scan
                    break
                if rec.ended:
                    raise FeedError(self._ended_text(event))
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    what = "an event" if event is None else f"an {event!r} event"
                    raise TimeoutError(
                        f"expected {what} within {timeout:g} s; got none (feed {rec.status}, "
                        f"{rec.total} events so far)"
                    )
                rec.cond.wait(left)
        self._catch_up()
        return ev

    def join(self, timeout: float | None = None) -> str:
        """Block until the feed has ended; returns its final status (``closed``/``error``)."""
        self._no_browser("feed.join()")
        rec = self._record
        if not rec.done.wait(timeout):
            raise TimeoutError(
                f"expected the feed to end within {timeout:g} s; it is still {rec.status}"
            )
        self._catch_up()
        return rec.status

    def __aiter__(self) -> AsyncIterator[Event]:
        self._no_browser("async for")
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        rec = self._record
        cursor = 0
        loop = asyncio.get_running_loop()
        while True:
            with rec.cond:
                cursor, ev = rec.next_after(cursor, None)
                if ev is None:
                    if rec.ended:
                        if rec.status == "error":
                            raise FeedError(rec.error)
                        return
                    fut: asyncio.Future[None] = loop.create_future()
                    rec.waiters.append((loop, fut))
            if ev is not None:
                yield ev
            else:
                await fut

    def _ended_text(self, event: str | None) -> str:
        rec = self._record
        what = "an event" if event is None else f"an {event!r} event"
        why = f": {rec.error}" if rec.error else ""
        return f"the feed ended ({rec.status}{why}) before {what} arrived"

    def _no_browser(self, what: str) -> None:
        if self.via == "browser":
            raise FeedError(
                f"{what} needs the events in Python, but via='browser' shows them only in the "
                "browser; use via='kernel' (the default)"
            )

    # -- not for feeds ---------------------------------------------------------------------

    def send(self, data: object, event: str | None = None) -> int:
        """Not for feeds: raises ``SSEError`` (a feed shows what its URL sends)."""
        raise SSEError("a feed shows what its URL sends; to publish events, use an EventStream")

    def publisher(self) -> Any:
        """Not for feeds: raises ``SSEError`` (a feed shows what its URL sends)."""
        raise SSEError("a feed shows what its URL sends; to publish events, use an EventStream")

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the feed at once: the connection is cut, status becomes ``"closed"``.

        The widget stays on the page with what arrived; :attr:`events` stays readable.
        """
        if "_record" not in self.__dict__:
            return  # __init__ refused its arguments: nothing was started
        if self._client is not None:
            self._server.call_soon(self._client.abort)
        else:
            self._state("closed")
        self._record.done.wait(5.0)
        self._catch_up()

    def __enter__(self) -> EventFeed:
        return self

    def __repr__(self) -> str:
        rec = self._record
        why = f" ({rec.error})" if rec.error else ""
        return f"<EventFeed {self.source}: {rec.status}{why}, {rec.total} events>"


def connect(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, Any] | None = None,
    json: Any = None,
    body: bytes | str | None = None,
    last_event_id: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    verify: bool | str = True,
    view: str = "log",
    history: int = 10_000,
    reconnect: bool | None = None,
    dispatch_incomplete: bool = False,
    retry_ms: int = DEFAULT_RETRY_MS,
    max_backoff: float = DEFAULT_MAX_BACKOFF,
    max_line_bytes: int = 1 << 20,
    via: str = "kernel",
    events: Iterable[str] = ("message",),
    title: str = "",
    **kwargs: Any,
) -> EventFeed:
    """Attach to an external SSE endpoint; returns an :class:`EventFeed` widget.

    Parameters
    ----------
    url:
        An ``http://`` or ``https://`` URL. ``params`` are added to its query string.
    method, headers, json, body:
        The request. ``json=`` sends a JSON body (and ``Content-Type: application/json``).
        ``Accept: text/event-stream`` and ``Cache-Control: no-store`` are always sent
        unless ``headers`` say otherwise.
    last_event_id:
        Resume a stream: sent as ``Last-Event-ID`` on the first request.
    timeout:
        Seconds to connect, and seconds without a byte (keep-alive comments count) after
        which the connection is taken for dead. None: no limit.
    verify:
        Check the server's TLS certificate (default), or a path to a CA bundle; False
        skips the check.
    history:
        How many events :attr:`EventFeed.events` and the server keep.
    reconnect:
        Reconnect when the stream ends or fails. Default: True for GET, False for every
        other method, because a POST (an LLM prompt) is not idempotent.
    dispatch_incomplete:
        At the clean end of a stream, also emit a last event that has no closing blank
        line (the spec drops it; some LLM APIs end that way).
    retry_ms, max_backoff:
        The reconnection time until the stream sets one with ``retry:``, and the cap (in
        seconds) of the exponential back-off between repeated failures.
    max_line_bytes:
        The longest line accepted; a longer one ends the feed with an error.
    via:
        ``"kernel"`` (default): the kernel reads the URL. ``"browser"``: the browser opens
        its own EventSource to it. That needs a public, CORS-enabled GET URL, shows only
        the types listed in ``events``, and Python sees no events.
    view, title, **kwargs:
        As for :class:`~sse_widget.EventStream`.

    Examples
    --------
    >>> feed = connect("http://127.0.0.1:8000/stream")             # doctest: +SKIP
    >>> feed.on("update", lambda ev: print(ev.json()))              # doctest: +SKIP
    >>> llm = connect("https://api.example.com/v1/chat", method="POST",
    ...               headers={"Authorization": "Bearer ..."},
    ...               json={"stream": True, "messages": []})        # doctest: +SKIP
    """
    if not isinstance(method, str) or not method.isalpha():
        raise ValueError(f"method must be an HTTP method name such as 'POST'; got {method!r}")
    method = method.upper()
    url = _check_url(url, params)
    data = _request_body(method, json, body)
    request_headers = _request_headers(headers, last_event_id, json is not None)
    _positive("timeout", timeout, allow_none=True)
    _positive("max_backoff", max_backoff)
    if isinstance(retry_ms, bool) or not isinstance(retry_ms, int) or retry_ms < 0:
        raise ValueError(f"retry_ms must be a non-negative int (milliseconds); got {retry_ms!r}")
    if not isinstance(verify, (bool, str)):
        raise TypeError(f"verify must be a bool or a CA bundle path; got {type(verify).__name__}")
    if via not in VIAS:
        raise ValueError(f"via must be one of {', '.join(VIAS)}; got {via!r}")
    if via == "browser":
        _check_browser(method, headers, data, last_event_id)
    request = _Request(
        url=url,
        method=method,
        headers=request_headers,
        body=data,
        last_event_id=last_event_id or "",
        timeout=timeout,
        validate_cert=verify is not False,
        ca_certs=verify if isinstance(verify, str) else None,
        reconnect=method == "GET" if reconnect is None else bool(reconnect),
        dispatch_incomplete=bool(dispatch_incomplete),
        retry_ms=retry_ms,
        max_backoff=float(max_backoff),
        max_line_bytes=max_line_bytes,
        via=via,
        browser_events=(events,) if isinstance(events, str) else tuple(events),
    )
    return EventFeed(request, view=view, history=history, title=title, **kwargs)


def _check_browser(
    method: str, headers: Mapping[str, str] | None, data: bytes | None, last_event_id: str | None
) -> None:
    extra = [
        name
        for name, given in (
            ("method='POST'", method != "GET"),
            ("headers=", bool(headers)),
            ("json=/body=", data is not None),
            ("last_event_id=", bool(last_event_id)),
        )
        if given
    ]
    if extra:
        raise ValueError(
            "via='browser' opens the browser's own EventSource, which can only GET a "
            f"URL: it cannot send {', '.join(extra)}; use via='kernel' (the default)"
        )
