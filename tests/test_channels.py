"""Channels: ids, bounded history, thread-safe publish, cursors and gap counts."""

from __future__ import annotations

import json
import sys
import threading

import pytest

from sse_widget import channels
from sse_widget.channels import (
    Channel,
    ChannelRegistry,
    IdSequence,
    check_user_event,
    collect_mux,
)
from sse_widget.errors import EncodeError, SSEError
from sse_widget.protocol import Event, EventParser, split_lines


def drained(reg: ChannelRegistry) -> ChannelRegistry:
    reg.drain()
    return reg


def test_ids_are_one_sequence_across_channels() -> None:
    reg = ChannelRegistry()
    a, b = reg.create("a"), reg.create("b")
    assert [a.publish("1"), b.publish("2"), a.publish("3")] == [1, 2, 3]
    drained(reg)
    assert [e.id for e in a.events()] == ["1", "3"]
    assert [e.id for e in b.events()] == ["2"]


def test_publish_wakes_once_per_drain() -> None:
    wakes = []
    reg = ChannelRegistry(lambda: wakes.append(1))
    ch = reg.create("a")
    for i in range(100):
        ch.publish(str(i))
    assert len(wakes) == 1
    reg.drain()
    ch.publish("again")
    assert len(wakes) == 2


def test_history_is_bounded_by_count() -> None:
    reg = ChannelRegistry()
    ch = reg.create("a", max_events=5)
    for i in range(3000):
        ch.publish(str(i))
        if i % 7 == 0:
            reg.drain()
    reg.drain()
    assert [e.data for e in ch.events()] == ["2995", "2996", "2997", "2998", "2999"]
    assert ch.total == 3000
    assert ch.published == 3000


def test_history_is_bounded_by_bytes() -> None:
    reg = ChannelRegistry()
    ch = reg.create("a", max_bytes=1000)
    for _ in range(100):
        ch.publish("x" * 100)
    reg.drain()
    held = ch.events()
    assert 1 <= len(held) < 10
    assert len(ch.sse_after(0, 1 << 30)[0]) <= 1000 + 20 * len(held)


def test_bad_history_sizes_are_refused() -> None:
    reg = ChannelRegistry()
    with pytest.raises(ValueError, match="history must be a positive int"):
        reg.create("a", max_events=0)
    with pytest.raises(ValueError, match="history_bytes"):
        reg.create("b", max_bytes=-1)


def test_duplicate_names_are_refused() -> None:
    reg = ChannelRegistry()
    reg.create("a")
    with pytest.raises(ValueError, match=r"'a' is taken: close\(\) the EventStream that has it"):
        reg.create("a")


def test_publish_from_many_threads_keeps_every_event_in_id_order() -> None:
    reg = ChannelRegistry()
    ch = reg.create("a", max_events=100_000)
    ids: list[list[int]] = [[] for _ in range(8)]

    def work(k: int) -> None:
        for i in range(5000):
            ids[k].append(ch.publish(f"{k}:{i}"))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        reg.drain()
    for t in threads:
        t.join()
    reg.drain()
    held = ch.events()
    assert len(held) == 40_000
    got = [int(e.id) for e in held]
    assert got == sorted(got) == sorted(i for per in ids for i in per)


@pytest.mark.parametrize("locked", [False, True], ids=["gil", "locked"])
def test_readers_never_skip_an_event_while_threads_race_between_id_and_append(
    locked: bool,
) -> None:
    # publish() takes an id, then appends: with a tiny switch interval, threads are often
    # switched out between the two. A reader that moved its cursor past an id still on
    # its way would never see that event; here every reader must get every event once.
    reg = ChannelRegistry(ids=IdSequence(locked=locked))
    chans = [reg.create(name, max_events=1_000_000) for name in "ab"]
    sent: list[list[int]] = [[] for _ in chans]
    go = threading.Event()

    def work(k: int) -> None:
        go.wait()
        for i in range(20_000):
            n = (k + i) % len(chans)
            sent[n].append(chans[n].publish("x"))  # list.append: atomic, like publish's

    cursors = dict.fromkeys(chans, 0)
    seen: list[list[int]] = [[] for _ in chans]

    def read() -> None:
        reg.drain()
        for n, ch in enumerate(chans):
            lines, cursors[ch] = ch.mux_after(cursors[ch], 1 << 30)
            seen[n] += [i for i, _ in lines]

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        go.set()
        while any(t.is_alive() for t in threads):
            read()
    finally:
        sys.setswitchinterval(old)
    for t in threads:
        t.join()
    read()
    for n in range(len(chans)):
        assert seen[n] == sorted(sent[n]), f"channel {n}: a reader skipped or repeated ids"
    assert sum(map(len, seen)) == 4 * 20_000


def test_an_id_taken_but_not_appended_holds_back_later_events_until_it_arrives() -> None:
    retries: list[float] = []
    reg = ChannelRegistry(wake_later=retries.append)
    a, b = reg.create("a"), reg.create("b")
    taken = reg.ids.take()  # a thread switched out between taking an id and appending
    b.publish("after")
    assert reg.drain() == []
    assert len(b) == 0
    assert b.published == 1
    assert retries, "the drain must look again for the missing id"
    a._pending[taken] = "before"
    a._mark_dirty()
    assert set(reg.drain()) == {a, b}
    assert [e.id for e in a.events()] == [str(taken)]
    assert [e.id for e in b.events()] == [str(taken + 1)]


def test_an_id_never_appended_is_given_up_and_a_late_event_gets_a_new_id() -> None:
    now = [0.0]
    reg = ChannelRegistry(clock=lambda: now[0])
    ch = reg.create("a")
    lost = reg.ids.take()  # an interrupt between taking the id and appending
    ch.publish("x")
    reg.drain()
    assert len(ch) == 0
    now[0] += 0.1
    reg.drain()
    assert len(ch) == 0, "given up too soon"
    now[0] += 1.0
    reg.drain()
    assert [(e.id, e.data) for e in ch.events()] == [(str(lost + 1), "x")]
    # Should the event turn up after all, it is not put behind readers' cursors.
    ch._pending[lost] = "late"
    ch._mark_dirty()
    reg.drain()
    reg.drain()
    assert [(e.id, e.data) for e in ch.events()] == [(str(lost + 1), "x"), (str(lost + 2), "late")]
    assert ch.published == 2


def test_an_interrupt_while_scheduling_the_drain_does_not_stop_every_stream() -> None:
    wakes: list[int] = []

    def wake() -> None:
        wakes.append(1)
        if len(wakes) == 1:
            raise KeyboardInterrupt  # Ctrl-C inside IOLoop.add_callback

    reg = ChannelRegistry(wake)
    ch = reg.create("a")
    with pytest.raises(KeyboardInterrupt):
        ch.publish("x")
    ch.publish("y")
    assert len(wakes) == 2, "the next publish must schedule the drain"
    reg.drain()
    assert [e.data for e in ch.events()] == ["x", "y"]


def test_events_left_trusting_an_interrupted_wake_are_found_by_the_sweep() -> None:
    # Thread 1 is interrupted inside the wake-up; thread 2 publishes on another channel
    # meanwhile, sees a drain scheduled and returns. Only the sweep can find its event.
    wakes: list[int] = []
    reg = ChannelRegistry()
    a, b = reg.create("a"), reg.create("b")

    def wake() -> None:
        wakes.append(1)
        if len(wakes) == 1:
            b.publish("from thread 2")  # runs "meanwhile": the drain looks scheduled
            raise KeyboardInterrupt

    reg.wake = wake
    with pytest.raises(KeyboardInterrupt):
        a.publish("from thread 1")
    assert len(wakes) == 1, "thread 2 trusted the wake-up that was interrupted"
    assert reg.sweep() is True
    reg.drain()
    assert [e.data for e in a.events()] == ["from thread 1"]
    assert [e.data for e in b.events()] == ["from thread 2"]
    assert reg.sweep() is False  # nothing left: the server's tick does no drain


def test_the_sweep_finds_a_channel_whose_dirty_mark_was_lost() -> None:
    reg = ChannelRegistry()
    ch = reg.create("a")
    ch.publish("x")
    reg.dirty.clear()  # as if an interrupt landed between the mark and the list
    assert reg.drain() == []
    assert reg.sweep() is True
    assert reg.drain() == [ch]
    assert [e.data for e in ch.events()] == ["x"]


def test_an_event_appended_but_never_marked_dirty_is_found_in_order() -> None:
    # An interrupt between the append and _mark_dirty(): the drain finds the id missing
    # and looks in every channel before holding the others back.
    reg = ChannelRegistry()
    a, b = reg.create("a"), reg.create("b")
    a._pending[reg.ids.take()] = "unmarked"
    b.publish("after")
    assert set(reg.drain()) == {a, b}
    assert [(e.id, e.data) for e in a.events()] == [("1", "unmarked")]
    assert [(e.id, e.data) for e in b.events()] == [("2", "after")]


@pytest.mark.parametrize("locked", [False, True], ids=["gil", "locked"])
def test_id_sequence_takes_and_peeks(locked: bool) -> None:
    ids = IdSequence(locked=locked)
    assert ids.peek() == 1
    assert [ids.take(), ids.take()] == [1, 2]
    assert ids.take_many(3) == [3, 4, 5]
    assert ids.take_many(0) == []
    assert ids.peek() == 6


def interleaved(
    n: int, a_history: int, b_history: int = 10_000, drain_every: int = 0
) -> tuple[Channel, Channel]:
    """Channels a and b, each sent n events in turn (a: odd ids, b: even ids), drained."""
    reg = ChannelRegistry()
    a, b = reg.create("a", max_events=a_history), reg.create("b", max_events=b_history)
    for i in range(n):
        a.publish(str(i))
        b.publish(str(i))
        if drain_every and i % drain_every == 0:
            reg.drain()
    reg.drain()
    return a, b


def test_missed_after_counts_only_this_channels_trimmed_events() -> None:
    a, b = interleaved(10, a_history=3)  # a gets odd ids 1..19, b even ids 2..20
    assert [e.id for e in a.events()] == ["15", "17", "19"]
    assert a.missed_after(0) == 7
    assert a.missed_after(4) == 5  # a's events 5,7,9,11,13 are gone
    assert a.missed_after(13) == 0
    assert a.missed_after(14) == 0
    assert b.missed_after(0) == 0


def test_gap_count_survives_a_burst_larger_than_the_history() -> None:
    reg = ChannelRegistry()
    ch = reg.create("a", max_events=10)
    for i in range(1000):
        ch.publish(str(i))
    reg.drain()
    assert next(e.data for e in ch.events()) == "990"
    assert ch.missed_after(0) == 990


def test_gap_count_stays_exact_for_streams_that_interleave() -> None:
    # Alternating streams make one run of ids per event: 150k events, 75k runs each. A
    # history of 20,000 keeps up to 80,000 runs, so every count here is exact.
    a, b = interleaved(75_000, a_history=20_000, b_history=20_000, drain_every=5000)
    assert a.gap_after(0) == '{"missed": 55000}'
    assert a.gap_after(100_000) == '{"missed": 5000}'  # a's ids 100001, 100003, ... 149999
    assert b.gap_after(149_980) == ""


def test_the_runs_a_channel_keeps_are_bounded_by_its_history() -> None:
    # Without that bound, many small interleaved streams would each keep 8 MiB of runs.
    a, _ = interleaved(50_000, a_history=10, b_history=10, drain_every=5000)
    assert len(a._run_ids) <= channels._MIN_RUNS
    assert json.loads(a.gap_after(0)) == {"missed": a.missed_after(0), "at_least": True}
    assert a.gap_after(99_000) == '{"missed": 490}'  # recent cursors are still exact


def test_a_gap_count_beyond_the_runs_kept_says_it_is_a_lower_bound(monkeypatch) -> None:
    monkeypatch.setattr(channels, "_MAX_RUNS", 8)
    a, _ = interleaved(20, a_history=2, drain_every=1)  # a: odd ids 1..39; old runs forgotten
    assert json.loads(a.gap_after(0)) == {"missed": a.missed_after(0), "at_least": True}
    assert a.missed_after(0) < 18
    assert a.gap_after(34) == '{"missed": 1}'  # 35: still counted exactly


def test_collect_mux_merges_channels_in_id_order_and_moves_every_cursor() -> None:
    reg = ChannelRegistry()
    a, b = reg.create("a"), reg.create("b")
    for i in range(5):
        a.publish(f"a{i}", "tick")
        b.publish(f"b{i}")
    reg.drain()
    cursors = {a: a.start_cursor(None), b: b.start_cursor(None)}
    lines, top, _ = collect_mux(cursors, 1 << 20)
    rows = [json.loads(line) for line in lines]
    assert [r[0] for r in rows] == list(range(1, 11))
    assert rows[0] == [1, "a", "tick", "a0"]
    assert rows[1] == [2, "b", "message", "b0"]
    assert top == 10
    assert set(cursors.values()) == {10}
    assert collect_mux(cursors, 1 << 20) == ([], 0, 0)


def test_collect_mux_cut_by_size_never_skips_an_event() -> None:
    reg = ChannelRegistry()
    a, b = reg.create("a"), reg.create("b")
    for i in range(200):
        (a if i % 3 else b).publish("x" * 50)
    reg.drain()
    cursors = {a: 0, b: 0}
    seen: list[int] = []
    while True:
        lines, top, _ = collect_mux(cursors, 500)
        if not lines:
            break
        seen += [json.loads(line)[0] for line in lines]
        assert top == seen[-1]
    assert seen == list(range(1, 201))


def test_collect_mux_reports_a_gap_then_continues_from_the_oldest_held() -> None:
    reg = ChannelRegistry()
    ch = reg.create("a", max_events=4)
    for i in range(10):
        ch.publish(str(i))
    reg.drain()
    cursors = {ch: 2}
    lines, top, _ = collect_mux(cursors, 1 << 20)
    rows = [json.loads(line) for line in lines]
    assert rows[0][2] == "sse_widget.gap"
    assert json.loads(rows[0][3]) == {"missed": 4}
    assert [r[3] for r in rows[1:]] == ["6", "7", "8", "9"]
    assert top == 10


def test_mux_lines_escape_newlines_and_unicode_safely() -> None:
    reg = ChannelRegistry()
    ch = reg.create("a")
    ch.publish('line1\nline2\r\n"quoted" \u2028 é', "type with space")
    reg.drain()
    lines, _, _ = collect_mux({ch: 0}, 1 << 20)
    assert "\n" not in lines[0]
    assert "\r" not in lines[0]
    assert json.loads(lines[0])[2:] == ["type with space", 'line1\nline2\r\n"quoted" \u2028 é']


def test_collect_mux_says_how_many_gap_lines_lead() -> None:
    a, b = interleaved(6, a_history=2, b_history=2)
    lines, top, gaps = collect_mux({a: 1, b: 2}, 1 << 20)
    assert gaps == 2
    assert [json.loads(line)[2] for line in lines] == ["sse_widget.gap"] * 2 + ["message"] * 4
    assert top == 12


def test_closed_channels_drop_out_of_a_multiplexed_cursor() -> None:
    reg = ChannelRegistry()
    a, b = reg.create("a"), reg.create("b")
    a.publish("1")
    reg.drain()
    reg.remove("b")
    cursors = {a: 0, b: 0}
    lines, _, _ = collect_mux(cursors, 1 << 20)
    assert len(lines) == 1
    # Closed, but its last events may still be pending: kept until the server has drained
    # it and says so (ended).
    assert list(cursors) == [a, b]
    b.ended = True
    collect_mux(cursors, 1 << 20)
    assert list(cursors) == [a]


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ("a\nb", "CR or LF"),
        ("a\rb", "CR or LF"),
        ("sse_widget.gap", "reserved for sse_widget"),
        ("sse_widget.anything", "reserved"),
    ],
)
def test_user_event_types_are_checked(event: str, message: str) -> None:
    with pytest.raises(EncodeError, match=message):
        check_user_event(event)


def test_user_event_type_must_be_a_string() -> None:
    with pytest.raises(TypeError, match="event must be a str or None; got int"):
        check_user_event(3)  # type: ignore[arg-type]


def parse_plain(ch: Channel, limit: int = 1 << 20) -> tuple[list[Event], list[int]]:
    """Every event of the plain stream, read in chunks of about ``limit``; and chunk sizes."""
    parser = EventParser()
    got: list[Event] = []
    sizes: list[int] = []
    cursor = 0
    while True:
        chunk, last = ch.sse_after(cursor, limit)
        if last == cursor:
            return got, sizes
        sizes.append(len(chunk))
        got += parser.feed(chunk)
        cursor = last


def as_sent(ch: Channel) -> list[Event]:
    """The held events as a reader sees them: line breaks arrive as LF."""
    return [Event(e.event, "\n".join(split_lines(e.data)), e.id) for e in ch.events()]


def test_plain_stream_parses_back_to_the_history_across_id_digit_changes() -> None:
    # Ids are written from tables per thousand: check every edge, with types, line
    # breaks of all three kinds, empty data and non-ASCII text.
    reg = ChannelRegistry()
    ch = reg.create("a", max_events=100_000)

    def skip_ids(n: int) -> None:  # as if another stream's events had been committed
        reg.ids.take_many(n)
        reg.committed = reg.ids.peek() - 1

    skip_ids(990)
    datas = ["", "x", "a\nb", "a\r\nb\rc", "end\n", "\n", "é ü 漢"]
    types: list[str | None] = [None, "update", None, "t", None, "update", None]
    for k in range(3000):
        ch.publish(datas[k % 7], types[k % 7])
    reg.drain()
    skip_ids(1_000_000 - 4000)
    for k in range(30):
        ch.publish(datas[k % 7], types[k % 7])
    reg.drain()
    # Small chunks, so that most hold consecutive ids (written from the tables) and one
    # holds the jump (written one by one).
    got, _ = parse_plain(ch, limit=4096)
    assert got == as_sent(ch)
    assert parse_plain(ch)[0] == got
    assert [e.id for e in got][:12] == [str(i) for i in range(991, 1003)]
    assert got[-1].id == str(reg.ids.peek() - 1)
    assert [e.data for e in got[:7]] == ["", "x", "a\nb", "a\nb\nc", "end\n", "\n", "é ü 漢"]


def test_plain_stream_of_interleaved_channels_keeps_each_ones_ids() -> None:
    reg = ChannelRegistry()
    a, b = reg.create("a"), reg.create("b")
    for k in range(2500):
        (a if k % 3 else b).publish(str(k), None if k % 2 else "odd")
    reg.drain()
    for ch in (a, b):
        got, _ = parse_plain(ch)
        assert got == as_sent(ch)
        assert len(got) == len(ch)


def test_plain_chunks_stay_within_the_limit_and_lose_nothing() -> None:
    reg = ChannelRegistry()
    ch = reg.create("a", max_events=50_000)
    for k in range(20_000):
        ch.publish("line\n" * (k % 4) + str(k), "a-rather-long-event-type" if k % 5 == 0 else None)
    reg.drain()
    got, sizes = parse_plain(ch, limit=8192)
    assert got == as_sent(ch)
    assert max(sizes) <= 8192 + 100, "a chunk passes the limit by at most one event"
    assert min(sizes[:-1]) > 8192 // 3, "chunks far smaller than the limit"


def test_plain_chunks_cut_where_the_limit_is_reached_from_any_cursor() -> None:
    # Chunks are sized from per-batch running totals: check them against sizes counted
    # event by event, over batches of every size, a history that trims and compacts,
    # and cursors on batch edges and inside batches. A chunk ends at a batch's edge when
    # whole batches make half the limit, else where the limit is reached. Ids keep
    # five digits throughout, so the sizes are exact.
    import random

    rnd = random.Random(7)
    reg = ChannelRegistry()
    ch = reg.create("a", max_events=3000)
    reg.ids.take_many(9_999)
    reg.committed = 9_999
    edges: set[str] = set()  # the last id of each batch
    for _ in range(400):
        for _ in range(rnd.choice((1, 2, 5, 40, 300))):
            k = rnd.randrange(1000)
            last = ch.publish("d" * (k % 90) + ("\nx" if k % 7 == 0 else ""), "t" * (k % 4) or None)
        reg.drain()
        edges.add(str(last))
    held = ch.events()
    assert int(held[0].id) > 10_000, "the history has trimmed"

    def size(e: Event) -> int:  # as the plain stream writes it
        head = f"event: {e.event}\n" if e.event != "message" else ""
        return len(f"id: {e.id}\n{head}") + sum(len(f"data: {x}\n") for x in e.data.split("\n")) + 1

    for limit in (1, 500, 4096, 30_000):
        for start in [*rnd.sample(range(len(held)), 8), 0]:
            cursor = int(held[start].id) - 1
            want = held[start:]
            got: list[Event] = []
            while True:
                chunk, last = ch.sse_after(cursor, limit)
                if last == cursor:
                    break
                events = EventParser().feed(chunk)
                sizes = [size(e) for e in events]
                assert len(chunk) == sum(sizes)
                if last != int(held[-1].id):
                    least = limit // 2 if str(last) in edges else limit
                    assert sum(sizes) >= least, "a chunk stopped short of the limit"
                assert len(events) == 1 or sum(sizes[:-1]) < limit, "a chunk went past it"
                got += events
                cursor = last
            assert [e.id for e in got] == [e.id for e in want]


def test_a_long_event_goes_out_whole_in_a_chunk_of_its_own() -> None:
    reg = ChannelRegistry()
    ch = reg.create("a")
    for d in ("a", "b" * 10_000, "c"):
        ch.publish(d)
    reg.drain()
    got, sizes = parse_plain(ch, limit=10)  # less than any one event
    assert [e.data for e in got] == ["a", "b" * 10_000, "c"]
    assert len(sizes) == 3


def test_the_text_of_multiline_events_is_forgotten_with_the_history() -> None:
    reg = ChannelRegistry()
    ch = reg.create("a", max_events=100)
    for k in range(5000):
        ch.publish(f"{k}\nnext")
        if k % 500 == 0:
            reg.drain()
    reg.drain()
    assert len(ch._raw) == 100
    assert [e.data for e in ch.events()][-1] == "4999\nnext"


def test_an_id_still_in_flight_after_the_newest_holds_nothing_back() -> None:
    # The usual race while a loop sends: the drain runs between the loop taking an id and
    # storing its event. Everything before that id is committed at once, with no retry.
    retries: list[float] = []
    reg = ChannelRegistry(wake_later=retries.append)
    ch = reg.create("a")
    ch.publish("1")
    ch.publish("2")
    in_flight = reg.ids.take()
    assert reg.drain() == [ch]
    assert [e.data for e in ch.events()] == ["1", "2"]
    assert not retries
    ch._pending[in_flight] = "3"
    ch._mark_dirty()
    assert reg.drain() == [ch]
    assert [e.id for e in ch.events()] == ["1", "2", "3"]


def test_typed_events_from_publish_many_keep_their_types() -> None:
    reg = ChannelRegistry()
    ch = reg.create("a")
    last = ch.publish_many(["x", None, "y"], ["1", "2", "3"])
    reg.drain()
    assert last == 3
    assert [(e.event, e.data) for e in ch.events()] == [("x", "1"), ("message", "2"), ("y", "3")]
    assert parse_plain(ch)[0] == as_sent(ch)


def test_many_event_types_neither_grow_memory_nor_shrink_chunks() -> None:
    # Types like f"item-{k}" (a feed, a POST publisher): the cache of "event:" lines
    # stays bounded, and a long type long gone from the history does not make every
    # later chunk small.
    reg = ChannelRegistry()
    ch = reg.create("a", max_events=100)
    ch.publish_many(["t" * 100_000], ["x"])  # a feed's type: send() refuses over 256
    for k in range(20_000):
        ch.publish("x", f"item-{k}")
        if k % 1000 == 0:
            reg.drain()
            parse_plain(ch)
    reg.drain()
    got, _ = parse_plain(ch)
    assert len(ch._event_lines) <= 1024
    assert [e.event for e in got][-1] == "item-19999"
    for _ in range(1000):
        ch.publish("x")
    reg.drain()
    _, sizes = parse_plain(ch)
    assert len(sizes) == 1, "a thousand short events should take one chunk"


def test_a_closed_channel_refuses_batches_too() -> None:
    reg = ChannelRegistry()
    ch = reg.create("s")
    ch.close("gone for a reason")
    with pytest.raises(SSEError, match=r"^gone for a reason$"):
        ch.publish_many([None], ["x"])
    with pytest.raises(SSEError, match=r"^gone for a reason$"):
        ch.publish("x")
    assert ch.published == 0
