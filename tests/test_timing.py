"""chipbench.timing: the timing protocol on a fake clock, and the summary."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from chipbench import timing
from chipbench.errors import UserError


class FakeDevice:
    """A clock and a `run` that advances it by the next of `durations` (seconds).

    Durations are binary fractions so sums are exact and iteration counts hand-checkable.
    """

    def __init__(self, durations, repeat_last=True):
        self.durations = list(durations)
        self.repeat_last = repeat_last
        self.now = 1000.0
        self.calls = 0

    def clock(self):
        return self.now

    def run(self):
        index = min(self.calls, len(self.durations) - 1)
        self.now += self.durations[index]
        self.calls += 1
        return None


def test_warmup_is_not_recorded_and_min_seconds_decides():
    # 2 warm-up calls of 1 s, then 0.25 s calls: min 3 iterations, min 1.0 s -> 4 iterations
    device = FakeDevice([1.0, 1.0, 0.25])
    latencies = timing.measure(device.run, 2, 3, 1.0, clock=device.clock)
    np.testing.assert_array_equal(latencies, [250.0] * 4)
    assert latencies.dtype == np.float64
    assert device.calls == 2 + 4


def test_min_iterations_decides_when_min_seconds_is_reached_first():
    device = FakeDevice([0.5])
    latencies = timing.measure(device.run, 0, 5, 0.75, clock=device.clock)
    assert len(latencies) == 5
    assert device.calls == 5


def test_both_limits_reached_exactly():
    device = FakeDevice([0.25])
    latencies = timing.measure(device.run, 0, 4, 1.0, clock=device.clock)
    assert len(latencies) == 4  # 4 × 0.25 s = 1.0 s: both met after the 4th


def test_max_iterations_caps():
    device = FakeDevice([0.125])
    latencies = timing.measure(device.run, 1, 2, 100.0, max_iterations=7, clock=device.clock)
    assert len(latencies) == 7
    assert device.calls == 8


def test_each_iteration_is_timed_on_its_own():
    device = FakeDevice([9.0, 0.125, 0.25, 0.5, 0.0625])
    latencies = timing.measure(device.run, 1, 4, 0.0, clock=device.clock)
    np.testing.assert_array_equal(latencies, [125.0, 250.0, 500.0, 62.5])


def test_time_outside_the_run_is_not_counted():
    device = FakeDevice([0.25])

    def clock():
        value = device.now
        device.now += 0.5  # bookkeeping between timed calls: not part of any latency
        return value

    latencies = timing.measure(device.run, 0, 1, 1.0, clock=clock)
    # each timed call: start read (+0.5 after it), run (+0.25), end read: latency 0.75 s. The
    # 0.5 s after the end read is outside every latency: 1.0 s of *timed* time needs 2 calls
    # (counting wall time, 1.25 s would have passed after the first)
    np.testing.assert_array_equal(latencies, [750.0, 750.0])


def test_zero_warmup_and_zero_min_seconds():
    device = FakeDevice([0.5])
    latencies = timing.measure(device.run, 0, 1, 0.0, clock=device.clock)
    np.testing.assert_array_equal(latencies, [500.0])


def test_real_clock_smoke():
    latencies = timing.measure(lambda: sum(range(1000)), 2, 5, 0.0)
    assert len(latencies) == 5
    assert (latencies >= 0).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"warmup_iterations": -1}, "warmup_iterations"),
        ({"min_iterations": 0}, "min_iterations"),
        ({"min_seconds": -1.0}, "min_seconds"),
        ({"max_iterations": 2}, "max_iterations"),
    ],
)
def test_bad_protocol_is_a_user_error(kwargs, message):
    arguments = {"warmup_iterations": 0, "min_iterations": 3, "min_seconds": 0.0, **kwargs}
    with pytest.raises(UserError, match=message) as error:
        timing.measure(lambda: None, **arguments)
    assert "\n" not in str(error.value)


def test_summarize_hand_checked():
    summary = timing.summarize([1.0, 2.0, 3.0, 4.0], batch_size=8)
    assert summary["throughput_fps"] == 1000 * 8 / 2.5 == 3200.0
    latency = summary["latency_ms"]
    assert latency["mean"] == 2.5
    assert latency["median"] == 2.5
    assert latency["p90"] == pytest.approx(3.7)
    assert latency["p99"] == pytest.approx(3.97)
    assert latency["min"] == 1.0 and latency["max"] == 4.0
    assert latency["std"] == pytest.approx(math.sqrt(1.25))
    assert summary["cv"] == pytest.approx(math.sqrt(1.25) / 2.5)
    assert summary["iterations"] == 4
    assert summary["duration_s"] == pytest.approx(0.010)
    assert set(summary) == {"throughput_fps", "latency_ms", "cv", "iterations", "duration_s"}
    assert set(latency) == {"mean", "median", "p90", "p99", "min", "max", "std"}


def test_summarize_is_plain_json():
    summary = timing.summarize(np.array([1.5, 2.5], dtype=np.float32), 1)
    assert json.loads(json.dumps(summary)) == summary
    assert type(summary["iterations"]) is int
    assert type(summary["latency_ms"]["p99"]) is float


def test_summarize_one_iteration():
    summary = timing.summarize([4.0], 2)
    assert summary["throughput_fps"] == 500.0
    assert summary["latency_ms"]["std"] == 0.0 and summary["cv"] == 0.0
    assert summary["iterations"] == 1


def test_measure_then_summarize_on_the_fake_device():
    device = FakeDevice([5.0, 0.015625])  # 1 warm-up of 5 s, then 15.625 ms per batch
    latencies = timing.measure(device.run, 1, 10, 0.25, clock=device.clock)
    assert len(latencies) == 16  # 16 × 15.625 ms = 0.25 s
    summary = timing.summarize(latencies, batch_size=4)
    assert summary["throughput_fps"] == 256.0  # 1000 × 4 / 15.625
    assert summary["duration_s"] == 0.25
    assert summary["cv"] == 0.0


@pytest.mark.parametrize("latencies", [[], [[1.0, 2.0]], [1.0, -1.0], [float("nan")], [0.0, 0.0]])
def test_summarize_rejects_impossible_latencies(latencies):
    with pytest.raises(UserError):
        timing.summarize(latencies, 1)


def test_summarize_rejects_bad_batch_size():
    with pytest.raises(UserError, match="batch size"):
        timing.summarize([1.0], 0)


def test_trials_on_the_fake_clock_hand_checked():
    # three trials of the protocol (no warm-up, 2 iterations, 0 s) at batch 4:
    # trial latencies 10+10 ms, 20+20 ms, 10+30 ms -> trial fps 400, 200, 200
    device = FakeDevice([0.010, 0.010, 0.020, 0.020, 0.010, 0.030])
    pauses = []
    trials = timing.run_trials(
        lambda: timing.measure(device.run, 0, 2, 0.0, clock=device.clock), 3, 1.5, sleep=pauses.append
    )
    assert pauses == [1.5, 1.5]  # between trials, not before the first or after the last
    np.testing.assert_allclose(np.concatenate(trials), [10, 10, 20, 20, 10, 30])
    summary = timing.summarize_trials(trials, batch_size=4)
    assert summary["count"] == 3
    assert summary["fps"] == pytest.approx([400.0, 200.0, 200.0])
    assert summary["spread"] == pytest.approx((400 - 200) / 200)
    # mean 266.67, sample std 115.47, t(0.975, 2) = 4.3027: half width 4.3027 × 115.47 / √3
    half = 4.302652729749462 * math.sqrt(40000 / 3) / math.sqrt(3)
    assert summary["ci95"] == pytest.approx([800 / 3 - half, 800 / 3 + half])
    assert summary["iterations"] == [2, 2, 2]
    # the headline stays the mean over every timed iteration: 4000 / (100 / 6) = 240 fps
    assert timing.summarize(np.concatenate(trials), 4)["throughput_fps"] == pytest.approx(240.0)
    assert json.loads(json.dumps(summary)) == summary


def test_identical_trials_have_no_spread():
    summary = timing.summarize_trials([[2.0, 2.0], [2.0], [1.0, 3.0]], batch_size=2)
    assert summary["fps"] == [1000.0] * 3
    assert summary["spread"] == 0.0 and summary["ci95"] == [1000.0, 1000.0]


def test_vendor_timed_runner_is_called_once_per_trial():
    # a runner whose vendor tool times a whole run (ais_bench, bmrt_test) overrides
    # `benchmark`: each trial is one call of it, i.e. one tool run
    from chipbench.backends.base import Runner

    class ToolTimed(Runner):
        def __init__(self):
            self.tool_runs = []

        def run(self, batch):
            raise AssertionError("the tool times the model; run() is not called")

        def benchmark(self, batch, protocol):
            self.tool_runs.append(dict(protocol))
            return np.full(protocol["min_iterations"], 4.0 * len(self.tool_runs))

    runner = ToolTimed()
    protocol = {"warmup_iterations": 1, "min_iterations": 2, "min_seconds": 0.0}
    trials = timing.run_trials(lambda: runner.benchmark(np.zeros((8, 3, 2, 2)), protocol), 3, 0.0,
                               sleep=lambda _: None)
    assert runner.tool_runs == [protocol] * 3
    assert timing.summarize_trials(trials, 8)["fps"] == [2000.0, 1000.0, 1000.0 * 8 / 12]


@pytest.mark.parametrize("trials, pause, message", [(1, 0.0, "timing.trials is 1"),
                                                    (3, -1.0, "timing.trial_pause_seconds")])
def test_bad_trial_settings_are_user_errors(trials, pause, message):
    with pytest.raises(UserError, match=message) as error:
        timing.run_trials(lambda: np.ones(2), trials, pause, sleep=lambda _: None)
    assert "\n" not in str(error.value)
