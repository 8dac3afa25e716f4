"""Publisher: a picklable handle that POSTs to a stream from any process.

The process-pool and multiprocessing cases are in test_server.py with the rest of the
server's guarantees; here are the publisher's own: errors, batching and retries.
"""

from __future__ import annotations

import gc
import pickle
import socket
import threading
import warnings

import pytest
from helpers import wait_for

from sse_widget import publisher as publisher_module
from sse_widget.errors import SSEError
from sse_widget.publisher import Publisher
from sse_widget.server import EventServer


def test_a_publisher_pickles_without_its_connection(server: EventServer) -> None:
    ch = server.create_channel("s")
    pub = Publisher(server.local_url, server.key, "s")
    pub.send("opens a connection")
    copy = pickle.loads(pickle.dumps(pub))
    assert copy._conn is None
    assert copy.send("from the copy") == 2
    wait_for(lambda: ch.total == 2)


def test_publisher_reports_server_errors(server: EventServer) -> None:
    server.create_channel("s")
    with pytest.raises(SSEError, match="HTTP 404: no stream named 'nope'"):
        Publisher(server.local_url, server.key, "nope").send("x")
    with pytest.raises(SSEError, match=r"HTTP 403: the server refused this publisher.s key"):
        Publisher(server.local_url, "bad", "s").send("x")


def test_a_publisher_with_no_server_says_so() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(
        SSEError, match=f"could not reach the sse_widget server at http://127.0.0.1:{port}"
    ):
        Publisher(f"http://127.0.0.1:{port}", "k", "s").send("x")


def test_a_dropped_publisher_closes_its_socket(server: EventServer) -> None:
    # A worker's copy, or one whose send raised, is often dropped without close().
    server.create_channel("s")
    pub = Publisher(server.local_url, server.key, "s")
    pub.send("x")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del pub
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_a_long_batch_goes_in_several_requests_and_arrives_whole(server: EventServer) -> None:
    # One request would pass the 1 MiB body limit, and the 4,096 keys kept for retries.
    ch = server.create_channel("s", max_events=10_000)
    pub = Publisher(server.local_url, server.key, "s")
    n = 2 * publisher_module.BATCH_EVENTS + 500
    ids = pub.send_many([("y" * 600 + str(i), "bulk") for i in range(n)])
    assert ids == list(range(1, n + 1))
    wait_for(lambda: ch.total == n)
    assert [e.data for e in ch.events()][-1] == "y" * 600 + str(n - 1)


def test_a_bad_pair_anywhere_in_a_batch_publishes_nothing(server: EventServer) -> None:
    ch = server.create_channel("s")
    pub = Publisher(server.local_url, server.key, "s")
    batch: list[tuple[object, str | None]] = [(i, None) for i in range(3000)]
    batch[2500] = ("bad \ud800", None)  # UTF-8 cannot carry it
    with pytest.raises(SSEError, match="data must be encodable as UTF-8"):
        pub.send_many(batch)
    batch[2500] = (object(), None)
    with pytest.raises(TypeError, match=r"cannot send builtins\.object"):
        pub.send_many(batch)
    assert ch.published == 0


class _LosesTheFirstReply:
    """A loopback TCP relay that drops the first connection just before its reply.

    The request reaches the server and is published, but the publisher never hears so:
    what a connection cut at the wrong moment looks like. Only this relay is ours; both
    ends are the real publisher and the real server.
    """

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            server = socket.create_connection(("127.0.0.1", self.upstream))
            first = self.connections == 1
            threading.Thread(target=self._pipe, args=(client, server, None), daemon=True).start()
            threading.Thread(
                target=self._pipe, args=(server, client, client if first else None), daemon=True
            ).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, cut: socket.socket | None) -> None:
        try:
            while data := src.recv(65536):
                if cut is not None:  # the reply of the first connection: lose it, hang up
                    cut.shutdown(socket.SHUT_RDWR)
                    cut.close()
                    return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            src.close()
            dst.close()

    def close(self) -> None:
        self.listener.close()


def test_a_retry_after_a_lost_reply_publishes_once(server: EventServer) -> None:
    ch = server.create_channel("s")
    relay = _LosesTheFirstReply(server.port)
    try:
        pub = Publisher(f"http://127.0.0.1:{relay.port}", server.key, "s")
        ids = pub.send_many([("a", None), ("b", None)])
    finally:
        relay.close()
    assert relay.connections == 2  # the first reply was lost, so it did retry
    assert ids == [1, 2]  # the server knew the events' keys and answered their first ids
    wait_for(lambda: ch.total == 2)
    assert ch.published == 2
    assert [e.data for e in ch.events()] == ["a", "b"]
