"""sse_widget: live Server-Sent-Events streams as first-class Jupyter widgets.

>>> from sse_widget import EventStream
>>> stream = EventStream()          # doctest: +SKIP
>>> stream.send({"loss": 0.3}, event="update")  # doctest: +SKIP
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .errors import EncodeError, FeedError, LineTooLongError, ParseError, SSEError
from .feeds import EventFeed, connect
from .progress import ProgressReporter, progress, tqdm
from .protocol import Event
from .publisher import Publisher
from .widgets import EventStream

try:
    __version__ = version("sse_widget")
except PackageNotFoundError:  # pragma: no cover - a source tree without an install
    __version__ = "0.0.0"

__all__ = [
    "EncodeError",
    "Event",
    "EventFeed",
    "EventStream",
    "FeedError",
    "LineTooLongError",
    "ParseError",
    "ProgressReporter",
    "Publisher",
    "SSEError",
    "__version__",
    "connect",
    "progress",
    "tqdm",
]
