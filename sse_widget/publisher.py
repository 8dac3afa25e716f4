"""Publishing to a stream from another process over HTTP.

A :class:`Publisher` is small and picklable: pass it to ``multiprocessing`` (fork or
spawn) or ``ProcessPoolExecutor`` workers. Each process opens its own kept-alive
connection on first use.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
from typing import Any
from urllib.parse import quote, urlsplit

from .channels import check_user_event
from .errors import SSEError
from .protocol import check_text
from .serialize import to_text

__all__ = ["Publisher"]

#: The most events :meth:`Publisher.send_many` puts in one request.
BATCH_EVENTS = 1000
#: About the most bytes :meth:`Publisher.send_many` puts in one request.
BATCH_BYTES = 256 << 10

_RETRYABLE = (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine)


class Publisher:
    """Sends events to one stream of a running sse_widget server.

    Parameters
    ----------
    base_url:
        The server's local base URL, e.g. ``http://127.0.0.1:41234``.
    key:
        The server's key.
    stream:
        The stream's name.
    timeout:
        Seconds to wait for the server on each request.

    Examples
    --------
    >>> pub = stream.publisher()  # doctest: +SKIP
    >>> with ProcessPoolExecutor() as pool:  # doctest: +SKIP
    ...     ids = list(pool.map(work, [pub] * 4))  # list(): a worker's error is raised here

    The object pickles to the server's loopback URL and key, so it reaches the server from
    any process on the same machine (not through ``SSE_WIDGET_PUBLIC_URL``).
    """

    def __init__(self, base_url: str, key: str, stream: str, *, timeout: float = 10.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname or parts.port is None:
            raise ValueError(f"base_url must look like http://host:port; got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.stream = stream
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._pid = 0
        self._path = f"/streams/{quote(stream, safe='')}"

    def __repr__(self) -> str:
        return f"Publisher({self.base_url!r}, stream={self.stream!r})"

    def __getstate__(self) -> dict[str, Any]:
        # A socket does not survive pickling; each process opens its own.
        state = self.__dict__.copy()
        state["_conn"] = None
        state["_pid"] = 0
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def send(self, data: object, event: str | None = None) -> int:
        """Publish one event and return its id.

        Raises
        ------
        TypeError
            If ``data`` cannot be serialised.
        SSEError
            If the server refused the event (the message says why) or cannot be reached.
        """
        return self.send_many([(data, event)])[0]

    def send_many(self, events: list[tuple[object, str | None]]) -> list[int]:
        """Publish several ``(data, event)`` pairs; returns their ids.

        Every pair is checked before anything is sent, so bad input publishes nothing.
        A long batch goes in several requests of at most :data:`BATCH_EVENTS` events and
        about :data:`BATCH_BYTES` bytes, each all or nothing at the server (but for a
        ``close()`` of the stream that overtakes one: the error then says which went out).

        Raises
        ------
        TypeError
            If a ``data`` cannot be serialised, or an ``event`` is not a str.
        sse_widget.SSEError
            If an ``event`` or a text is invalid, or the server refused a request (the
            message says why) or cannot be reached.
        """
        items = []
        for data, event in events:
            item: dict[str, Any] = {"data": check_text(to_text(data)), "id": secrets.token_hex(12)}
            if event is not None:
                item["event"] = check_user_event(event)
            items.append(json.dumps(item, ensure_ascii=False).encode())
        ids: list[int] = []
        start = 0
        while start < len(items):
            # Small enough that the server still remembers every key of a retried request
            # (it keeps 4,096 per stream), and far below its 1 MiB body limit.
            end, size = start, 0
            while end < len(items) and end - start < BATCH_EVENTS and size < BATCH_BYTES:
                size += len(items[end]) + 1
                end += 1
            ids += self._post(b"[" + b",".join(items[start:end]) + b"]")["ids"]
            start = end
        return ids

    def _connection(self) -> http.client.HTTPConnection:
        # A connection inherited through fork is shared with the parent: never reuse it.
        if self._conn is None or self._pid != os.getpid():
            parts = urlsplit(self.base_url)
            assert parts.hostname is not None
            self._conn = http.client.HTTPConnection(
                parts.hostname, parts.port, timeout=self.timeout
            )
            self._pid = os.getpid()
        return self._conn

    def _post(self, body: bytes) -> dict[str, Any]:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.key}"}
        # Each item carries a random id, so re-sending after a dropped keep-alive
        # connection cannot publish twice: the server remembers recent ids.
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request("POST", self._path, body, headers)
                resp = conn.getresponse()
                payload = resp.read()
            except (*_RETRYABLE, OSError) as exc:
                conn.close()
                self._conn = None
                if attempt == 2:
                    raise SSEError(
                        f"could not reach the sse_widget server at {self.base_url}: {exc}"
                    ) from exc
                continue
            if resp.status != 200:
                try:
                    detail = json.loads(payload)["error"]
                except (ValueError, KeyError, TypeError):
                    detail = payload[:2048].decode("utf-8", "replace")
                if resp.status == 403:  # the answer has no body: say what it means here
                    detail = (
                        "the server refused this publisher's key (a restarted kernel has a "
                        "new one): make a new publisher with stream.publisher()"
                    )
                raise SSEError(
                    f"publishing to stream {self.stream!r} failed with HTTP {resp.status}: {detail}"
                )
            result: dict[str, Any] = json.loads(payload)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close this process's connection (it reopens on the next send)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __del__(self) -> None:
        # A publisher is often dropped without close() (a worker's copy, or one whose send
        # raised); its kept-alive socket should not then be left to the garbage collector.
        with contextlib.suppress(Exception):
            self.close()
