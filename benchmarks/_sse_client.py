"""The one client process every server benchmark uses, so peers are read the same way.

usage:
  python _sse_client.py count HOST PORT PATH N           one connection, N events
  python _sse_client.py fanout HOST PORT PATH N K        K connections, N events each
  python _sse_client.py latency HOST PORT PATH N         N events whose data is a send time

It speaks HTTP/1.1 over raw sockets and counts ``data:`` lines (each benchmark event has
exactly one), so the client costs the same for every server and stays out of the way.
It prints one JSON line: ``ready`` when connected, then the result.
"""

from __future__ import annotations

import json
import selectors
import socket
import sys
import time

MARK = b"data: "


def connect(host: str, port: int, path: str) -> socket.socket:
    sock = socket.create_connection((host, port))
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    sock.setblocking(False)
    return sock


def ready() -> None:
    print(json.dumps({"ready": True}), flush=True)


def count(host: str, port: int, path: str, n: int, k: int) -> None:
    sel = selectors.DefaultSelector()
    socks = [connect(host, port, path) for _ in range(k)]
    state = {s: [0, b""] for s in socks}
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    ready()
    start = None
    done = 0
    # Give up after 5 s without data: a server that lost events never sends the rest.
    quiet_since = time.monotonic()
    while done < k and time.monotonic() - quiet_since < 5:
        for key, _ in sel.select(timeout=1):
            quiet_since = time.monotonic()
            s = key.fileobj
            data = s.recv(1 << 20)  # type: ignore[union-attr]
            if start is None:
                start = time.perf_counter()
            st = state[s]  # type: ignore[index]
            if not data:
                sel.unregister(s)
                done += 1
                continue
            # The last len(MARK)-1 bytes are carried over: too short to hold a whole mark,
            # so a mark split across two reads is counted exactly once.
            buf = st[1] + data
            st[0] += buf.count(MARK)
            st[1] = buf[-(len(MARK) - 1) :]
            if st[0] >= n:
                sel.unregister(s)
                done += 1
    elapsed = time.perf_counter() - (start or time.perf_counter())
    got = [state[s][0] for s in socks]
    print(json.dumps({"elapsed": elapsed, "received": got, "end": time.time()}), flush=True)


def latency(host: str, port: int, path: str, n: int) -> None:
    sock = connect(host, port, path)
    sock.setblocking(True)
    ready()
    lat = []
    buf = b""
    while len(lat) < n:
        data = sock.recv(1 << 16)
        if not data:
            break
        now = time.time()
        buf += data
        while True:
            i = buf.find(MARK)
            if i < 0:
                break
            j = buf.find(b"\n", i)
            if j < 0:
                break
            value = buf[i + len(MARK) : j]
            buf = buf[j:]
            try:
                lat.append(now - float(value))
            except ValueError:
                continue
    print(json.dumps({"latencies": lat}), flush=True)


if __name__ == "__main__":
    mode, host, port, path, n, *rest = sys.argv[1:]
    if mode == "latency":
        latency(host, int(port), path, int(n))
    else:
        count(host, int(port), path, int(n), int(rest[0]) if rest else 1)
