"""The error family, and how much of a bad value a message shows."""

from __future__ import annotations

import pytest

from sse_widget import EventStream, SSEError
from sse_widget.errors import EncodeError, shown


def test_shown_keeps_short_values_whole_and_cuts_long_ones() -> None:
    assert shown("update") == "'update'"
    long = shown("x" * 100_000)
    assert long.startswith("'xxx")
    assert long.endswith("... (100002 chars)")
    assert len(long) < 100


def test_a_huge_bad_value_makes_a_short_message() -> None:
    stream = EventStream()
    try:
        with pytest.raises(EncodeError) as info:
            stream.send("x", event="a\n" + "b" * 100_000)
        assert len(str(info.value)) < 200
        with pytest.raises(TypeError) as type_info:
            stream.send("x", event=list(range(100_000)))  # type: ignore[arg-type]
        assert str(type_info.value).startswith("event must be a str or None; got list: [0, 1,")
        assert len(str(type_info.value)) < 200
    finally:
        stream.close()


def test_encode_errors_are_both_ours_and_value_errors() -> None:
    assert issubclass(EncodeError, SSEError)
    assert issubclass(EncodeError, ValueError)
