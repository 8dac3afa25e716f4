"""sse_widget: live Server-Sent-Events streams as first-class Jupyter widgets."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .errors import SSEError

try:
    __version__ = version("sse_widget")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["SSEError", "__version__"]
