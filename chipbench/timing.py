"""The core timing protocol and its summary.

Protocol (every backend that times in Python follows it): ``warmup_iterations`` untimed calls,
then timed calls, each timed on its own, until *both* ``min_iterations`` calls and
``min_seconds`` of timed time (the sum of the per-call latencies, not wall time including the
bookkeeping between calls) have passed, or ``max_iterations`` calls when that cap is given.

Throughput follows the ais_bench definition used by the SimCLR report:
``1000 × batch_size / mean latency in ms``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from chipbench.errors import UserError

__all__ = ["measure", "summarize"]


def _check_protocol(warmup_iterations, min_iterations, min_seconds, max_iterations) -> None:
    if int(warmup_iterations) < 0:
        raise UserError(f"timing.warmup_iterations is {warmup_iterations}: use a value ≥ 0")
    if int(min_iterations) < 1:
        raise UserError(f"timing.min_iterations is {min_iterations}: use a value ≥ 1")
    if not float(min_seconds) >= 0:
        raise UserError(f"timing.min_seconds is {min_seconds}: use a value ≥ 0")
    if max_iterations is not None and int(max_iterations) < int(min_iterations):
        raise UserError(
            f"timing.max_iterations ({max_iterations}) is below timing.min_iterations "
            f"({min_iterations}): raise max_iterations or lower min_iterations"
        )


def measure(
    run: Callable[[], object],
    warmup_iterations: int,
    min_iterations: int,
    min_seconds: float,
    max_iterations: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> np.ndarray:
    """Per-iteration latencies in ms (float64, one per timed call, in call order).

    ``run`` is called ``warmup_iterations`` times untimed, then timed until at least
    ``min_iterations`` calls *and* at least ``min_seconds`` of summed latency have passed;
    ``max_iterations`` (when given) caps the timed calls and wins over ``min_seconds``.
    ``clock`` returns seconds (``time.perf_counter`` by default; tests pass a fake).
    """
    _check_protocol(warmup_iterations, min_iterations, min_seconds, max_iterations)
    for _ in range(int(warmup_iterations)):
        run()
    latencies: list[float] = []
    timed_seconds = 0.0
    while True:
        count = len(latencies)
        if max_iterations is not None and count >= max_iterations:
            break
        if count >= min_iterations and timed_seconds >= min_seconds:
            break
        start = clock()
        run()
        elapsed = clock() - start
        latencies.append(elapsed * 1000.0)
        timed_seconds += elapsed
    return np.asarray(latencies, dtype=np.float64)


def summarize(latencies_ms, batch_size: int) -> dict:
    """Perf-record fields from per-iteration latencies (ms) of batches of ``batch_size``.

    ``throughput_fps`` = 1000 × batch_size / mean latency (ais_bench); ``latency_ms`` holds
    mean, median, p90, p99 (numpy's linear interpolation), min, max and std (population,
    ddof=0, so a single iteration gives 0 rather than NaN); ``cv`` = std / mean;
    ``iterations``; ``duration_s`` = summed latency / 1000 (timed time only, no warm-up).
    All values are plain Python numbers.
    """
    latencies = np.asarray(latencies_ms, dtype=np.float64)
    if latencies.ndim != 1 or latencies.size == 0:
        raise UserError(
            f"no latencies to summarise (shape {latencies.shape}): time at least one iteration "
            "(timing.min_iterations ≥ 1)"
        )
    if not np.isfinite(latencies).all() or (latencies < 0).any() or latencies.sum() <= 0:
        raise UserError(
            "latencies must be finite, non-negative and not all zero: the timer returned an "
            "impossible duration; use a monotonic high-resolution clock"
        )
    if int(batch_size) < 1:
        raise UserError(f"batch size {batch_size} is not positive: use a batch size ≥ 1")
    mean = float(latencies.mean())
    std = float(latencies.std(ddof=0))
    return {
        "throughput_fps": 1000.0 * int(batch_size) / mean,
        "latency_ms": {
            "mean": mean,
            "median": float(np.median(latencies)),
            "p90": float(np.percentile(latencies, 90)),
            "p99": float(np.percentile(latencies, 99)),
            "min": float(latencies.min()),
            "max": float(latencies.max()),
            "std": std,
        },
        "cv": std / mean,
        "iterations": int(latencies.size),
        "duration_s": float(latencies.sum()) / 1000.0,
    }
