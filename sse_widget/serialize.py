"""Turning what user code sends into event data text.

``str`` goes out as it is; dicts, lists, numbers, booleans and None become compact JSON;
numpy scalars and arrays, datetimes, dates, times, UUIDs, paths and sets are converted on
the way. The text is always standard JSON, so a browser's ``JSON.parse`` reads it: NaN and
the infinities become ``null``, as JavaScript's ``JSON.stringify`` makes them. Anything else
raises a ``TypeError`` that names the type.
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
        if getattr(getattr(obj, "dtype", None), "kind", "") == "M":
            # datetime64: tolist() gives an int for nanoseconds (pandas' unit); ISO text.
            return obj.astype(str).tolist()
        return tolist()
    raise TypeError(
        f"cannot send {type(obj).__module__}.{type(obj).__qualname__}: expected str, or data "
        "that JSON can hold (dict, list, str, int, float, bool, None, numpy scalars and "
        "arrays, datetimes); convert it first, e.g. send(str(value))"
    )


def _finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float inside it replaced by None.

    As keys they become "NaN", "Infinity" and "-Infinity", JavaScript's names for them.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {_finite_key(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _finite_key(key: Any) -> Any:
    if isinstance(key, float) and not math.isfinite(key):
        return "NaN" if key != key else ("Infinity" if key > 0 else "-Infinity")
    return key


def _cannot(data: object, exc: BaseException) -> TypeError:
    """The error for data json refused with ``exc``, naming its type and the reason."""
    what = f"cannot send {type(data).__name__}: expected data JSON can hold"
    if isinstance(exc, RecursionError):
        return TypeError(f"{what}; got one nested deeper than Python's recursion limit")
    if str(exc).startswith("Circular reference"):
        return TypeError(f"{what}; got one that contains itself (a circular reference)")
    return TypeError(f"{what}; {exc}")  # e.g. an int of more than 4,300 digits


_OPTIONS: dict[str, Any] = {"separators": (",", ":"), "ensure_ascii": False, "allow_nan": False}
# The strict encoder runs first; only data that holds a non-finite float pays for the walk.
_encoder = json.JSONEncoder(default=_default, **_OPTIONS)
_finite_encoder = json.JSONEncoder(default=lambda obj: _finite(_default(obj)), **_OPTIONS)


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
    try:
        return _encode(_encoder, data, data)
    except ValueError as exc:
        if not str(exc).startswith("Out of range float"):
            raise _cannot(data, exc) from None
    # It holds NaN or an infinity somewhere: the same data again, with those made JSON.
    try:
        return _encode(_finite_encoder, _finite(data), data)
    except (ValueError, RecursionError) as exc:
        raise _cannot(data, exc) from None


def _encode(encoder: json.JSONEncoder, obj: object, data: object) -> str:
    """``encoder.encode(obj)``; what it cannot encode is a ``TypeError`` naming ``data``."""
    try:
        return encoder.encode(obj)
    except RecursionError as exc:
        raise _cannot(data, exc) from None
    except TypeError as exc:
        if str(exc).startswith("cannot send"):
            raise
        # e.g. "keys must be str, int, float, bool or None, not tuple"
        raise TypeError(f"cannot send {type(data).__name__}: {exc}") from None
