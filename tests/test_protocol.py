"""Tests for sse_widget.protocol: one named test per rule, the spec's own examples,
chunk splitting at every offset, a round-trip property, and real third-party clients.

Spec: https://html.spec.whatwg.org/multipage/server-sent-events.html
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import random
from collections.abc import Iterable, Iterator

import httpx
import pytest
import sseclient
from httpx_sse import connect_sse
from hypothesis import given, settings
from hypothesis import strategies as st

from sse_widget.errors import EncodeError, LineTooLongError, ParseError, SSEError
from sse_widget.protocol import (
    Event,
    EventParser,
    check_event_name,
    check_id,
    encode_comment,
    encode_event,
)

# -- helpers -------------------------------------------------------------------------


Chunk = bytes | bytearray | memoryview | str


def parser_state(
    chunks: Iterable[Chunk], *, dispatch_incomplete: bool = False
) -> tuple[list[Event], str, int | None]:
    """Feed `chunks`, close, and return the events, last event ID and retry."""
    p = EventParser(dispatch_incomplete=dispatch_incomplete)
    events: list[Event] = []
    for chunk in chunks:
        events += p.feed(chunk)
    events += p.close()
    return events, p.last_event_id, p.retry


def parse(chunks: Iterable[Chunk], *, dispatch_incomplete: bool = False) -> list[Event]:
    return parser_state(chunks, dispatch_incomplete=dispatch_incomplete)[0]


def parse_all(stream: bytes | str) -> list[Event]:
    return parse([stream])


def splits(stream: bytes) -> Iterator[list[bytes]]:
    """Every split of `stream` into two chunks, then one-byte chunks."""
    for i in range(len(stream) + 1):
        yield [stream[:i], stream[i:]]
    yield [stream[i : i + 1] for i in range(len(stream))]


def normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


# -- Event ---------------------------------------------------------------------------


def test_event_defaults() -> None:
    assert Event() == Event(event="message", data="", id="", retry=None)


def test_event_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Event().data = "x"  # type: ignore[misc]


def test_event_json() -> None:
    assert Event(data='{"a": [1, 2]}').json() == {"a": [1, 2]}


def test_event_repr_is_short() -> None:
    ev = Event("update", data='{"a":1}', id="3")
    assert repr(ev) == "Event('update', data='{\"a\":1}', id='3')"
    assert repr(Event(data="x", retry=5)) == "Event('message', data='x', retry=5)"


def test_event_repr_truncates_long_data() -> None:
    r = repr(Event(data="x" * 1000))
    assert len(r) < 120
    assert "1000 chars" in r


def test_parsed_event_equals_constructed_event() -> None:
    # The parser fills an Event's slots directly; it must be the same as a built one.
    (ev,) = parse_all(b"event: e\nid: 1\nretry: 5\ndata: d\n\n")
    assert ev == Event("e", "d", "1", 5)
    assert hash(ev) == hash(Event("e", "d", "1", 5))
    assert dataclasses.replace(ev, data="z") == Event("e", "z", "1", 5)
    assert pickle.loads(pickle.dumps(ev)) == ev  # Publisher sends events to other processes


# -- encode_event --------------------------------------------------------------------


def test_encode_single_line_data() -> None:
    assert encode_event("hello") == b"data: hello\n\n"


def test_encode_all_fields() -> None:
    wire = encode_event("x", event="update", id="7", retry=1500)
    assert wire == b"event: update\nid: 7\nretry: 1500\ndata: x\n\n"
    assert parse_all(wire) == [Event("update", "x", "7", 1500)]


def test_encode_is_utf8() -> None:
    assert encode_event("é中😀", event="ü") == "event: ü\ndata: é中😀\n\n".encode()


@pytest.mark.parametrize("newline", ["\n", "\r", "\r\n"])
def test_encode_each_newline_in_data_starts_a_new_data_line(newline: str) -> None:
    wire = encode_event(f"a{newline}b{newline}{newline}c{newline}")
    assert wire == b"data: a\ndata: b\ndata:\ndata: c\ndata:\n\n"
    assert parse_all(wire) == [Event(data="a\nb\n\nc\n")]


def test_encode_empty_data_is_one_data_line_and_still_dispatches() -> None:
    assert encode_event("") == b"data:\n\n"
    assert parse_all(encode_event("")) == [Event(data="")]


def test_encode_keeps_leading_space_and_colons_in_data() -> None:
    wire = encode_event("  two spaces: and a colon")
    assert parse_all(wire) == [Event(data="  two spaces: and a colon")]


def test_encode_empty_event_name_sends_no_event_field() -> None:
    assert encode_event("x", event="") == b"data: x\n\n"


def test_encode_empty_id_resets_last_event_id() -> None:
    wire = encode_event("a", id="1") + encode_event("b", id="")
    assert parse_all(wire) == [Event(data="a", id="1"), Event(data="b", id="")]


def test_encode_never_produces_a_second_event() -> None:
    hostile = "a\n\nevent: evil\nid: 666\n\ndata: b\r\n\r\nc\r\rd\n"
    events = parse_all(encode_event(hostile))
    assert events == [Event(data=normalise_newlines(hostile))]


@pytest.mark.parametrize("name", ["a\nb", "a\rb", "a\r\nb", "\n", "x\r"])
def test_encode_event_name_with_cr_or_lf_raises(name: str) -> None:
    with pytest.raises(EncodeError) as info:
        encode_event("x", event=name)
    msg = str(info.value)
    assert "event name must not contain CR or LF" in msg
    assert repr(name) in msg


@pytest.mark.parametrize("id_", ["1\n2", "1\r2", "1\r\n", "\n"])
def test_encode_id_with_cr_or_lf_raises(id_: str) -> None:
    with pytest.raises(EncodeError) as info:
        encode_event("x", id=id_)
    msg = str(info.value)
    assert "id must not contain CR or LF" in msg
    assert repr(id_) in msg


def test_encode_id_with_nul_raises() -> None:
    with pytest.raises(EncodeError) as info:
        encode_event("x", id="a\0b")
    assert "id must not contain NUL" in str(info.value)
    assert repr("a\0b") in str(info.value)


@pytest.mark.parametrize(
    ("retry", "shown"),
    [(-1, "-1"), (True, "True"), (False, "False"), (1.5, "1.5"), ("100", "'100'"), (None, "")],
)
def test_encode_bad_retry_raises(retry: object, shown: str) -> None:
    if retry is None:  # None means "no retry field", the one non-int allowed
        assert b"retry" not in encode_event("x", retry=retry)
        return
    with pytest.raises(EncodeError) as info:
        encode_event("x", retry=retry)  # type: ignore[arg-type]
    msg = str(info.value)
    assert msg.startswith("retry must")
    assert f"got {shown}" in msg or f": {shown}" in msg


@pytest.mark.parametrize("field", ["data", "event", "id"])
def test_encode_non_str_field_raises(field: str) -> None:
    kwargs: dict[str, object] = {"data": "x", field: 5}
    with pytest.raises(EncodeError, match=r"must be a str; got int: 5"):
        encode_event(**kwargs)  # type: ignore[arg-type]


def test_encode_lone_surrogate_raises() -> None:
    with pytest.raises(EncodeError, match=r"must be encodable as UTF-8; got '\\ud800'"):
        encode_event("a\ud800b")
    with pytest.raises(EncodeError, match="comment must be encodable as UTF-8"):
        encode_comment("\udfff")


def test_encode_error_is_sse_error_and_value_error() -> None:
    with pytest.raises(SSEError):
        encode_event("x", event="a\nb")
    with pytest.raises(ValueError, match="CR or LF"):
        encode_event("x", event="a\nb")


def test_check_event_name_and_check_id_return_valid_values() -> None:
    assert check_event_name("update") == "update"
    assert check_event_name("") == ""
    assert check_id("id: with: colons") == "id: with: colons"
    assert check_id("42") == "42"
    with pytest.raises(EncodeError, match="event name must not contain CR or LF"):
        check_event_name("a\rb")
    with pytest.raises(EncodeError, match="id must not contain NUL"):
        check_id("\0")
    with pytest.raises(EncodeError, match="id must not contain CR or LF"):
        check_id("\n")


# -- encode_comment ------------------------------------------------------------------


def test_encode_comment_single_line() -> None:
    assert encode_comment("ping") == b": ping\n"


def test_encode_comment_each_line_is_its_own_comment() -> None:
    assert encode_comment("a\nb\rc\r\nd") == b": a\n: b\n: c\n: d\n"


def test_encode_comment_empty_text() -> None:
    assert encode_comment("") == b":\n"


def test_encode_comment_never_dispatches_or_sets_fields() -> None:
    text = "x\n\ndata: injected\n\nid: 9\nretry: 1\n"
    events, last_id, retry = parser_state([encode_comment(text) + b"\n"])
    assert (events, last_id, retry) == ([], "", None)


def test_encode_comment_non_str_raises() -> None:
    with pytest.raises(EncodeError, match="comment must be a str"):
        encode_comment(b"x")  # type: ignore[arg-type]


# -- the spec's own examples ---------------------------------------------------------
# https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation

SPEC_STOCK = b"data: YHOO\ndata: +2\ndata: 10\n\n"
SPEC_IDS = (
    b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n"
)
SPEC_EMPTY = b"data\n\ndata\ndata\n\ndata:"
SPEC_SPACE = b"data:test\n\ndata: test\n\n"
SPEC_TYPES = (
    b"event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n"
)


def test_spec_example_stock_ticker() -> None:
    assert parse_all(SPEC_STOCK) == [Event(data="YHOO\n+2\n10")]


def test_spec_example_ids_and_discarded_last_event() -> None:
    events, last_id, _ = parser_state([SPEC_IDS])
    # "id" with no colon sets the id to "", and the unterminated third event is dropped.
    assert events == [Event(data="first event", id="1"), Event(data="second event", id="")]
    assert last_id == ""


def test_spec_example_ids_third_event_keeps_one_of_two_spaces() -> None:
    events = parse_all(SPEC_IDS + b"\n")
    assert events[2] == Event(data=" third event", id="")


def test_spec_example_empty_data_lines() -> None:
    assert parse_all(SPEC_EMPTY) == [Event(data=""), Event(data="\n")]


def test_spec_example_space_after_colon_is_optional() -> None:
    assert parse_all(SPEC_SPACE) == [Event(data="test"), Event(data="test")]


def test_spec_example_event_types() -> None:
    assert parse_all(SPEC_TYPES) == [
        Event("add", "73857293"),
        Event("remove", "2153"),
        Event("add", "113411"),
    ]


# -- parser rules --------------------------------------------------------------------


def test_parser_strips_leading_bom() -> None:
    assert parse_all(b"\xef\xbb\xbfdata: x\n\n") == [Event(data="x")]


def test_parser_strips_only_one_bom() -> None:
    # The second BOM is part of the field name "\ufeffdata", an unknown field.
    assert parse_all(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\ndata: y\n\n") == [Event(data="y")]


def test_parser_strips_bom_split_across_chunks() -> None:
    assert parse([b"\xef", b"\xbb", b"\xbf", b"data: x\n\n"]) == [Event(data="x")]
    assert parse([b"\xef\xbb", b"\xbfdata: x\n\n"]) == [Event(data="x")]


def test_parser_strips_bom_from_str_chunks() -> None:
    assert parse(["\ufeffdata: x\n\n"]) == [Event(data="x")]


def test_parser_keeps_bom_after_stream_start() -> None:
    assert parse([b"data: x\n\n", b"\xef\xbb\xbfdata: y\n\n"]) == [Event(data="x")]
    assert parse_all(b"data: \xef\xbb\xbfy\n\n") == [Event(data="\ufeffy")]


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
def test_parser_line_endings_cr_lf_crlf(eol: bytes) -> None:
    stream = b"event: e" + eol + b"data: a" + eol + b"data: b" + eol + eol
    assert parse_all(stream) == [Event("e", "a\nb")]


def test_parser_mixed_line_endings() -> None:
    assert parse_all(b"data: a\rdata: b\r\ndata: c\n\r\n") == [Event(data="a\nb\nc")]


def test_parser_crlf_split_across_chunks_is_one_line_end() -> None:
    # If the LF after a chunk-final CR counted as a second line end, the event
    # would be dispatched early and split in two.
    assert parse([b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]) == [Event(data="a\nb")]


def test_parser_cr_at_chunk_end_ends_the_line_at_once() -> None:
    p = EventParser()
    assert p.feed(b"data: a\r\r") == [Event(data="a")]
    assert p.feed(b"\ndata: b\n\n") == [Event(data="b")]  # the LF of "\r\n" is eaten


def test_parser_invalid_utf8_becomes_replacement_character() -> None:
    stream = b"data: a\xffb\xc3(\xed\xa0\x80\n\n"
    expected = "a\ufffdb\ufffd(\ufffd\ufffd\ufffd"
    for chunks in splits(stream):
        assert parse(chunks) == [Event(data=expected)]


def test_parser_truncated_utf8_at_close_becomes_replacement_character() -> None:
    assert parse([b"data: a\xe4\xb8"], dispatch_incomplete=True) == [Event(data="a\ufffd")]


def test_parser_multibyte_character_split_across_chunks() -> None:
    stream = "data: é中😀\n\n".encode()
    for chunks in splits(stream):
        assert parse(chunks) == [Event(data="é中😀")]


def test_parser_accepts_str_chunks() -> None:
    assert parse(["data: é\r", "\n", "\r\n"]) == [Event(data="é")]


def test_parser_accepts_bytearray_and_memoryview_chunks() -> None:
    assert parse([bytearray(b"data: a\n"), memoryview(b"\n")]) == [Event(data="a")]


def test_parser_ignores_comment_lines() -> None:
    assert parse_all(b": hello\n:\ndata: x\n: data: y\n\n") == [Event(data="x")]


def test_parser_field_without_colon_has_empty_value() -> None:
    assert parse_all(b"event: e\nevent\ndata\n\n") == [Event("message", "")]


@pytest.mark.parametrize(
    ("line", "value"),
    [
        (b"data:x", "x"),
        (b"data: x", "x"),
        (b"data:  x", " x"),
        (b"data:\tx", "\tx"),
        (b"data: ", ""),
        (b"data:: x", ": x"),
        (b"data: : x", ": x"),
        (b"data:x: y", "x: y"),
        (b"data: x: y", "x: y"),
    ],
)
def test_parser_strips_exactly_one_leading_space(line: bytes, value: str) -> None:
    # The field name ends at the first colon, and only the space right after it goes.
    assert parse_all(line + b"\n\n") == [Event(data=value)]


def test_parser_data_appends_value_and_lf_then_drops_one_trailing_lf() -> None:
    assert parse_all(b"data: a\ndata:\ndata\n\n") == [Event(data="a\n\n")]


def test_parser_empty_data_buffer_no_dispatch_but_type_resets() -> None:
    assert parse_all(b"event: e\n\ndata: x\n\n") == [Event("message", "x")]


def test_parser_empty_event_type_means_message() -> None:
    assert parse_all(b"event: e\nevent:\ndata: x\n\n") == [Event("message", "x")]


def test_parser_ignores_id_with_nul() -> None:
    events, last_id, _ = parser_state([b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n"])
    assert events == [Event(data="a", id="1"), Event(data="b", id="1")]
    assert last_id == "1"


def test_parser_id_sets_last_event_id_without_dispatch() -> None:
    events, last_id, _ = parser_state([b"id: 5\n\n"])
    assert (events, last_id) == ([], "5")


def test_parser_event_id_is_last_event_id_in_force() -> None:
    events = parse_all(b"id: 1\ndata: a\n\ndata: b\n\nid: 2\n\ndata: c\n\ndata: d\nid\n\n")
    assert [e.id for e in events] == ["1", "1", "2", ""]


def test_parser_last_event_id_waits_for_the_blank_line() -> None:
    p = EventParser()
    p.feed(b"id: 1\n\nid: 2\ndata: x\n")
    assert p.last_event_id == "1"
    assert p.close() == []
    assert p.last_event_id == "1"  # the unterminated event's id never took effect


def test_parser_retry_accepts_ascii_digits() -> None:
    events, _, retry = parser_state([b"retry: 2500\ndata: x\n\nretry:0\n\n"])
    assert events == [Event(data="x", retry=2500)]
    assert retry == 0


@pytest.mark.parametrize(
    "value",
    ["+5", " 12", "1_000", "١٢", "１２", "²", "", "12a", "-1", "1.5", "12 "],
)
def test_parser_retry_ignores_anything_but_ascii_digits(value: str) -> None:
    stream = f"retry: 700\n\nretry: {value}\ndata: x\n\nretry\n\n".encode()
    events, _, retry = parser_state([stream])
    assert events == [Event(data="x")]
    assert retry == 700


def test_parser_retry_with_thousands_of_digits() -> None:
    _, _, retry = parser_state([b"retry: 1" + b"0" * 5000 + b"\n\n"])
    assert retry == 10**5000


def test_parser_ignores_unknown_fields() -> None:
    stream = b"Data: no\nDATA: no\ndata : no\nfoo: bar\nretryx: 1\nidx: 9\ndata: x\n\n"
    events, last_id, retry = parser_state([stream])
    assert (events, last_id, retry) == ([Event(data="x")], "", None)


def test_parser_discards_incomplete_event_at_close() -> None:
    p = EventParser()
    assert p.feed(b"data: a\n\ndata: b\n") == [Event(data="a")]
    assert p.close() == []


def test_parser_dispatch_incomplete_processes_the_last_line() -> None:
    assert parse([b"data: a\n\nevent: e\nid: 3\ndata: b"], dispatch_incomplete=True) == [
        Event(data="a"),
        Event("e", "b", "3"),
    ]
    assert parse([b"data: b\n"], dispatch_incomplete=True) == [Event(data="b")]


def test_parser_dispatch_incomplete_needs_data() -> None:
    events, last_id, _ = parser_state([b"event: e\nid: 4"], dispatch_incomplete=True)
    assert (events, last_id) == ([], "4")


@pytest.mark.parametrize("text", ["\u2028", "\u2029", "\x85", "\x0c", "\x0b", "\x1c", "\x1e"])
def test_parser_breaks_lines_only_on_cr_and_lf(text: str) -> None:
    # str.splitlines() would break on all of these.
    stream = f"data: a{text}b\nevent: e{text}\n\n".encode()
    assert parse_all(stream) == [Event(f"e{text}", f"a{text}b")]


def test_parser_nul_in_data_and_event_is_kept() -> None:
    assert parse_all(b"event: \0\ndata: a\0b\n\n") == [Event("\0", "a\0b")]


def test_parser_max_line_bytes_raises_with_limit_and_count() -> None:
    p = EventParser(max_line_bytes=10)
    assert p.feed(b"data: 1234\n\n") == [Event(data="1234")]  # 10 bytes: allowed
    with pytest.raises(LineTooLongError) as info:
        p.feed(b"data: 12345")
    msg = str(info.value)
    assert "max_line_bytes=10" in msg
    assert "11 bytes without a line break" in msg
    assert isinstance(info.value, ParseError)
    assert isinstance(info.value, SSEError)
    # Also when the long line starts after complete lines in the same chunk.
    with pytest.raises(LineTooLongError, match="12 bytes without a line break"):
        EventParser(max_line_bytes=10).feed(b"data: 1\n\n" + b"x" * 12)


def test_parser_max_line_bytes_counts_across_chunks() -> None:
    p = EventParser(max_line_bytes=100)
    for _ in range(10):
        p.feed(b"x" * 10)
    with pytest.raises(LineTooLongError, match="101 bytes without a line break"):
        p.feed(b"y")


def test_parser_max_line_bytes_counts_bytes_not_characters() -> None:
    p = EventParser(max_line_bytes=10)
    p.feed("data: é".encode())  # 8 bytes
    with pytest.raises(LineTooLongError, match="11 bytes"):  # 8 characters
        p.feed("中".encode())


def test_parser_max_line_bytes_line_breaks_reset_the_count() -> None:
    p = EventParser(max_line_bytes=10)
    events: list[Event] = []
    for _ in range(100):
        events += p.feed(b"data: 12")
        events += p.feed(b"34\r")
    events += p.feed(b"\r")
    assert events == [Event(data="\n".join(["1234"] * 100))]


def test_parser_rejects_bad_max_line_bytes() -> None:
    with pytest.raises(ValueError, match="max_line_bytes"):
        EventParser(max_line_bytes=0)


def test_parser_close_resets_for_a_new_stream() -> None:
    p = EventParser()
    p.feed(b"\xef\xbb\xbfretry: 9\nid: 1\ndata: a\n\nevent: e\nid: 2\ndata: cut")
    assert p.close() == []
    assert (p.last_event_id, p.retry) == ("1", 9)
    # A new stream: a BOM is stripped again and no buffer leaks over from the old one.
    assert p.feed(b"\xef\xbb\xbfdata: b\n\n") == [Event(data="b", id="")]


# -- chunk splitting -----------------------------------------------------------------

TRICKY_STREAMS = [
    SPEC_STOCK,
    SPEC_IDS,
    SPEC_EMPTY,
    SPEC_SPACE,
    SPEC_TYPES,
    b"\xef\xbb\xbfdata: bom\r\n\r\n",
    b"data: a\r\rdata: b\r\n\r\ndata: c\n\r\n",
    "event: ü\rid: 中\r\ndata: 😀\xa0\n\n".encode(),
    b"retry: 10\nid: 1\n: comment\ndata\ndata:\n\nretry: +1\nid: a\x00b\ndata: x\r\n\n",
    b"data: a\xffb\xe4\xb8\n\n",
]


@pytest.mark.parametrize("stream", TRICKY_STREAMS)
def test_parser_same_events_whatever_the_chunk_boundaries(stream: bytes) -> None:
    whole = parser_state([stream])
    for chunks in splits(stream):
        assert parser_state(chunks) == whole, chunks


@pytest.mark.parametrize("stream", TRICKY_STREAMS)
def test_parser_same_events_from_str_chunks(stream: bytes) -> None:
    text = stream.decode("utf-8", "replace")
    whole = parser_state([stream])
    assert parser_state([text]) == whole
    assert parser_state(list(text)) == whole


def test_parser_same_events_for_random_three_way_splits() -> None:
    rng = random.Random(7)
    stream = b"".join(TRICKY_STREAMS)
    whole = parser_state([stream])
    for _ in range(300):
        a, b = sorted(rng.sample(range(len(stream) + 1), 2))
        assert parser_state([stream[:a], stream[a:b], stream[b:]]) == whole


# -- round trip property -------------------------------------------------------------

Item = tuple[str, str | None, str | None, int | None]  # data, event, id, retry


def encode_all(items: Iterable[Item]) -> bytes:
    return b"".join(encode_event(d, event=e, id=i, retry=r) for d, e, i, r in items)


def expected_state(items: Iterable[Item]) -> tuple[list[Event], str, int | None]:
    """What a spec parser must give back for `encode_all(items)`."""
    events = []
    last_id = ""
    retry = None
    for d, e, i, r in items:
        last_id = last_id if i is None else i
        retry = retry if r is None else r
        events.append(Event(e or "message", normalise_newlines(d), last_id, r))
    return events, last_id, retry


_text_pieces = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=8),
    st.sampled_from(["\r", "\n", "\r\n", "\u2028", "\x85", "\x00", "\ufeff", " ", ":", "é😀"]),
)
_data = st.lists(_text_pieces, max_size=8).map("".join)
_no_break = st.characters(exclude_categories=["Cs"], exclude_characters="\r\n")
_names = st.none() | st.text(_no_break, max_size=10)
_ids = st.none() | st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\0"), max_size=10
)
_retries = st.none() | st.integers(0, 10**12)
_items = st.lists(st.tuples(_data, _names, _ids, _retries), min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(items=_items, data=st.data())
def test_roundtrip_encode_then_parse_split_anywhere(items: list[Item], data: st.DataObject) -> None:
    wire = encode_all(items)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=10)))
    chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    assert parser_state(chunks) == expected_state(items)


@given(
    wire=st.binary(max_size=300)
    | st.lists(st.sampled_from([b"data: x", b"id: 7", b"event: e", b"retry: 5", b":c", b""])).map(
        lambda lines: b"\n".join(lines)
    ),
    data=st.data(),
)
def test_feed_rows_gives_the_same_events_as_feed(wire: bytes, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    p, q = EventParser(), EventParser()
    events = [ev for c in chunks for ev in p.feed(c)]
    rows = [row for c in chunks for row in q.feed_rows(c)]
    assert rows == [(e.event, e.data, e.id, e.retry) for e in events]
    assert [Event(*row) for row in rows] == events
    assert (q.last_event_id, q.retry) == (p.last_event_id, p.retry)


# -- real third-party clients read our bytes -----------------------------------------

TRICKY_ITEMS: list[Item] = [
    ('{"loss": 0.25, "step": 1}', "update", "1", None),
    ("line 1\nline 2\r\nline 3\rline 4", None, "2", 3000),
    ("", "empty", None, None),
    ("\n", None, None, None),
    ("  leading spaces: and: colons", "x:y", "id: with colon", None),
    ("unicode é 中 😀 \u2028 \x85 \x0c \x0b tab\t", "ünï", "ïd", None),
    ("trailing newline\n", "", "", None),
    ("\r\n\r\n", "data", "5", 0),
    ("event: not an event\n\nid: 666\n\ndata: nor this", "message", "7", None),
    ("x" * 5000 + "\n" + "y" * 70000, None, "8", None),
]


def random_chunks(wire: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    chunks = []
    i = 0
    while i < len(wire):
        n = rng.choice([1, 2, 3, 7, 64, 1000, 65536])
        chunks.append(wire[i : i + n])
        i += n
    return chunks


@pytest.mark.parametrize("seed", range(5))
def test_httpx_sse_reads_our_bytes(seed: int) -> None:
    chunks = random_chunks(encode_all(TRICKY_ITEMS), seed)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=iter(chunks)
        )

    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as client,
        connect_sse(client, "GET", "http://test/stream") as source,
    ):
        got = [Event(s.event, s.data, s.id, s.retry) for s in source.iter_sse()]
    assert got == expected_state(TRICKY_ITEMS)[0]
    assert parse(chunks) == got


@pytest.mark.parametrize("seed", range(5))
def test_sseclient_py_reads_our_bytes(seed: int) -> None:
    # sseclient-py starts each event afresh (no id carry-over) and keeps retry as text,
    # so compare what it models; everything it does model must agree.
    chunks = random_chunks(encode_all(TRICKY_ITEMS), seed)
    got = [(s.event, s.data, s.id, s.retry) for s in sseclient.SSEClient(iter(chunks)).events()]
    expected = [
        (e or "message", normalise_newlines(d), i, None if r is None else str(r))
        for d, e, i, r in TRICKY_ITEMS
    ]
    assert got == expected


def test_json_payloads_round_trip() -> None:
    payloads = [{"a": 1}, [1, "two\nlines"], "text", None, {"nested": {"x": [0.5]}}]
    wire = b"".join(encode_event(json.dumps(p)) for p in payloads)
    assert [e.json() for e in parse_all(wire)] == payloads
