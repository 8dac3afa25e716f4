"""The Server-Sent Events wire format: encoding and incremental parsing.

Pure functions and classes, no I/O. The parser follows the WHATWG HTML standard,
section "Server-sent events", exactly:
https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream

>>> from sse_widget.protocol import EventParser, encode_event
>>> wire = encode_event("line 1\\nline 2", event="update", id="7")
>>> wire
b'event: update\\nid: 7\\ndata: line 1\\ndata: line 2\\n\\n'
>>> EventParser().feed(wire)
[Event('update', data='line 1\\nline 2', id='7')]
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, overload

from .errors import EncodeError, LineTooLongError, shown

__all__ = [
    "Event",
    "EventParser",
    "check_event_name",
    "check_id",
    "check_text",
    "encode_comment",
    "encode_event",
    "split_lines",
]

_REPR_DATA_CHARS = 60
_NO_LINES: list[str] = []

# One event as a plain tuple: (event, data, id, retry), the fields of an Event in order.
Row = tuple[str, str, str, int | None]


@dataclass(frozen=True, slots=True, repr=False)
class Event:
    """One dispatched Server-Sent Event.

    Parameters
    ----------
    event : str
        The event type; ``"message"`` when the stream gave none.
    data : str
        The data, its lines joined with LF.
    id : str
        The last event ID in force when the event was dispatched (``""`` if none was
        ever set). As in a browser, it carries over to later events that set no id.
    retry : int or None
        The reconnection time (ms) that a ``retry`` field in this event's own block
        set, else None. :attr:`EventParser.retry` keeps the one in force.
    """

    event: str = "message"
    data: str = ""
    id: str = ""
    retry: int | None = None

    def json(self) -> Any:
        """Return the data parsed as JSON (:func:`json.loads`)."""
        return json.loads(self.data)

    def __repr__(self) -> str:
        data = self.data
        if len(data) > _REPR_DATA_CHARS:
            shown = f"{data[:_REPR_DATA_CHARS]!r}... ({len(data)} chars)"
        else:
            shown = repr(data)
        parts = [repr(self.event), f"data={shown}"]
        if self.id:
            parts.append(f"id={self.id!r}")
        if self.retry is not None:
            parts.append(f"retry={self.retry!r}")
        return f"Event({', '.join(parts)})"


# -- encoding ------------------------------------------------------------------------


def check_event_name(name: str) -> str:
    """Return `name` if it can go in an ``event:`` field, else raise.

    Raises
    ------
    EncodeError
        If `name` is not a str, or contains CR or LF (which would start a new field,
        letting the value inject fields or whole events).
    """
    if type(name) is not str:
        raise EncodeError(f"event name must be a str; got {type(name).__name__}: {shown(name)}")
    if "\n" in name or "\r" in name:
        raise EncodeError(
            f"event name must not contain CR or LF (it would start a new field); got {shown(name)}"
        )
    return check_text(name, "event name")


def check_text(text: str, what: str = "data") -> str:
    """Return `text` if it can be encoded as UTF-8, else raise ``EncodeError``.

    A ``str`` can hold what UTF-8 cannot: lone surrogates (``"\\ud800"``), which
    ``json.loads`` and ``surrogateescape`` decoding produce. Such text could never go out,
    so it is refused when it comes in. ASCII text is known to be fine at no cost.
    """
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _not_utf8(what, exc) from None
    return text


def check_id(id: str) -> str:
    """Return `id` if it can go in an ``id:`` field, else raise.

    Raises
    ------
    EncodeError
        If `id` is not a str, contains CR or LF (it would start a new field), or
        contains NUL (a spec parser would ignore such an id).
    """
    if type(id) is not str:
        raise EncodeError(f"id must be a str; got {type(id).__name__}: {shown(id)}")
    if "\n" in id or "\r" in id:
        raise EncodeError(
            f"id must not contain CR or LF (it would start a new field); got {shown(id)}"
        )
    # The spec's parser drops an id containing NUL, so it would never arrive:
    # https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
    if "\0" in id:
        raise EncodeError(f"id must not contain NUL (a parser ignores such an id); got {shown(id)}")
    return id


def _check_retry(retry: object) -> int:
    # bool is an int subclass; `retry=True` is a bug in the caller, not 1 ms.
    if type(retry) is not int:
        raise EncodeError(
            "retry must be an int number of milliseconds; "
            f"got {type(retry).__name__}: {shown(retry)}"
        )
    if retry < 0:
        raise EncodeError(f"retry must not be negative; got {shown(retry)}")
    return retry


def _not_utf8(what: str, exc: UnicodeEncodeError) -> EncodeError:
    bad = exc.object[exc.start : exc.end]
    return EncodeError(f"{what} must be encodable as UTF-8; got {shown(bad)} ({exc.reason})")


def split_lines(text: str) -> list[str]:
    """The lines of ``text``, split at CRLF, CR and LF only (as the wire format does)."""
    # The wire format knows exactly three line breaks: CRLF, CR and LF.
    # str.splitlines() would also break on U+2028, NEL, FF, VT... so it is not used.
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _data_field(data: str) -> str:
    if type(data) is not str:
        raise EncodeError(f"data must be a str; got {type(data).__name__}: {shown(data)}")
    # One `data:` line per line of text: a spec parser joins them with LF, so the
    # text comes back with its line breaks normalised to LF.
    return "".join(["data: " + line + "\n" if line else "data:\n" for line in split_lines(data)])


def encode_event(
    data: str,
    *,
    event: str | None = None,
    id: str | None = None,
    retry: int | None = None,
) -> bytes:
    """Encode one event as UTF-8 bytes, ending with the blank line that dispatches it.

    Parameters
    ----------
    data : str
        The event data. Any CR, LF or CRLF in it splits it over several ``data:``
        lines, so a spec parser gives back the same text with line breaks as LF.
        An empty string still dispatches an event (with data ``""``).
    event : str, optional
        The event type. None or ``""`` sends none, which readers see as ``"message"``.
    id : str, optional
        The event id, which readers keep as their last event ID. ``""`` resets it.
    retry : int, optional
        The reconnection time in milliseconds, for readers to use from now on.

    Returns
    -------
    bytes
        ``event:``, ``id:``, ``retry:`` and ``data:`` lines and a blank line, LF-ended.

    Raises
    ------
    EncodeError
        If `event` or `id` contains CR or LF, `id` contains NUL, `retry` is negative,
        a bool or not an int, or `data` is not a str or not encodable as UTF-8. No
        input ever yields more than one event on the wire.
    """
    if type(data) is not str or "\n" in data or "\r" in data:
        body = _data_field(data) + "\n"
    elif data:
        body = "data: " + data + "\n\n"
    else:
        body = "data:\n\n"
    if retry is not None:
        body = f"retry: {_check_retry(retry)}\n" + body
    if id is not None:
        if type(id) is not str or "\n" in id or "\r" in id or "\0" in id:
            check_id(id)
        body = "id: " + id + "\n" + body
    if event is not None:
        if type(event) is not str or "\n" in event or "\r" in event:
            check_event_name(event)
        if event:
            body = "event: " + event + "\n" + body
    try:
        return body.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _not_utf8("data, event name and id", exc) from None


def encode_comment(text: str) -> bytes:
    """Encode `text` as comment lines, which every reader ignores.

    Each line of `text` (split on CR, LF and CRLF) becomes its own ``: `` line, so no
    text can end the comment early. Empty text gives ``b":\\n"``. Servers send
    comments as keep-alive pings.

    Raises
    ------
    EncodeError
        If `text` is not a str.
    """
    if type(text) is not str:
        raise EncodeError(f"comment must be a str; got {type(text).__name__}: {shown(text)}")
    lines = split_lines(text)
    try:
        return "".join([": " + line + "\n" if line else ":\n" for line in lines]).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _not_utf8("comment", exc) from None


# -- parsing -------------------------------------------------------------------------


def _digits_to_int(digits: str) -> int:
    if len(digits) < 4000:
        return int(digits)
    # int(str) refuses over ~4300 digits (CVE-2020-10735 guard); Decimal has no limit.
    return int(Decimal(digits))


class EventParser:
    """Incremental Server-Sent Events parser, exact to the WHATWG HTML standard.

    Feed it the response body in chunks of any size, split anywhere (even inside a
    CRLF or a UTF-8 character); it returns each event as soon as the blank line that
    dispatches it arrives.

    Parameters
    ----------
    dispatch_incomplete : bool
        At :meth:`close`, also process a last line that has no line break and
        dispatch the pending event if it holds data. The spec discards an event the
        stream ends in the middle of, but some LLM APIs end without the blank line.
    max_line_bytes : int
        The most bytes a line may grow to without a line break (default 1 MiB). A
        longer line raises :class:`~sse_widget.errors.LineTooLongError`, so a broken
        or hostile stream cannot fill memory.

    Examples
    --------
    >>> p = EventParser()
    >>> p.feed(b"retry: 3000\\r\\nid: 1\\r\\ndata: hel") + p.feed("lo\\r\\n\\r\\ndata: cut")
    [Event('message', data='hello', id='1', retry=3000)]
    >>> p.close()
    []
    >>> p.retry, p.last_event_id
    (3000, '1')

    Notes
    -----
    :meth:`close` ends the stream and resets everything but :attr:`retry` and
    :attr:`last_event_id`, so the same parser can read a reconnection's stream.
    """

    def __init__(self, *, dispatch_incomplete: bool = False, max_line_bytes: int = 1 << 20):
        if type(max_line_bytes) is not int or max_line_bytes < 1:
            raise ValueError(f"max_line_bytes must be a positive int; got {max_line_bytes!r}")
        self._dispatch_incomplete = dispatch_incomplete
        self._max_line_bytes = max_line_bytes
        self._retry: int | None = None
        # The event source's "last event ID string", which the spec updates at each
        # dispatch (blank line), as opposed to the id buffer that `id:` sets.
        self._last_event_id = ""
        self._reset_stream()

    def _reset_stream(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._at_start = True  # no text decoded yet: a BOM may still come
        self._skip_lf = False  # the last text ended in CR: a next LF is part of CRLF
        self._tail: list[str] = []  # the line in progress, in pieces
        self._tail_bytes = 0
        # "When a stream is parsed, a data buffer, an event type buffer, and a last
        # event ID buffer must be associated with it. They must be initialized to the
        # empty string." The last event ID *string* (what a reconnection sends) stays.
        self._type = ""
        self._id_buffer = ""
        self._data: list[str] = []
        self._event_retry: int | None = None

    @property
    def retry(self) -> int | None:
        """The reconnection time in ms that the stream last set, or None."""
        return self._retry

    @property
    def last_event_id(self) -> str:
        """The last event ID in force, to send as ``Last-Event-ID`` when reconnecting.

        Like a browser's, it is updated at each blank line, whether or not an event
        is dispatched, and not by the id of an event the stream ended in the middle of.
        """
        return self._last_event_id

    def feed(self, chunk: bytes | bytearray | memoryview | str) -> list[Event]:
        """Parse the next piece of the stream.

        Parameters
        ----------
        chunk : bytes, bytearray, memoryview or str
            Bytes are decoded as UTF-8 (invalid sequences become U+FFFD); a str is
            taken as already decoded text.

        Returns
        -------
        list of Event
            The events that this chunk completed, in order.

        Raises
        ------
        LineTooLongError
            If a line grew past ``max_line_bytes`` without a line break. Any events
            completed in the same chunk are lost, and the parser should be dropped.
        """
        return self._process(self._lines(chunk), False)

    def feed_rows(self, chunk: bytes | bytearray | memoryview | str) -> list[Row]:
        """Like :meth:`feed`, but each event is a plain tuple ``(event, data, id, retry)``.

        For consumers that handle many events a second and keep them: tuples of strings
        cost less to make than :class:`Event` objects, and the garbage collector stops
        tracking them. ``Event(*row)`` turns one into an :class:`Event`.
        """
        return self._process(self._lines(chunk), True)

    def _lines(self, chunk: bytes | bytearray | memoryview | str) -> list[str]:
        # The complete lines this chunk finishes; the rest waits in self._tail.
        if isinstance(chunk, str):
            if self._decoder.getstate()[0]:
                # Bytes left mid-character, then text: they can never complete.
                text = self._decoder.decode(b"", True) + chunk
                self._decoder.reset()
            else:
                text = chunk
        else:
            text = self._decoder.decode(chunk)
        if not text:
            return _NO_LINES
        if self._at_start:
            self._at_start = False
            # https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream
            # "One leading U+FEFF BYTE ORDER MARK character must be ignored if any are
            # present." The incremental decoder reassembles a BOM split across chunks.
            if text[0] == "\ufeff":
                text = text[1:]
                if not text:
                    return _NO_LINES
        if self._skip_lf:
            # A CR ended the previous text and was taken as a line end at once; an LF
            # that follows it belongs to the same CRLF (even split across chunks).
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return _NO_LINES
        if "\r" in text:
            # Lines end in CRLF, LF or CR (the spec's `end-of-line`); normalise all to LF.
            self._skip_lf = text[-1] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if "\n" not in text:
            self._tail.append(text)
            self._tail_bytes += len(text) if text.isascii() else len(text.encode("utf-8"))
            if self._tail_bytes > self._max_line_bytes:
                self._line_too_long()
            return _NO_LINES
        lines = text.split("\n")
        if self._tail:
            self._tail.append(lines[0])
            lines[0] = "".join(self._tail)
            self._tail = []
        tail = lines.pop()
        if tail:
            self._tail.append(tail)
            self._tail_bytes = len(tail) if tail.isascii() else len(tail.encode("utf-8"))
            if self._tail_bytes > self._max_line_bytes:
                self._line_too_long()
        else:
            self._tail_bytes = 0
        return lines

    def close(self) -> list[Event]:
        """End the stream.

        The spec discards an event that the stream ends in the middle of, so this
        returns ``[]`` unless the parser was made with ``dispatch_incomplete=True``:
        then a last line without a line break is processed, and the pending event is
        dispatched if it holds data.

        The parser is then ready for a new stream (a reconnection): :attr:`retry` and
        :attr:`last_event_id` are kept, while the data, event type and last event ID
        buffers start empty again, as the spec says for each new stream.
        """
        # Bytes cut off mid-character at the end become U+FFFD, as in the spec's decoder.
        last = "".join([*self._tail, self._decoder.decode(b"", True)])
        events: list[Event] = []
        if self._dispatch_incomplete:
            events = self._process([last, ""] if last else [""], False)
        self._reset_stream()
        return events

    def _line_too_long(self) -> None:
        n = self._tail_bytes
        self._tail = []
        self._tail_bytes = 0
        raise LineTooLongError(
            f"a line may be at most max_line_bytes={self._max_line_bytes} bytes long; "
            f"got {n} bytes without a line break"
        )

    @overload
    def _process(self, lines: list[str], rows: Literal[False]) -> list[Event]: ...
    @overload
    def _process(self, lines: list[str], rows: Literal[True]) -> list[Row]: ...

    def _process(self, lines: list[str], rows: bool) -> list[Event] | list[Row]:
        # https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
        events: list[Any] = []
        append = events.append
        new, set_type, set_data, set_id, set_retry = _EVENT_FACTORY
        data = self._data
        event_type = self._type
        id_buffer = self._id_buffer
        event_retry = self._event_retry
        last_event_id = self._last_event_id
        for line in lines:
            if not line:
                # Dispatch. The last event ID string is set even when there is no data.
                last_event_id = id_buffer
                if data and rows:
                    append((event_type or "message", "\n".join(data), id_buffer, event_retry))
                    data = []
                elif data:
                    # The buffer is each value plus LF, less one trailing LF: a join.
                    ev = new(Event)
                    set_type(ev, event_type or "message")
                    set_data(ev, "\n".join(data))
                    set_id(ev, id_buffer)
                    set_retry(ev, event_retry)
                    append(ev)
                    data = []
                # An empty data buffer dispatches nothing, but the type resets anyway.
                event_type = ""
                event_retry = None
                continue
            # The field name ends at the first colon and exactly one space after it is
            # dropped (`data:  x` has the value " x"). Most lines have that space, and
            # one partition on ": " splits them, if no colon came earlier.
            field, sep, value = line.partition(": ")
            if not sep or ":" in field:
                # No colon at all means a field with an empty value; a line that starts
                # with a colon has the empty field name: a comment, ignored below.
                field, _, value = line.partition(":")
            if field == "data":
                data.append(value)
            elif field == "event":
                event_type = value
            elif field == "id":
                # An id containing NUL is ignored (it would break the Last-Event-ID header).
                if "\0" not in value:
                    id_buffer = value
            # Only ASCII digits: "+5", " 12", "1_000" and "١٢" are ignored, although
            # int() takes them. isascii() is what makes isdigit() safe here.
            elif field == "retry" and value.isascii() and value.isdigit():
                event_retry = self._retry = _digits_to_int(value)
            # Any other field name is ignored.
        self._last_event_id = last_event_id
        self._data = data
        self._type = event_type
        self._id_buffer = id_buffer
        self._event_retry = event_retry
        return events


# Building an Event through its frozen dataclass __init__ costs as much as parsing
# its lines; the parser fills the slots directly instead.
_EVENT_FACTORY = (
    object.__new__,
    Event.__dict__["event"].__set__,
    Event.__dict__["data"].__set__,
    Event.__dict__["id"].__set__,
    Event.__dict__["retry"].__set__,
)
