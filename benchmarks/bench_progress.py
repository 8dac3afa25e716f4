"""Per-iteration overhead of a progress bar: sse_widget against tqdm, in one run.

Each contender wraps the same ``range(N)`` loop with an empty body; its overhead is its
time less the bare loop's, per iteration:

- **bare loop**: ``for _ in range(N): pass``, the floor subtracted from the others;
- **tqdm.tqdm**: tqdm's text bar, writing to a StringIO;
- **sse_widget.progress**: our bar, publishing to a real EventStream (progress view) on the
  kernel event server about ten times a second;
- **tqdm.notebook.tqdm**: tqdm's ipywidgets bar (it updates widget traits; outside a
  notebook its display goes to a StringIO here).

Targets: sse_widget <= 1.2x tqdm.tqdm's overhead, and below tqdm.notebook's (medians).

Run: ``.venv/bin/python benchmarks/bench_progress.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from importlib.metadata import version

import tqdm as tqdm_pkg
import tqdm.notebook

from sse_widget import EventStream, progress

TARGET = 1.2


def bare(n: int) -> None:
    for _ in range(n):
        pass


def std(n: int) -> None:
    for _ in tqdm_pkg.tqdm(range(n), file=io.StringIO()):
        pass


def ours(stream: EventStream) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in progress(range(n), stream=stream):
            pass

    return run


def notebook(n: int) -> None:
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        for _ in tqdm.notebook.tqdm(range(n)):
            pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=3_000_000)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="a small smoke run")
    ap.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    args = ap.parse_args()
    n, reps = (300_000, 3) if args.quick else (args.iterations, args.reps)

    stream = EventStream("progress")
    runs: dict[str, Callable[[int], None]] = {
        "bare loop": bare,
        "tqdm.tqdm (StringIO)": std,
        "sse_widget.progress": ours(stream),
        "tqdm.notebook.tqdm": notebook,
    }
    for fn in runs.values():
        fn(10_000)  # warm up
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(reps):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn(n)
            times[name].append(time.perf_counter() - t0)
    updates = sum(1 for e in stream.history if e.event == "progress")
    stream.close()

    print(
        f"Python {platform.python_version()}; tqdm {version('tqdm')}, "
        f"ipywidgets {version('ipywidgets')}"
    )
    print(f"{n:,} iterations, empty body; {reps} runs each, interleaved")
    floor = statistics.median(times["bare loop"])
    print(f"\n{'contender':<26}{'total s':>10}{'overhead ns/it':>16}")
    overhead = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        overhead[name] = (med - floor) / n * 1e9
        print(f"  {name:<24}{med:>10.3f}{overhead[name]:>16.1f}")
    per_run = updates / (reps + 1)
    print(f"\nsse_widget sent {per_run:.0f} progress events per run of {n:,} iterations")

    ratio_std = overhead["sse_widget.progress"] / overhead["tqdm.tqdm (StringIO)"]
    ratio_nb = overhead["sse_widget.progress"] / overhead["tqdm.notebook.tqdm"]
    ok_std, ok_nb = ratio_std <= TARGET, ratio_nb < 1
    print("\nRatios (medians, overhead per iteration)")
    print(
        f"  vs tqdm.tqdm          {ratio_std:>6.2f}x  target <= {TARGET}x  "
        f"{'PASS' if ok_std else 'MISS'}"
    )
    print(
        f"  vs tqdm.notebook.tqdm {ratio_nb:>6.2f}x  target < 1x     {'PASS' if ok_nb else 'MISS'}"
    )
    return 1 if args.strict and not (ok_std and ok_nb) else 0


if __name__ == "__main__":
    sys.exit(main())
