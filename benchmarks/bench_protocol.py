"""Benchmark the SSE protocol core against popular Python implementations, in one run.

Parser: MB/s over the same ~20 MB mixed stream fed in 64 KiB chunks, for
``sse_widget.protocol.EventParser``, httpx-sse's decoders (``SSELineDecoder`` +
``SSEDecoder``, exactly as ``EventSource.iter_sse`` drives them, with the same
incremental UTF-8 decoding httpx applies) and sseclient-py's ``SSEClient``. The
stream is measured twice: with LF line ends (what ``encode_event`` writes) and with
CRLF (what sse-starlette writes by default).

Encoder: events/s for ``encode_event`` against sse-starlette's
``ServerSentEvent(...).encode()``, over the same events.

Targets: parser >= 1.5x httpx-sse, encoder >= 1.5x sse-starlette (medians).

Run: ``.venv/bin/python benchmarks/bench_protocol.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import codecs
import gc
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from importlib.metadata import version

import sseclient
from httpx_sse._decoders import SSEDecoder, SSELineDecoder
from sse_starlette.event import ServerSentEvent

from sse_widget.protocol import EventParser, encode_event

CHUNK = 64 * 1024
TARGET = 1.5

Item = tuple[str, str | None, str]


def make_events(target_bytes: int, seed: int = 2024) -> list[Item]:
    """A deterministic mix: mostly small JSON events, some multi-line, a few multi-KB."""
    rng = random.Random(seed)
    types = [None, "update", "progress", "log"]
    events: list[Item] = []
    size = 0
    i = 0
    while size < target_bytes:
        r = rng.random()
        if r < 0.95:
            data = json.dumps({"i": i, "loss": round(rng.random(), 3)})
        elif r < 0.995:
            data = "\n".join(
                f"line {k}: " + "x" * rng.randint(0, 80) for k in range(rng.randint(2, 10))
            )
        else:
            data = "".join(rng.choices("abcdefghij é中", k=rng.randint(1000, 4000)))
        item = (data, rng.choice(types), str(i))
        events.append(item)
        size += len(encode_event(item[0], event=item[1], id=item[2]))
        i += 1
    return events


# -- the contestants -----------------------------------------------------------------


def parse_ours(chunks: Sequence[bytes]) -> int:
    parser = EventParser()
    n = 0
    for chunk in chunks:
        n += len(parser.feed(chunk))
    return n + len(parser.close())


def parse_httpx_sse(chunks: Sequence[bytes]) -> int:
    # httpx's Response.iter_text() decodes with an incremental UTF-8 decoder; then
    # httpx_sse._api._iter_sse_lines and EventSource.iter_sse do exactly this.
    text_decoder = codecs.getincrementaldecoder("utf-8")("replace")
    line_decoder = SSELineDecoder()
    decoder = SSEDecoder()
    n = 0
    for chunk in chunks:
        for line in line_decoder.decode(text_decoder.decode(chunk)):
            if decoder.decode(line.rstrip("\n")) is not None:
                n += 1
    for line in line_decoder.flush():
        if decoder.decode(line.rstrip("\n")) is not None:
            n += 1
    return n


def parse_sseclient(chunks: Sequence[bytes]) -> int:
    return sum(1 for _ in sseclient.SSEClient(iter(chunks)).events())


def encode_ours(events: Sequence[Item]) -> int:
    for data, event, id_ in events:
        encode_event(data, event=event, id=id_)
    return len(events)


def encode_sse_starlette(events: Sequence[Item]) -> int:
    for data, event, id_ in events:
        ServerSentEvent(data, event=event, id=id_).encode()
    return len(events)


# -- measuring -----------------------------------------------------------------------


def measure(
    contestants: dict[str, Callable[[], int]], reps: int
) -> dict[str, tuple[list[float], int]]:
    """Time each contestant `reps` times, interleaved so drift hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in contestants}
    counts: dict[str, int] = {}
    for _ in range(reps):
        for name, run in contestants.items():
            gc.collect()
            t0 = time.perf_counter()
            counts[name] = run()
            times[name].append(time.perf_counter() - t0)
    return {name: (times[name], counts[name]) for name in contestants}


def rates(amount: float, seconds: list[float]) -> tuple[float, float, float]:
    per_s = [amount / s for s in seconds]
    return statistics.median(per_s), min(per_s), max(per_s)


def table(title: str, unit: str, rows: dict[str, tuple[float, float, float]]) -> None:
    print(f"\n{title}")
    print(f"  {'':<44}{'median':>12}{'min':>12}{'max':>12}  {unit}")
    for name, (med, lo, hi) in rows.items():
        print(f"  {name:<44}{med:>12,.1f}{lo:>12,.1f}{hi:>12,.1f}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="a 2 MB stream and 3 runs (smoke test)")
    ap.add_argument("--mb", type=float, default=20.0, help="stream size in MB (default 20)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions (default 5)")
    ap.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    args = ap.parse_args(argv)
    mb, reps = (2.0, 3) if args.quick else (args.mb, args.reps)

    events = make_events(int(mb * 1e6))
    lf = b"".join(encode_event(d, event=e, id=i) for d, e, i in events)
    # Our encoder writes no CR, so this is the same stream as sse-starlette would end lines.
    crlf = lf.replace(b"\n", b"\r\n")
    print(
        f"Python {platform.python_version()}; httpx-sse {version('httpx-sse')}, "
        f"sseclient-py {version('sseclient-py')}, sse-starlette {version('sse-starlette')}"
    )
    multi_line = sum("\n" in d for d, _, _ in events)
    big = sum(len(d) > 1000 for d, _, _ in events)
    print(
        f"{len(events):,} events ({multi_line:,} multi-line, {big:,} over 1 KB); "
        f"{CHUNK // 1024} KiB chunks; {reps} runs each"
    )

    ratios: list[tuple[str, float]] = []
    for label, stream in [("LF", lf), ("CRLF", crlf)]:
        chunks = [stream[i : i + CHUNK] for i in range(0, len(stream), CHUNK)]
        results = measure(
            {
                "sse_widget EventParser": partial(parse_ours, chunks),
                "httpx-sse SSELineDecoder + SSEDecoder": partial(parse_httpx_sse, chunks),
                "sseclient-py SSEClient": partial(parse_sseclient, chunks),
            },
            reps,
        )
        for name, (_, count) in results.items():
            if count != len(events):
                print(f"  WARNING: {name} found {count:,} events, expected {len(events):,}")
        rows = {name: rates(len(stream) / 1e6, t) for name, (t, _) in results.items()}
        table(f"Parser, {len(stream) / 1e6:.1f} MB stream, {label} line ends", "MB/s", rows)
        ours = rows["sse_widget EventParser"][0]
        httpx_sse = rows["httpx-sse SSELineDecoder + SSEDecoder"][0]
        ratios.append((f"parser ({label}) vs httpx-sse", ours / httpx_sse))
        ratios.append(
            (f"parser ({label}) vs sseclient-py", ours / rows["sseclient-py SSEClient"][0])
        )

    results = measure(
        {
            "sse_widget encode_event": partial(encode_ours, events),
            "sse-starlette ServerSentEvent.encode": partial(encode_sse_starlette, events),
        },
        reps,
    )
    rows = {name: rates(count, t) for name, (t, count) in results.items()}
    table(f"Encoder, {len(events):,} events", "events/s", rows)
    ours = rows["sse_widget encode_event"][0]
    ratios.append(
        ("encoder vs sse-starlette", ours / rows["sse-starlette ServerSentEvent.encode"][0])
    )

    print("\nRatios (medians)")
    missed = False
    for name, ratio in ratios:
        if "sseclient" in name:
            print(f"  {name:<34}{ratio:>6.2f}x")
            continue
        ok = ratio >= TARGET
        missed |= not ok
        print(f"  {name:<34}{ratio:>6.2f}x  target >= {TARGET}x  {'PASS' if ok else 'MISS'}")
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
