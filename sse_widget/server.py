"""The kernel's event server: Tornado on a daemon thread with its own event loop.

One :class:`EventServer` per process, created lazily by :func:`get_server`, stopped at
interpreter exit, and replaced (not inherited) in a child after ``os.fork()``. The only
calls that cross into the server thread are ``IOLoop.add_callback`` and
``loop.call_soon_threadsafe``; no loop-bound object is created at import time.

Endpoints (all but ``/health`` need the server's key, as ``?key=`` or
``Authorization: Bearer``; ``token`` is avoided because jupyter-server-proxy takes it):

``GET /streams/<name>``
    A standard SSE stream (``id:``, ``event:``, ``data:``) for curl or any client.
``GET /events?streams=a[:id],b[:id]``
    The multiplexed stream the widgets use: one connection for every stream on a page.
    Each message's ``id`` is the largest event id in it and each ``data`` line is the
    JSON array ``[id, "stream", "type", "data"]``.
``POST /streams/<name>``
    Publish from another process: JSON ``{"data": ..., "event": ..., "id": ...}`` (or a
    list of them) or ``text/plain`` with ``?event=``.
``GET /health``
    Liveness, without a key.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import hmac
import ipaddress
import json
import logging
import math
import os
import secrets
import selectors
import socket
import sys
import threading
import weakref
from bisect import bisect_left
from collections.abc import Callable, Sized
from itertools import accumulate
from types import TracebackType
from typing import Any
from urllib.parse import quote

from tornado.http1connection import HTTP1Connection
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop, PeriodicCallback
from tornado.iostream import IOStream
from tornado.netutil import bind_sockets
from tornado.web import Application, HTTPError, RequestHandler, stream_request_body

from .channels import (
    GAP_EVENT,
    GIL_ENABLED,
    Channel,
    ChannelRegistry,
    check_user_event,
    collect_mux,
)
from .errors import EncodeError, SSEError, shown
from .protocol import check_id, check_text
from .serialize import to_text

__all__ = ["EventServer", "get_server"]

log = logging.getLogger("sse_widget")

DEFAULT_KEEPALIVE = 15.0
DEFAULT_WATERMARK = 1 << 20
DEFAULT_MAX_BODY = 1 << 20
DEFAULT_RETRY_MS = 1000
# How many times one drain looks again for events published while it was sending.
_DRAIN_ROUNDS = 8
# Watermarks' worth of bytes one client writes before the others get a turn.
_PUMP_WATERMARKS = 4
# Seconds a connection may sit without sending a request's head (twice that for a body).
_IDLE_TIMEOUT = 30.0
# About the size of one multiplexed SSE message (a chunk holds several).
_MUX_MESSAGE = 64 << 10
# How many times (10 ms apart) closing a stream waits for an event still on its way.
_CLOSE_WAITS = 50
# Scatter-gather sends (not on Windows): a chunk's framing is not copied around its data.
_SENDMSG = hasattr(socket.socket, "sendmsg")


class _Client:
    """One streaming response: a cursor per channel into their shared histories.

    It is driven by callbacks on the server thread, not by a coroutine per client: a
    drain writes straight to every idle client, and a flush's completion writes what
    piled up meanwhile. Tornado never queues more than one chunk (about one watermark)
    for a client, so a reader that never reads costs one chunk of memory, and the history.
    """

    __slots__ = (
        "busy",
        "closed",
        "cursors",
        "done",
        "handler",
        "last_write",
        "single",
        "started",
    )

    def __init__(self, handler: _Handler, cursors: dict[Channel, int], single: bool) -> None:
        self.handler = handler
        self.cursors = cursors
        self.single = single
        self.busy = False
        self.closed = False
        self.started = False  # the response head has been sent
        self.last_write = 0.0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def notify(self) -> None:
        if not self.busy and not self.closed:
            self.pump()

    def pump(self, extra: bytes = b"") -> None:
        """Write what is pending, a chunk (about one watermark) at a time.

        A chunk the socket takes whole is followed by the next at once; otherwise the
        rest is queued and the flush's completion carries on. After a few watermarks'
        worth the client lets the others and the loop have a turn: while a notebook
        sends, each write lets it publish more, so one keeping-up reader could otherwise
        hold the server thread for as long as the notebook sends. (Counted in bytes, not
        writes: a paced stream's small writes never wait for a turn of the loop.)
        """
        handler = self.handler
        commit = handler.server._commit
        budget = _PUMP_WATERMARKS * handler.server.watermark
        while budget > 0:
            commit()
            chunk = handler.collect(self)
            if chunk is None:
                self.close()
                return
            if not chunk and not extra:
                return
            self.last_write = handler.server.now()
            data = extra + chunk if extra else chunk
            extra = b""
            stream = self._idle_stream()
            if stream is None:
                self.busy = True
                handler.write(data)
                handler.flush().add_done_callback(self._flushed)
                return
            if not self._send_now(stream, data):
                return
            budget -= len(data)
        self.busy = True  # nothing else writes meanwhile; the turn comes back below
        IOLoop.current().add_callback(self._resume)

    def _resume(self) -> None:
        self.busy = False
        if not self.closed:
            self.pump()

    def _idle_stream(self) -> IOStream | None:
        """The client's plain TCP stream, if the response has started and nothing is queued.

        Tornado's own write path costs futures whose callbacks each take a turn of the
        loop, and while the notebook computes every turn is a GIL hand-over (~5 ms): an
        event would wait two or three of them. So once the headers are out, a chunk goes
        straight to the socket whenever Tornado has nothing of its own waiting to be sent
        (so the order of bytes is kept), and only what the socket refuses is queued.
        """
        conn = self.handler.request.connection
        stream = getattr(conn, "stream", None)
        if (
            not self.started
            or type(stream) is not IOStream
            or stream.closed()
            or _unsent(stream) != 0
            or not hasattr(conn, "_format_chunk")
        ):
            return None
        return stream

    def _send_now(self, stream: IOStream, data: bytes) -> bool:
        """Send ``data`` as the response's next chunk; True if the socket took it all.

        The chunk's size line and ending go out beside the data in one ``sendmsg``, so the
        data (up to a watermark) is not copied into a framed whole first; only what the
        socket refuses is joined, to be queued.
        """
        conn = self.handler.request.connection
        if getattr(conn, "_chunking_output", False) and (
            getattr(conn, "_expected_content_remaining", 0) is None
        ):
            parts = [b"%x\r\n" % len(data), data, b"\r\n"]
        else:  # not chunked (an HTTP/1.0 reader): as Tornado frames it
            parts = [conn._format_chunk(data)]  # type: ignore[union-attr]
        if not _SENDMSG:
            parts = [b"".join(parts)]
        size = sum(map(len, parts))
        try:
            sock = stream.socket
            sent = sock.sendmsg(parts) if _SENDMSG else sock.send(parts[0])
        except BlockingIOError:
            sent = 0
        except OSError:  # the reader is gone: Tornado's close callback cleans up
            self.close()
            stream.close()
            return False
        if sent == size:
            return True
        self.busy = True
        stream.write(memoryview(b"".join(parts))[sent:]).add_done_callback(self._flushed)
        return False

    def _flushed(self, fut: asyncio.Future[None]) -> None:
        self.busy = False
        self.started = True
        if fut.exception() is not None:  # StreamClosedError: the reader is gone
            self.close()
        elif not self.closed:
            self.pump()

    def ping(self) -> None:
        if not self.busy and not self.closed:
            self.pump(b": ping\n")

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if not self.done.done():
                self.done.set_result(None)

    def buffered(self) -> int:
        """Bytes written to this client that its socket has not taken yet (for tests)."""
        size = _unsent(getattr(self.handler.request.connection, "stream", None))
        if size is None:
            raise RuntimeError("this Tornado does not say how much a stream has queued")
        return size


class _DrainingSelector(selectors.DefaultSelector):
    """The server loop's selector: it sends what was published right before and after a wait.

    While a notebook computes, each time the server thread lets go of the GIL, getting it
    back takes a hand-over (up to 5 ms, Python's switch interval). The loop lets go of it
    on each of its own system calls: the wait, then reading its wake-up pipe, then the
    next wait. An event published in that stretch waited for all of them (10-20 ms) before
    the callback that sends it ran. Drained here, it goes out after one hand-over at most.
    """

    def __init__(self, drain: Callable[[], None], pending: Callable[[], bool]) -> None:
        super().__init__()
        self._drain = drain
        self._pending = pending
        # True while the thread may be asleep in the wait: only then does a publisher
        # need to wake it (a wake-up costs the loop two more system calls to read).
        self.waiting = False
        self._queues: tuple[Sized, ...] = ()

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Know ``loop``'s queues of callbacks and timers, to see what a drain adds to them.

        The loop worked out how long to wait before it called :meth:`select`; a callback
        or timer the drain just added (a reader's next turn, a retry) would wait out that
        old timeout, up to the 1 s tick. These are asyncio's private queues, read with a
        fallback: without them the selector only loses that shortcut.
        """
        queues = (getattr(loop, "_ready", None), getattr(loop, "_scheduled", None))
        self._queues = tuple(q for q in queues if isinstance(q, Sized))

    def _queued(self) -> int:
        return sum(map(len, self._queues))

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        queued = self._queued()
        self._drain()
        self.waiting = True
        try:
            # Set before this last look: a publisher that found it unset stored its event
            # first, so the event is seen here; any later one sees it set and wakes us.
            if self._pending() or self._queued() != queued:
                timeout = 0
            ready = super().select(timeout)
        finally:
            self.waiting = False
        self._drain()
        return ready


def _unsent(stream: object) -> int | None:
    """Bytes queued in a Tornado IOStream that its socket has not taken, or None if unknown.

    Tornado 6 counts bytes queued and bytes written in two private counters.
    """
    queued = getattr(stream, "_total_write_index", None)
    done = getattr(stream, "_total_write_done_index", None)
    if isinstance(queued, int) and isinstance(done, int):
        return queued - done
    return None


class _JSONErrors(RequestHandler):
    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Errors Tornado raises itself (a method we do not serve, an uncaught error)
        # answer in JSON like ours, not with its HTML page.
        message = self._reason
        if status_code == 405:
            allowed = [
                m
                for m in ("GET", "POST", "OPTIONS")
                if getattr(type(self), m.lower()) is not getattr(RequestHandler, m.lower())
            ]
            message = f"method {self.request.method} is not served here"
            if allowed:
                self.set_header("Allow", ", ".join(allowed))
                expected = " or ".join(
                    [", ".join(allowed[:-1]), allowed[-1]] if allowed[1:] else allowed
                )
                message += f"; expected {expected}"
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"error": message}))

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Tornado's own logs the request's whole URI, whose query holds the key. An
        # HTTPError (a method we do not serve) is an answer, not a fault: nothing to log.
        if isinstance(value, HTTPError):
            return
        req = self.request
        log.error(
            "uncaught error in %s %s (from %s)",
            req.method,
            req.path,
            req.remote_ip,
            exc_info=(typ, value, tb) if typ is not None else None,  # type: ignore[arg-type]
        )


class _Handler(_JSONErrors):
    server: EventServer

    def initialize(self, server: EventServer) -> None:
        self.server = server

    def _key_ok(self) -> bool:
        given = self.get_query_argument("key", None)
        if given is None:
            auth = self.request.headers.get("Authorization", "")
            if auth[:7].lower() == "bearer ":
                given = auth[7:].strip()
        if not given:
            return False
        return hmac.compare_digest(given.encode(), self.server.key.encode())

    def prepare(self) -> None:
        if self.request.method == "OPTIONS":
            return
        if not self._key_ok():
            # No body and no CORS headers: a page without the key learns nothing.
            self.set_status(403)
            self.clear_header("Content-Type")
            self.finish()
            return
        origin = self.request.headers.get("Origin")
        if origin:
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Vary", "Origin")

    def options(self, *args: str) -> None:
        # Preflight carries no credentials; answer for any origin, the real request still
        # needs the key. Chrome's Private Network Access asks before a public page may
        # reach loopback.
        origin = self.request.headers.get("Origin")
        if origin:
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Vary", "Origin")
            self.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
            self.set_header(
                "Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID"
            )
            self.set_header("Access-Control-Max-Age", "600")
        if self.request.headers.get("Access-Control-Request-Private-Network") == "true":
            self.set_header("Access-Control-Allow-Private-Network", "true")
        self.set_status(204)

    def fail(self, status: int, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"error": message}))

    def _resume_floor(self) -> int | None:
        """The resume id from ``Last-Event-ID`` or ``?last_id=``, or None; 400 if malformed."""
        source = "header Last-Event-ID"
        raw = self.request.headers.get("Last-Event-ID")
        if raw is None or raw == "":
            source = "query parameter last_id"
            raw = self.get_query_argument("last_id", None)
        if raw is None or raw == "":
            return None
        if not _is_event_id(raw):
            self.fail(
                400, f"{source} must be a non-negative integer (an event id); got {shown(raw)}"
            )
            raise _Finished
        return int(raw)

    async def _serve(self, cursors: dict[Channel, int], single: bool) -> None:
        server = self.server
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Accel-Buffering", "no")
        client = _Client(self, cursors, single)
        self._client = client
        subscribed = list(cursors)  # a stream closed meanwhile leaves `cursors`, not this
        for ch in subscribed:
            ch.subscribers.add(client)
        server.clients.add(client)
        try:
            # retry: and a comment flush the head at once, so EventSource opens now. Neither
            # this nor the pings end with a blank line: that dispatches nothing per the spec,
            # but some clients (httpx-sse) turn it into an empty "phantom" event.
            client.pump(b"retry: %d\n: sse_widget\n" % server.retry_ms)
            await client.done
        finally:
            client.closed = True
            for ch in subscribed:
                ch.subscribers.discard(client)
            server.clients.discard(client)

    def collect(self, client: _Client) -> bytes | None:
        """The next chunk for ``client`` (b"" if nothing is pending, None when it ended)."""
        limit = self.server.watermark
        if client.single:
            ((ch, cursor),) = client.cursors.items()
            head = b""
            gap = ch.gap_after(cursor)
            if gap:
                head = b"event: %s\ndata: %s\n\n" % (GAP_EVENT.encode(), gap.encode())
                cursor = ch.skip_gap(cursor)
            chunk, client.cursors[ch] = ch.sse_after(cursor, limit)
            if head:
                return head + chunk
            # A closed stream still sends what its reader has not had, then ends.
            return None if not chunk and ch.ended else chunk
        lines, top, gaps = collect_mux(client.cursors, limit)
        if not lines:
            # Every stream it listed is closed and delivered: end, so that the page's
            # EventSource does not hold one of its few connections for nothing.
            return None if not client.cursors else b""
        return _mux_messages(lines, top, gaps)

    def on_connection_close(self) -> None:
        super().on_connection_close()  # ends a body still being read, or its handler leaks
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()


def _is_event_id(text: str) -> bool:
    # ASCII digits only (int() would also take "1_0", " 7" and other scripts' digits),
    # and no longer than any id can be (int() refuses 4,300 digits with a ValueError).
    return text.isascii() and text.isdigit() and len(text) <= 20


def _mux_messages(lines: list[str], top: int, gaps: int) -> bytes:
    """Multiplexed lines framed as SSE messages of about :data:`_MUX_MESSAGE` bytes.

    A message is dispatched only when it arrived whole, and its id is where a reconnect
    resumes: one message as large as the watermark would never get through to a client
    whose connection keeps dropping sooner. After the ``gaps`` leading gap lines, lines
    are in id order, so the id of a message's last line is a place every stream can
    resume from; the gap lines (whose first field is an old cursor) stay in the first.
    """
    ends = list(accumulate(map(len, lines)))  # framing left out: "about" is enough
    cuts = [bisect_left(ends, m) + 1 for m in range(_MUX_MESSAGE, ends[-1], _MUX_MESSAGE)]
    out = []
    start = 0
    for end in [*(c for c in cuts if gaps < c < len(lines)), len(lines)]:
        if end <= start:
            continue
        last = lines[end - 1]
        msg_id = top if end == len(lines) else int(last[1 : last.index(",")])
        body = "\ndata: ".join(lines[start:end]).encode("utf-8")
        out.append(b"id: %d\ndata: %s\n\n" % (msg_id, body) if msg_id else b"data: %s\n\n" % body)
        start = end
    return b"".join(out)


class _Finished(Exception):
    """The handler already answered (an error); stop processing."""


@stream_request_body
class _StreamHandler(_Handler):
    """``GET`` (one stream's SSE) and ``POST`` (publish) of ``/streams/<name>``.

    The POST body is read as it arrives, so a body over the limit is counted and dropped
    rather than held, and its sender gets a 413 however large it was.
    """

    _chunks: list[bytes]
    _size = 0

    def prepare(self) -> None:
        super().prepare()
        if self._finished or self.request.method != "POST":
            return
        self._chunks = []
        limit = self.server.max_body
        # Bodies up to the cap are read to the end (and dropped past the limit) so that
        # the client, which sends the whole body before it reads, gets its 413; a longer
        # declared body is refused at once and the connection closed.
        cap = max(limit * 64, 64 << 20)
        length = self.request.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > cap:
            return self.fail(413, f"body must be at most {limit} bytes; got {int(length)}")
        conn = self.request.connection
        if isinstance(conn, HTTP1Connection):
            conn.set_max_body_size(cap)
        return None

    def data_received(self, chunk: bytes) -> None:
        if self.request.method != "POST":
            return  # a body on another method means nothing here
        self._size += len(chunk)
        if self._size <= self.server.max_body:
            self._chunks.append(chunk)

    async def get(self, name: str) -> None:
        ch = self.server.registry.get(name)
        if ch is None:
            return self.fail(404, f"no stream named {name!r}")
        try:
            floor = self._resume_floor()
        except _Finished:
            return None
        await self._serve({ch: ch.start_cursor(floor)}, single=True)
        return None

    def post(self, name: str) -> None:
        ch = self.server.registry.get(name)
        if ch is None:
            return self.fail(404, f"no stream named {name!r}")
        limit = self.server.max_body
        if self._size > limit:
            return self.fail(413, f"body must be at most {limit} bytes; got {self._size}")
        body = b"".join(self._chunks)
        ctype = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        try:
            if ctype == "application/json":
                items = _parse_json_body(body)
            elif ctype.startswith("text/") or ctype == "":
                items = [_parse_text_body(body, self.get_query_argument("event", None))]
            else:
                return self.fail(
                    415,
                    f"Content-Type must be application/json or text/plain; got {ctype!r}"
                    + (
                        " (curl -d sends that: add -H 'Content-Type: text/plain')"
                        if "form" in ctype
                        else ""
                    ),
                )
        except (ValueError, TypeError) as exc:
            return self.fail(400, str(exc))
        ids: list[int] = []
        try:
            for data, event, key in items:
                if key is None:
                    ids.append(ch.publish(data, event))
                else:
                    ids.append(ch.publish_once(key, data, event))
        except SSEError:
            # The body was checked above, so only a close() since the lookup refuses it.
            # The answer says which events went out before, so a caller can account for them.
            return self.fail(
                404,
                f"stream {name!r} was closed while this request was being published: "
                f"{len(ids)} of {len(items)} events went out before it closed (ids {ids})",
            )
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"ids": ids}))
        return None


def _parse_text_body(body: bytes, event: str | None) -> tuple[str, str | None, None]:
    try:
        data = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"text body must be UTF-8; got byte 0x{body[exc.start]:02x} at offset {exc.start}"
        ) from None
    if event is not None:
        _check_field("event", event, check_user_event)
    return data, event, None


def _check_field(field: str, value: Any, check: Callable[[str], str]) -> str:
    if not isinstance(value, str):
        raise ValueError(
            f"field {field!r} must be a string; got {type(value).__name__}: {shown(value)}"
        )
    try:
        return check(value)
    except EncodeError as exc:
        raise ValueError(f"field {field!r}: {exc}") from None


class _NotStandardJSON(ValueError):
    pass


def _refuse_constant(name: str) -> None:
    # Python's json reads NaN and Infinity; no other JSON reader does, so say so at once.
    raise _NotStandardJSON(f"body is not standard JSON: expected a number or null; got {name}")


def _parse_json_body(body: bytes) -> list[tuple[str, str | None, str | None]]:
    try:
        obj = json.loads(body, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"body is not valid JSON: {exc}; it starts {body[:80]!r}") from None
    except RecursionError:
        raise ValueError(
            "body is nested too deeply: expected an object or a list of objects; "
            f"it starts {body[:80]!r}"
        ) from None
    except _NotStandardJSON:
        raise
    except ValueError as exc:  # an integer longer than Python reads (4,300 digits)
        raise ValueError(f"body holds a number JSON readers cannot take: {exc}") from None
    objs = obj if isinstance(obj, list) else [obj]
    items = []
    for n, item in enumerate(objs):
        where = f"item {n}: " if isinstance(obj, list) else ""
        if not isinstance(item, dict):
            raise ValueError(
                f'{where}expected an object {{"data": ..., "event": ...}}; '
                f"got {type(item).__name__}"
            )
        if "data" not in item:
            raise ValueError(f'{where}field "data" is missing; got fields {sorted(item)}')
        unknown = set(item) - {"data", "event", "id"}
        if unknown:
            raise ValueError(
                f'{where}unknown fields {sorted(unknown)}; expected "data", "event", "id"'
            )
        data = to_text(item["data"])  # JSON values: the same text send() would make
        event = item.get("event")
        key = item.get("id")
        try:
            _check_field("data", data, check_text)
            if event is not None:
                _check_field("event", event, check_user_event)
            if key is not None:
                _check_field("id", key, check_id)
        except ValueError as exc:
            raise ValueError(f"{where}{exc}") from None
        items.append((data, event, key))
    return items


class _MuxHandler(_Handler):
    async def get(self) -> None:
        registry = self.server.registry
        try:
            floor = self._resume_floor()
        except _Finished:
            return
        raw = self.get_query_argument("streams", "")
        cursors: dict[Channel, int] = {}
        unknown: list[str] = []
        for part in raw.split(","):
            if not part:
                continue
            name, sep, last = part.partition(":")
            ch = registry.get(name)
            if ch is None:
                # A page may still list a stream that was closed; the browser reconnects
                # with the same URL, so one closed stream must not cut off the others.
                unknown.append(name)
                continue
            cursor: int | None = None
            if sep:
                if not _is_event_id(last):
                    return self.fail(
                        400,
                        f"resume id for stream {name!r} must be a non-negative integer "
                        f"(an event id); got {shown(last)}",
                    )
                cursor = int(last)
            # Browsers reconnect with Last-Event-ID = the last whole message's id; since ids
            # are one sequence, everything up to it was delivered for every stream.
            if floor is not None and (cursor is None or floor > cursor):
                cursor = floor
            cursors[ch] = ch.start_cursor(cursor)
        if not cursors:
            if unknown:
                return self.fail(404, f"no stream named {unknown[0]!r}")
            return self.fail(
                400,
                "query parameter 'streams' must name at least one stream, as a,b or a:17,b:20; "
                f"got {shown(raw)}",
            )
        await self._serve(cursors, single=False)


class _NotFoundHandler(_JSONErrors):
    def prepare(self) -> None:
        self.set_status(404)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(
            json.dumps(
                {
                    "error": "no such endpoint; expected /streams/<name>, /events or /health; "
                    f"got {shown(self.request.path)}"
                }
            )
        )


class _HealthHandler(_JSONErrors):
    def get(self) -> None:
        from . import __version__

        self.set_header("Cache-Control", "no-store")
        self.finish({"status": "ok", "version": __version__})


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _setting(name: str, default: float, kind: type[float], expected: str) -> float:
    """``$name`` read as ``kind``, or ``default`` when it is unset or empty."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be {expected}; got {raw!r}") from None


class EventServer:
    """A Tornado SSE server on its own daemon thread.

    Parameters
    ----------
    host, port:
        Where to listen. Default ``127.0.0.1`` (or ``$SSE_WIDGET_HOST``) on a free port
        (or ``$SSE_WIDGET_PORT``).
    public_url:
        The URL browsers should use, e.g. behind a reverse proxy (default
        ``$SSE_WIDGET_PUBLIC_URL``, else ``http://host:port``).
    keepalive:
        Seconds between keep-alive comments on an idle stream (default 15, or
        ``$SSE_WIDGET_KEEPALIVE``).
    watermark:
        Bytes written to one client before waiting for its socket to drain.
    max_body:
        Largest accepted POST body, in bytes.
    retry_ms:
        The reconnection delay each stream announces first (``retry:``), in milliseconds.
    """

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        public_url: str | None = None,
        keepalive: float | None = None,
        watermark: int = DEFAULT_WATERMARK,
        max_body: int = DEFAULT_MAX_BODY,
        retry_ms: int = DEFAULT_RETRY_MS,
    ) -> None:
        self.host = host or os.environ.get("SSE_WIDGET_HOST") or "127.0.0.1"
        if port is None:
            port = int(_setting("SSE_WIDGET_PORT", 0, int, "an integer from 0 to 65535"))
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be an integer from 0 to 65535 (0: a free one); got {port}")
        self.port = port
        self._public_url = public_url or os.environ.get("SSE_WIDGET_PUBLIC_URL") or None
        if self._public_url is not None and not self._public_url.startswith(
            ("http://", "https://")
        ):
            raise ValueError(
                "the public URL (SSE_WIDGET_PUBLIC_URL) must start with http:// or https://; "
                f"got {self._public_url!r}"
            )
        if keepalive is None:
            keepalive = _setting(
                "SSE_WIDGET_KEEPALIVE", DEFAULT_KEEPALIVE, float, "a number of seconds above 0"
            )
        if not 0 < keepalive < math.inf:
            raise ValueError(f"keepalive must be a number of seconds above 0; got {keepalive}")
        self.keepalive = keepalive
        self.watermark = watermark
        self.max_body = max_body
        self.retry_ms = retry_ms
        self.key = secrets.token_urlsafe(32)
        self.clients: set[_Client] = set()
        self.registry = ChannelRegistry(self._wake, self._wake_later)
        self._ioloop: IOLoop | None = None
        self._selector: _DrainingSelector | None = None  # None: always wake (Windows)
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._start_lock = threading.Lock()
        self.now: Callable[[], float] = lambda: 0.0
        self.pid = os.getpid()
        self._stopped = False
        self._committed: set[Channel] = set()  # by _commit, their readers not told yet
        self._sockets: list[socket.socket] = []  # listening
        self._http: HTTPServer | None = None
        _servers.add(self)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> EventServer:
        """Start the server thread (idempotent) and wait until it listens.

        Raises ``RuntimeError`` once the server was stopped: a stopped server does not
        start again (``get_server()`` makes a new one).
        """
        if self._stopped:
            raise RuntimeError(
                "this EventServer was stopped and cannot start again; use get_server() or "
                "a new EventServer"
            )
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sse_widget-server", daemon=True
                )
                self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise RuntimeError(
                f"sse_widget's server could not listen on {self.host}:{self.port}: {self._error}"
            ) from self._error
        if self._ioloop is None:
            raise RuntimeError("sse_widget's server thread did not start within 30 s")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close every stream and connection and end the server thread (for good)."""
        loop, thread = self._ioloop, self._thread
        if thread is not None and threading.current_thread() is thread:
            raise RuntimeError("EventServer.stop() cannot be called from the server thread")
        # First, so that nothing sent from now on is lost quietly, even if the thread
        # takes longer than `timeout` to end or has died already.
        self._stopped = True
        self._close_channels("is closed: its server was stopped; create a new EventStream")
        if loop is None or thread is None or not thread.is_alive():
            return
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.add_callback(self._begin_stop)
        thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._ioloop is not None

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` was called or the thread has ended (no restart)."""
        return self._stopped or (self._thread is not None and not self._thread.is_alive())

    def _close_channels(self, why: str) -> None:
        # Streams of a server that no longer runs refuse to send rather than lose events.
        for ch in list(self.registry.channels.values()):
            ch.close(f"stream {ch.name!r} {why}")

    def _let_go_after_fork(self, why: str) -> None:
        """In a forked child: refuse sends, and close this copy of the parent's sockets.

        The child has the descriptors but no thread to serve them. Held open, they would
        keep the port listening (a connection would wait, not be refused) and keep every
        reader's connection open after the parent closed it, for as long as the child
        lives. Only the child's descriptors are closed: the parent's sockets, and its
        event loop's registrations, are not touched.
        """
        self.registry.lock = threading.Lock()  # may have been held by another thread
        self._close_channels(why)
        # Tornado's HTTPServer keeps its open connections in _connections (private; read
        # with a fallback): publishers' kept-alive ones as well as readers'.
        conns = getattr(self._http, "_connections", ())
        streams = [getattr(c, "stream", None) for c in list(conns)]
        for sock in [*self._sockets, *(getattr(st, "socket", None) for st in streams)]:
            if isinstance(sock, socket.socket):
                with contextlib.suppress(OSError):
                    sock.close()

    def _run(self) -> None:
        try:
            if sys.platform == "win32":  # asyncio's default there is the proactor loop
                asyncio.run(self._main())
            else:
                self._selector = _DrainingSelector(self._drain_if_dirty, self._has_news)
                loop = asyncio.SelectorEventLoop(self._selector)
                self._selector.watch(loop)
                try:
                    loop.run_until_complete(self._main())
                finally:
                    loop.run_until_complete(loop.shutdown_asyncgens())
                    loop.close()
        except BaseException as exc:  # reported to start()'s caller
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._ioloop = IOLoop.current()
        self._stopping = asyncio.Event()
        args = {"server": self}
        app = Application(
            [
                (r"/streams/([^/]+)", _StreamHandler, args),
                (r"/events", _MuxHandler, args),
                (r"/health", _HealthHandler),
            ],
            # Tornado's own logging would print every 403 into the notebook.
            log_function=lambda handler: None,
            default_handler_class=_NotFoundHandler,
        )
        sockets = bind_sockets(self.port, self.host)
        # Tornado's cap for bodies of other requests; POST /streams/<name> reads its body as
        # it comes and answers 413 above max_body itself.
        # A connection that sends no request (or a request's head) within 30 s, or a body
        # within 60 s, is closed rather than held for Tornado's default hour: idle
        # sockets must not use up the kernel process's open files. Streams are responses,
        # so these never cut one; a publisher reconnects when its kept-alive one was.
        http = HTTPServer(
            app,
            max_body_size=max(self.max_body * 4, 1 << 22),
            idle_connection_timeout=_IDLE_TIMEOUT,
            body_timeout=2 * _IDLE_TIMEOUT,
        )
        http.add_sockets(sockets)
        self._sockets, self._http = sockets, http
        self.port = sockets[0].getsockname()[1]
        if not _is_loopback(self.host):
            log.warning(
                "sse_widget's server listens on %s:%d, reachable from other machines: anyone "
                "with the key can read every stream and publish to it",
                self.host,
                self.port,
            )
        self.now = self._ioloop.time
        pinger = PeriodicCallback(self._tick, min(self.keepalive, 1.0) * 1000)
        pinger.start()
        self._ready.set()
        await self._stopping.wait()
        pinger.stop()
        http.stop()
        # What was sent before stop() goes out first: the streams are closed, so each
        # reader gets what its cursor has not reached and then its stream ends. A reader
        # whose socket takes no more within a second is cut off there.
        read = {ch for client in self.clients for ch in client.cursors}
        self._drain()
        for _ in range(_CLOSE_WAITS):  # as _notify_closed waits, for events on their way
            if all(ch.settled() for ch in read):
                break
            await asyncio.sleep(0.01)
            self._drain()
        for ch in read:
            ch.ended = True  # all closed by stop()
        for client in list(self.clients):
            client.notify()
        deadline = self.now() + 1.0
        while any(c.busy and not c.closed for c in self.clients) and self.now() < deadline:
            await asyncio.sleep(0.01)
        for client in list(self.clients):
            client.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(http.close_all_connections(), 2.0)

    def _begin_stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    # -- cross-thread entry points --------------------------------------------------------

    def call_soon(self, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn(*args)`` on the server thread. Safe from any thread."""
        if self._ioloop is None:
            self.start()
        assert self._ioloop is not None
        self._ioloop.add_callback(fn, *args)

    def _wake(self) -> None:
        # Called by a publisher after it stored its event and marked the registry dirty.
        # A server thread that is not waiting in its selector looks at the registry
        # before it next waits (_DrainingSelector), so only a waiting one is woken.
        # (Without a GIL, the order of the two threads' steps is not assured: always wake.)
        selector = self._selector
        if selector is not None and not selector.waiting and GIL_ENABLED:
            return
        loop = self._ioloop
        if loop is not None:
            loop.add_callback(self._drain)

    def _wake_later(self, delay: float) -> None:
        # Called from a drain, so on the server thread.
        loop = self._ioloop
        if loop is not None:
            loop.call_later(delay, self._drain)

    def _drain(self) -> None:
        # Sending to a socket lets go of the GIL, and a busy notebook publishes more
        # meanwhile: send that too before going back to the loop, since each turn of the
        # loop is another GIL hand-over (~5 ms) while the notebook computes. A few rounds
        # at most, so the loop still gets its turn.
        registry = self.registry
        for _ in range(_DRAIN_ROUNDS):
            fresh = registry.drain()
            if self._committed:
                fresh = [*fresh, *self._committed]
                self._committed = set()
            for ch in fresh:
                for sub in ch.subscribers:
                    sub.notify()
            if not registry.dirty:
                return

    def _drain_if_dirty(self) -> None:
        # Called by the loop's selector just before and just after it waits (server thread),
        # where an error would stop the loop: it is logged, as the loop logs a callback's.
        if self.registry.dirty:
            try:
                self._drain()
            except Exception:
                log.exception("sse_widget: sending published events failed")

    def _has_news(self) -> bool:
        return bool(self.registry.dirty)

    def _commit(self) -> None:
        """Move what was published into the histories now, writing nothing (server thread).

        Called before every write. Each socket send lets go of the GIL, and taking it
        back from a busy notebook costs a hand-over (~5 ms), in which a sending loop
        publishes tens of thousands of events; with many readers, one drain makes many
        such sends. Committing before each write keeps what waits outside the bounded
        histories to about one hand-over's worth, however many readers there are. The
        channels committed here have their readers told by the next drain.
        """
        registry = self.registry
        if not registry.dirty:
            return
        fresh = registry.drain()
        if fresh:
            if not self._committed and self._ioloop is not None:
                self._ioloop.add_callback(self._drain)
            self._committed.update(fresh)

    def _tick(self) -> None:
        # About once a second: keep-alives, and a drain for events a lost wake-up left.
        if self.registry.sweep():
            self._drain()
        self._ping_idle()

    def _ping_idle(self) -> None:
        now = self.now()
        for client in list(self.clients):
            if now - client.last_write >= self.keepalive:
                client.ping()

    # -- streams -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL browsers should use."""
        if self._public_url:
            return self._public_url.rstrip("/")
        return f"http://{self._url_host}:{self.port}"

    @property
    def local_url(self) -> str:
        """The base URL for clients on this machine (publishers, tests)."""
        return f"http://{self._url_host}:{self.port}"

    @property
    def _url_host(self) -> str:
        host = self.host
        if host in ("0.0.0.0", ""):
            return "127.0.0.1"
        if host == "::":
            return "[::1]"
        return f"[{host}]" if ":" in host else host

    def stream_url(self, name: str, *, local: bool = False) -> str:
        """The keyed URL of one stream's plain SSE endpoint."""
        base = self.local_url if local else self.url
        return f"{base}/streams/{quote(name, safe='')}?key={self.key}"

    def create_channel(
        self, name: str | None = None, *, max_events: int = 10_000, max_bytes: int | None = None
    ) -> Channel:
        """Create a channel (a fresh random name if ``name`` is None); starts the server."""
        self.start()
        if name is None:
            name = "s" + secrets.token_hex(6)
        # A name goes in URLs as it is: "." and ".." would be resolved away by clients.
        if (
            not name
            or any(c in name for c in ",:/?#%")
            or name != name.strip()
            or name in (".", "..")
        ):
            raise ValueError(
                "stream name must be non-empty, not . or .., without spaces around it or any "
                f"of , : / ? # %; got {shown(name)}"
            )
        return self.registry.create(name, max_events=max_events, max_bytes=max_bytes)

    def remove_channel(self, name: str) -> None:
        """Remove a channel; its clients' streams end (single) or drop it (multiplexed)."""
        ch = self.registry.get(name)
        self.registry.remove(name)
        if ch is not None and self._ioloop is not None:
            with contextlib.suppress(RuntimeError):
                self._ioloop.add_callback(self._notify_closed, ch)

    def _notify_closed(self, ch: Channel, tries: int = 0) -> None:
        # Readers get what was sent before close(), then their stream ends. So the channel
        # is drained first; an event whose sender had taken its id just before the close
        # may still be on its way, and is waited for (a few ms at most, once in a while).
        self._drain()
        if not ch.settled() and tries < _CLOSE_WAITS:
            assert self._ioloop is not None
            self._ioloop.call_later(0.01, self._notify_closed, ch, tries + 1)
            return
        ch.ended = True
        subs = [sub for sub in ch.subscribers if isinstance(sub, _Client)]
        for sub in subs:
            sub.notify()
        # Most readers took it all just now. One whose socket takes no more is cut off
        # after a keep-alive period, so a stuck reader cannot hold the history for long.
        lingering = [s for s in subs if not s.closed and (s.single or ch in s.cursors)]
        if self._ioloop is not None and lingering:
            self._ioloop.call_later(self.keepalive, _end_lingering, ch, lingering)


def _end_lingering(ch: Channel, subs: list[_Client]) -> None:
    for sub in subs:
        if sub.single:
            sub.close()
        else:
            sub.cursors.pop(ch, None)


_server: EventServer | None = None
_server_lock = threading.Lock()
_servers: weakref.WeakSet[EventServer] = weakref.WeakSet()  # every one, for fork


def get_server() -> EventServer:
    """The process's :class:`EventServer`, started on first use."""
    global _server
    server = _server
    if server is None or server.pid != os.getpid() or server.stopped:
        with _server_lock:
            if _server is None or _server.pid != os.getpid() or _server.stopped:
                _server = EventServer()
            server = _server
    if not server.running:
        server.start()
    return server


def _forget_after_fork() -> None:
    # No server thread exists in a forked child; the module's lock may even be held.
    global _server, _server_lock
    for server in list(_servers):
        if server.pid != os.getpid():
            server._let_go_after_fork(
                f"belongs to process {server.pid}, and this is a forked child (process "
                f"{os.getpid()}), whose events would be lost: give the worker "
                "stream.publisher() and call its send()"
            )
    _server = None
    _server_lock = threading.Lock()


def _stop_at_exit() -> None:
    if _server is not None and _server.pid == os.getpid():
        _server.stop(timeout=2.0)


os.register_at_fork(after_in_child=_forget_after_fork)
atexit.register(_stop_at_exit)
