"""chipbench.estimate: stage costs of a plan, hand-checked against the constants."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from chipbench import config as cfg
from chipbench import estimate
from chipbench.backends.base import Availability

DEFAULT = yaml.safe_load((cfg.REPO / "config.yaml").read_text())


def plan_of(**overrides):
    config = copy.deepcopy(DEFAULT)
    config.update(copy.deepcopy(overrides))
    validate(config, str(cfg.SCHEMA))
    return cfg.resolve(config, Path.cwd(), check_availability=False)


def test_accuracy_and_throughput_seconds_hand_checked():
    plan = plan_of(
        dataset=dict(DEFAULT["dataset"], test_images=100),
        batch_sizes=[1, 4],
        models={"simclrv2": {"checkpoint": None, "chips": ["cpu", "cpu_pytorch"]}},
        chips={"cpu": {"precisions": ["fp32"], "accuracy_images": 50}, "cpu_pytorch": {}},
        timing={"warmup_iterations": 1, "min_iterations": 3, "min_seconds": 0.0, "trials": 3,
                "trial_pause_seconds": 0.5},
    )
    stages = {s.name: s for s in estimate.estimate(plan, trained_models=[])}
    # 40 ms per image on ONNX Runtime, twice that in PyTorch eager; 4 s to start each job.
    # cpu on its 50-image subset 2.0 s, cpu_pytorch on all 100 images 8.0 s
    assert stages["accuracy"].jobs == 2
    assert stages["accuracy"].seconds == pytest.approx(2.0 + 8.0 + 2 * 4.0)
    # per cell: 3 trials of (1 warm-up + 3 timed) iterations, 2 pauses of 0.5 s
    # cpu bs1 3 × 4 × 0.04 + 1 = 1.48, bs4 2.92; cpu_pytorch bs1 1.96, bs4 4.84
    assert stages["throughput"].jobs == 4
    assert stages["throughput"].seconds == pytest.approx(1.48 + 2.92 + 1.96 + 4.84 + 4 * 4.0)
    assert stages["training"].jobs == 0 and stages["gate"].jobs == 2


def test_training_costs_follow_the_settings():
    train = copy.deepcopy(DEFAULT["train"])
    train["simclr"].update(images=1000, epochs=2)
    train["linear_probe"]["images"] = 5000
    eager = plan_of(train=train)
    # eager: 0.0084 s per image and epoch, the probe's features of 5000 + 10000 images at
    # 0.6 ms, 4 s to start each of its 2 jobs
    stage = estimate.estimate(eager, trained_models=["simclr"])[1]
    assert (stage.name, stage.jobs) == ("training", 2)
    assert stage.seconds == pytest.approx(0.0084 * 2000 + 0.0006 * 15000 + 8)
    train["simclr"]["compile"] = True  # compiled: the same step time, plus 120 s compiling
    stage = estimate.estimate(plan_of(train=train), trained_models=["simclr"])[1]
    assert stage.seconds == pytest.approx(0.0084 * 2000 + 120 + 0.0006 * 15000 + 8)


def on_a_cpu_box(plan):
    """What a 2-core x86 machine without accelerators can run (TPU-MLIR installed)."""
    for chip in ("ascend310", "ascend310p", "t4"):
        plan.availability[chip] = Availability(False, "no device")
    plan.timing["bm1684x"] = Availability(False, "the simulator is not timed")
    return plan


def test_the_default_run_fits_an_hour_and_the_complete_one_does_not():
    default = estimate.estimate(on_a_cpu_box(plan_of()), ["simclr", "simclrv2"])
    assert sum(s.seconds for s in default) < 60 * 60
    complete = copy.deepcopy(DEFAULT)
    for key, value in yaml.safe_load((cfg.REPO / "configs" / "complete.yaml").read_text()).items():
        complete[key] = _merge(complete.get(key), value)
    validate(complete, str(cfg.SCHEMA))
    plan = on_a_cpu_box(cfg.resolve(complete, Path.cwd(), check_availability=False))
    assert all(plan.accuracy_images(chip) is None for chip in plan.chips)
    text = estimate.format_estimate(estimate.estimate(plan, ["simclr", "simclrv2"]))
    assert text.startswith("Estimated run time from scratch on a 2-core x86-64 CPU, AVX2, no "
                           "AVX-512: ") and text.splitlines()[0].endswith(" days, 173 jobs")
    assert "training       4 jobs" in text


def _merge(base, override):
    """Snakemake's --configfile merge: dictionaries key by key, anything else replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{k: _merge(base.get(k), v) for k, v in override.items()}}
    return override


@pytest.mark.parametrize("seconds, text", [(59, "1 min"), (119 * 60, "119 min"),
                                           (3 * 3600, "3.0 h"), (50 * 3600, "2 days")])
def test_durations(seconds, text):
    assert estimate.duration(seconds) == text
