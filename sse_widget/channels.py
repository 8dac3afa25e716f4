"""Named channels with a bounded history and one id sequence per server.

A :class:`ChannelRegistry` belongs to one :class:`~sse_widget.server.EventServer`. It hands
out ids from a single increasing sequence shared by all its channels, so one cursor (an
id) can resume any mix of channels. :meth:`Channel.publish` is safe from any thread and
takes no lock: it takes an id, stores the event in the channel's pending dict under it
and, at most once per drain, asks the server's loop to drain. Everything else runs on
the server thread, where :meth:`ChannelRegistry.drain` moves pending events into the
histories, in id order.

The plain SSE form is made per chunk, by one join, whenever a client needs it; the last
chunk is remembered for the next reader at the same place. The multiplexed form is made
once per event, lazily. Clients are cursors into this shared history, never private
queues (see DESIGN.md), so memory is bounded by the history whatever the clients do.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import sys
import threading
import time
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from itertools import accumulate
from operator import add
from typing import NoReturn, Protocol

from .errors import EncodeError, SSEError, shown
from .protocol import Event, check_event_name, check_text, split_lines
from .serialize import to_text

__all__ = [
    "GAP_EVENT",
    "MAX_EVENT_TYPE",
    "RESERVED_PREFIX",
    "Channel",
    "ChannelRegistry",
    "Subscriber",
    "check_user_event",
    "collect_mux",
]

#: Event types starting with this are ours (see :data:`GAP_EVENT`); ``send()`` refuses them.
RESERVED_PREFIX = "sse_widget."
#: The longest event type ``send()`` takes. Types are names; every reader's view of a
#: stream keeps them, and valid ones are remembered (up to 10,000) to check them once.
MAX_EVENT_TYPE = 256
#: Sent to a client whose cursor is older than the history: data ``{"missed": N}``.
GAP_EVENT = "sse_widget.gap"

_DEFAULT_HISTORY = 10_000
#: Whether this Python has a GIL (a free-threaded build has none): without one, steps of
#: two threads are not atomic or ordered as they are with it.
GIL_ENABLED: bool = getattr(sys, "_is_gil_enabled", lambda: True)()
# time.sleep(0) lets go of the GIL, so a thread that waits for it gets a turn.
_yield_to_server = functools.partial(time.sleep, 0)
# Beyond this many runs of consecutive ids (16 bytes each; a stream whose events alternate
# with another's makes one run per event) the oldest half is forgotten, rather than memory
# growing without end. A cursor older than every run kept then gets a lower bound for its
# missed count, and its gap event says so ("at_least": true). A channel keeps at most
# _RUNS_PER_EVENT runs per event of its history (at least _MIN_RUNS), so that what it
# keeps is bounded by its history too: 20 interleaved streams of 1,000 events each would
# otherwise hold 8 MiB of runs apiece.
_MAX_RUNS = 1 << 19
_RUNS_PER_EVENT = 4
_MIN_RUNS = 1 << 12
# Idempotency keys remembered per channel, so a publisher's retried POST lands once.
_MAX_KEYS = 4_096
# How long a drain waits for an event whose id was taken but never appended, and how
# often it looks again meanwhile.
_MISSING_TIMEOUT = 0.25
_MISSING_RETRY = 0.002
# Rough per-event overhead of the encoded form, for the byte bound of the history.
_OVERHEAD = 16

_MESSAGE = '"message"'
# Encoded sizes are summed this many entries at a time when a batch is cut by size.
_CUT_BLOCK = 4096
# At most this many event types' "event: …" lines are kept made.
_MAX_EVENT_LINES = 1024

_checked_events: set[str] = set()

Item = tuple[int, "str | None", str]
# The pending events a drain takes from one channel: ids (sorted), types (None when no
# event has one) and data, side by side.
Batch = tuple[list[int], "list[str | None] | None", list[str]]

# Ids are written as a head shared by a thousand ids and a tail from these tables, so a
# run of consecutive ids costs no integer formatting (the dearest part of encoding). A
# head starts with the blank line that ends the event before it; a tail may carry the
# "data: " that follows the id line.
_HEAD = "\n\nid: "
_DATA = "data: "
_TAILS = {
    (width, after): [f"{k:0{width}d}\n{after}" for k in range(1000)]
    for width in (1, 3)
    for after in ("", _DATA)
}
_ID_LINES = {after: ("{}\n" + after).format for after in ("", _DATA)}
_BLANK = "\n\n"
_EVENT_LINE = "event: {}\n"  # before the "data: " of an event with a type
_EVENT_FRAMING = len(_EVENT_LINE.format(""))
# Per event on the plain stream, besides the data and the event line: "id: " + "\n" + "\n\n".
_FRAMING = 7


def _event_lines_size(types: list[str | None]) -> int:
    """How many characters the ``event:`` lines of events with these types make."""
    typed = len(types) - types.count(None)
    if not typed:
        return 0
    return sum(map(len, filter(None, types))) + _EVENT_FRAMING * typed


def check_user_event(event: str) -> str:
    """Validate an event type that user code wants to send.

    Adds the reserved-prefix rule to :func:`~sse_widget.protocol.check_event_name`.
    Valid names are cached, so a loop that sends ``event="update"`` pays one set lookup.
    """
    if not isinstance(event, str):
        raise TypeError(f"event must be a str or None; got {type(event).__name__}: {shown(event)}")
    if event in _checked_events:
        return event
    check_event_name(event)
    if len(event) > MAX_EVENT_TYPE:
        raise EncodeError(
            f"event type must be at most {MAX_EVENT_TYPE} characters; got {len(event)}: "
            f"{shown(event)}"
        )
    if not event:
        # On the wire an empty type means "message": refused, as it is surely a slip.
        raise EncodeError("event type must not be empty; got '' (None sends the type 'message')")
    if event.startswith(RESERVED_PREFIX):
        raise EncodeError(
            f"event types starting with {RESERVED_PREFIX!r} are reserved for sse_widget; "
            f"got {shown(event)}"
        )
    if len(_checked_events) < 10_000:
        _checked_events.add(event)
    return event


class Subscriber(Protocol):
    """What a channel needs from a connected reader: a way to be told about new events."""

    def notify(self) -> None:
        """Called on the server thread after new events were appended."""


def _item_id(item: Item) -> int:
    return item[0]


def _id_parts(ids: list[int], after: str) -> tuple[list[str], list[str]]:
    """Heads and tails that, joined pairwise, are ``f"\\n\\nid: {i}\\n{after}"`` per id."""
    n = len(ids)
    if not n or ids[-1] - ids[0] != n - 1:
        return [_HEAD] * n, list(map(_ID_LINES[after], ids))
    heads: list[str] = []
    tails: list[str] = []
    i, end = ids[0], ids[0] + n
    while i < end:
        block, k = divmod(i, 1000)
        m = min(1000 - k, end - i)
        if block:
            heads += [f"{_HEAD}{block}"] * m
            tails += _TAILS[3, after][k : k + m]
        else:
            heads += [_HEAD] * m
            tails += _TAILS[1, after][k : k + m]
        i += m
    return heads, tails


class Channel:
    """A named stream of events with a bounded history.

    Parameters
    ----------
    name:
        The stream's name, unique within its registry.
    registry:
        The registry that owns the id sequence.
    max_events:
        How many events the history holds (default 10,000).
    max_bytes:
        Optional bound on the history's size (approximately its encoded bytes).

    Notes
    -----
    Everything but :meth:`publish`, :meth:`publish_many`, :meth:`publish_once` and
    :meth:`close` runs on the server thread.

    Nothing here makes an object the garbage collector tracks per event (no tuple per
    event): pending events are dict entries keyed by id, and the history is lists side
    by side. At a million events a second, tracked objects cost the producer more than
    the rest of :meth:`publish` in collections alone.
    """

    def __init__(
        self,
        name: str,
        registry: ChannelRegistry,
        *,
        max_events: int = _DEFAULT_HISTORY,
        max_bytes: int | None = None,
    ) -> None:
        if not isinstance(max_events, int) or isinstance(max_events, bool) or max_events < 1:
            raise ValueError(f"history must be a positive int (events); got {max_events!r}")
        if max_bytes is not None and (
            not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 1
        ):
            raise ValueError(f"history_bytes must be a positive int or None; got {max_bytes!r}")
        self.name = name
        self.registry = registry
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.closed = False
        self._closed_upto = 0
        # Set by the server thread once a closed channel is drained: nothing more can
        # come, so a reader that has everything up to here is done. (``closed`` is set by
        # the closing thread at once, while events it sent may still be pending.)
        self.ended = False
        self.subscribers: set[Subscriber] = set()
        # Published, not drained yet: data by id, and the type of those that have one
        # (stored first, so an id whose data is here has its type here too).
        self._pending: dict[int, str] = {}
        # Past this many, a sender lets the server thread take the GIL for a turn. The
        # server commits pending events before each write, but every write lets go of the
        # GIL, and getting it back from a sending loop takes a hand-over (~5 ms) in which
        # the loop can publish tens of thousands more: with many readers, what waits
        # outside the bounded history would grow with them. One turn, no waiting for
        # any reader: in the usual case the check is never true. It compares ids, not
        # len(_pending): the first send after a drain sets the id past which the pending
        # events surely number over the cap, and a comparison costs a quarter of what a
        # call to len() adds to every send.
        self._pending_cap = 2 * max_events + 10_000
        self._yield_after = 0
        self._pending_types: dict[int, str] = {}
        self._held: list[Item] = []  # drained, but above an id not appended yet
        self._dirty = False
        self._take_id = registry.ids.take
        self._take_ids = registry.ids.take_many
        # The history, lists side by side from index 0; [_start:] is held. _wire is the
        # data as it goes after "data: " (a line break continues with another "data: "),
        # and _raw the data itself for the few events where the two differ. _mux is the
        # multiplexed form, filled lazily (so possibly shorter).
        self._ids: list[int] = []
        self._types: list[str | None] = []
        self._wire: list[str] = []
        self._raw: dict[int, str] = {}
        self._start = 0
        self._event_lines: dict[str | None, str] = {None: _DATA}  # a cache, bounded
        self._sse_memo: tuple[tuple[int, int, int, int], bytes, int] | None = None
        self._mux: list[str] = []
        self._sizes: list[int] = []  # only with max_bytes
        # The plain stream's size by batch (one per _append), as running totals: entry k
        # is where batch k ends in the lists above and how many characters all batches
        # up to it make, ids counted as wide as each batch's last. Entry 0 is the start
        # of the first batch still listed. A reader that keeps up asks for whole batches,
        # so a cut by size is a bisection, not a pass over every event's length.
        self._batch_ends: list[int] = [0]
        self._batch_chars: list[int] = [0]
        self._bytes = 0
        # Per-channel sequence numbers as runs of consecutive global ids, so that a cursor
        # (a global id) can be turned into "how many of our events came after it".
        self._run_ids = array("q")
        self._run_seqs = array("q")
        self._max_runs = min(_MAX_RUNS, max(_RUNS_PER_EVENT * max_events, _MIN_RUNS))
        self._runs_cut = False  # the oldest runs were forgotten
        self._total = 0
        self._last_counted = -1
        self._keys: OrderedDict[str, int] = OrderedDict()
        self._json_name = json.dumps(name, ensure_ascii=False)

    # -- any thread ------------------------------------------------------------------

    def publish(self, data: object, event: str | None = None) -> int:
        """Send one event; returns its id at once, whatever the readers do.

        ``data`` may be a str (sent as it is, line breaks included) or anything JSON can
        hold: dicts, lists, numbers, numpy scalars and arrays, datetimes (NaN and the
        infinities become ``null``). ``event`` is the event type, ``"message"`` if None.
        Thread-safe: call it from any thread, or from asyncio code. It never waits for
        the network: it costs a few hundred nanoseconds of the caller's time.

        Raises
        ------
        TypeError
            If ``data`` cannot be serialised, or ``event`` is not a str (the message
            names the type).
        sse_widget.SSEError
            If ``event`` has a line break or starts with ``sse_widget.``, if either holds
            text UTF-8 cannot encode (a lone surrogate), or if the stream is closed.
        """
        # EventStream.send is this method. No lock is taken: the id comes from the
        # registry's IdSequence and a dict store is atomic; ChannelRegistry.drain orders
        # what concurrent callers stored. check_user_event remembers valid types, so a
        # loop sending the same type pays a set lookup.
        if type(data) is not str:
            data = to_text(data)
        if not data.isascii():
            check_text(data)
        if event is not None and (type(event) is not str or event not in _checked_events):
            check_user_event(event)
        i = self._take_id()
        if event is not None:
            self._pending_types[i] = event
        self._pending[i] = data
        if not self._dirty:
            self._yield_after = i + self._pending_cap
            self._mark_dirty()
        elif i > self._yield_after:
            _yield_to_server()
        return i

    def publish_many(self, events: Sequence[str | None], datas: Sequence[str]) -> int:
        """Queue many events in one go (types and data side by side); returns the last id.

        As :meth:`publish`, for callers with a batch in hand (a feed's chunk of events).
        """
        if len(events) != len(datas):
            raise ValueError(f"{len(events)} event types for {len(datas)} data strings")
        if not all(map(str.isascii, datas)):
            for d in datas:
                check_text(d)
        ids = self._take_ids(len(datas))
        self._pending_types.update(
            [(i, ev) for i, ev in zip(ids, events, strict=True) if ev is not None]
        )
        self._pending.update(zip(ids, datas, strict=True))
        if not self._dirty:
            if ids:
                self._yield_after = ids[0] + self._pending_cap
            self._mark_dirty()
        return ids[-1] if ids else self.registry.ids.peek() - 1

    def _mark_dirty(self) -> None:
        # One drain for every channel with news. The drain clears the flag before it
        # takes the pending events, so an event stored after that sets it again.
        reg = self.registry
        scheduled = False
        try:
            with reg.lock:
                if self._dirty:
                    return
                self._dirty = True
                reg.dirty.append(self)
                if reg.drain_scheduled:
                    return
                scheduled = True
                reg.drain_scheduled = True
            # Outside the lock: the hand-over writes to the loop's wake-up pipe, which
            # lets go of the GIL, and the server thread that takes it then should find
            # the lock free and send at once, not wait for this thread and then for the
            # GIL again (~5 ms each while a notebook computes). A drain that runs before
            # the wake-up takes this channel anyway; the one woken then finds nothing.
            reg.wake()
        except BaseException:
            if scheduled:
                # Interrupted (Ctrl-C) before the drain was surely scheduled: let the next
                # publish schedule it. Events that other threads left meanwhile, trusting
                # this drain, are found by the server's sweep (ChannelRegistry.sweep).
                with reg.lock:
                    reg.drain_scheduled = False
                    self._dirty = False
            raise

    def close(self, reason: str | None = None) -> None:
        """Refuse every later publish (``SSEError``); readers see the stream end.

        ``reason`` is the refusal's message (by default: the stream is closed).
        """
        # Every id taken up to now may belong here, its sender switched out before storing
        # the event: the server waits for those before it ends the readers (settled()).
        self._closed_upto = self.registry.ids.peek() - 1
        self.closed = True
        self._closed_reason = reason or f"stream {self.name!r} is closed; create a new EventStream"
        # Publishing takes ids first: refusing there costs a sending loop nothing, and
        # also stops a reference to ``stream.send`` kept from before the close.
        self._take_id = self._take_ids = self._refuse

    def _refuse(self, n: int = 0) -> NoReturn:  # stands in for take() and take_many(n)
        raise SSEError(self._closed_reason)

    def publish_once(self, key: str, data: str, event: str | None = None) -> int:
        """Like :meth:`publish`, but a second call with the same ``key`` returns the first id.

        Publishers send a key with each event so that a retry after a dropped connection
        cannot publish the same event twice.
        """
        with self.registry.lock:
            seen = self._keys.get(key)
        if seen is not None:
            return seen
        i = self.publish(data, event)
        with self.registry.lock:
            self._keys[key] = i
            if len(self._keys) > _MAX_KEYS:
                self._keys.popitem(last=False)
        return i

    @property
    def published(self) -> int:
        """How many events were accepted by :meth:`publish`, drained or not."""
        return self._total + len(self._held) + len(self._pending)

    @property
    def total(self) -> int:
        """How many events reached the history (drained)."""
        return self._total

    def __len__(self) -> int:
        return len(self._ids) - self._start

    # -- server thread ---------------------------------------------------------------

    def settled(self) -> bool:
        """True once a closed channel has nothing on its way to its history (server thread).

        Nothing pending, nothing held back, and every id taken before the close committed
        (or given up by the drain, after :data:`_MISSING_TIMEOUT`).
        """
        reg = self.registry
        return not self._pending and self not in reg._holding and reg.committed >= self._closed_upto

    def _take_pending(self) -> Batch:
        # The ids present now, each popped on its own (an atomic step), never a swap of
        # the dict: a producer that has just looked up ``_pending`` may still store into
        # it. Two threads can store out of id order, so the ids are sorted, which costs
        # one pass in C when they are in order already.
        pending = self._pending
        ids = sorted(pending)
        datas = list(map(pending.pop, ids))
        types = self._pending_types
        # Read after the ids: a type is stored before its data, so when there is none
        # now, none of these events has one.
        if not types:
            return ids, None, datas
        return ids, list(map(types.pop, ids, itertools.repeat(None))), datas

    def _append(self, ids: list[int], types: list[str | None] | None, datas: list[str]) -> None:
        self._count(ids)
        n = len(ids)
        if types is None:
            self._types += [None] * n
        else:
            self._types += types
        joined = "".join(datas)
        chars = len(joined)
        if "\n" in joined or "\r" in joined:
            datas = list(datas)
            for k, d in enumerate(datas):
                if "\n" in d or "\r" in d:
                    # Each further line of the text goes on a "data:" line of its own.
                    self._raw[ids[k]] = d
                    datas[k] = f"\n{_DATA}".join(split_lines(d))
            chars = sum(map(len, datas))
        self._ids += ids
        self._wire += datas
        size = chars + (len(str(ids[-1])) + _FRAMING + len(_DATA)) * n
        if types is not None:
            size += _event_lines_size(types)
        self._batch_ends.append(len(self._ids))
        self._batch_chars.append(self._batch_chars[-1] + size)
        if self.max_bytes is not None:
            evs = types or [None] * n
            sizes = [len(d) + _OVERHEAD + len(ev or "") for ev, d in zip(evs, datas, strict=True)]
            self._sizes += sizes
            self._bytes += sum(sizes)
        self._trim()

    def _count(self, ids: list[int]) -> None:
        first, last, n = ids[0], ids[-1], len(ids)
        run_ids, run_seqs = self._run_ids, self._run_seqs
        if last - first == n - 1:
            # Consecutive ids (a single busy stream): one run, continued or new.
            if first != self._last_counted + 1 or not run_ids:
                run_ids.append(first)
                run_seqs.append(self._total)
            self._total += n
            self._last_counted = last
        else:
            prev, total = self._last_counted, self._total
            for i in ids:
                if i != prev + 1 or not run_ids:
                    run_ids.append(i)
                    run_seqs.append(total)
                prev = i
                total += 1
            self._last_counted, self._total = prev, total
        if len(run_ids) > self._max_runs:
            cut = len(run_ids) - self._max_runs // 2  # one batch may have added many
            del run_ids[:cut]
            del run_seqs[:cut]
            self._runs_cut = True

    def _trim(self) -> None:
        ids = self._ids
        start = max(self._start, len(ids) - self.max_events)
        if self.max_bytes is not None:
            sizes = self._sizes
            self._bytes -= sum(sizes[self._start : start])
            while self._bytes > self.max_bytes and len(ids) - start > 1:
                self._bytes -= sizes[start]
                start += 1
        if start > self._start and self._raw:
            self._forget_raw(ids[start])
        self._start = start
        ends = self._batch_ends
        gone = bisect_right(ends, start) - 1  # batches that end before the history starts
        if gone > 0:
            del ends[:gone]
            del self._batch_chars[:gone]
        if start > 1024 and start * 2 > len(ids):
            # Compact: drop the dead prefix of every aligned list at once.
            for lst in (ids, self._types, self._wire, self._mux, self._sizes):
                del lst[:start]
            self._batch_ends = [e - start for e in ends]
            self._start = 0

    def _forget_raw(self, first: int) -> None:
        # Stored in id order, so the ids no longer held are the first ones.
        raw = self._raw
        dead = list(itertools.takewhile(first.__gt__, raw))
        for i in dead:
            del raw[i]

    def _count_upto(self, cursor: int) -> int:
        """How many of this channel's events have an id <= ``cursor``."""
        r = bisect_right(self._run_ids, cursor) - 1
        if r < 0:
            return self._run_seqs[0] if self._run_seqs else 0
        seq, first = self._run_seqs[r], self._run_ids[r]
        run_end = self._run_seqs[r + 1] if r + 1 < len(self._run_seqs) else self._total
        return min(seq + cursor - first + 1, run_end)

    def missed_after(self, cursor: int) -> int:
        """How many events after ``cursor`` the history no longer holds.

        Exact, unless the cursor is older than every run of ids still counted (see
        :data:`_MAX_RUNS`, a few per event of the history): then it is a lower bound.
        """
        held_from = self._total - len(self)
        return max(0, held_from - self._count_upto(cursor))

    def gap_after(self, cursor: int) -> str:
        """The gap event's data for a reader at ``cursor``, or "" if it missed nothing."""
        missed = self.missed_after(cursor)
        if not missed:
            return ""
        if self._runs_cut and cursor < self._run_ids[0]:
            return f'{{"missed": {missed}, "at_least": true}}'
        return f'{{"missed": {missed}}}'

    def first_id(self) -> int | None:
        """The oldest id still held, or None when nothing is held."""
        return self._ids[self._start] if len(self) else None

    def start_cursor(self, cursor: int | None) -> int:
        """The cursor for a new reader; None means "all that is held, without a gap event".

        A cursor ahead of every id this server has delivered comes from an earlier server
        (every server counts from 1) or was made up: it says nothing about what the reader
        has seen here, so the reader gets what a fresh one gets.
        """
        if cursor is not None and cursor <= self.registry.committed:
            return cursor
        # An empty channel has never held anything (the history keeps at least one event),
        # so 0 takes every event, including those published but not drained yet.
        first = self.first_id()
        return first - 1 if first is not None else 0

    def skip_gap(self, cursor: int) -> int:
        """The cursor after a gap event: just before the oldest event held."""
        first = self.first_id()
        return max(cursor, (first or 1) - 1)

    def _index_after(self, cursor: int) -> int:
        return bisect_right(self._ids, cursor, lo=self._start)

    def sse_after(self, cursor: int, limit: int) -> tuple[bytes, int]:
        """Plain SSE bytes of the events after ``cursor``, about ``limit`` bytes at most.

        Returns the bytes and the last id in them (``cursor`` if nothing is pending). At
        least one event is returned when one is pending, however large. Readers that keep
        up ask for the same chunk one after another, so the last chunk is remembered and
        a fan-out to many clients encodes it once.
        """
        key = (cursor, limit, len(self._ids), self._start)
        memo = self._sse_memo
        if memo is not None and memo[0] == key:
            return memo[1], memo[2]
        lo = self._index_after(cursor)
        end = len(self._ids)
        if lo >= end:
            return b"", cursor
        hi = self._sse_cut(lo, end, limit)
        chunk = self._encode_sse(lo, hi).encode("utf-8")
        last = self._ids[hi - 1]
        self._sse_memo = (key, chunk, last)
        return chunk, last

    def _encode_sse(self, lo: int, hi: int) -> str:
        # One join over three parts per event (four when some have a type), each column
        # filled by a slice assignment: no string is made per event, and consecutive ids
        # need no formatting.
        n = hi - lo
        types = self._types[lo:hi]
        plain = types.count(None) == n
        width = 3 if plain else 4
        parts = [""] * (width * n)
        parts[0::width], parts[1::width] = _id_parts(self._ids[lo:hi], _DATA if plain else "")
        if not plain:
            parts[2::width] = self._lines_of(types)
        parts[width - 1 :: width] = self._wire[lo:hi]
        parts[0] = parts[0][len(_BLANK) :]  # no event before the first to end
        parts.append(_BLANK)
        return "".join(parts)

    def mux_after(self, cursor: int, limit: int) -> tuple[list[tuple[int, str]], int]:
        """Multiplexed lines (``[id,"stream","type","data"]``) after ``cursor``, by size."""
        lo = self._index_after(cursor)
        end = len(self._ids)
        if lo >= end:
            return [], cursor
        mux = self._mux
        have = len(mux)
        if have < self._start:
            # Never encode what is no longer held; pad to keep the lists aligned.
            mux += [""] * (self._start - have)
            have = self._start
        if have < end:
            mux += self._encode_mux(have, end)
        hi = self._cut(
            lambda a, b: sum(map(len, mux[a:b])), lambda a, b: map(len, mux[a:b]), lo, end, limit
        )
        return list(zip(self._ids[lo:hi], mux[lo:hi], strict=True)), self._ids[hi - 1]

    def _lines_of(self, types: list[str | None]) -> list[str]:
        """The ``event:`` and ``data:`` start of each event with these types."""
        lines = self._event_lines
        new = set(types) - lines.keys()
        if new:
            if len(lines) + len(new) > _MAX_EVENT_LINES:
                # Types like f"item-{k}" would grow the cache for ever: start it again.
                lines.clear()
                lines[None] = _DATA
                new.discard(None)
            for ev in new:
                lines[ev] = _EVENT_LINE.format(ev) + _DATA
        return list(map(lines.__getitem__, types))

    def _sse_cut(self, lo: int, end: int, limit: int) -> int:
        """The end of the plain stream's slice from ``lo`` that first reaches ``limit``.

        Whole batches are sized by their running totals. The slice ends at the edge of a
        batch when whole batches make at least half the limit (as they do for a reader
        that keeps up), else at the event that reaches it; only a batch that ``lo`` falls
        inside, or that one, is sized event by event.
        """
        ends, chars = self._batch_ends, self._batch_chars
        total, sizes = self._sse_sizes(end)
        b = bisect_right(ends, lo)  # lo is in batch b: ends[b - 1] <= lo < ends[b]
        if ends[b - 1] == lo:
            base = chars[b - 1]
        else:
            head = total(lo, ends[b])
            if head >= limit:
                return self._cut(total, sizes, lo, ends[b], limit)
            base = chars[b] - head  # as if the batches' totals were counted from lo
        k = bisect_left(chars, base + limit, lo=b)  # batch k reaches the limit
        if k == len(chars):
            return end
        if ends[k - 1] > lo and chars[k - 1] - base >= limit // 2:
            return ends[k - 1]  # whole batches make half the limit or more: stop there
        hi = self._cut(total, sizes, ends[k - 1], ends[k], limit, chars[k - 1] - base)
        return max(lo + 1, hi)

    def _sse_sizes(
        self, end: int
    ) -> tuple[Callable[[int, int], int], Callable[[int, int], Iterable[int]]]:
        """The size of entries ``a:b`` on the plain stream, and each one's, for :meth:`_cut`.

        Exact but for the id, which counts as wide as the newest one (``end - 1``).
        """
        framing = len(str(self._ids[end - 1])) + _FRAMING
        untyped = framing + len(_DATA)
        wire, types = self._wire, self._types

        def total(a: int, b: int) -> int:
            # One pass at C speed over the data's lengths, and one over the types.
            return sum(map(len, wire[a:b])) + untyped * (b - a) + _event_lines_size(types[a:b])

        def sizes(a: int, b: int) -> Iterable[int]:
            lengths = map(len, wire[a:b])
            some = types[a:b]
            if some.count(None) == b - a:
                return map(untyped.__add__, lengths)
            return map(add, map(framing.__add__, lengths), map(len, self._lines_of(some)))

        return total, sizes

    @staticmethod
    def _cut(
        total: Callable[[int, int], int],
        sizes: Callable[[int, int], Iterable[int]],
        lo: int,
        end: int,
        limit: int,
        size: int = 0,
    ) -> int:
        """The end of the slice from ``lo`` that first reaches ``limit`` characters.

        ``total(a, b)`` gives the size of entries ``a:b``, ``sizes(a, b)`` each one's, and
        ``size`` what comes before ``lo``. At least one entry is taken.
        """
        # Sizes are summed a block at a time at C speed, and only the block that reaches
        # the limit is looked at entry by entry, so a cut costs little more than a sum.
        hi = lo
        while hi < end:
            stop = min(end, hi + _CUT_BLOCK)
            block = total(hi, stop)
            if size + block >= limit:
                running = list(accumulate(sizes(hi, stop), initial=size))
                return max(lo + 1, hi + bisect_left(running, limit))
            size += block
            hi = stop
        return end

    def _datas(self, lo: int, hi: int) -> list[str]:
        """The data of the history's entries ``lo:hi`` as published."""
        if not self._raw:
            return self._wire[lo:hi]
        raw = self._raw
        return [raw.get(i, d) for i, d in zip(self._ids[lo:hi], self._wire[lo:hi], strict=True)]

    def _encode_mux(self, lo: int, hi: int) -> list[str]:
        name = self._json_name
        dumps = json.dumps
        return [
            f"[{i},{name},{_MESSAGE if ev is None else dumps(ev)},{dumps(d, ensure_ascii=False)}]"
            for i, ev, d in zip(
                self._ids[lo:hi], self._types[lo:hi], self._datas(lo, hi), strict=True
            )
        ]

    def gap_mux(self, cursor: int, gap: str) -> str:
        """The multiplexed line carrying the gap event data ``gap`` (see :meth:`gap_after`)."""
        return f'[{cursor},{self._json_name},"{GAP_EVENT}",{json.dumps(gap)}]'

    def events(self) -> list[Event]:
        """The held history as :class:`~sse_widget.protocol.Event` objects, oldest first."""
        lo, hi = self._start, len(self._ids)
        return [
            Event(event=ev or "message", data=d, id=str(i))
            for i, ev, d in zip(
                self._ids[lo:hi], self._types[lo:hi], self._datas(lo, hi), strict=True
            )
        ]


class IdSequence:
    """The increasing event ids of one server, taken from any thread without a lock.

    With the GIL, ``next()`` on an ``itertools.count`` and ``islice`` over it run in C
    without releasing the GIL, so every take is atomic and ids are never handed out twice.
    A free-threaded build (or ``locked=True``) takes them under a lock instead.

    What is not atomic is the pair "take an id, then append the event": a thread can be
    switched out between the two, or interrupted (KeyboardInterrupt) and never append.
    :meth:`ChannelRegistry.drain` handles both.
    """

    def __init__(self, *, locked: bool | None = None) -> None:
        if locked is None:
            locked = not GIL_ENABLED
        self.locked = locked
        self._count = itertools.count(1)
        self._guard: AbstractContextManager[object] = (
            threading.Lock() if locked else contextlib.nullcontext()
        )
        self.take: Callable[[], int] = self._take_guarded if locked else self._count.__next__

    def _take_guarded(self) -> int:
        with self._guard:
            return next(self._count)

    def take_many(self, n: int) -> list[int]:
        """``n`` consecutive ids."""
        with self._guard:
            return list(itertools.islice(self._count, n))

    def peek(self) -> int:
        """The next id to be handed out: every id below it has been taken."""
        with self._guard:
            return int(repr(self._count)[6:-1])  # "count(N)"


class ChannelRegistry:
    """The channels of one server, their shared id sequence and their drain.

    Parameters
    ----------
    wake:
        Called (from any thread, without the lock) when a drain should be scheduled on
        the server's loop. It must only hand the work over (``IOLoop.add_callback``).
    wake_later:
        Called on the server thread with a delay in seconds, when a drain must look again
        for an event whose id was taken but not appended yet (``IOLoop.call_later``).
    clock:
        Monotonic seconds, for how long such an id has been missing.
    """

    def __init__(
        self,
        wake: Callable[[], None] | None = None,
        wake_later: Callable[[float], None] | None = None,
        *,
        ids: IdSequence | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lock = threading.Lock()
        self.ids = ids or IdSequence()
        self.dirty: list[Channel] = []
        self.drain_scheduled = False
        self.channels: dict[str, Channel] = {}
        self.wake: Callable[[], None] = wake or (lambda: None)
        self.wake_later: Callable[[float], None] = wake_later or (lambda delay: None)
        self.clock = clock
        # Every id up to `committed` is in a history, or was given up as never appended.
        self.committed = 0
        self._holding: set[Channel] = set()
        self._missing: int | None = None  # the first id a drain is waiting for
        self._missing_since = 0.0
        self._retry_at = 0.0  # when the retry timer last set will have fired

    def create(
        self, name: str, *, max_events: int = _DEFAULT_HISTORY, max_bytes: int | None = None
    ) -> Channel:
        """Create the channel ``name``; raise ``ValueError`` if it exists."""
        ch = Channel(name, self, max_events=max_events, max_bytes=max_bytes)
        with self.lock:
            if name in self.channels:
                raise ValueError(
                    f"stream names are unique per server, and {name!r} is taken: close() the "
                    "EventStream that has it, or pass another name= (or none, for a fresh one)"
                )
            self.channels[name] = ch
        return ch

    def remove(self, name: str) -> Channel | None:
        """Forget the channel ``name`` and mark it closed; returns it."""
        with self.lock:
            ch = self.channels.pop(name, None)
        if ch is not None:
            ch.close()
        return ch

    def get(self, name: str) -> Channel | None:
        return self.channels.get(name)

    def sweep(self) -> bool:
        """Mark every channel with pending events dirty; True if a drain has work.

        The server calls this about once a second, so that events whose wake-up was lost
        (an interrupt in the middle of scheduling it) wait a second, not forever.
        """
        with self.lock:
            listed = set(self.dirty)
            for ch in self.channels.values():
                if ch._pending and ch not in listed:
                    ch._dirty = True
                    self.dirty.append(ch)
            return bool(self.dirty or self._holding)

    def drain(self) -> list[Channel]:
        """Move pending events into their channels' histories (server thread only).

        Returns the channels that received events, so the server can wake their readers.

        A cursor must never pass an id whose event is still on its way, or that event
        would be skipped. So a drain commits events only up to the first id that was
        handed out but is not here yet (its thread was switched out between taking the
        id and appending), holds the rest, and looks again shortly. In the usual case
        every id is here and one comparison says so. An id missing for longer than
        :data:`_MISSING_TIMEOUT` was never appended (an interrupt between the two steps)
        and is given up; should its event turn up after all, it is published again under
        a new id rather than behind readers' cursors.
        """
        with self.lock:
            dirty, self.dirty = self.dirty, []
            self.drain_scheduled = False
            for ch in dirty:
                ch._dirty = False
        channels = set(dirty) | self._holding
        taken = [(ch, ch._take_pending()) for ch in channels]
        committed = self.committed
        # Ids are unique: if none is older than `committed` and there are as many as the
        # span up to the newest, they are exactly the ids after `committed`, with none
        # missing among them. Any id above the newest that was taken already belongs
        # to a thread that has not stored its event yet (it was switched out between the
        # two steps, as a sending loop now and then is): nothing waits for those, and
        # each is the next to commit when it comes.
        newest = max((ids[-1] for _, (ids, _, _) in taken if ids), default=committed)
        if (
            not self._holding
            and sum(len(ids) for _, (ids, _, _) in taken) == newest - committed
            and all(not ids or ids[0] > committed for _, (ids, _, _) in taken)
        ):
            for ch, batch in taken:
                if batch[0]:
                    ch._append(*batch)
            self.committed = newest
            self._missing = None
            return [ch for ch, (ids, _, _) in taken if ids]
        # An event appended by a thread interrupted before it marked its channel dirty
        # may be what is missing: take every channel's pending events before waiting.
        others = [ch for ch in list(self.channels.values()) if ch not in channels]
        taken += [(ch, ch._take_pending()) for ch in others]
        return self._drain_with_missing(taken)

    def _drain_with_missing(self, taken: list[tuple[Channel, Batch]]) -> list[Channel]:
        # The rare path, so events are tuples here, sorted and cut by id.
        committed = self.committed
        late: list[tuple[Channel, Item]] = []
        for ch, (ids, types, datas) in taken:
            items = list(zip(ids, types or [None] * len(ids), datas, strict=True))
            held = ch._held + items
            late.extend((ch, item) for item in held if item[0] <= committed)
            ch._held = sorted(item for item in held if item[0] > committed)
        here = sorted(item[0] for ch, _ in taken for item in ch._held)
        upto = committed  # the end of the run of consecutive ids from `committed`
        for i in here:
            if i != upto + 1:
                break
            upto = i
        now = self.clock()
        if here and upto < here[-1]:
            # Id upto + 1 is missing, and the events after it wait for it.
            if self._missing != upto + 1:
                self._missing, self._missing_since = upto + 1, now
            elif now - self._missing_since > _MISSING_TIMEOUT:
                upto = here[-1]  # give up every id still missing below the newest held
        if not here or upto == here[-1]:
            self._missing = None
        received: list[Channel] = []
        self._holding = set()
        for ch, _ in taken:
            k = bisect_right(ch._held, upto, key=_item_id)
            if k:
                part = ch._held[:k]
                ch._append(
                    [i for i, _, _ in part], [ev for _, ev, _ in part], [d for *_, d in part]
                )
                del ch._held[:k]
                received.append(ch)
            if ch._held:
                self._holding.add(ch)
        self.committed = upto
        for ch, (_, event, data) in late:
            ch.publish(data, event)  # it turned up after its id was given up
        if self._holding and now >= self._retry_at:
            # One timer at a time: every drain meanwhile would otherwise add its own.
            self._retry_at = now + _MISSING_RETRY
            self.wake_later(_MISSING_RETRY)
        return received


def collect_mux(cursors: dict[Channel, int], limit: int) -> tuple[list[str], int, int]:
    """Multiplexed lines for a set of channel cursors, oldest first, about ``limit`` bytes.

    Returns the lines, gap lines first, the largest event id among them (0 if none), and
    how many gap lines lead. A gap line starts with its stream's old cursor, not an id in
    order: only the lines after the gap lines are in id order.
    Every channel's lines up to that id are included, so it becomes the cursor of every
    channel: one id resumes them all. ``cursors`` is updated in place; a closed channel is
    dropped from it once it has nothing left for this reader.
    """
    gaps: list[str] = []
    merged: list[tuple[int, str]] = []
    for ch, cursor in list(cursors.items()):
        gap = ch.gap_after(cursor)
        if gap:
            gaps.append(ch.gap_mux(cursor, gap))
            cursor = cursors[ch] = ch.skip_gap(cursor)
        # Each part is itself bounded by `limit`, so the cut below never passes the end
        # of a part that still has lines left.
        part, _ = ch.mux_after(cursor, limit)
        if not part and not gap and ch.ended:
            del cursors[ch]  # a closed channel is dropped once its reader has had it all
            continue
        merged.extend(part)
    if len(cursors) > 1:
        merged.sort(key=_first)
    n_gaps = len(gaps)
    lines = gaps  # the gap lines first, then the events
    size = 0
    top = 0
    for i, line in merged:
        if size >= limit:
            break
        lines.append(line)
        size += len(line) + 7  # with its framing: "\ndata: " on the wire
        top = i
    if top:
        for ch, cursor in cursors.items():
            if cursor < top:
                cursors[ch] = top
    return lines, top, n_gaps


def _first(item: tuple[int, str]) -> int:
    return item[0]
