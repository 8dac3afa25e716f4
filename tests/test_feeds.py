"""connect(): external SSE endpoints, against real servers started here.

Two real servers: an sse-starlette app on uvicorn (a GET stream and an LLM-style POST
token stream), and a Tornado server that misbehaves on demand. Each case asserts the
exact events delivered (exactly once across reconnects) and the exact error text.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from browser import notebook
from helpers import wait_for
from httpx_sse import connect_sse
from playwright.sync_api import expect
from tornado.httpserver import HTTPServer
from tornado.iostream import StreamClosedError
from tornado.web import Application, RequestHandler

from sse_widget import Event, EventFeed, FeedError, SSEError, connect

# -- a Tornado server that misbehaves on demand ----------------------------------------------

Scenario = Callable[["_Handler", int], Awaitable[None]]


class Misbehaving:
    """Serves ``/<scenario>``; each scenario sees how many times it was requested before."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.scenarios: dict[str, Scenario] = {}
        self.disconnects = 0
        sock = socket.create_server(("127.0.0.1", 0))
        sock.setblocking(False)  # Tornado accepts on a non-blocking socket
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        ready = threading.Event()

        def run() -> None:
            async def main() -> None:
                app = Application([(r"/(\w+)", _Handler, {"server": self})])
                http = HTTPServer(app)
                http.add_sockets([sock])
                self.loop = asyncio.get_running_loop()
                self.stopped = asyncio.Event()
                ready.set()
                await self.stopped.wait()
                http.stop()  # closes the listening socket

            asyncio.run(main())

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)

    def seen(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == name]

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stopped.set)
        self.thread.join(5)


class _Handler(RequestHandler):
    def initialize(self, server: Misbehaving) -> None:
        self.server = server

    def log_exception(self, *args: Any) -> None:
        pass  # a client that hangs up mid-stream is what several scenarios are about

    def on_connection_close(self) -> None:
        self.server.disconnects += 1

    async def _any(self, name: str) -> None:
        srv = self.server
        n = len(srv.seen(name))
        srv.requests.append(
            {
                "path": name,
                "method": self.request.method,
                "headers": dict(self.request.headers),
                "body": self.request.body,
                "time": time.monotonic(),
            }
        )
        with contextlib.suppress(StreamClosedError):
            await srv.scenarios[name](self, n)

    get = post = _any

    def sse(self) -> None:
        self.set_header("Content-Type", "text/event-stream")

    async def emit(self, text: str | bytes) -> None:
        self.write(text)
        await self.flush()


@pytest.fixture(scope="module")
def bad() -> Iterator[Misbehaving]:
    srv = Misbehaving()
    yield srv
    srv.stop()


def scenario(bad: Misbehaving, name: str) -> Callable[[Scenario], Scenario]:
    def register(fn: Scenario) -> Scenario:
        bad.scenarios[name] = fn
        return fn

    return register


def data(feed: EventFeed) -> list[str]:
    return [ev.data for ev in feed.events]


@pytest.fixture
def feeds() -> Iterator[list[EventFeed]]:
    made: list[EventFeed] = []
    yield made
    for f in made:
        f.close()


def open_feed(feeds: list[EventFeed], url: str, **kw: Any) -> EventFeed:
    kw.setdefault("retry_ms", 20)
    feed = connect(url, **kw)
    feeds.append(feed)
    return feed


# -- reconnection ------------------------------------------------------------------------------


def test_drop_mid_event_reconnects_with_last_event_id_and_delivers_each_event_once(
    bad, feeds
) -> None:
    @scenario(bad, "drop")
    async def _(h: _Handler, n: int) -> None:
        if n == 2:
            h.set_status(204)
            return
        h.sse()
        # The second connection replays from the start, as servers that ignore
        # Last-Event-ID do: the feed must drop what it already delivered.
        await h.emit("id: 1\ndata: a\n\nid: 2\ndata: b\n\n")
        if n == 0:
            await h.emit("id: 3\ndata: half of c")
            h.request.connection.stream.close()
            return
        await h.emit("id: 3\ndata: c\n\nid: 4\ndata: d\n\n")

    feed = open_feed(feeds, f"{bad.url}/drop")
    assert feed.join(10) == "closed"
    assert [(e.id, e.data) for e in feed.events] == [("1", "a"), ("2", "b"), ("3", "c"), ("4", "d")]
    sent = [r["headers"].get("Last-Event-Id") for r in bad.seen("drop")]
    assert sent == [None, "2", "4"]
    wait_for(lambda: feed.status == "closed", what="the status trait")
    assert feed.count == 4
    assert feed.last_event == Event("message", "d", "4")


def test_a_replay_drops_the_id_less_events_that_follow_a_repeated_id(bad, feeds) -> None:
    @scenario(bad, "replay")
    async def _(h: _Handler, n: int) -> None:
        if n == 2:
            h.set_status(204)
            return
        h.sse()
        await h.emit("id: 1\ndata: a\n\ndata: a, continued\n\n")
        if n == 1:
            await h.emit("id: 2\ndata: b\n\ndata: b, continued\n\n")

    feed = open_feed(feeds, f"{bad.url}/replay")
    assert feed.join(10) == "closed"
    assert [(e.id, e.data) for e in feed.events] == [
        ("1", "a"),
        ("1", "a, continued"),
        ("2", "b"),
        ("2", "b, continued"),
    ]


def test_a_reconnection_sends_the_id_in_force_not_the_first_one(bad, feeds) -> None:
    @scenario(bad, "resetid")
    async def _(h: _Handler, n: int) -> None:
        if n == 1:
            h.set_status(204)
            return
        h.sse()
        await h.emit("id\ndata: the stream clears the id\n\n")

    feed = open_feed(feeds, f"{bad.url}/resetid", last_event_id="41")
    assert feed.join(10) == "closed"
    assert [r["headers"].get("Last-Event-Id") for r in bad.seen("resetid")] == ["41", None]


def test_retry_field_sets_the_reconnection_time(bad, feeds) -> None:
    @scenario(bad, "retry")
    async def _(h: _Handler, n: int) -> None:
        if n == 2:
            h.set_status(204)
            return
        h.sse()
        await h.emit(f"retry: 100\nid: {n}\ndata: {n}\n\n")

    # Without retry: the feed would wait retry_ms=3000 between connections.
    feed = open_feed(feeds, f"{bad.url}/retry", retry_ms=3000)
    assert feed.join(10) == "closed"
    assert data(feed) == ["0", "1"]
    times = [r["time"] for r in bad.seen("retry")]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(0.09 <= g < 2.0 for g in gaps), gaps


def test_500_twice_then_recovers_with_backoff(bad, feeds) -> None:
    statuses: list[tuple[str, str]] = []

    @scenario(bad, "flaky")
    async def _(h: _Handler, n: int) -> None:
        if n < 2:
            h.set_status(500)
            h.write("database is down")
            return
        if n == 3:
            h.set_status(204)
            return
        h.sse()
        await h.emit("id: x1\ndata: recovered\n\n")

    feed = open_feed(feeds, f"{bad.url}/flaky", retry_ms=50)
    feed.observe(lambda c: statuses.append((c["new"], feed.error)), names="status")
    assert feed.join(10) == "closed"
    assert data(feed) == ["recovered"]
    assert len(bad.seen("flaky")) == 4
    wait_for(lambda: feed.status == "closed", what="the status trait")
    assert ("retrying", "HTTP 500 Internal Server Error: database is down") in statuses
    times = [r["time"] for r in bad.seen("flaky")]
    # The first failure waits retry_ms (50 ms); the second backs off to 75-125 ms.
    assert times[1] - times[0] >= 0.045
    assert times[2] - times[1] >= 0.07


def test_429_honours_retry_after(bad, feeds) -> None:
    @scenario(bad, "busy")
    async def _(h: _Handler, n: int) -> None:
        if n == 0:
            h.set_status(429)
            h.set_header("Retry-After", "1")
            return
        h.set_status(204)

    feed = open_feed(feeds, f"{bad.url}/busy")
    assert feed.join(10) == "closed"
    t = [r["time"] for r in bad.seen("busy")]
    assert t[1] - t[0] >= 0.95


def test_silence_is_a_dead_connection_and_gets_reconnected(bad, feeds) -> None:
    @scenario(bad, "silent")
    async def _(h: _Handler, n: int) -> None:
        if n == 2:
            h.set_status(204)
            return
        h.sse()
        await h.emit(f"id: s{n}\ndata: {n}\n\n")
        if n == 0:
            await asyncio.sleep(30)

    feed = open_feed(feeds, f"{bad.url}/silent", timeout=0.3)
    assert feed.join(10) == "closed"
    assert data(feed) == ["0", "1"]
    assert [r["headers"].get("Last-Event-Id") for r in bad.seen("silent")] == [None, "s0", "s1"]


def test_a_server_that_never_answers_counts_as_silent(feeds) -> None:
    lsock = socket.create_server(("127.0.0.1", 0))  # accepts (the kernel's backlog), never answers
    try:
        port = lsock.getsockname()[1]
        feed = open_feed(feeds, f"http://127.0.0.1:{port}/x", method="POST", timeout=0.3)
        assert feed.join(5) == "error"
        assert feed._record.error.startswith("no data for 0.3 s")
    finally:
        lsock.close()


def test_204_stops_the_feed_at_once(bad, feeds) -> None:
    @scenario(bad, "nocontent")
    async def _(h: _Handler, n: int) -> None:
        h.set_status(204)

    feed = open_feed(feeds, f"{bad.url}/nocontent")
    assert feed.join(10) == "closed"
    assert feed.events == []
    assert len(bad.seen("nocontent")) == 1


# -- errors that end the feed --------------------------------------------------------------


def test_401_stops_with_the_status_and_the_body(bad, feeds) -> None:
    body = {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}

    @scenario(bad, "auth")
    async def _(h: _Handler, n: int) -> None:
        h.set_status(401)
        h.set_header("Content-Type", "application/json")
        h.write(json.dumps(body))

    feed = open_feed(feeds, f"{bad.url}/auth")
    assert feed.join(10) == "error"
    expected = f"HTTP 401 Unauthorized: {json.dumps(body)}"
    assert feed._record.error == expected
    wait_for(lambda: feed.status == "error", what="the status trait")
    assert feed.error == expected
    assert len(bad.seen("auth")) == 1  # a 4xx is never retried


def test_error_body_is_cut_at_2_kib(bad, feeds) -> None:
    @scenario(bad, "huge403")
    async def _(h: _Handler, n: int) -> None:
        h.set_status(403)
        h.write("x" * 100_000)

    feed = open_feed(feeds, f"{bad.url}/huge403")
    assert feed.join(10) == "error"
    assert feed._record.error == "HTTP 403 Forbidden: " + "x" * 2048


def test_html_is_refused_naming_the_type(bad, feeds) -> None:
    @scenario(bad, "html")
    async def _(h: _Handler, n: int) -> None:
        h.set_header("Content-Type", "text/html; charset=UTF-8")
        h.write("<html><body>Please log in</body></html>")

    feed = open_feed(feeds, f"{bad.url}/html")
    assert feed.join(10) == "error"
    assert feed._record.error == (
        "expected Content-Type text/event-stream; got 'text/html; charset=UTF-8': "
        "<html><body>Please log in</body></html>"
    )
    assert len(bad.seen("html")) == 1


def test_invalid_utf8_becomes_replacement_characters(bad, feeds) -> None:
    @scenario(bad, "latin1")
    async def _(h: _Handler, n: int) -> None:
        if n:
            h.set_status(204)
            return
        h.sse()
        await h.emit(b"data: caf\xe9\n\ndata: ok \xff\xfe end\n\ndata: \xe2\x82")
        await h.emit(b"\xac\n\n")  # a character split across writes is still one character

    feed = open_feed(feeds, f"{bad.url}/latin1")
    assert feed.join(10) == "closed"
    assert data(feed) == ["caf\ufffd", "ok \ufffd\ufffd end", "\u20ac"]


def test_a_10_mib_line_ends_the_feed_with_an_error(bad, feeds) -> None:
    @scenario(bad, "longline")
    async def _(h: _Handler, n: int) -> None:
        h.sse()
        await h.emit("data: before\n\n")
        chunk = "y" * (1 << 20)
        await h.emit("data: ")
        for _ in range(10):
            await h.emit(chunk)
        await asyncio.sleep(5)

    feed = open_feed(feeds, f"{bad.url}/longline")
    assert feed.join(20) == "error"
    assert data(feed) == ["before"]
    err = feed._record.error
    assert err.startswith("a line may be at most max_line_bytes=1048576 bytes long; got ")
    assert err.endswith(
        "bytes without a line break (raise max_line_bytes= in connect() if such lines are expected)"
    )
    assert len(bad.seen("longline")) == 1  # a hostile stream is not retried


def test_unreachable_get_keeps_retrying_and_says_why(feeds) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    feed = open_feed(feeds, f"http://127.0.0.1:{port}/x", retry_ms=20, max_backoff=0.05)
    wait_for(lambda: feed.status == "retrying" and feed.error, what="retrying")
    assert feed.error.startswith(f"cannot reach GET http://127.0.0.1:{port}/x: ")
    assert "Connection refused" in feed.error or "ConnectionRefusedError" in feed.error
    feed.close()
    assert feed._record.status == "closed"


# -- POST is never sent twice ------------------------------------------------------------------


def test_post_that_drops_ends_with_an_error_and_is_not_resent(bad, feeds) -> None:
    @scenario(bad, "postdrop")
    async def _(h: _Handler, n: int) -> None:
        h.sse()
        await h.emit('data: {"token": "Hel"}\n\ndata: {"token": "lo"}\n\n')
        h.request.connection.stream.close()

    feed = open_feed(feeds, f"{bad.url}/postdrop", method="POST", json={"prompt": "hi"})
    assert feed.join(10) == "error"
    assert [e.json()["token"] for e in feed.events] == ["Hel", "lo"]
    assert feed._record.error.startswith("the connection dropped: ")
    assert feed._record.error.endswith(
        "(2 events on this connection; a POST is not re-sent unless reconnect=True)"
    )
    time.sleep(0.2)
    assert len(bad.seen("postdrop")) == 1
    assert json.loads(bad.seen("postdrop")[0]["body"]) == {"prompt": "hi"}


def test_post_with_reconnect_true_is_resent_when_asked(bad, feeds) -> None:
    @scenario(bad, "postok")
    async def _(h: _Handler, n: int) -> None:
        if n == 1:
            h.set_status(204)
            return
        h.sse()
        await h.emit("data: once\n\n")

    feed = open_feed(feeds, f"{bad.url}/postok", method="POST", body="x", reconnect=True)
    assert feed.join(10) == "closed"
    assert [r["method"] for r in bad.seen("postok")] == ["POST", "POST"]


def test_dispatch_incomplete_is_opt_in(bad, feeds) -> None:
    @scenario(bad, "tail")
    async def _(h: _Handler, n: int) -> None:
        h.sse()
        await h.emit("data: whole\n\ndata: no blank line at the end")

    plain = open_feed(feeds, f"{bad.url}/tail", method="POST")
    opted = open_feed(feeds, f"{bad.url}/tail", method="POST", dispatch_incomplete=True)
    assert plain.join(10) == "closed"
    assert opted.join(10) == "closed"
    assert data(plain) == ["whole"]
    assert data(opted) == ["whole", "no blank line at the end"]


def test_close_stops_a_silent_stream_promptly(bad, feeds) -> None:
    @scenario(bad, "forever")
    async def _(h: _Handler, n: int) -> None:
        h.sse()
        await h.emit(": hello\n\n")
        await asyncio.sleep(60)

    before = bad.disconnects
    feed = open_feed(feeds, f"{bad.url}/forever")
    wait_for(lambda: feed._record.status == "open", what="open")
    t0 = time.monotonic()
    feed.close()
    assert feed._record.status == "closed"
    assert time.monotonic() - t0 < 1.0
    wait_for(lambda: bad.disconnects > before, what="the server to see the hang-up")


# -- observing from Python -----------------------------------------------------------------


def test_callbacks_per_type_and_star_run_off_the_server_thread(bad, feeds) -> None:
    @scenario(bad, "types")
    async def _(h: _Handler, n: int) -> None:
        h.sse()
        await h.emit("event: a\ndata: 1\n\nevent: b\ndata: 2\n\nevent: a\ndata: 3\n\n")

    seen: list[tuple[str, str, str]] = []
    feed = connect(f"{bad.url}/types", method="POST")
    feeds.append(feed)
    feed.on("a", lambda ev: seen.append(("a", ev.data, threading.current_thread().name)))

    @feed.on("*")
    def every(ev: Event) -> None:
        seen.append(("*", ev.data, threading.current_thread().name))

    assert feed.join(10) == "closed"
    wait_for(lambda: len(seen) == 5, what="five callbacks")
    assert [s[:2] for s in seen] == [("a", "1"), ("*", "1"), ("*", "2"), ("a", "3"), ("*", "3")]
    # Our dispatcher thread, or the test's own thread when join() caught up: never ours.
    assert "sse_widget-server" not in {s[2] for s in seen}


def test_a_raising_callback_is_reported_once_and_the_feed_goes_on(bad, feeds, capfd) -> None:
    @scenario(bad, "three")
    async def _(h: _Handler, n: int) -> None:
        h.sse()
        await h.emit("data: 1\n\ndata: 2\n\ndata: 3\n\n")

    got: list[str] = []

    def broken(ev: Event) -> None:
        raise KeyError("choices")

    feed = connect(f"{bad.url}/three", method="POST")
    feeds.append(feed)
    feed.on("message", broken)
    feed.on("message", lambda ev: got.append(ev.data))
    assert feed.join(10) == "closed"
    wait_for(lambda: len(got) == 3, what="the good callback")
    err = capfd.readouterr().err
    assert err.count("sse_widget: the callback") == 1
    assert "test_a_raising_callback_is_reported_once_and_the_feed_goes_on.<locals>.broken" in err
    assert "raised KeyError: 'choices'. The feed goes on" in err


def test_wait_returns_each_matching_event_in_turn(bad, feeds) -> None:
    @scenario(bad, "slow")
    async def _(h: _Handler, n: int) -> None:
        h.sse()
        for i in range(4):
            await h.emit(f"event: {'odd' if i % 2 else 'even'}\ndata: {i}\n\n")
            await asyncio.sleep(0.05)

    feed = open_feed(feeds, f"{bad.url}/slow", method="POST")
    assert feed.wait(timeout=5).data == "0"
    assert feed.wait("odd", timeout=5).data == "1"
    assert feed.wait("odd", timeout=5).data == "3"
    ended = r"^the feed ended \(closed\) before an 'odd' event arrived$"
    with pytest.raises(FeedError, match=ended):
        feed.wait("odd", timeout=5)


def test_a_wait_that_times_out_consumes_nothing(bad, feeds) -> None:
    @scenario(bad, "twostep")
    async def _(h: _Handler, n: int) -> None:
        h.sse()
        await h.emit("data: first\n\n")
        await asyncio.sleep(30)

    feed = open_feed(feeds, f"{bad.url}/twostep")
    with pytest.raises(TimeoutError):
        feed.wait("never", timeout=0.5)
    assert feed.wait(timeout=5).data == "first"


def test_a_callback_that_closes_the_feed_keeps_the_order(bad, feeds) -> None:
    @scenario(bad, "stopword")
    async def _(h: _Handler, n: int) -> None:
        h.sse()
        await h.emit("data: a\n\nevent: stop\ndata: b\n\ndata: c\n\n")
        await asyncio.sleep(30)

    feed = open_feed(feeds, f"{bad.url}/stopword")
    seen: list[str] = []

    @feed.on("*")
    def cb(ev: Event) -> None:
        seen.append(ev.data)
        if ev.event == "stop":
            feed.close()

    wait_for(lambda: len(seen) == 3, what="three callbacks")
    assert seen == ["a", "b", "c"]
    assert feed.status == "closed"


def test_wait_times_out_clearly(bad, feeds) -> None:
    @scenario(bad, "quiet")
    async def _(h: _Handler, n: int) -> None:
        h.sse()
        await h.emit(": nothing yet\n\n")
        await asyncio.sleep(30)

    feed = open_feed(feeds, f"{bad.url}/quiet")
    with pytest.raises(TimeoutError, match=r"^expected an event within 0.2 s; got none \(feed "):
        feed.wait(timeout=0.2)


def test_async_for_sees_every_event_and_ends_with_the_feed(bad, feeds) -> None:
    @scenario(bad, "aiter")
    async def _(h: _Handler, n: int) -> None:
        h.sse()
        for i in range(5):
            await h.emit(f"data: {i}\n\n")
            await asyncio.sleep(0.02)

    feed = open_feed(feeds, f"{bad.url}/aiter", method="POST")

    async def consume() -> list[str]:
        return [ev.data async for ev in feed]

    assert asyncio.run(asyncio.wait_for(consume(), 10)) == ["0", "1", "2", "3", "4"]


def test_async_for_raises_when_the_feed_fails(bad, feeds) -> None:
    @scenario(bad, "teapot")
    async def _(h: _Handler, n: int) -> None:
        h.set_status(418)

    feed = open_feed(feeds, f"{bad.url}/teapot")

    async def consume() -> None:
        async for _ in feed:
            pass

    with pytest.raises(FeedError, match=r"^HTTP 418 I'm a Teapot$"):
        asyncio.run(asyncio.wait_for(consume(), 10))


def test_events_are_bounded_by_history(bad, feeds) -> None:
    @scenario(bad, "many")
    async def _(h: _Handler, n: int) -> None:
        h.sse()
        await h.emit("".join(f"data: {i}\n\n" for i in range(50)))

    feed = open_feed(feeds, f"{bad.url}/many", method="POST", history=10)
    assert feed.join(10) == "closed"
    assert data(feed) == [str(i) for i in range(40, 50)]
    assert len(feed) == 50


def test_the_feed_is_served_like_any_stream(bad, feeds) -> None:
    """What the browser reads: the feed's channel, over the kernel's own event server."""

    @scenario(bad, "mirror")
    async def _(h: _Handler, n: int) -> None:
        h.sse()
        await h.emit('event: update\nid: 7\ndata: {"x": 1}\n\ndata: plain\n\n')

    feed = open_feed(feeds, f"{bad.url}/mirror", method="POST")
    assert feed.join(10) == "closed"
    with httpx.Client() as client, connect_sse(client, "GET", feed.url) as es:
        got = []
        for sse in es.iter_sse():
            got.append((sse.event, sse.data))
            if len(got) == 2:
                break
    assert got == [("update", '{"x": 1}'), ("message", "plain")]


# -- the request -------------------------------------------------------------------------------


def test_request_carries_sse_headers_params_and_json(bad, feeds) -> None:
    @scenario(bad, "echo")
    async def _(h: _Handler, n: int) -> None:
        h.set_status(204)

    feed = open_feed(
        feeds,
        f"{bad.url}/echo?a=1",
        method="post",
        headers={"Authorization": "Bearer sk-test"},
        params={"b": "two words"},
        json={"stream": True, "model": "m"},
        last_event_id="41",
    )
    assert feed.join(10) == "closed"
    (req,) = bad.seen("echo")
    h = req["headers"]
    assert req["method"] == "POST"
    assert h["Accept"] == "text/event-stream"
    assert h["Cache-Control"] == "no-store"
    assert h["Authorization"] == "Bearer sk-test"
    assert h["Content-Type"] == "application/json"
    assert h["Last-Event-Id"] == "41"
    assert json.loads(req["body"]) == {"stream": True, "model": "m"}
    # The widget shows where it reads from, without the query string (it may hold keys).
    assert feed.source == f"POST {bad.url}/echo"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"url": "ftp://x/y"}, ValueError, "url must be an absolute http:// or https:// URL; got"),
        ({"url": "/relative"}, ValueError, "url must be an absolute http"),
        ({"url": 3}, TypeError, "url must be a str; got int"),
        ({"json": {}, "body": "x", "method": "POST"}, ValueError, "pass json= or body=, not both"),
        ({"json": {"a": 1}}, ValueError, "a GET request has no body; pass method='POST'"),
        ({"json": {"a": object()}, "method": "POST"}, TypeError, "json= must be JSON-serialis"),
        ({"body": 5, "method": "POST"}, TypeError, "body must be bytes, str or None; got int"),
        ({"headers": {"X": "a\r\nEvil: 1"}}, ValueError, "header 'X' may not contain CR, LF"),
        ({"method": "GE T"}, ValueError, "method must be an HTTP method name"),
        ({"timeout": 0}, ValueError, "timeout must be a positive number of seconds; got 0"),
        ({"retry_ms": -1}, ValueError, "retry_ms must be a non-negative int"),
        ({"via": "carrier pigeon"}, ValueError, "via must be one of kernel, browser"),
        (
            {"via": "browser", "method": "POST"},
            ValueError,
            "via='browser' opens the browser's own EventSource, which can only GET a URL: it "
            "cannot send method='POST'",
        ),
    ],
)
def test_bad_arguments_are_explained(kwargs, error, message) -> None:
    kwargs = {"url": "http://127.0.0.1:9/x", **kwargs}
    with pytest.raises(error, match="^" + re.escape(message)):
        connect(**kwargs)


def test_a_feed_cannot_be_sent_to(bad, feeds) -> None:
    @scenario(bad, "ro")
    async def _(h: _Handler, n: int) -> None:
        h.set_status(204)

    feed = open_feed(feeds, f"{bad.url}/ro")
    with pytest.raises(SSEError, match="a feed shows what its URL sends"):
        feed.send("x")


def test_via_browser_has_no_python_events() -> None:
    feed = connect("https://example.org/stream", via="browser", events=["update"])
    assert feed.browser_url == "https://example.org/stream"
    assert feed.browser_events == ["update"]
    with pytest.raises(FeedError, match=r"feed.events needs the events in Python, but via="):
        _ = feed.events
    feed.close()


# -- a real third-party server: sse-starlette on uvicorn -----------------------------------------


@pytest.fixture(scope="module")
def starlette() -> Iterator[str]:
    import uvicorn
    from sse_starlette.sse import EventSourceResponse
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def ticks(request: Request) -> Any:
        after = int(request.headers.get("last-event-id") or 0)

        async def gen() -> Any:
            for i in range(after + 1, 6):
                yield {"event": "tick", "id": str(i), "data": json.dumps({"n": i})}

        return EventSourceResponse(gen())

    async def chat(request: Request) -> Any:
        if request.headers.get("authorization") != "Bearer sk-test":
            return JSONResponse({"error": {"message": "missing API key"}}, status_code=401)
        prompt = (await request.json())["messages"][-1]["content"]

        async def gen() -> Any:
            for word in f"You said: {prompt}".split(" "):
                yield {"data": json.dumps({"choices": [{"delta": {"content": word + " "}}]})}
                await asyncio.sleep(0.01)
            yield {"data": "[DONE]"}

        return EventSourceResponse(gen())

    app = Starlette(routes=[Route("/ticks", ticks), Route("/v1/chat", chat, methods=["POST"])])
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    wait_for(lambda: server.started, what="uvicorn")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


def test_sse_starlette_get_stream(starlette, feeds) -> None:
    feed = open_feed(feeds, f"{starlette}/ticks", reconnect=False)
    assert feed.join(10) == "closed"
    assert [(e.event, e.id, e.json()["n"]) for e in feed.events] == [
        ("tick", str(i), i) for i in range(1, 6)
    ]


def test_sse_starlette_resumes_from_last_event_id(starlette, feeds) -> None:
    feed = open_feed(feeds, f"{starlette}/ticks", last_event_id="3", reconnect=False)
    assert feed.join(10) == "closed"
    assert [e.id for e in feed.events] == ["4", "5"]


def test_sse_starlette_llm_post_stream_ends_with_done(starlette, feeds) -> None:
    tokens: list[str] = []
    feed = connect(
        f"{starlette}/v1/chat",
        method="POST",
        headers={"Authorization": "Bearer sk-test"},
        json={"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi there"}]},
    )
    feeds.append(feed)

    @feed.on("message")
    def token(ev: Event) -> None:
        if ev.data != "[DONE]":
            tokens.append(ev.json()["choices"][0]["delta"]["content"])

    assert feed.join(10) == "closed"
    assert feed.events[-1].data == "[DONE]"
    wait_for(lambda: len(tokens) == 4, what="the tokens")
    assert "".join(tokens) == "You said: hi there "


def test_sse_starlette_401_shows_the_json_body(starlette, feeds) -> None:
    feed = connect(f"{starlette}/v1/chat", method="POST", json={"messages": []})
    feeds.append(feed)
    assert feed.join(10) == "error"
    assert feed._record.error == 'HTTP 401 Unauthorized: {"error":{"message":"missing API key"}}'


def test_event_feed_is_made_by_connect() -> None:
    with pytest.raises(TypeError, match=r"make an EventFeed with sse_widget.connect\(url, ...\)"):
        EventFeed("http://127.0.0.1:9/x")  # type: ignore[arg-type]


# -- in a real browser: JupyterLab in headless Chromium --------------------------------------


@pytest.mark.browser
def test_feed_events_and_errors_appear_in_its_widget(bad, lab, chromium) -> None:
    """Transport: direct (the feed's channel is served by the kernel's event server)."""

    @scenario(bad, "tokens")
    async def _(h: _Handler, n: int) -> None:
        h.sse()
        for i in range(5):
            await h.emit(f"event: token\ndata: word {i}\n\n")
            await asyncio.sleep(0.2)

    @scenario(bad, "denied")
    async def _(h: _Handler, n: int) -> None:
        h.set_status(401)
        h.write("<b>no key</b> <img src=x onerror=alert(1)>")

    cells = [
        f"from sse_widget import connect\nfeed = connect('{bad.url}/tokens', method='POST')\nfeed",
        f"denied = connect('{bad.url}/denied')\ndenied",
    ]
    with notebook(lab, chromium, cells) as nb:
        nb.run_cell(0)
        w = nb.widget(0)
        expect(w.locator(".sse-widget-row")).to_have_count(5, timeout=20_000)
        expect(w.locator(".sse-widget-row").last).to_contain_text("token")
        expect(w.locator(".sse-widget-row").last).to_contain_text("word 4")
        line = w.locator(".sse-widget-feed")
        expect(line).to_have_attribute("data-status", "closed", timeout=10_000)
        expect(line).to_contain_text(f"POST {bad.url}/tokens · closed")
        expect(w.locator(".sse-widget-status")).to_have_attribute("data-transport", "direct")
        nb.run_cell(1)
        err = nb.widget(1).locator(".sse-widget-feed-error")
        # Third-party text is shown as text: the markup is visible, no element is made.
        expect(err).to_have_text(
            "HTTP 401 Unauthorized: <b>no key</b> <img src=x onerror=alert(1)>", timeout=10_000
        )
        assert nb.widget(1).locator("b, img").count() == 0
        expect(nb.widget(1).locator(".sse-widget-feed")).to_have_attribute("data-status", "error")
        nb.screenshot("feed_widget")
        assert not nb.errors


@pytest.mark.browser
def test_via_browser_the_page_reads_the_url_itself(bad, lab, chromium) -> None:
    """Transport: the page's own EventSource to a CORS-enabled third-party URL."""

    @scenario(bad, "public")
    async def _(h: _Handler, n: int) -> None:
        h.sse()
        h.set_header("Access-Control-Allow-Origin", "*")
        await h.emit("event: tick\ndata: from the browser\n\n")
        await h.emit("event: ignored\ndata: not listed\n\ndata: plain\n\n")
        await asyncio.sleep(30)

    cell = (
        "from sse_widget import connect\n"
        f"feed = connect('{bad.url}/public', via='browser', events=['message', 'tick'])\nfeed"
    )
    with notebook(lab, chromium, [cell]) as nb:
        before = len(bad.seen("public"))
        nb.run_cell(0)
        w = nb.widget(0)
        expect(w.locator(".sse-widget-row")).to_have_count(2, timeout=20_000)
        expect(w.locator(".sse-widget-row").first).to_contain_text("from the browser")
        expect(w.locator(".sse-widget-row").last).to_contain_text("plain")
        expect(w.locator(".sse-widget-status")).to_have_attribute("data-transport", "browser")
        # The page made the request, with an Origin; the kernel made none.
        wait_for(lambda: len(bad.seen("public")) > before, what="the browser's request")
        assert "Origin" in bad.seen("public")[-1]["headers"]
        assert not nb.errors


def test_join_wait_and_close_bring_the_traits_up_to_date(bad, feeds) -> None:
    @scenario(bad, "catchup")
    async def _(h: _Handler, n: int) -> None:
        h.sse()
        await h.emit("data: one\n\ndata: two\n\n")
        await asyncio.sleep(30)

    feed = open_feed(feeds, f"{bad.url}/catchup")
    assert feed.wait(timeout=5).data == "one"
    assert feed.wait(timeout=5).data == "two"
    assert (feed.status, feed.count, feed.last_event.data) == ("open", 2, "two")
    feed.close()
    assert feed.status == "closed"
