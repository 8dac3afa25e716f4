"""EventStream's Python side: traits, send(), history, repr, close, and the comm pump.

What the browser does with all of this is tested in tests/test_widgets_browser.py.
"""

from __future__ import annotations

import json
import re
import time
import weakref
from unittest import mock

import httpx
import pytest
import traitlets
from helpers import live_count, wait_for

from sse_widget import EventStream, SSEError
from sse_widget.comm import CommPump, default_transport
from sse_widget.server import get_server


@pytest.fixture
def stream():
    s = EventStream()
    yield s
    s.close()


def test_traits_describe_the_connection(stream: EventStream) -> None:
    server = get_server()
    assert stream.stream == stream.name
    assert stream.server_url == server.url
    assert stream.port == server.port
    assert stream.key == server.key
    assert stream.transport in ("auto", "comm")
    assert (stream.view, stream.max_rows, stream.title) == ("log", 500, "")
    assert stream._esm  # the built bundle (or a message saying it is missing)


def test_each_stream_is_its_own(stream: EventStream) -> None:
    other = EventStream()
    try:
        assert other.name != stream.name
        stream.send("a")
        wait_for(lambda: len(stream.history) == 1)
        assert other.history == []
    finally:
        other.close()


def test_send_returns_increasing_ids_and_keeps_history(stream: EventStream) -> None:
    ids = [stream.send({"loss": 0.3}, event="update"), stream.send("line 1\nline 2")]
    assert ids[1] > ids[0]
    hist = stream.history
    assert [(e.event, e.data, e.id) for e in hist] == [
        ("update", '{"loss":0.3}', str(ids[0])),
        ("message", "line 1\nline 2", str(ids[1])),
    ]
    assert hist[0].json() == {"loss": 0.3}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (object(), "cannot send builtins.object: expected str, or data that JSON can hold"),
        (b"bytes", "cannot send bytes: expected str or JSON-able data; decode bytes first"),
        ({"x": {1, 2}.__iter__()}, "cannot send builtins.set_iterator"),
    ],
)
def test_send_refuses_what_it_cannot_serialise(stream: EventStream, value, message) -> None:
    with pytest.raises(TypeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        stream.send(value)
    assert stream.count == 0


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ("a\nb", "CR or LF"),
        ("sse_widget.gap", "reserved for sse_widget"),
        ("", r"must not be empty; got '' \(None sends the type 'message'\)"),
        ("t" * 257, r"event type must be at most 256 characters; got 257: 'ttt"),
    ],
)
def test_send_refuses_bad_event_types(stream: EventStream, event, message) -> None:
    with pytest.raises(SSEError, match=message):
        stream.send("x", event=event)
    with pytest.raises(ValueError, match=message):  # SSEError subclasses are ValueErrors too
        stream.send("x", event=event)
    assert stream.count == 0


@pytest.mark.parametrize("event", [["a"], 3, b"update"])
def test_send_names_the_type_of_an_event_that_is_not_a_str(stream: EventStream, event) -> None:
    with pytest.raises(TypeError, match=f"event must be a str or None; got {type(event).__name__}"):
        stream.send("x", event=event)
    assert stream.count == 0


@pytest.mark.parametrize(
    ("data", "event", "message"),
    [
        ("bad \ud800", None, "data must be encodable as UTF-8; got '\\ud800'"),
        ({"k": "\udfff"}, None, "data must be encodable as UTF-8"),
        ("x", "t\ud800", "event name must be encodable as UTF-8"),
    ],
)
def test_send_refuses_text_utf8_cannot_carry(stream: EventStream, data, event, message) -> None:
    with pytest.raises(SSEError, match=re.escape(message)):
        stream.send(data, event=event)
    stream.send("fine")
    with httpx.stream("GET", stream.url, timeout=10) as r:  # the stream still reads
        text = ""
        for chunk in r.iter_text():
            text += chunk
            if "fine" in text:
                break
    assert stream.count == 1


def test_a_patched_send_on_the_class_is_the_one_instances_use() -> None:
    with mock.patch.object(EventStream, "send", autospec=True, return_value=-1) as patched:
        s = EventStream()
        assert s.send("x") == -1
    assert patched.call_count == 1
    s.close()


def test_send_and_the_method_it_stands_for_do_the_same(stream: EventStream) -> None:
    # stream.send is the channel's publish() bound on the instance (one call fewer per
    # event); EventStream.send is the documented method. Both convert and check alike.
    assert stream.send({"a": 1}, event="u") + 1 == EventStream.send(stream, {"a": 1}, event="u")
    with pytest.raises(TypeError, match=r"cannot send builtins\.object"):
        EventStream.send(stream, object())
    with pytest.raises(SSEError, match="reserved"):
        EventStream.send(stream, "x", event="sse_widget.x")
    assert [(e.event, e.data) for e in stream.history] == [("u", '{"a":1}')] * 2
    # help(stream.send) shows the user's documentation either way, not the internals.
    assert stream.send.__doc__ == EventStream.send.__doc__
    assert stream.send.__doc__.startswith("Send one event; returns its id at once")


def test_repr_is_short_and_counts_events(stream: EventStream) -> None:
    for i in range(3):
        stream.send(i)
    assert repr(stream) == f"<EventStream {stream.name!r}: 3 events, view='log'>"


def test_url_serves_plain_sse(stream: EventStream) -> None:
    stream.send("hello", event="greeting")
    with httpx.stream("GET", stream.url, timeout=10) as r:
        assert r.status_code == 200
        text = ""
        for chunk in r.iter_text():
            text += chunk
            if "hello" in text:
                break
    assert "event: greeting\ndata: hello\n\n" in text


def test_publisher_sends_to_this_stream(stream: EventStream) -> None:
    pub = stream.publisher()
    i = pub.send({"from": "publisher"}, event="x")
    wait_for(lambda: stream.count == 1)
    assert stream.history[-1].id == str(i)


def test_close_ends_the_stream_and_send_then_raises() -> None:
    s = EventStream()
    s.send("x")
    saved = s.send  # e.g. a callback handed to a training loop before the close
    s.close()
    with pytest.raises(SSEError, match="is closed"):
        saved("y")
    assert s.count == 1
    with pytest.raises(SSEError, match="is closed"):
        s.send("y")
    with pytest.raises(SSEError, match="is closed"):
        EventStream.send(s, "y")  # the method, not the instance's fast path
    assert "closed" in repr(s)
    assert get_server().registry.get(s.name) is None
    s.close()  # twice is fine


def test_history_is_still_readable_once_the_server_is_stopped() -> None:
    s = EventStream()
    s.send("kept")
    get_server().stop()
    t0 = time.monotonic()
    assert [e.data for e in s.history] == ["kept"]  # no loop is left to ask: read directly
    assert time.monotonic() - t0 < 1
    with pytest.raises(SSEError, match="its server was stopped"):
        s.send("lost?")
    assert get_server().running  # the next stream gets a fresh server
    s.close()


def test_a_closed_stream_and_its_history_are_freed() -> None:
    from sse_widget.channels import Channel

    def alive() -> int:
        return live_count(Channel)

    before = alive()
    s = EventStream(history=1000)
    for i in range(1000):
        s.send(f"event {i}")
    assert len(s.history) == 1000
    assert alive() == before + 1
    ref = weakref.ref(s)
    s.close()
    del s
    # close() hands the server thread a last callback that holds the widget until it runs.
    wait_for(lambda: alive() == before, what="the closed stream's channel to be freed")
    assert ref() is None


def test_context_manager_closes() -> None:
    with EventStream() as s:
        s.send(1)
    with pytest.raises(SSEError):
        s.send(2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"view": "pie"}, "view must be one of log, last, chart, progress; got 'pie'"),
        ({"transport": "carrier-pigeon"}, "transport must be one of auto, direct, proxy, comm"),
        ({"max_rows": 0}, "max_rows must be a positive int; got 0"),
        ({"history": 0}, "history must be a positive int"),
        ({"name": "a,b"}, "stream name must be"),
        ({"name": ".."}, "stream name must be non-empty, not . or .., "),
    ],
)
def test_bad_arguments_are_explained(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        EventStream(**kwargs)


def test_a_bad_trait_leaves_the_name_free() -> None:
    # The channel is made before the widget's traits are checked; a refused trait must
    # not leave the name held by a stream that nobody has and nobody can close.
    with pytest.raises(traitlets.TraitError, match="title"):
        EventStream(name="held-by-nobody", title=5)
    with EventStream(name="held-by-nobody") as s:
        assert s.name == "held-by-nobody"


def test_transport_comes_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("SSE_WIDGET_TRANSPORT", "comm")
    assert default_transport() == "comm"
    monkeypatch.setenv("SSE_WIDGET_TRANSPORT", "proxy")
    s = EventStream()
    assert s.transport == "proxy"
    s.close()
    monkeypatch.setenv("SSE_WIDGET_TRANSPORT", "nope")
    with pytest.raises(ValueError, match="SSE_WIDGET_TRANSPORT must be one of"):
        default_transport()
    monkeypatch.delenv("SSE_WIDGET_TRANSPORT")
    monkeypatch.setenv("VSCODE_PID", "1")
    assert default_transport() == "comm"


# -- comm batching ---------------------------------------------------------------------
# The pump's `send` is a list here instead of a kernel comm: the real comm path, to a real
# browser, is exercised in tests/test_widgets_browser.py.


def test_comm_pump_batches_under_the_rate_and_size_limits() -> None:
    stream = EventStream(history=30_000)  # hold the whole burst: nothing may be missed
    server = get_server()
    sent: list[dict] = []
    pump = CommPump(stream._channel, sent.append, server.call_soon, rate=20, max_bytes=64 * 1024)
    pump.start(None)
    start = time.monotonic()
    for i in range(20_000):
        stream.send({"i": i, "pad": "x" * 20})
    assert sent[0] == {"type": "comm_live"}  # the view knows the route works at once

    def batches() -> list[dict]:
        return [m for m in sent if m["type"] == "events"]

    wait_for(lambda: sum(len(m["lines"].split("\n")) for m in batches()) >= 20_000, timeout=30)
    elapsed = time.monotonic() - start
    pump.stop()
    rows = [json.loads(line) for m in batches() for line in m["lines"].split("\n")]
    assert [json.loads(r[3])["i"] for r in rows] == list(range(20_000))
    assert [m["type"] for m in sent[1:]] == ["events"] * (len(sent) - 1)
    assert max(len(m["lines"]) for m in batches()) <= 64 * 1024 + 200
    assert len(sent) <= 20 * elapsed + 2  # ~20 messages a second at most
    stream.close()


def test_comm_pump_resumes_after_an_id(stream: EventStream) -> None:
    ids = [stream.send(i) for i in range(5)]
    sent: list[dict] = []
    pump = CommPump(stream._channel, sent.append, get_server().call_soon)
    pump.start(ids[2])
    wait_for(lambda: len(sent) >= 2)
    pump.stop()
    assert sent[0] == {"type": "comm_live"}
    assert [json.loads(line)[3] for line in sent[1]["lines"].split("\n")] == ["3", "4"]


def test_forced_comm_pushes_without_being_asked(monkeypatch) -> None:
    monkeypatch.setenv("SSE_WIDGET_TRANSPORT", "comm")
    s = EventStream()
    sent: list[dict] = []
    monkeypatch.setattr(s, "send_message", sent.append)
    s._pump._send = sent.append
    s.send("pushed")
    wait_for(lambda: any(m["type"] == "events" for m in sent))
    (batch,) = [m for m in sent if m["type"] == "events"]
    assert json.loads(batch["lines"])[3] == "pushed"
    s.close()
