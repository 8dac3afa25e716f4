"""Turning what user code sends into event data text.

``str`` goes out as it is; dicts, lists, numbers, booleans and None become compact JSON;
numpy scalars and arrays, datetimes, dates, times, UUIDs, paths and sets are converted on
the way. Anything else raises a ``TypeError`` that names the type.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import uuid
from pathlib import PurePath
from typing import Any

__all__ = ["to_text"]


def _default(obj: Any) -> Any:
    if isinstance(obj, (_dt.datetime, _dt.date, _dt.time)):
        return obj.isoformat()
    if isinstance(obj, (uuid.UUID, PurePath)):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    # numpy (and anything array-like with .tolist()/.item()) without importing numpy here.
    tolist = getattr(obj, "tolist", None)
    if callable(tolist) and type(obj).__module__.split(".")[0] == "numpy":
        return tolist()
    raise TypeError(
        f"cannot send {type(obj).__module__}.{type(obj).__qualname__}: expected str, or data "
        "that JSON can hold (dict, list, str, int, float, bool, None, numpy scalars and "
        "arrays, datetimes); convert it first, e.g. send(str(value))"
    )


_encoder = json.JSONEncoder(
    default=_default, separators=(",", ":"), ensure_ascii=False, allow_nan=True
)


def to_text(data: object) -> str:
    """The event data text for ``data``.

    Raises
    ------
    TypeError
        If ``data`` is not a str and cannot be encoded as JSON.
    """
    if type(data) is str:
        return data
    if isinstance(data, str):
        return str(data)
    if isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(
            f"cannot send {type(data).__name__}: expected str or JSON-able data; "
            "decode bytes first, e.g. send(data.decode())"
        )
    if isinstance(data, float) and not math.isfinite(data):
        return json.dumps(data)
    return _encoder.encode(data)
