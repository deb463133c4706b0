"""The core timing protocol and its summary.

Protocol (every backend that times in Python follows it): ``warmup_iterations`` untimed calls,
then timed calls, each timed on its own, until *both* ``min_iterations`` calls and
``min_seconds`` of timed time (the sum of the per-call latencies, not wall time including the
bookkeeping between calls) have passed, or ``max_iterations`` calls when that cap is given.

Throughput follows the ais_bench definition used by the SimCLR report:
``1000 × batch_size / mean latency in ms``.

Repeatability: a cell is timed in ``trials`` separate runs of the protocol, ``pause_seconds``
apart, so a burst of load on the host shows as a difference between trials rather than
hiding inside one long run. The headline stays the mean over all timed iterations of all
trials; `summarize_trials` gives the trials' fps, their spread and a 95 % interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from chipbench.errors import UserError

__all__ = ["measure", "run_trials", "summarize", "summarize_trials"]


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


def run_trials(
    benchmark: Callable[[], np.ndarray],
    trials: int,
    pause_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
) -> list[np.ndarray]:
    """Per-iteration latencies (ms) of each of ``trials`` calls to ``benchmark``.

    ``benchmark`` runs the whole protocol once (warm-up included: after a pause the caches
    and clocks may have cooled) and returns its latencies; ``sleep(pause_seconds)`` separates
    consecutive trials. Vendor-timed backends make one tool call per trial this way.
    """
    if int(trials) < 2:
        raise UserError(f"timing.trials is {trials}: use at least 2 (3 or more for a useful interval)")
    if not float(pause_seconds) >= 0:
        raise UserError(f"timing.trial_pause_seconds is {pause_seconds}: use a value ≥ 0")
    results = []
    for index in range(int(trials)):
        if index:
            sleep(float(pause_seconds))
        results.append(np.asarray(benchmark(), dtype=np.float64))
    return results


def summarize_trials(trial_latencies_ms, batch_size: int) -> dict:
    """The ``trials`` field of a perf record, from each trial's latencies (ms).

    ``fps`` = each trial's 1000 × batch_size / its mean latency; ``spread`` =
    (max − min) / median of those; ``ci95`` = Student-t 95 % interval of the mean trial fps
    (mean ± t(0.975, k−1) × sample std / √k); ``iterations`` = timed iterations per trial.
    """
    fps = np.array(
        [summarize(latencies, batch_size)["throughput_fps"] for latencies in trial_latencies_ms]
    )
    if fps.size < 2:
        raise UserError(f"{fps.size} trial(s) cannot give a spread: time at least 2 (timing.trials)")
    # Student's t quantile from scipy.special, imported here: scipy.stats would cost every
    # throughput job ~0.6 s more to import
    from scipy.special import stdtrit

    mean = float(fps.mean())
    half_width = float(stdtrit(fps.size - 1, 0.975) * fps.std(ddof=1) / np.sqrt(fps.size))
    return {
        "count": int(fps.size),
        "fps": [float(x) for x in fps],
        "spread": float((fps.max() - fps.min()) / np.median(fps)),
        "ci95": [mean - half_width, mean + half_width],
        "iterations": [int(np.asarray(latencies).size) for latencies in trial_latencies_ms],
    }
