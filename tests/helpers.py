"""Test helpers shared by several test modules (not tests themselves)."""

from __future__ import annotations

import gc
import socket
import time
from collections.abc import Callable

from sse_widget.protocol import Event, EventParser


class RawSSE:
    """A minimal raw-socket SSE reader: HTTP/1.1 by hand, our parser on the body.

    It speaks to the socket directly so tests control reading (or not reading) exactly.
    """

    def __init__(self, host: str, port: int, path: str, headers: dict[str, str] | None = None):
        self.sock = socket.create_connection((host, port), timeout=10)
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Accept: text/event-stream"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.parser = EventParser()
        self.status = 0
        self.headers: dict[str, str] = {}
        self._buf = b""
        self._chunk_left = 0
        self.ended = False  # the chunked end was read
        self._read_head()

    def _read_head(self) -> None:
        while b"\r\n\r\n" not in self._buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed before headers")
            self._buf += data
        head, self._buf = self._buf.split(b"\r\n\r\n", 1)
        first, *rest = head.decode("latin-1").split("\r\n")
        self.status = int(first.split()[1])
        for line in rest:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()

    def _dechunk(self, data: bytes) -> bytes:
        # Tornado streams with chunked transfer encoding; undo it incrementally.
        self._buf += data
        out = b""
        while True:
            if self._chunk_left == 0:
                if b"\r\n" not in self._buf:
                    break
                size_line, self._buf = self._buf.split(b"\r\n", 1)
                if not size_line:
                    continue
                self._chunk_left = int(size_line, 16)
                if self._chunk_left == 0:  # the last chunk: the response is complete
                    self.ended = True
                    break
            take = self._buf[: self._chunk_left]
            out += take
            self._buf = self._buf[len(take) :]
            self._chunk_left -= len(take)
            if self._chunk_left:
                break
        return out

    def read_events(
        self, n: int, timeout: float = 10.0, keep: Callable[[Event], bool] | None = None
    ) -> list[Event]:
        """Read until ``n`` events (that ``keep`` accepts) arrived, or fail after ``timeout``."""
        events: list[Event] = []
        deadline = time.monotonic() + timeout
        body = self._dechunk(b"") if self._buf else b""
        while True:
            for ev in self.parser.feed(body):
                if keep is None or keep(ev):
                    events.append(ev)
            if len(events) >= n:
                return events
            if self.ended:
                raise ConnectionError(f"stream ended after {len(events)} of {n} events")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"expected {n} events, got {len(events)}: {events[-3:]}")
            self.sock.settimeout(left)
            data = self.sock.recv(1 << 16)
            if not data:
                raise ConnectionError(f"closed after {len(events)} of {n} events")
            body = self._dechunk(data)

    def close(self) -> None:
        self.sock.close()


def wait_for(pred: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.01)


def live_count(cls: type) -> int:
    """How many instances of exactly ``cls`` are alive, after a full collection."""
    gc.collect()
    return sum(type(o) is cls for o in gc.get_objects())
