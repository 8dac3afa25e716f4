"""The event server, with real clients on loopback: httpx-sse, Node's eventsource, raw sockets."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import multiprocessing
import os
import pathlib
import resource
import selectors
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from unittest import mock

import httpx
import httpx_sse
import pytest
from helpers import RawSSE, live_count, wait_for

from sse_widget import server as server_module
from sse_widget.channels import Channel
from sse_widget.errors import SSEError
from sse_widget.publisher import Publisher
from sse_widget.server import EventServer

ROOT = pathlib.Path(__file__).resolve().parent.parent
NODE_CLIENT = ROOT / "tests" / "support" / "eventsource_client.mjs"


def publish(ch: Channel, n: int, prefix: str = "", event: str | None = None) -> list[int]:
    return [ch.publish(f"{prefix}{i}", event) for i in range(n)]


def test_health_needs_no_key(server: EventServer) -> None:
    r = httpx.get(f"{server.local_url}/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def test_httpx_sse_reads_a_stream(server: EventServer) -> None:
    ch = server.create_channel("s")
    publish(ch, 3, "hello ", event="update")
    ch.publish("multi\nline")
    with (
        httpx.Client(timeout=10) as client,
        httpx_sse.connect_sse(client, "GET", server.stream_url("s", local=True)) as source,
    ):
        assert source.response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert source.response.headers["cache-control"] == "no-store"
        assert source.response.headers["x-accel-buffering"] == "no"
        got = []
        for sse in source.iter_sse():
            got.append((sse.event, sse.data, sse.id))
            if len(got) == 4:
                break
    assert got == [
        ("update", "hello 0", "1"),
        ("update", "hello 1", "2"),
        ("update", "hello 2", "3"),
        ("message", "multi\nline", "4"),
    ]


def test_node_eventsource_reads_a_stream_live(server: EventServer) -> None:
    ch = server.create_channel("s")
    publish(ch, 2, "before ", event="update")
    proc = subprocess.Popen(
        ["node", str(NODE_CLIENT), server.stream_url("s", local=True), "4", "update"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    wait_for(lambda: len(ch.subscribers) == 1, what="node client to connect")
    publish(ch, 2, "after ")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out) == [
        {"type": "update", "data": "before 0", "id": "1"},
        {"type": "update", "data": "before 1", "id": "2"},
        {"type": "message", "data": "after 0", "id": "3"},
        {"type": "message", "data": "after 1", "id": "4"},
    ]


def test_stream_starts_with_retry_and_a_comment(server: EventServer) -> None:
    server.create_channel("s")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(f"GET /streams/s?key={server.key} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        while b"sse_widget" not in data:
            data += sock.recv(4096)
    _head, body = data.split(b"\r\n\r\n", 1)
    assert body.split(b"\r\n")[1] == b"retry: 1000\n: sse_widget\n"


def test_an_http_1_0_reader_gets_the_stream_unchunked(server: EventServer) -> None:
    # HTTP/1.0 has no chunked encoding: the events go out bare, closed by the connection.
    ch = server.create_channel("s")
    publish(ch, 3, "e")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(f"GET /streams/s?key={server.key} HTTP/1.0\r\n\r\n".encode())
        data = b""
        while b"data: e2\n\n" not in data:
            data += sock.recv(4096)
        publish(ch, 1, "live")
        while b"data: live0\n\n" not in data:
            data += sock.recv(4096)
    head, body = data.split(b"\r\n\r\n", 1)
    assert b"Transfer-Encoding" not in head
    assert body.startswith(b"retry: 1000\n: sse_widget\n")
    assert b"\r\n" not in body
    assert body.count(b"\n\n") == 4


def test_replay_with_last_event_id_header(server: EventServer, raw_sse) -> None:
    ch = server.create_channel("s")
    publish(ch, 5)
    r = raw_sse(server, f"/streams/s?key={server.key}", headers={"Last-Event-ID": "3"})
    assert [e.data for e in r.read_events(2)] == ["3", "4"]
    publish(ch, 1, "live")
    assert [(e.data, e.id) for e in r.read_events(1)] == [("live0", "6")]


def test_replay_with_last_id_query(server: EventServer, raw_sse) -> None:
    ch = server.create_channel("s")
    publish(ch, 5)
    r = raw_sse(server, f"/streams/s?key={server.key}&last_id=4")
    assert [e.data for e in r.read_events(1)] == ["4"]


def test_replay_then_live_has_no_duplicates_and_no_gap(server: EventServer, raw_sse) -> None:
    ch = server.create_channel("s", max_events=100_000)
    stop = threading.Event()
    sent: list[int] = []

    at_subscribe: list[int] = []

    def produce() -> None:
        # Publish before, while and after the client subscribes, so that its replay and
        # its live events meet somewhere in the middle of a steady stream.
        after = 0
        while not stop.is_set() and len(sent) < 90_000 and after < 5_000:
            sent.append(ch.publish(str(len(sent))))
            if at_subscribe:
                after += 1
            elif ch.subscribers:
                at_subscribe.append(len(sent))
            if len(sent) % 100 == 0:
                time.sleep(0.001)  # a steady stream, not one burst before the connect

    t = threading.Thread(target=produce)
    t.start()
    wait_for(lambda: len(sent) > 100)
    r = raw_sse(server, f"/streams/s?key={server.key}&last_id=10")
    t.join()
    assert at_subscribe, "the client subscribed only after the producer had finished"
    assert 10 < at_subscribe[0] < len(sent) - 1000
    got = r.read_events(len(sent) - 10, timeout=30)
    assert [int(e.id) for e in got] == list(range(11, len(sent) + 1))


def test_gap_event_says_how_many_were_missed(server: EventServer, raw_sse) -> None:
    ch = server.create_channel("s", max_events=5)
    publish(ch, 20)
    r = raw_sse(server, f"/streams/s?key={server.key}&last_id=3")
    got = r.read_events(6)
    assert (got[0].event, json.loads(got[0].data)) == ("sse_widget.gap", {"missed": 12})
    assert got[0].id == ""  # the gap carries no id: it must not move the client's last id
    assert [(e.data, e.id) for e in got[1:]] == [(str(i), str(i + 1)) for i in range(15, 20)]


def test_fresh_client_gets_all_held_history_without_a_gap(server: EventServer, raw_sse) -> None:
    ch = server.create_channel("s", max_events=3)
    publish(ch, 10)
    r = raw_sse(server, f"/streams/s?key={server.key}")
    assert [e.data for e in r.read_events(3)] == ["7", "8", "9"]


@pytest.mark.parametrize(
    ("query", "headers", "message"),
    [
        (
            "&last_id=abc",
            {},
            "query parameter last_id must be a non-negative integer (an event id); got 'abc'",
        ),
        (
            "&last_id=-3",
            {},
            "query parameter last_id must be a non-negative integer (an event id); got '-3'",
        ),
        (
            "",
            {"Last-Event-ID": "x"},
            "header Last-Event-ID must be a non-negative integer (an event id); got 'x'",
        ),
        # int() reads these three, but none is an id this server could have sent.
        (
            "&last_id=1_0",
            {},
            "query parameter last_id must be a non-negative integer (an event id); got '1_0'",
        ),
        (
            "&last_id=%D9%A3",
            {},
            "query parameter last_id must be a non-negative integer (an event id); got '\u0663'",
        ),
        (
            "&last_id=" + "9" * 21,
            {},
            "query parameter last_id must be a non-negative integer (an event id); "
            f"got '{'9' * 21}'",
        ),
    ],
)
def test_bad_resume_id_is_400_naming_where_it_came_from(
    server: EventServer, query, headers, message
) -> None:
    server.create_channel("s")
    r = httpx.get(server.stream_url("s", local=True) + query, headers=headers)
    assert r.status_code == 400
    assert r.json()["error"] == message


def test_last_event_id_wins_over_last_id(server: EventServer, raw_sse) -> None:
    # A browser's reconnect carries Last-Event-ID, newer than the last_id its URL was made with.
    ch = server.create_channel("s")
    publish(ch, 5)
    r = raw_sse(server, f"/streams/s?key={server.key}&last_id=1", headers={"Last-Event-ID": "4"})
    assert [e.id for e in r.read_events(1)] == ["5"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("PUT", "/streams/s", "GET, POST, OPTIONS"), ("DELETE", "/events", "GET, OPTIONS")],
)
def test_a_method_not_served_is_405_in_json(server: EventServer, method, path, allowed) -> None:
    server.create_channel("s")
    r = httpx.request(method, f"{server.local_url}{path}?key={server.key}")
    assert r.status_code == 405
    assert r.headers["allow"] == allowed
    expected = allowed.replace(", OPTIONS", " or OPTIONS")
    assert r.json() == {"error": f"method {method} is not served here; expected {expected}"}
    assert httpx.request(method, f"{server.local_url}{path}").status_code == 403  # no key


def test_health_answers_other_methods_in_json_too(server: EventServer) -> None:
    r = httpx.delete(f"{server.local_url}/health")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET"
    assert r.json() == {"error": "method DELETE is not served here; expected GET"}


def test_an_unknown_path_is_404_in_json(server: EventServer) -> None:
    r = httpx.get(f"{server.local_url}/stream/s?key={server.key}")
    assert r.status_code == 404
    assert r.json() == {
        "error": "no such endpoint; expected /streams/<name>, /events or /health; got '/stream/s'"
    }


# -- keys and CORS ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/streams/s"), ("GET", "/events?streams=s"), ("POST", "/streams/s")],
)
@pytest.mark.parametrize(
    ("key", "bearer"),
    [
        (None, None),
        ("wrong", None),
        ("", None),
        (None, "wrong"),
        ("wrong", "right"),  # the README's rule: a ?key= is judged first, whatever follows
    ],
)
def test_every_endpoint_needs_the_key(server: EventServer, method, path, key, bearer) -> None:
    ch = server.create_channel("s")
    sep = "&" if "?" in path else "?"
    url = server.local_url + path + (f"{sep}key={key}" if key is not None else "")
    headers = {"Origin": "http://evil.test"}
    if bearer is not None:
        headers["Authorization"] = "Bearer " + (server.key if bearer == "right" else "wrong")
    r = httpx.request(method, url, json={"data": 1}, headers=headers)
    assert r.status_code == 403
    assert r.content == b""
    assert "access-control-allow-origin" not in r.headers
    assert "content-type" not in r.headers  # not even what kind of data it would have been
    assert ch.published == 0


def test_bearer_key_works(server: EventServer) -> None:
    ch = server.create_channel("s")
    r = httpx.post(
        f"{server.local_url}/streams/s",
        json={"data": "x"},
        headers={"Authorization": f"Bearer {server.key}"},
    )
    assert r.status_code == 200
    assert r.json() == {"ids": [1]}
    assert ch.published == 1


def test_token_query_parameter_is_not_our_key(server: EventServer) -> None:
    server.create_channel("s")
    r = httpx.get(f"{server.local_url}/streams/s?token={server.key}")
    assert r.status_code == 403


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/streams/s"), ("GET", "/events?streams=s"), ("POST", "/streams/s")],
)
def test_cors_echoes_origin_for_keyed_requests(server: EventServer, method, path) -> None:
    ch = server.create_channel("s")
    publish(ch, 1)
    sep = "&" if "?" in path else "?"
    url = f"{server.local_url}{path}{sep}key={server.key}"
    headers = {"Origin": "http://127.0.0.1:8888"}
    with httpx.stream(method, url, headers=headers, json={"data": 1}) as r:
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "http://127.0.0.1:8888"
        assert r.headers["vary"] == "Origin"


def test_preflight_allows_private_network_access(server: EventServer) -> None:
    r = httpx.request(
        "OPTIONS",
        f"{server.local_url}/streams/s",
        headers={
            "Origin": "https://hub.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Private-Network": "true",
        },
    )
    assert r.status_code == 204
    assert r.headers["access-control-allow-private-network"] == "true"
    assert r.headers["access-control-allow-origin"] == "https://hub.example"


def test_preflight_grants_private_network_access_only_when_asked(server: EventServer) -> None:
    r = httpx.request(
        "OPTIONS",
        f"{server.local_url}/events",
        headers={"Origin": "https://hub.example", "Access-Control-Request-Method": "GET"},
    )
    assert r.status_code == 204
    assert "access-control-allow-private-network" not in r.headers


# -- publishing over HTTP -------------------------------------------------------------


def post(server: EventServer, path: str, **kw) -> httpx.Response:
    sep = "&" if "?" in path else "?"
    return httpx.post(f"{server.local_url}{path}{sep}key={server.key}", **kw)


def test_post_json_publishes(server: EventServer, raw_sse) -> None:
    server.create_channel("s")
    r = post(server, "/streams/s", json={"data": {"loss": 0.5}, "event": "update"})
    assert r.json() == {"ids": [1]}
    r = post(server, "/streams/s", json=[{"data": "a"}, {"data": "b", "event": "x"}])
    assert r.json() == {"ids": [2, 3]}
    got = raw_sse(server, f"/streams/s?key={server.key}").read_events(3)
    assert [(e.event, e.data) for e in got] == [
        ("update", '{"loss":0.5}'),
        ("message", "a"),
        ("x", "b"),
    ]


def test_post_text_with_event_query(server: EventServer, raw_sse) -> None:
    server.create_channel("s")
    r = post(
        server,
        "/streams/s?event=note",
        content="two\nlines",
        headers={"Content-Type": "text/plain; charset=utf-8"},
    )
    assert r.status_code == 200
    got = raw_sse(server, f"/streams/s?key={server.key}").read_events(1)
    assert (got[0].event, got[0].data) == ("note", "two\nlines")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"data": "x", "event": "a\nb"}, "field 'event': event name must not contain"),
        ({"data": "x", "event": "a\rb"}, "field 'event': event name must not contain"),
        ({"data": "x", "id": "1\n2"}, "field 'id':"),
        ({"data": "x", "id": "1\r2"}, "field 'id':"),
        ({"data": "x", "id": "1\x002"}, "field 'id':"),
        ({"data": "x", "event": "sse_widget.gap"}, "reserved for sse_widget"),
        ({"data": "x", "event": ""}, "field 'event': event type must not be empty"),
        ({"data": "x", "event": 5}, "field 'event' must be a string; got int: 5"),
        ({"event": "x"}, 'field "data" is missing'),
        ({"data": "x", "colour": 1}, "unknown fields ['colour']"),
        ([{"data": 1}, 7], "item 1: expected an object"),
    ],
)
def test_post_bad_fields_are_400_and_publish_nothing(server: EventServer, body, message) -> None:
    ch = server.create_channel("s")
    r = post(server, "/streams/s", json=body)
    assert r.status_code == 400
    assert message in r.json()["error"]
    assert ch.published == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"data": "bad \\ud800"}',
            "field 'data': data must be encodable as UTF-8; got '\\ud800'",
        ),
        (b'{"data": "x", "event": "\\udc00"}', "field 'event': event name must be encodable"),
    ],
)
def test_post_text_utf8_cannot_carry_is_400(server: EventServer, body, message) -> None:
    # JSON may spell a lone surrogate, which no UTF-8 stream can carry: refused at the
    # door, rather than failing every reader of the stream later.
    ch = server.create_channel("s")
    r = post(server, "/streams/s", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert message in r.json()["error"]
    assert ch.published == 0


def test_post_text_injection_in_event_query_is_400(server: EventServer) -> None:
    server.create_channel("s")
    r = post(
        server,
        "/streams/s?event=a%0Adata:%20evil",
        content="x",
        headers={"Content-Type": "text/plain"},
    )
    assert r.status_code == 400
    assert "CR or LF" in r.json()["error"]


def test_post_json_with_a_number_too_long_to_read_is_400(server: EventServer) -> None:
    ch = server.create_channel("s")
    body = b'{"data": ' + b"9" * 5000 + b"}"
    r = post(server, "/streams/s", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"].startswith("body holds a number JSON readers cannot take: ")
    assert ch.published == 0


def test_post_bad_json_is_400(server: EventServer) -> None:
    server.create_channel("s")
    r = post(server, "/streams/s", content=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"].startswith("body is not valid JSON: ")
    assert r.json()["error"].endswith("it starts b'{nope'")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_post_json_with_nan_is_400_not_passed_on(server: EventServer, constant: str) -> None:
    # Python's json reads these, but no browser's JSON.parse does: refused with the reason.
    ch = server.create_channel("s")
    body = b'{"data": {"loss": %s}}' % constant.encode()
    r = post(server, "/streams/s", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"] == (
        f"body is not standard JSON: expected a number or null; got {constant}"
    )
    assert ch.published == 0


def test_post_json_nested_too_deeply_is_400_and_logs_no_key(server: EventServer, caplog) -> None:
    ch = server.create_channel("s")
    with caplog.at_level(logging.DEBUG):
        r = post(
            server,
            "/streams/s",
            content=b"[" * 100_000,
            headers={"Content-Type": "application/json"},
        )
    assert r.status_code == 400
    assert r.json()["error"].startswith("body is nested too deeply: expected an object")
    assert ch.published == 0
    assert not [r for r in caplog.records if server.key in r.getMessage() and "http" not in r.name]


def test_an_unexpected_error_is_logged_without_the_key(server: EventServer, caplog) -> None:
    # Tornado logs the request with an uncaught error; the query holds the key.
    server.create_channel("s")
    with (
        mock.patch("sse_widget.server._parse_text_body", side_effect=RuntimeError("boom")),
        caplog.at_level(logging.ERROR),
    ):
        r = post(server, "/streams/s", content=b"x", headers={"Content-Type": "text/plain"})
        wait_for(lambda: "boom" in caplog.text, what="the error to be logged")
    assert r.status_code == 500
    assert "uncaught error in POST /streams/s (from 127.0.0.1)" in caplog.text
    assert server.key not in caplog.text


@pytest.mark.parametrize("size", [5 << 20, 100 << 20], ids=["5MiB", "100MiB"])
def test_post_far_oversized_body_is_413_too(server: EventServer, size: int) -> None:
    # Above Tornado's own cap (4 MiB here), which would answer 400 with no body.
    ch = server.create_channel("s")
    r = post(server, "/streams/s", content=b"x" * size, headers={"Content-Type": "text/plain"})
    assert r.status_code == 413
    assert r.json()["error"] == f"body must be at most {1 << 20} bytes; got {size}"
    assert ch.published == 0


def test_post_oversized_chunked_body_is_413(server: EventServer) -> None:
    ch = server.create_channel("s")
    parts = (b"y" * (1 << 16) for _ in range(80))  # no Content-Length: sent chunked
    r = post(server, "/streams/s", content=parts, headers={"Content-Type": "text/plain"})
    assert r.status_code == 413
    assert r.json()["error"] == f"body must be at most {1 << 20} bytes; got {80 << 16}"
    assert ch.published == 0


def test_a_get_with_a_body_still_streams(server: EventServer) -> None:
    ch = server.create_channel("s")
    ch.publish("hello")
    with httpx.stream("GET", server.stream_url("s", local=True), content=b"stray body") as r:
        assert r.status_code == 200
        assert "data: hello" in itertools.islice(r.iter_lines(), 10)


def test_a_post_cut_off_mid_body_leaves_no_handler_behind(server: EventServer) -> None:
    ch = server.create_channel("s")
    from sse_widget.server import _StreamHandler

    before = live_count(_StreamHandler)
    head = (
        f"POST /streams/s?key={server.key} HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: text/plain\r\nContent-Length: 1000000\r\n\r\n"
    )
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(head.encode() + b"x" * 50_000)  # then hang up, 950 kB short
    wait_for(lambda: live_count(_StreamHandler) <= before, what="the cut-off POSTs' handlers to go")
    assert ch.published == 0


def test_post_oversized_body_is_413(server: EventServer) -> None:
    ch = server.create_channel("s")
    r = post(
        server, "/streams/s", content=b"x" * ((1 << 20) + 1), headers={"Content-Type": "text/plain"}
    )
    assert r.status_code == 413
    assert r.json()["error"] == f"body must be at most {1 << 20} bytes; got {(1 << 20) + 1}"
    assert ch.published == 0


def test_unknown_stream_is_404(server: EventServer) -> None:
    assert post(server, "/streams/nope", json={"data": 1}).status_code == 404
    r = httpx.get(f"{server.local_url}/streams/nope?key={server.key}")
    assert r.status_code == 404
    assert r.json()["error"] == "no stream named 'nope'"
    r = httpx.get(f"{server.local_url}/events?streams=nope&key={server.key}")
    assert r.status_code == 404
    assert r.json()["error"] == "no stream named 'nope'"


def test_a_post_that_races_close_is_404_saying_what_went_out(server: EventServer) -> None:
    # close() after the handler found the stream, before it published: the channel is
    # closed but still registered, as it is for that moment when a notebook closes it.
    ch = server.create_channel("closing")
    ch.close()
    r = post(server, "/streams/closing", json=[{"data": "a"}, {"data": "b"}])
    assert r.status_code == 404
    assert r.json()["error"] == (
        "stream 'closing' was closed while this request was being published: "
        "0 of 2 events went out before it closed (ids [])"
    )
    with pytest.raises(SSEError, match="HTTP 404: stream 'closing' was closed"):
        Publisher(server.local_url, server.key, "closing").send("late")


def test_mux_skips_closed_streams_while_one_is_known(server: EventServer, raw_sse) -> None:
    ch = server.create_channel("here")
    ch.publish("still served", None)
    r = raw_sse(server, f"/events?streams=gone:3,here&key={server.key}")
    assert r.status == 200
    (ev,) = r.read_events(1)
    assert json.loads(ev.data)[1:] == ["here", "message", "still served"]


def test_unsupported_content_type_is_415(server: EventServer) -> None:
    server.create_channel("s")
    r = post(server, "/streams/s", content=b"x", headers={"Content-Type": "image/png"})
    assert r.status_code == 415
    assert r.json()["error"] == (
        "Content-Type must be application/json or text/plain; got 'image/png'"
    )
    # What `curl -d` sends without -H: the answer says how to fix the command.
    r = post(server, "/streams/s", data={"a": "b"})
    assert r.status_code == 415
    assert r.json()["error"].endswith("(curl -d sends that: add -H 'Content-Type: text/plain')")


def test_post_text_that_is_not_utf8_is_400_naming_the_byte(server: EventServer) -> None:
    ch = server.create_channel("s")
    r = post(server, "/streams/s", content=b"ok \xff", headers={"Content-Type": "text/plain"})
    assert r.status_code == 400
    assert r.json()["error"] == "text body must be UTF-8; got byte 0xff at offset 3"
    assert ch.published == 0


# -- the multiplexed stream ---------------------------------------------------------


def mux_rows(events) -> list[list]:
    return [json.loads(line) for e in events for line in e.data.split("\n")]


def test_mux_carries_several_streams_with_per_stream_resume(server: EventServer, raw_sse) -> None:
    a, b = server.create_channel("a"), server.create_channel("b")
    for i in range(4):
        a.publish(f"a{i}")
        b.publish(f"b{i}", "tick")
    r = raw_sse(server, f"/events?key={server.key}&streams=a:3,b")
    rows = []
    while len(rows) < 6:
        rows += mux_rows(r.read_events(1))
    assert rows == [
        [2, "b", "tick", "b0"],
        [4, "b", "tick", "b1"],
        [5, "a", "message", "a2"],
        [6, "b", "tick", "b2"],
        [7, "a", "message", "a3"],
        [8, "b", "tick", "b3"],
    ]


def test_mux_message_id_resumes_every_stream(server: EventServer, raw_sse) -> None:
    a, b = server.create_channel("a"), server.create_channel("b")
    a.publish("a0")
    b.publish("b0")
    r = raw_sse(server, f"/events?key={server.key}&streams=a,b")
    first = r.read_events(1)[0]
    assert first.id == "2"
    r.close()
    a.publish("a1")
    r2 = raw_sse(
        server, f"/events?key={server.key}&streams=a:0,b:0", headers={"Last-Event-ID": first.id}
    )
    assert mux_rows(r2.read_events(1)) == [[3, "a", "message", "a1"]]


def test_mux_gap_row(server: EventServer, raw_sse) -> None:
    a = server.create_channel("a", max_events=2)
    publish(a, 6)
    r = raw_sse(server, f"/events?key={server.key}&streams=a:1")
    rows = mux_rows(r.read_events(1))
    assert rows[0][1:3] == ["a", "sse_widget.gap"]
    assert json.loads(rows[0][3]) == {"missed": 3}
    assert [row[3] for row in rows[1:]] == ["4", "5"]


def test_mux_bad_resume_and_empty_list_are_400(server: EventServer) -> None:
    server.create_channel("a")
    r = httpx.get(f"{server.local_url}/events?key={server.key}&streams=a:x")
    assert r.status_code == 400
    assert r.json()["error"] == (
        "resume id for stream 'a' must be a non-negative integer (an event id); got 'x'"
    )
    # 5,000 digits: int() itself raises on those (it was a 500 with a traceback)
    r = httpx.get(f"{server.local_url}/events?key={server.key}&streams=a:{'9' * 5000}")
    assert r.status_code == 400
    assert r.json()["error"].endswith("... (5002 chars)")
    r = httpx.get(f"{server.local_url}/events?key={server.key}&streams=,")
    assert r.status_code == 400
    assert r.json()["error"] == (
        "query parameter 'streams' must name at least one stream, as a,b or a:17,b:20; got ','"
    )


def test_closing_a_channel_ends_its_single_stream(server: EventServer, raw_sse) -> None:
    server.create_channel("s")
    r = raw_sse(server, f"/streams/s?key={server.key}")
    wait_for(lambda: len(server.clients) == 1)
    server.remove_channel("s")
    with pytest.raises(ConnectionError, match="ended"):
        r.read_events(1, timeout=5)


def test_a_closed_stream_first_delivers_what_was_sent(server: EventServer, raw_sse) -> None:
    # `with EventStream() as s: ...` closes right after the last send, often while the
    # server thread is still sending the first of them: every reader must still get every
    # event, then see its stream end.
    n = 50_000
    ch = server.create_channel("s", max_events=2 * n)
    single = raw_sse(server, f"/streams/s?key={server.key}")
    mux = raw_sse(server, f"/events?key={server.key}&streams=s")
    wait_for(lambda: len(server.clients) == 2)
    publish(ch, n, "x" * 40)
    server.remove_channel("s")
    got = single.read_events(n, timeout=30)
    assert [e.id for e in got] == [str(i) for i in range(1, n + 1)]
    with pytest.raises(ConnectionError, match="ended after 0"):
        single.read_events(1, timeout=5)
    rows: list[list] = []
    while len(rows) < n:
        rows += mux_rows(mux.read_events(1, timeout=30))
    assert [row[0] for row in rows] == list(range(1, n + 1))
    with pytest.raises(ConnectionError, match="ended after 0"):  # every stream it read closed
        mux.read_events(1, timeout=5)


def test_a_closed_stream_is_delivered_whole_on_the_mux_too(server: EventServer, raw_sse) -> None:
    a, b = server.create_channel("a"), server.create_channel("b")
    r = raw_sse(server, f"/events?key={server.key}&streams=a,b")
    wait_for(lambda: len(server.clients) == 1)
    publish(a, 500)
    server.remove_channel("a")
    b.publish("after")
    rows: list[list] = []
    while len(rows) < 501:
        rows += mux_rows(r.read_events(1))
    assert [row[3] for row in rows if row[1] == "a"] == [str(i) for i in range(500)]
    assert rows[-1][1:] == ["b", "message", "after"]  # the other stream goes on


def test_a_mux_reader_of_a_closed_stream_is_forgotten_when_it_leaves(
    server: EventServer, raw_sse
) -> None:
    # The closed stream is dropped from the reader's cursors; the reader must still be
    # dropped from that stream's subscribers when it goes, or the stream holds it for good.
    a, b = server.create_channel("a"), server.create_channel("b")
    r = raw_sse(server, f"/events?key={server.key}&streams=a,b")
    wait_for(lambda: len(server.clients) == 1)
    a.publish("last")
    server.remove_channel("a")
    b.publish("after")
    rows: list[list] = []
    while len(rows) < 2:
        rows += mux_rows(r.read_events(1))
    (client,) = server.clients
    wait_for(lambda: a not in client.cursors, what="the closed stream dropped from the reader")
    r.close()
    wait_for(lambda: not server.clients, what="the reader gone")
    assert (a.subscribers, b.subscribers) == (set(), set())


def test_mux_messages_stay_small_so_a_flaky_reader_progresses(server: EventServer, raw_sse) -> None:
    # An event is dispatched only when its whole message arrived, and the message id is
    # where a reconnect resumes: a watermark-sized message could never get through to a
    # reader whose connection drops sooner.
    ch = server.create_channel("s")
    publish(ch, 5000, "z" * 100)
    r = raw_sse(server, f"/events?key={server.key}&streams=s")
    got = r.read_events(5)
    sizes = [len(e.data) for e in got]
    assert max(sizes) < 80_000, sizes
    rows = mux_rows(got)
    assert [row[0] for row in rows] == list(range(1, len(rows) + 1))
    assert [e.id for e in got] == [str(mux_rows([e])[-1][0]) for e in got]


def test_a_connection_that_sends_no_request_is_closed_but_a_stream_is_not(monkeypatch) -> None:
    # Idle sockets (or half a request line, a slowloris) must not be held for Tornado's
    # default hour: each is an open file of the kernel process.
    monkeypatch.setattr(server_module, "_IDLE_TIMEOUT", 0.5)
    server = EventServer(keepalive=0.2).start()
    try:
        ch = server.create_channel("s")
        idle = socket.create_connection(("127.0.0.1", server.port))
        half = socket.create_connection(("127.0.0.1", server.port))
        half.sendall(b"GET /streams/s?key=")
        reader = RawSSE("127.0.0.1", server.port, f"/streams/s?key={server.key}")
        for sock in (idle, half):
            sock.settimeout(5)
            assert sock.recv(100) == b""  # closed by the server
        time.sleep(1.2)  # past the head and the body timeouts both
        ch.publish("still streaming")
        assert [e.data for e in reader.read_events(1)] == ["still streaming"]
        for sock in (idle, half, reader.sock):
            sock.close()
    finally:
        server.stop()


def test_an_event_whose_id_was_taken_before_close_still_reaches_readers(
    server: EventServer, raw_sse
) -> None:
    # A sender switched out between taking an id and storing its event, while another
    # thread closes the stream: the readers must wait for that event before they end.
    ch = server.create_channel("s")
    r = raw_sse(server, f"/streams/s?key={server.key}")
    wait_for(lambda: len(server.clients) == 1)
    ch.publish("first")
    taken = ch._take_id()  # publish()'s first step, by a sender about to be switched out
    server.remove_channel("s")
    time.sleep(0.05)
    ch._pending[taken] = "second"  # ... and its second step, after the close
    ch._mark_dirty()
    assert [e.data for e in r.read_events(2)] == ["first", "second"]
    with pytest.raises(ConnectionError, match="ended after 0"):
        r.read_events(1, timeout=5)


def test_one_keeping_up_reader_does_not_hold_the_server_thread() -> None:
    # While a notebook sends, each write lets it publish more; a reader that keeps up
    # must still hand the server thread to the others after a few chunks.
    from sse_widget.server import _Client

    server = EventServer(watermark=4096).start()
    runs: list[int] = []
    real_collect = server_module._StreamHandler.collect

    def counting_collect(self, client):
        runs[-1] += 1
        return real_collect(self, client)

    real_pump = _Client.pump

    def counting_pump(self, extra=b""):
        runs.append(0)
        return real_pump(self, extra)

    try:
        ch = server.create_channel("s", max_events=100_000)
        publish(ch, 50_000, "w" * 100)
        with (
            mock.patch.object(server_module._StreamHandler, "collect", counting_collect),
            mock.patch.object(_Client, "pump", counting_pump),
        ):
            r = RawSSE("127.0.0.1", server.port, f"/streams/s?key={server.key}")
            got = r.read_events(50_000, timeout=30)
        assert got[-1].id == "50000"
        assert max(runs) <= 16, f"one reader wrote {max(runs)} chunks in one turn"
        r.close()
    finally:
        server.stop()


def test_a_stuck_reader_of_a_closed_stream_is_cut_off() -> None:
    # A reader that never reads cannot keep a closed stream's history alive for long.
    server = EventServer(keepalive=0.3).start()
    try:
        ch = server.create_channel("s")
        stuck = RawSSE("127.0.0.1", server.port, f"/streams/s?key={server.key}")
        stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        wait_for(lambda: len(server.clients) == 1)
        publish(ch, 20_000, "z" * 500)
        wait_for(lambda: all(c.busy for c in server.clients), what="the reader's socket to fill")
        server.remove_channel("s")
        wait_for(lambda: not server.clients, timeout=5, what="the stuck reader to be cut off")
        stuck.close()
    finally:
        server.stop()


def test_stop_delivers_what_was_sent_before_it() -> None:
    server = EventServer().start()
    try:
        ch = server.create_channel("s")
        r = RawSSE("127.0.0.1", server.port, f"/streams/s?key={server.key}")
        wait_for(lambda: len(server.clients) == 1)
        publish(ch, 300)
    finally:
        server.stop()
    assert [e.data for e in r.read_events(300)] == [str(i) for i in range(300)]
    with pytest.raises(ConnectionError):
        r.read_events(1, timeout=5)
    r.close()


def test_mux_messages_never_end_among_the_gap_lines() -> None:
    # A gap line starts with its stream's old cursor, not an id in order: a message whose
    # last line was one would carry an id that skips another stream's held events.
    from sse_widget.server import _mux_messages

    def gap(cursor: int, name: str) -> str:
        return f'[{cursor},"{name}","sse_widget.gap","{{\\"missed\\": 2}}"]'

    big = [f'[{i},"a","message","{"x" * 70_000}"]' for i in (3, 4, 9)]
    messages = _mux_messages([gap(1, "a"), gap(8, "b"), *big], 9, 2).decode().split("\n\n")
    assert [m.split("\n")[0] for m in messages if m] == ["id: 3", "id: 4", "id: 9"]
    assert messages[0].count("sse_widget.gap") == 2
    # 2,000 streams' gap lines pass 64 KiB by themselves: still no cut among them.
    many = [gap(k, f"s{k}") for k in range(2000)]
    text = _mux_messages([*many, '[5,"a","message","x"]'], 5, 2000).decode()
    assert text.startswith("id: 5\ndata: [0,")
    assert text.count("\n\n") == 1
    only_gaps = _mux_messages(many[:2], 0, 2).decode()
    assert only_gaps.startswith("data: [0,")  # no id: nothing in order to resume from
    assert only_gaps.count("sse_widget.gap") == 2


@pytest.mark.parametrize("endpoint", ["single", "mux"])
def test_a_resume_id_ahead_of_the_newest_still_gets_new_events(
    server: EventServer, raw_sse, endpoint: str
) -> None:
    # An id from an earlier server (every server counts from 1), or made up: skipping all
    # that comes until the sequence passes it would lose events without a word.
    ch = server.create_channel("s")
    publish(ch, 5)
    path = "/streams/s?last_id=100" if endpoint == "single" else "/events?streams=s:100"
    r = raw_sse(server, f"{path}&key={server.key}")
    wait_for(lambda: len(server.clients) == 1)
    ch.publish("new")
    # It says nothing of what the reader saw here: it gets what a fresh reader gets.
    if endpoint == "single":
        assert [e.data for e in r.read_events(6)] == ["0", "1", "2", "3", "4", "new"]
    else:
        rows: list[list] = []
        while len(rows) < 6:
            rows += mux_rows(r.read_events(1))
        assert [row[3] for row in rows] == ["0", "1", "2", "3", "4", "new"]


# -- slow clients, many clients, leaks -------------------------------------------------


def _buffered(server: EventServer) -> list[int]:
    return [c.buffered() for c in server.clients]


_FAST_READERS = """
import selectors, socket, sys, time
port, key, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
sel = selectors.DefaultSelector()
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    path = f"/streams/s?key={key}" if i % 2 else f"/events?streams=s&key={key}"
    s.sendall(f"GET {path} HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n".encode())
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
end = time.monotonic() + 60
while time.monotonic() < end:
    for k, _ in sel.select(1):
        try:
            if not k.fileobj.recv(1 << 20):
                sys.exit(0)
        except BlockingIOError:
            pass
"""


def test_events_waiting_for_the_history_stay_bounded_with_many_readers(
    server: EventServer,
) -> None:
    # Each write to a reader lets go of the GIL, and getting it back from a sending loop
    # costs a hand-over (~5 ms) in which the loop publishes thousands of events. When the
    # server committed only between its rounds of writes, what waited outside the bounded
    # history grew with every reader: 140k-155k of these 300k sends with four readers.
    ch = server.create_channel("s", max_events=10_000)
    readers = subprocess.Popen(
        [sys.executable, "-c", _FAST_READERS, str(server.port), server.key, "4"]
    )
    try:
        wait_for(lambda: len(server.clients) == 4, what="the readers to connect")
        peak = 0
        for i in range(300_000):
            ch.publish("y" * 200 + str(i))
            if i % 1000 == 0:
                peak = max(peak, len(ch._pending))
        # The cap is 30k; a loaded machine may run the server thread late after a yield.
        assert peak < 100_000, f"{peak} events waited outside a history of 10,000"
    finally:
        readers.kill()
        readers.wait()


def test_a_client_that_never_reads_does_not_hold_back_others(server: EventServer, raw_sse) -> None:
    ch = server.create_channel("s", max_events=1000)
    stuck = socket.create_connection(("127.0.0.1", server.port))
    with stuck:  # closed even when an assertion fails
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.sendall(f"GET /streams/s?key={server.key} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        fast = raw_sse(server, f"/streams/s?key={server.key}")
        wait_for(lambda: len(server.clients) == 2)
        payload = "x" * 1000
        total = 0
        for _ in range(50):  # 50 MB through, 1,000 events a round
            publish(ch, 1000, payload)
            total += 1000
            got = fast.read_events(1000, timeout=20)
            assert got[-1].id == str(total)
        # The stuck client holds at most about one watermark of buffered output (and some,
        # or the measure would not be measuring), and the server's memory did not grow by
        # the 50 MB it could not deliver.
        port = stuck.getsockname()[1]
        (held,) = [
            c.buffered()
            for c in server.clients
            if c.handler.request.connection.stream.socket.getpeername()[1] == port
        ]
        assert 0 < held <= 2 * server.watermark
        assert max(_buffered(server)) <= 2 * server.watermark


def test_a_burst_of_many_watermarks_reaches_a_reader_whole(server: EventServer, raw_sse) -> None:
    # One drain holds eight watermarks: the chunks the socket takes at once must be
    # followed by the rest without waiting for another publish.
    ch = server.create_channel("s", max_events=10_000)
    r = raw_sse(server, f"/streams/s?key={server.key}")
    wait_for(lambda: len(server.clients) == 1)
    publish(ch, 8000, "z" * 1000)
    got = r.read_events(8000, timeout=30)
    assert [e.id for e in got[-2:]] == ["7999", "8000"]
    assert len({e.id for e in got}) == 8000


def test_a_client_that_falls_behind_gets_a_gap_and_carries_on(server: EventServer) -> None:
    ch = server.create_channel("s", max_events=100)
    slow = RawSSE("127.0.0.1", server.port, f"/streams/s?key={server.key}")
    try:
        slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        wait_for(lambda: len(server.clients) == 1)
        for _ in range(30):
            publish(ch, 1000, "y" * 500)
        time.sleep(0.5)
        got = slow.read_events(1, timeout=20)
        while got[-1].id != "30000":
            got += slow.read_events(1, timeout=20)
        # Every event either arrived, in order and once, or was counted in a gap event.
        gaps = [json.loads(e.data)["missed"] for e in got if e.event == "sse_widget.gap"]
        ids = [int(e.id) for e in got if e.event != "sse_widget.gap"]
        assert gaps, "the reader never fell behind the history"
        assert ids == sorted(set(ids))
        assert len(ids) + sum(gaps) == 30_000
        assert got[-1].data == "y" * 500 + "999"
    finally:
        slow.close()


def test_a_thousand_clients_all_receive_everything(server: EventServer, request) -> None:
    ch = server.create_channel("s")
    n_clients, n_events = 1000, 50
    get = f"GET /streams/s?key={server.key} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    done_marker = f"id: {n_events}\n".encode()

    async def one() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(get)
        data = b""
        # The id line comes before the data line: read on to the end of that last event.
        while done_marker not in data or b"\n\n" not in data[data.index(done_marker) :]:
            chunk = await reader.read(65536)
            if not chunk:
                break
            data += chunk
        writer.close()
        return data

    # Two sockets per client in this one process (both ends): lift the soft limit of open
    # files (often 1024) to the hard one, and say so plainly if that is still too few.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * n_clients + 200
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
        request.addfinalizer(lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= need, (
        f"this test needs {need} open files; the hard limit here is {hard}"
    )

    async def main() -> list[bytes]:
        tasks = [asyncio.create_task(one()) for _ in range(n_clients)]
        deadline = time.monotonic() + 60
        while len(ch.subscribers) < n_clients:
            assert time.monotonic() < deadline, f"{len(ch.subscribers)} of {n_clients} connected"
            await asyncio.sleep(0.05)
        publish(ch, n_events)
        return await asyncio.wait_for(asyncio.gather(*tasks), 60)

    results = asyncio.run(main())
    assert all(r.count(b"\ndata: ") == n_events for r in results)


def test_no_leak_after_a_thousand_connect_disconnect_cycles(server: EventServer) -> None:
    ch = server.create_channel("s")
    publish(ch, 3)
    request = f"GET /streams/s?key={server.key} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    for _ in range(1000):
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(request)
            sock.recv(4096)
    wait_for(lambda: not server.clients and not ch.subscribers, what="handlers to clean up")


# -- other threads and processes -------------------------------------------------------


def _work(pub: Publisher, k: int) -> list[int]:
    return [pub.send({"worker": k, "i": i}, event="work") for i in range(20)]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_process_pool_publishes(server: EventServer, method: str) -> None:
    ch = server.create_channel("s")
    pub = Publisher(server.local_url, server.key, "s")
    ctx = multiprocessing.get_context(method)
    with ProcessPoolExecutor(4, mp_context=ctx) as pool:
        ids = sorted(i for per in pool.map(_work, [pub] * 4, range(4)) for i in per)
    assert len(ids) == len(set(ids)) == 80
    wait_for(lambda: ch.total == 80)
    seen = {(json.loads(e.data)["worker"], json.loads(e.data)["i"]) for e in ch.events()}
    assert seen == {(k, i) for k in range(4) for i in range(20)}


def _mp_target(pub: Publisher, q) -> None:
    q.put(pub.send("from a process"))


def test_multiprocessing_process_publishes(server: EventServer) -> None:
    ch = server.create_channel("s")
    pub = Publisher(server.local_url, server.key, "s")
    pub.send("from the parent")  # the parent's open connection must not leak into the child
    q = multiprocessing.get_context("fork").Queue()
    p = multiprocessing.get_context("fork").Process(target=_mp_target, args=(pub, q))
    p.start()
    p.join(20)
    assert q.get(timeout=5) == 2
    wait_for(lambda: ch.total == 2)


def test_events_flow_while_the_main_thread_spins(server: EventServer, raw_sse) -> None:
    ch = server.create_channel("s")
    r = raw_sse(server, f"/streams/s?key={server.key}")
    wait_for(lambda: len(ch.subscribers) == 1)
    arrivals: list[float] = []

    def read() -> None:
        for _ in range(5):
            r.read_events(1, timeout=30)
            arrivals.append(time.monotonic())

    t = threading.Thread(target=read)
    t.start()
    start = time.monotonic()
    for i in range(5):
        ch.publish(str(i))
        spin_until = time.monotonic() + 0.3
        x = 0
        while time.monotonic() < spin_until:  # pure-Python CPU work, no sleeping
            x += 1
    end = time.monotonic()
    t.join(5)
    assert len(arrivals) == 5
    assert arrivals[0] - start < 0.3  # the first event arrived while the loop still spun
    assert arrivals[3] < end


def test_server_is_one_per_process_and_fresh_after_fork() -> None:
    from sse_widget.server import get_server

    s = get_server()
    assert get_server() is s
    assert s.running
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must build its own running server, not reuse the dead thread
        try:
            child = get_server()
            ok = child is not s and child.running and child.port != s.port
            os.write(w, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(w)  # so a child that died without writing reads as b"", not a hang
    os.waitpid(pid, 0)
    assert os.read(r, 1) == b"1"


def test_a_stream_from_before_fork_refuses_to_send_in_the_child() -> None:
    from sse_widget.server import get_server

    ch = get_server().create_channel()
    send = ch.publish  # as EventStream.send is bound
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: the parent's server is not here, so a send would be lost
        try:
            try:
                send("lost?")
                os.write(w, b"sent")
            except SSEError as exc:
                os.write(w, str(exc).encode())
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    message = os.read(r, 1000).decode()
    assert message.startswith(f"stream {ch.name!r} belongs to process {os.getpid()}, and this is")
    assert "stream.publisher()" in message
    assert send("still fine here") > 0  # the parent's stream is untouched


def test_a_forked_child_holds_none_of_the_servers_sockets(server: EventServer, raw_sse) -> None:
    # A child that outlives the parent's server (a pool worker) must not keep its port
    # listening or its readers' connections open: with the parent's socket closed, the
    # reader would wait for an end that never comes, and a new server could not take
    # the port.
    ch = server.create_channel("s")
    reader = raw_sse(server, f"/streams/s?key={server.key}")
    ch.publish("before", None)
    assert reader.read_events(1)[0].data == "before"
    port = server.port
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: wait, holding whatever it inherited, until the parent is done
        try:
            os.close(w)
            os.read(r, 1)
        finally:
            os._exit(0)
    try:
        server.stop()
        reader.sock.settimeout(5)
        while reader.sock.recv(1 << 16):  # to the connection's end (a timeout if it has none)
            pass
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        os.close(w)
        os.waitpid(pid, 0)


def test_a_stopped_server_does_not_start_again_and_its_streams_refuse() -> None:
    server = EventServer().start()
    ch = server.create_channel("s")
    server.stop()
    assert server.stopped
    with pytest.raises(RuntimeError, match="was stopped and cannot start again"):
        server.start()
    with pytest.raises(RuntimeError, match="was stopped and cannot start again"):
        server.create_channel("t")
    with pytest.raises(SSEError, match=r"^stream 's' is closed: its server was stopped"):
        ch.publish("x")
    never_started = EventServer()
    lonely = never_started.registry.create("u")
    never_started.stop()  # no thread at all: its streams are closed all the same
    with pytest.raises(SSEError, match="its server was stopped"):
        lonely.publish("x")


def test_get_server_after_stop_starts_a_new_server() -> None:
    from sse_widget.server import get_server

    old = get_server()
    ch = old.create_channel()
    old.stop()
    with pytest.raises(SSEError, match="its server was stopped"):
        ch.publish("into a stopped server")
    new = get_server()
    assert new is not old
    assert new.running
    new_ch = new.create_channel()
    with httpx.stream("GET", new.stream_url(new_ch.name, local=True)) as resp:
        new_ch.publish("hello")
        assert resp.status_code == 200
        assert any(line == "data: hello" for line in itertools.islice(resp.iter_lines(), 10))


# -- configuration and lifecycle -----------------------------------------------------------


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_an_idle_stream_gets_keep_alive_comments(monkeypatch, how: str) -> None:
    if how == "environment":
        monkeypatch.setenv("SSE_WIDGET_KEEPALIVE", "0.2")
        server = EventServer().start()
    else:
        server = EventServer(keepalive=0.2).start()
    assert server.keepalive == 0.2
    try:
        server.create_channel("s")
        r = RawSSE("127.0.0.1", server.port, f"/streams/s?key={server.key}")
        body = r._dechunk(b"")
        t0 = time.monotonic()
        while body.count(b": ping\n") < 2:
            assert time.monotonic() - t0 < 5, f"no keep-alives in 5 s: {body!r}"
            body += r._dechunk(r.sock.recv(1 << 16))
        assert body.startswith(b"retry: 1000\n: sse_widget\n")
        r.close()
    finally:
        server.stop()


def test_environment_variables_choose_host_port_and_public_url(monkeypatch) -> None:
    with socket.socket() as probe:  # a port that is free right now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("SSE_WIDGET_HOST", "127.0.0.2")
    monkeypatch.setenv("SSE_WIDGET_PORT", str(port))
    monkeypatch.setenv("SSE_WIDGET_PUBLIC_URL", "https://hub.example/user/me/proxy/9/")
    server = EventServer().start()
    try:
        assert (server.host, server.port) == ("127.0.0.2", port)
        assert server.url == "https://hub.example/user/me/proxy/9"
        assert server.local_url == f"http://127.0.0.2:{port}"
        ch = server.create_channel("s")
        assert server.stream_url("s").startswith(
            "https://hub.example/user/me/proxy/9/streams/s?key="
        )
        ch.publish("over 127.0.0.2")
        with httpx.stream("GET", server.stream_url("s", local=True)) as resp:
            assert "data: over 127.0.0.2" in itertools.islice(resp.iter_lines(), 10)
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "SSE_WIDGET_PORT",
            "eighty",
            "SSE_WIDGET_PORT must be an integer from 0 to 65535; got 'eighty'",
        ),
        (
            "SSE_WIDGET_PORT",
            "70000",
            "port must be an integer from 0 to 65535 (0: a free one); got 70000",
        ),
        (
            "SSE_WIDGET_PORT",
            "-1",
            "port must be an integer from 0 to 65535 (0: a free one); got -1",
        ),
        (
            "SSE_WIDGET_KEEPALIVE",
            "often",
            "SSE_WIDGET_KEEPALIVE must be a number of seconds above 0; got 'often'",
        ),
        ("SSE_WIDGET_KEEPALIVE", "0", "keepalive must be a number of seconds above 0; got 0.0"),
        (
            "SSE_WIDGET_PUBLIC_URL",
            "hub.example/proxy",
            "the public URL (SSE_WIDGET_PUBLIC_URL) must start with http:// or https://; "
            "got 'hub.example/proxy'",
        ),
    ],
)
def test_a_bad_setting_is_refused_clearly(monkeypatch, variable, value, message) -> None:
    # Refused before anything binds: 70000 would otherwise wrap round to port 4464.
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match="must") as info:
        EventServer()
    assert str(info.value) == message


@pytest.mark.parametrize(("host", "warns"), [("0.0.0.0", True), ("127.0.0.1", False)])
def test_binding_beyond_loopback_warns_what_is_exposed(caplog, host: str, warns: bool) -> None:
    with caplog.at_level(logging.WARNING, logger="sse_widget"):
        server = EventServer(host=host).start()
        server.stop()
    messages = [r.getMessage() for r in caplog.records if r.name == "sse_widget"]
    if warns:
        assert messages == [
            f"sse_widget's server listens on 0.0.0.0:{server.port}, reachable from other "
            "machines: anyone with the key can read every stream and publish to it"
        ]
    else:
        assert messages == []


def test_the_server_stops_cleanly_at_interpreter_exit(tmp_path: pathlib.Path) -> None:
    # An exit hook registered before sse_widget's runs after it (atexit is last in, first
    # out), so it sees the state sse_widget's own hook left behind.
    script = tmp_path / "exit.py"
    script.write_text(
        "import atexit, socket\n"
        "state = {}\n"
        "def after():\n"
        "    state['sock'].settimeout(5)\n"
        "    rest = b''\n"
        "    while (data := state['sock'].recv(65536)):\n"
        "        rest += data\n"
        "    print('thread alive:', state['server']._thread.is_alive())\n"
        "    print('reader saw the end:', rest.endswith(b'0\\r\\n\\r\\n'))\n"
        "atexit.register(after)\n"
        "from sse_widget.server import get_server\n"
        "server = state['server'] = get_server()\n"
        "server.create_channel('s')\n"
        "sock = state['sock'] = socket.create_connection(('127.0.0.1', server.port))\n"
        "request = f'GET /streams/s?key={server.key} HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'\n"
        "sock.sendall(request.encode())\n"
        "sock.recv(65536)\n"
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.splitlines() == ["thread alive: False", "reader saw the end: True"], out


def test_the_server_selector_does_not_sleep_on_news_it_was_not_woken_for() -> None:
    # A publisher wakes the server thread only while it waits in its selector; news that
    # came just before the wait must make the wait return at once, or it would sit there
    # until the next tick.
    drained: list[str] = []
    news = [True]
    sel = server_module._DrainingSelector(lambda: drained.append("drain"), lambda: news[0])
    a, b = socket.socketpair()
    with sel, a, b:
        sel.register(a, selectors.EVENT_READ)
        t0 = time.monotonic()
        assert sel.select(30) == []
        assert time.monotonic() - t0 < 5, "the selector slept although there was news"
        assert drained == ["drain", "drain"]
        assert sel.waiting is False
        news[0] = False
        b.send(b"x")  # without news, it waits for its sockets as any selector does
        assert [key.fileobj for key, _ in sel.select(30)] == [a]


def test_the_server_selector_does_not_sleep_on_work_its_drain_queued() -> None:
    # The loop chose its timeout before the selector's first drain ran; a callback or a
    # timer that drain added (a reader's next turn, a retry) must not wait that timeout out.
    sel = server_module._DrainingSelector(lambda: None, lambda: False)
    loop = asyncio.SelectorEventLoop(sel)
    try:
        sel.watch(loop)
        for queue_work in (lambda: loop.call_soon(print), lambda: loop.call_later(0.002, print)):
            sel._drain = queue_work
            t0 = time.monotonic()
            sel.select(10)
            assert time.monotonic() - t0 < 5, "the selector slept on work its drain queued"
        sel._drain = lambda: None
        t0 = time.monotonic()
        sel.select(0.3)  # with nothing queued, it waits as the loop asked
        assert time.monotonic() - t0 >= 0.25
    finally:
        loop.close()
