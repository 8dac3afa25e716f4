"""The one exception family of sse_widget.

Every message says what was expected and what arrived, so a user can fix the call
without reading our source.
"""

from __future__ import annotations

__all__ = [
    "EncodeError",
    "FeedError",
    "LineTooLongError",
    "ParseError",
    "SSEError",
]


class SSEError(Exception):
    """Base class of every error raised by sse_widget."""


class EncodeError(SSEError, ValueError):
    """A field cannot be put on the wire without breaking the event stream.

    Raised for CR/LF in an event name or id (event injection), NUL in an id, a bad
    ``retry``, or a reserved ``sse_widget.*`` event type.
    """


class ParseError(SSEError):
    """The incoming byte stream cannot be parsed as Server-Sent Events."""


class LineTooLongError(ParseError):
    """A line grew past the parser's ``max_line_bytes`` without a line break."""


class FeedError(SSEError):
    """An external feed answered with something that is not a usable SSE stream."""
