"""send() → loopback client: sse_widget against peers, all in one run, one client program.

Servers measured (each in this process, fed by a Python loop calling ``send(str)``):

- **raw ceiling**: a thread ``sendall``-ing batches of pre-encoded events (the producer
  encodes ``data: …\\n\\n`` and appends; nothing else). No ids, no history, no HTTP framework.
- **naive tornado**: the seed's pattern: one ``add_callback`` per send, then write + flush per
  event.
- **sse-starlette**: sse-starlette's ``EventSourceResponse`` on uvicorn in a thread, fed
  through ``call_soon_threadsafe`` into a per-client asyncio queue.
- **sse_widget**: ``EventStream.send`` and the kernel event server.
- **bare tornado** (reference, not a peer): a coalescing Tornado handler with no ids, no
  history and no encoding beyond ``data:`` framing — the floor a Tornado server can reach.

The client is ``_sse_client.py`` in a separate process for every server.
Run: ``python benchmarks/bench_server.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent
CLIENT = ROOT / "_sse_client.py"


# -- servers -------------------------------------------------------------------------------


class RawCeiling:
    name = "raw ceiling"

    def __init__(self) -> None:
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.port = self.lsock.getsockname()[1]
        self.path = "/"
        self.clients: list[socket.socket] = []
        self.buf: list[Any] = []  # bytes here, text in BatchEncodedCeiling
        self.cv = threading.Condition()
        self.pending = False  # a wake-up is on its way to the sleeping pump
        self.sleeping = False  # the pump is waiting (or about to) on an empty buffer
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._pump, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopping:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            data = b""
            while b"\r\n\r\n" not in data:
                data += c.recv(4096)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
            with self.cv:
                self.clients.append(c)

    def _pump(self) -> None:
        buf = self.buf
        while not self.stopping:
            with self.cv:
                # Say "sleeping" before looking at the buffer: a producer appends, then
                # looks at the flags, so either the pump sees the event or the producer sees
                # the pump asleep and wakes it (its notify waits for this lock, which
                # wait() releases). No send can be left waiting for the timeout.
                self.pending = False
                self.sleeping = True
                while not buf and not self.stopping:
                    self.cv.wait(0.05)
                self.sleeping = False
                clients = list(self.clients)
            # Take a prefix by length: the producer only appends, so nothing is lost and
            # send() needs no lock (as cheap as a ceiling's producer can be).
            n = len(buf)
            data = self._batch(buf[:n])
            del buf[:n]
            for c in clients:
                try:
                    c.sendall(data)
                except OSError:  # that client finished and left
                    with self.cv:
                        self.clients.remove(c)

    def _batch(self, events: list[Any]) -> bytes:
        return b"".join(events)

    def send(self, s: str) -> None:
        self.buf.append(b"data: " + s.encode() + b"\n\n")
        if self.sleeping and not self.pending:
            self._wake()

    def _wake(self) -> None:
        # Off the hot path: at most once per batch, when the pump sleeps.
        self.pending = True
        with self.cv:
            self.cv.notify()

    def connected(self) -> int:
        return len(self.clients)

    def stop(self) -> None:
        self.stopping = True
        self.lsock.close()
        for c in self.clients:
            c.close()


class BatchEncodedCeiling(RawCeiling):
    """Reference only: the ceiling with text appended and each batch encoded in one call."""

    name = "batch ceiling"

    def _batch(self, events: list[Any]) -> bytes:
        return "".join(events).encode()

    def send(self, s: str) -> None:
        self.buf.append("data: " + s + "\n\n")
        if self.sleeping and not self.pending:
            self._wake()


class NaiveTornado:
    name = "naive tornado"

    def __init__(self) -> None:
        from tornado.httpserver import HTTPServer
        from tornado.ioloop import IOLoop
        from tornado.netutil import bind_sockets
        from tornado.web import Application, RequestHandler

        handlers: set[Any] = set()
        self.handlers = handlers

        class H(RequestHandler):
            async def get(self) -> None:
                self.set_header("Content-Type", "text/event-stream")
                self.flush()
                handlers.add(self)
                self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                await self.done

            def on_connection_close(self) -> None:
                handlers.discard(self)
                if not self.done.done():
                    self.done.set_result(None)

        ready = threading.Event()

        def run() -> None:
            async def main() -> None:
                self.loop = IOLoop.current()
                self.stopping = asyncio.Event()
                socks = bind_sockets(0, "127.0.0.1")
                http = HTTPServer(Application([(r"/", H)]))
                http.add_sockets(socks)
                self.port = socks[0].getsockname()[1]
                ready.set()
                await self.stopping.wait()
                http.stop()  # no thread of a finished contender lingers into later runs
                for h in list(handlers):
                    h.on_connection_close()
                await http.close_all_connections()

            asyncio.run(main())

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait()
        self.path = "/"

    def _write(self, s: str) -> None:
        for h in self.handlers:
            h.write("data: " + s + "\n\n")
            h.flush()

    def send(self, s: str) -> None:
        self.loop.add_callback(self._write, s)

    def connected(self) -> int:
        return len(self.handlers)

    def stop(self) -> None:
        self.loop.add_callback(self.stopping.set)
        self.thread.join(10)


class CoalescingTornado(NaiveTornado):
    """Reference only: the least a Tornado handler can do (append; one write per batch)."""

    name = "bare tornado"

    def __init__(self) -> None:
        super().__init__()
        self.buf: list[str] = []
        self.scheduled = False

    def _flush_all(self) -> None:
        # Reset the flag before taking the batch, and take it by slicing (a producer may
        # append meanwhile), so no event is ever left behind.
        self.scheduled = False
        n = len(self.buf)
        data = "".join(self.buf[:n])
        del self.buf[:n]
        for h in self.handlers:
            h.write(data)
            h.flush()

    def send(self, s: str) -> None:
        self.buf.append("data: " + s + "\n\n")
        if not self.scheduled:
            self.scheduled = True
            self.loop.add_callback(self._flush_all)


class SseStarlette:
    name = "sse-starlette"

    def __init__(self) -> None:
        import uvicorn
        from sse_starlette.sse import EventSourceResponse
        from starlette.applications import Starlette
        from starlette.routing import Route

        queues: set[asyncio.Queue[str]] = set()
        self.queues = queues

        async def stream(request: Any) -> Any:
            q: asyncio.Queue[str] = asyncio.Queue()
            queues.add(q)

            async def gen() -> Any:
                try:
                    while True:
                        yield {"data": await q.get()}
                finally:
                    queues.discard(q)

            return EventSourceResponse(gen())

        app = Starlette(routes=[Route("/", stream)])
        sock = socket.create_server(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="error", lifespan="off", loop="asyncio")
        self.server = uvicorn.Server(config)
        ready = threading.Event()

        def run() -> None:
            async def main() -> None:
                self.loop = asyncio.get_running_loop()
                ready.set()
                await self.server.serve(sockets=[sock])

            asyncio.run(main())

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait()
        self.path = "/"

    def _put(self, s: str) -> None:
        for q in self.queues:
            q.put_nowait(s)

    def send(self, s: str) -> None:
        self.loop.call_soon_threadsafe(self._put, s)

    def connected(self) -> int:
        return len(self.queues)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class Ours:
    name = "sse_widget"

    def __init__(self, history: int = 10_000) -> None:
        from sse_widget import EventStream

        self.stream = EventStream(history=history)
        self.port = self.stream._server.port
        self.path = f"/streams/{self.stream.name}?key={self.stream._server.key}"
        self.send = self.stream.send

    def connected(self) -> int:
        return self.stream.clients

    def stop(self) -> None:
        self.stream.close()


# -- measurements --------------------------------------------------------------------------


def start_client(*args: object) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(CLIENT), *map(str, args)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line or "ready" not in line:
        raise RuntimeError(f"benchmark client failed to start: {line!r}")
    return proc


def wait_connected(srv: Any, n: int) -> None:
    deadline = time.monotonic() + 60
    while srv.connected() < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{srv.name}: only {srv.connected()} of {n} clients connected")
        time.sleep(0.01)
    time.sleep(0.2)


def result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    out = proc.stdout.readline()
    proc.wait(60)
    data: dict[str, Any] = json.loads(out)
    return data


def settle() -> None:
    """Let the contender measured before go, so its garbage is not freed in this one.

    A closed stream's history (300k events here) is freed by the garbage collector, and
    a collection that frees a million objects takes 20-30 ms: run inside the next
    latency measurement, it was that measurement's p99. Every contender gets the same.
    """
    time.sleep(0.2)  # a stopped server's last callbacks run on its own thread
    gc.collect()


def stuck_reader(srv: Any) -> socket.socket:
    """A client that asks for the stream and then never reads a byte of it."""
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(f"GET {srv.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return s


def throughput(srv: Any, n: int, clients: int = 1, stuck: int = 0) -> tuple[float, int, float]:
    """Events/s delivered to every client, deliveries lost, and the sending loop's CPU.

    ``stuck`` more clients connect first and never read: they must cost the others nothing.
    The last figure is the main thread's own CPU per event while it sends (ns), which
    says how far a contender's rate is set by its ``send()`` rather than by its server.
    """
    settle()
    held = [stuck_reader(srv) for _ in range(stuck)]
    proc = start_client("fanout", "127.0.0.1", srv.port, srv.path, n, clients)
    wait_connected(srv, clients + stuck)
    payload = '{"i": 12345, "loss": 0.123456}'
    send = srv.send
    t0, c0 = time.time(), time.thread_time_ns()
    for _ in range(n):
        send(payload)
    cpu = (time.thread_time_ns() - c0) / n
    res = result(proc)
    for h in held:
        h.close()
    elapsed = res["end"] - t0
    lost = sum(max(0, n - r) for r in res["received"])
    return n * clients / elapsed, lost, cpu


def latency(srv: Any, n: int, rate: float = 1000.0) -> tuple[float, float]:
    settle()
    proc = start_client("latency", "127.0.0.1", srv.port, srv.path, n)
    wait_connected(srv, 1)
    period = 1.0 / rate
    nxt = time.perf_counter()
    for _ in range(n):
        while time.perf_counter() < nxt:
            pass
        srv.send(f"{time.time():.6f}")
        nxt += period
    lat = sorted(result(proc)["latencies"])
    if len(lat) < n:
        raise RuntimeError(f"{srv.name}: latency client got {len(lat)} of {n}")
    return lat[len(lat) // 2] * 1e3, lat[int(len(lat) * 0.99)] * 1e3


def send_cost(send: Callable[[str], Any], n: int) -> tuple[float, float]:
    """Main-thread µs per send(): (wall clock, CPU of this thread only).

    The wall clock also counts the time the loop waits for the GIL while the server
    thread drains what it sent: that is taken from the user's computation too.
    """
    payload = "x" * 30
    gc.collect()
    w0, t0 = time.perf_counter_ns(), time.thread_time_ns()
    for _ in range(n):
        send(payload)
    t1, w1 = time.thread_time_ns(), time.perf_counter_ns()
    return (w1 - w0) / n / 1e3, (t1 - t0) / n / 1e3


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_growth(n: int) -> float:
    srv = Ours()
    for _ in range(20_000):
        srv.send("warm-up")
    time.sleep(0.5)
    gc.collect()
    before = rss_mb()
    payload = '{"i": 12345, "loss": 0.123456}'
    for _ in range(n):
        srv.send(payload)
    deadline = time.monotonic() + 60
    while srv.stream._channel.total < srv.stream.count and time.monotonic() < deadline:
        time.sleep(0.05)
    gc.collect()
    growth = rss_mb() - before
    srv.stop()
    return growth


def fmt(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.2f}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    ap.add_argument("--reps", type=int, default=7, help="interleaved rounds (medians)")
    args = ap.parse_args()
    q = args.quick
    n_fast, n_slow = (30_000, 3_000) if q else (300_000, 30_000)
    fan_n = 2_000 if q else 20_000
    reps = 1 if q else args.reps

    rows: dict[str, dict[str, float]] = {}

    def record(name: str, key: str, value: float) -> None:
        rows.setdefault(name, {})[key] = value

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; reps={reps}", flush=True)
    # First, in a process nothing has run in yet: memory the runs below leave to the
    # allocator is reused by later sends, and measured after them the growth came out below 0.
    rss = rss_growth(200_000 if q else 1_000_000)
    # sse_widget keeps as much history as one burst here: a burst larger than the history is
    # reported to a client as a gap, by design, and a ceiling that drops nothing is the yardstick.
    # (factory, events, clients that never read). The stuck-reader run is sse_widget's
    # alone: the ceiling's blocking sendall would wait on such a client for ever, which is
    # the point of not being a ceiling.
    servers: list[tuple[Callable[[], Any], int, int]] = [
        (RawCeiling, n_fast, 0),
        (lambda: Ours(history=n_fast), n_fast, 0),
        (lambda: Ours(history=n_fast), n_fast, 1),
        (BatchEncodedCeiling, n_fast, 0),
        (CoalescingTornado, n_fast, 0),
        (NaiveTornado, n_slow, 0),
        (SseStarlette, n_slow, 0),
    ]
    # Reps are interleaved (every contender once, then again), so whatever warms up or
    # drifts during the run (CPU clocks, the allocator, the other tenants of the machine)
    # falls on every contender alike rather than on whichever runs first.
    all_rates: dict[int, list[float]] = {k: [] for k in range(len(servers))}
    all_cpu: dict[int, list[float]] = {k: [] for k in range(len(servers))}
    for _ in range(reps):
        for k, (cls, n, stuck) in enumerate(servers):
            srv = cls()  # a fresh server each time: no earlier client or history in the way
            rate, lost, cpu = throughput(srv, n, stuck=stuck)
            all_rates[k].append(rate)
            all_cpu[k].append(cpu)
            if lost:
                print(f"  {srv.name} ({stuck} stuck): lost {lost} events", flush=True)
            srv.stop()
    for k, (cls, _n, stuck) in enumerate(servers):
        rates = all_rates[k]
        if stuck:
            rate = statistics.median(rates)
            record("sse_widget", "stuck_throughput", rate)
            print(f"  sse_widget, one reader stuck: {fmt(rate)} ev/s", flush=True)
            continue
        srv = cls()
        record(srv.name, "throughput", statistics.median(rates))
        record(srv.name, "throughput_min", min(rates))
        record(srv.name, "throughput_max", max(rates))
        record(srv.name, "send_loop_cpu_ns", statistics.median(all_cpu[k]))
        p50, p99 = latency(srv, 500 if q else 2000)
        record(srv.name, "p50_ms", p50)
        record(srv.name, "p99_ms", p99)
        print(
            f"  {srv.name}: {fmt(rows[srv.name]['throughput'])} ev/s, p50 {p50:.2f} ms, "
            f"p99 {p99:.2f} ms",
            flush=True,
        )
        srv.stop()

    # Fan-out: 100 clients, the same history rule as above.
    for cls, n in (
        (RawCeiling, fan_n),
        (lambda: Ours(history=fan_n), fan_n),
        (SseStarlette, fan_n // 10),
    ):
        srv = cls()
        rate, lost, _ = throughput(srv, n, clients=100)
        record(srv.name, "fanout", rate)
        record(srv.name, "fanout_lost", lost)
        record(srv.name, "fanout_events", n)
        print(f"  fan-out {srv.name}: {fmt(rate)} deliveries/s, lost {lost}", flush=True)
        srv.stop()

    # send() cost on the main thread, no client connected.
    raw, ours = RawCeiling(), Ours(history=10_000)
    n_cost = 200_000 if q else 1_000_000
    for srv in (raw, ours):
        costs = [send_cost(srv.send, n_cost) for _ in range(reps)]
        record(srv.name, "send_us", statistics.median(wall for wall, _ in costs))
        record(srv.name, "send_cpu_us", statistics.median(cpu for _, cpu in costs))
    raw.stop()
    ours.stop()
    record("sse_widget", "rss_mb", rss)

    print()
    print(
        f"{'server':<16}{'events/s':>12}{'min':>12}{'max':>12}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'fan-out/s':>12}{'lost':>7}{'loop CPU ns':>13}"
    )
    for name, r in rows.items():
        print(
            f"{name:<16}{fmt(r.get('throughput', 0)):>12}{fmt(r.get('throughput_min', 0)):>12}"
            f"{fmt(r.get('throughput_max', 0)):>12}{r.get('p50_ms', 0):>9.2f}"
            f"{r.get('p99_ms', 0):>9.2f}{fmt(r.get('fanout', 0)):>12}"
            f"{int(r.get('fanout_lost', 0)):>7}{r.get('send_loop_cpu_ns', 0):>13.0f}"
        )
    print(
        "loop CPU ns: the sending loop's own CPU per event in the throughput run; a rate "
        "near 1e9 / that is set by send(), not by the server"
    )
    ours_r, raw_r = rows["sse_widget"], rows["raw ceiling"]
    checks = [
        ("throughput vs raw ceiling", ours_r["throughput"] / raw_r["throughput"], 0.5),
        (
            "throughput vs naive tornado",
            ours_r["throughput"] / rows["naive tornado"]["throughput"],
            20,
        ),
        (
            "throughput vs sse-starlette",
            ours_r["throughput"] / rows["sse-starlette"]["throughput"],
            30,
        ),
        ("fan-out vs raw ceiling", ours_r["fanout"] / raw_r["fanout"], 0.5),
    ]
    missed = False
    print()
    for label, ratio, target in checks:
        missed |= ratio < target
        print(
            f"{label:<34}{ratio:>8.2f}x   target >= {target}x   "
            f"{'PASS' if ratio >= target else 'MISS'}"
        )
    references = [
        (
            "throughput vs batch-encoded ceiling",
            ours_r["throughput"] / rows["batch ceiling"]["throughput"],
        ),
        ("throughput vs bare tornado", ours_r["throughput"] / rows["bare tornado"]["throughput"]),
        ("with a stuck reader vs without", ours_r["stuck_throughput"] / ours_r["throughput"]),
    ]
    for label, ratio in references:
        print(f"{label:<34}{ratio:>8.2f}x   (reference, no target)")
    p99_ratio = ours_r["p99_ms"] / raw_r["p99_ms"]
    missed |= p99_ratio > 2 or ours_r["fanout_lost"] != 0
    missed |= ours_r["send_us"] > 1 or ours_r["rss_mb"] > 50
    print(
        f"{'latency p99 vs raw ceiling':<34}{p99_ratio:>8.2f}x   target <= 2x    "
        f"{'PASS' if p99_ratio <= 2 else 'MISS'}"
    )
    print(
        f"{'fan-out loss':<34}{int(ours_r['fanout_lost']):>8}    target 0       "
        f"{'PASS' if ours_r['fanout_lost'] == 0 else 'MISS'}"
    )
    print(
        f"{'send() µs/event, main thread':<34}{ours_r['send_us']:>8.2f}    target <= 1     "
        f"{'PASS' if ours_r['send_us'] <= 1 else 'MISS'}   (raw ceiling {raw_r['send_us']:.2f}; "
        f"CPU only: {ours_r['send_cpu_us']:.2f} vs {raw_r['send_cpu_us']:.2f})"
    )
    print(
        f"{'RSS growth over sends, MB':<34}{ours_r['rss_mb']:>8.1f}    target <= 50    "
        f"{'PASS' if ours_r['rss_mb'] <= 50 else 'MISS'}"
    )
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
