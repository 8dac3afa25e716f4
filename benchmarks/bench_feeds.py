"""Benchmark feed ingest: a local SSE server read by ``connect()`` and by httpx-sse, in one run.

A Tornado server in its own process serves the same pre-encoded stream to every client
(N small JSON events with ids, as a service feed or an LLM API sends them, written in
64 KiB pieces), then ends it. Each client reads the whole stream:

- **sse_widget connect()**: the whole feed path. Tornado's HTTP client on the event
  server's thread, ``EventParser``, de-duplication by id, the thread-safe record, the
  channel the browser reads, and the trait updates on the dispatcher thread. Timed from
  ``connect()`` until ``join()`` returns.
- **httpx-sse (sync)**: ``connect_sse(...).iter_sse()`` on an ``httpx.Client``, counting
  events: what people write today.
- **httpx-sse (async)**: ``aconnect_sse`` on an ``httpx.AsyncClient``.
- **httpx bytes, no parsing**: ``iter_bytes()`` only, the cost of the HTTP layer alone.

Target: connect() >= 1.5x httpx-sse (sync), medians.

Run: ``.venv/bin/python benchmarks/bench_feeds.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from importlib.metadata import version

import httpx
from httpx_sse import aconnect_sse, connect_sse

from sse_widget import connect

TARGET = 1.5
PIECE = 64 * 1024

SERVER = r"""
import asyncio, json, sys
from tornado.web import Application, RequestHandler
n = int(sys.argv[1])
body = "".join(
    f'id: {i}\nevent: update\ndata: {{"i": {i}, "loss": {1 / (i + 1):.6f}, "ok": true}}\n\n'
    for i in range(n)
).encode()
pieces = [body[i : i + 65536] for i in range(0, len(body), 65536)]

class Stream(RequestHandler):
    async def get(self):
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-store")
        for piece in pieces:
            self.write(piece)
            await self.flush()

async def main():
    server = Application([("/", Stream)]).listen(0, "127.0.0.1")
    port = next(iter(server._sockets.values())).getsockname()[1]
    print(json.dumps({"port": port, "bytes": len(body)}), flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def read_feed(url: str) -> int:
    feed = connect(url, reconnect=False, timeout=60)
    status = feed.join(120)
    if status != "closed":
        raise RuntimeError(f"the feed ended with {status}: {feed.error}")
    n = len(feed)
    feed.close()
    return n


def read_httpx_sse(url: str) -> int:
    n = 0
    with httpx.Client(timeout=60) as client, connect_sse(client, "GET", url) as es:
        for _ in es.iter_sse():
            n += 1
    return n


def read_httpx_sse_async(url: str) -> int:
    async def run() -> int:
        n = 0
        async with (
            httpx.AsyncClient(timeout=60) as client,
            aconnect_sse(client, "GET", url) as es,
        ):
            async for _ in es.aiter_sse():
                n += 1
        return n

    return asyncio.run(run())


def read_httpx_bytes(url: str) -> int:
    size = 0
    with httpx.Client(timeout=60) as client, client.stream("GET", url) as r:
        for chunk in r.iter_bytes():
            size += len(chunk)
    return size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="a small smoke run")
    ap.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    args = ap.parse_args()
    n, reps = (20_000, 2) if args.quick else (args.events, args.reps)

    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(n)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        url = f"http://127.0.0.1:{info['port']}/"
        print(
            f"Python {platform.python_version()}; tornado {version('tornado')}, "
            f"httpx {version('httpx')}, httpx-sse {version('httpx-sse')}"
        )
        print(
            f"{n:,} events, {info['bytes'] / 1e6:.1f} MB, served by Tornado in another "
            f"process; {reps} runs each, interleaved"
        )
        clients: dict[str, tuple[Callable[[str], int], bool]] = {
            "sse_widget connect()": (read_feed, True),
            "httpx-sse (sync)": (read_httpx_sse, True),
            "httpx-sse (async)": (read_httpx_sse_async, True),
            "httpx bytes, no parsing": (read_httpx_bytes, False),
        }
        for fn, _ in clients.values():  # warm up imports, the server's first response
            fn(url)
        times: dict[str, list[float]] = {name: [] for name in clients}
        for _ in range(reps):
            for name, (fn, counts_events) in clients.items():
                t0 = time.perf_counter()
                got = fn(url)
                times[name].append(time.perf_counter() - t0)
                want = n if counts_events else info["bytes"]
                if got != want:
                    print(f"  WARNING: {name} got {got:,}, expected {want:,}")
    finally:
        proc.kill()

    print(f"\n{'Feed ingest':<28}{'events/s':>14}{'best':>14}")
    rate = {}
    for name, ts in times.items():
        rate[name] = n / statistics.median(ts)
        print(f"  {name:<26}{rate[name]:>14,.0f}{n / min(ts):>14,.0f}")

    ours = rate["sse_widget connect()"]
    print("\nRatios (medians)")
    missed = False
    for peer in ("httpx-sse (sync)", "httpx-sse (async)", "httpx bytes, no parsing"):
        ratio = ours / rate[peer]
        line = f"  connect() vs {peer:<24}{ratio:>6.2f}x"
        if peer == "httpx-sse (sync)":
            ok = ratio >= TARGET
            missed |= not ok
            line += f"  target >= {TARGET}x  {'PASS' if ok else 'MISS'}"
        print(line)
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
