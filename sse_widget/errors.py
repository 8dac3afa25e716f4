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
    "shown",
]

# How much of a value an error message shows.
_SHOWN_CHARS = 80


def shown(value: object) -> str:
    """``repr(value)`` for an error message, cut to about 80 characters.

    A 100 kB event name must not become a 100 kB message.
    """
    text = repr(value)
    if len(text) <= _SHOWN_CHARS:
        return text
    return f"{text[: _SHOWN_CHARS - 3]}... ({len(text)} chars)"


class SSEError(Exception):
    """Base class of sse_widget's own errors (a closed stream, a broken feed, the wire).

    A bad argument raises the built-in ``TypeError`` or ``ValueError``. :class:`EncodeError`
    is both an ``SSEError`` and a ``ValueError``.
    """


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
