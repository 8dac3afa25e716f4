"""The comm transport: events over the kernel's own websocket, for frontends SSE can't reach.

VS Code, Colab and anything else whose page cannot open a connection to the kernel's
port get events as anywidget custom messages instead. A :class:`CommPump` runs on the
server thread and sends at most ``rate`` messages a second, each about ``max_bytes``
large, so a fast stream stays far below the Jupyter server's IOPub limits (1,000
messages/s): batching, not dropping. The kernel can send comm messages from a
background thread, which is what lets a busy cell keep streaming.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from tornado.ioloop import PeriodicCallback

from .channels import Channel, collect_mux

__all__ = ["TRANSPORTS", "CommPump", "default_transport"]

TRANSPORTS = ("auto", "direct", "proxy", "comm")
DEFAULT_RATE = 20.0
DEFAULT_MAX_BYTES = 256 * 1024


def default_transport() -> str:
    """``$SSE_WIDGET_TRANSPORT``, else ``"comm"`` where SSE cannot work, else ``"auto"``."""
    env = os.environ.get("SSE_WIDGET_TRANSPORT", "").strip().lower()
    if env:
        if env not in TRANSPORTS:
            raise ValueError(
                f"SSE_WIDGET_TRANSPORT must be one of {', '.join(TRANSPORTS)}; got {env!r}"
            )
        return env
    # Colab's and VS Code's notebook pages cannot reach a port inside the kernel.
    if "google.colab" in sys.modules or "VSCODE_PID" in os.environ:
        return "comm"
    return "auto"


class CommPump:
    """Sends one channel's events to a widget's frontend as batched custom messages.

    Parameters
    ----------
    channel:
        The channel to read (on the server thread only).
    send:
        Sends one message dict to the frontend (``widget.send``).
    call_soon:
        Runs a callable on the server thread (``EventServer.call_soon``).
    rate:
        Messages per second at most.
    max_bytes:
        Approximate size of one message.
    """

    def __init__(
        self,
        channel: Channel,
        send: Callable[[dict[str, Any]], None],
        call_soon: Callable[..., None],
        *,
        rate: float = DEFAULT_RATE,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.channel = channel
        self._send = send
        self._call_soon = call_soon
        self._period_ms = 1000.0 / rate
        self.max_bytes = max_bytes
        self._cursors: dict[Channel, int] = {}
        self._timer: PeriodicCallback | None = None
        self.messages_sent = 0

    def start(self, after: int | None) -> None:
        """Start (or restart) sending the events after id ``after`` (None: all held)."""
        self._call_soon(self._start, after)

    def stop(self) -> None:
        """Stop sending. Safe from any thread."""
        self._call_soon(self._stop)

    def _start(self, after: int | None) -> None:
        self._cursors = {self.channel: self.channel.start_cursor(after)}
        if self._timer is None:
            self._timer = PeriodicCallback(self._tick, self._period_ms)
            self._timer.start()
        # Tells the view the route is live before any event arrives.
        self._send({"type": "comm_live"})
        self._tick()

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def _tick(self) -> None:
        if self.channel.closed:
            self._stop()
            return
        lines, _, _ = collect_mux(self._cursors, self.max_bytes)
        if lines:
            self._send({"type": "events", "lines": "\n".join(lines)})
            self.messages_sent += 1
