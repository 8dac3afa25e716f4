"""to_text: what send() and POSTed JSON values become on the wire.

The text must always be standard JSON, because the browser reads it with ``JSON.parse``.
How ``send()`` refuses what cannot be serialised (and stores nothing) is in test_widgets.py.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import PurePosixPath

import numpy as np
import pytest

from sse_widget.serialize import to_text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("as it is\n", "as it is\n"),
        ([1, 2.5, None, True], "[1,2.5,null,true]"),
        (np.float32(0.5), "0.5"),
        (np.int64(7), "7"),
        (np.arange(3), "[0,1,2]"),
        ({"t": dt.datetime(2026, 1, 2, 3, 4, 5)}, '{"t":"2026-01-02T03:04:05"}'),
        ({"d": dt.date(2026, 1, 2)}, '{"d":"2026-01-02"}'),
        ({"u": uuid.UUID(int=1)}, '{"u":"00000000-0000-0000-0000-000000000001"}'),
        ({"p": PurePosixPath("/a/b")}, '{"p":"/a/b"}'),
        ({"s": {3, 1}}, '{"s":[1,3]}'),
        ({"é": "ü"}, '{"é":"ü"}'),
        (np.datetime64("2024-01-02T03:04:05.5", "ns"), '"2024-01-02T03:04:05.500000000"'),
        (np.array(["2024-01-02"], dtype="datetime64[D]"), '["2024-01-02"]'),
        (42, "42"),
    ],
)
def test_common_values_become_compact_json(value, text) -> None:
    assert to_text(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (float("nan"), "null"),
        (float("-inf"), "null"),
        (np.float64("inf"), "null"),
        ({"loss": float("nan"), "acc": 0.9}, '{"loss":null,"acc":0.9}'),
        ([1.0, (float("inf"), 2)], "[1.0,[null,2]]"),
        ({"a": np.array([1.0, np.nan])}, '{"a":[1.0,null]}'),
        ({"t": np.float32("nan")}, '{"t":null}'),
        # as keys, JavaScript's names for them (the values still become null)
        ({float("nan"): 1, float("-inf"): float("inf")}, '{"NaN":1,"-Infinity":null}'),
    ],
)
def test_nan_and_infinity_become_null_so_browsers_can_parse_the_event(value, text) -> None:
    # Python's json writes NaN and Infinity, which JSON.parse rejects: a chart would then drop
    # the whole event, the finite fields with it.
    assert to_text(value) == text
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON {c} in {text}"))


def test_a_container_that_holds_itself_is_a_type_error_naming_it() -> None:
    loop: dict[str, object] = {}
    loop["self"] = loop
    with pytest.raises(TypeError, match=r"cannot send dict: expected data JSON can hold; got one"):
        to_text(loop)


def test_keys_json_cannot_hold_are_a_type_error_naming_the_call() -> None:
    with pytest.raises(TypeError, match=r"cannot send dict: keys must be str.*not tuple"):
        to_text({(1, 2): 3})


def test_an_unserialisable_value_deep_inside_is_named() -> None:
    with pytest.raises(TypeError, match=r"cannot send builtins\.object: expected str, or data"):
        to_text({"a": [1, {"b": object()}]})


def test_data_nested_past_the_recursion_limit_is_a_type_error() -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(TypeError, match=r"cannot send list: .* nested deeper than"):
        to_text(deep)


def test_an_int_too_long_to_write_is_a_type_error_saying_why() -> None:
    with pytest.raises(TypeError, match=r"cannot send list: expected data JSON can hold; Exceeds"):
        to_text([10**5000])


def test_nan_in_a_container_that_holds_itself_is_still_a_type_error() -> None:
    loop: list[object] = [float("nan")]
    loop.append(loop)
    with pytest.raises(TypeError, match=r"cannot send list: expected data JSON can hold; got one"):
        to_text(loop)
