"""What a run of the plan costs, stage by stage, on the smallest machine a default run must fit.

The figures are seconds on a 2-core x86-64 CPU with AVX2 and no AVX-512, derived from
measurements (README, "Run time"); they come from the plan and these constants, never from
the CPU in front of you, so every machine prints the same estimate for the same config.
A faster machine finishes sooner; a machine shared with other work, later.
"""

from __future__ import annotations

from dataclasses import dataclass

from chipbench import backends

__all__ = ["REFERENCE_HOST", "Stage", "duration", "estimate", "format_estimate"]

REFERENCE_HOST = "2-core x86-64 CPU, AVX2, no AVX-512"

#: Starting one Snakemake job: a Python process importing numpy, torch and a runtime.
JOB_START_S = 4.0
#: Inference per model input (one view of an image) at large batch, fp32, ONNX Runtime.
INFER_S_PER_INPUT = {"simclr": 0.0015, "simclrv2": 0.040}
#: Unknown (bring-your-own) models are costed like the larger built-in one.
UNKNOWN_MODEL = "simclrv2"
#: Relative cost of a precision on a host CPU runtime (fp16 is mostly cast to fp32 there).
PRECISION_FACTOR = {"fp32": 1.0, "fp16": 2.0, "bf16": 1.0, "int8": 0.8}
#: PyTorch eager against ONNX Runtime, same model.
BACKEND_FACTOR = {"pytorch": 2.0}
#: TPU-MLIR's bit-accurate simulator (no chip): tpu.mlir CPU-seconds per image, run by one
#: worker per core, and the cmodel cross-check seconds per image (docs/bm1684x.md).
SIMULATOR_CPU_S_PER_IMAGE = {"fp32": 0.034, "fp16": 0.067, "int8": 0.13}
CMODEL_S_PER_IMAGE = {"fp32": 7.4, "fp16": 66.0, "int8": 6.5}
CORES = 2
#: Compiling one artefact: ONNX Runtime/OpenVINO conversions, INT8 calibration, TPU-MLIR.
COMPILE_S = {"host": 15.0, "int8": 40.0, "tpu_mlir": 45.0, "other": 30.0}
#: Training, seconds per image and epoch (two views, forward + backward) as the trainer runs
#: eagerly. SimCLR: 4.6 s per 256-image step before the small-map convolutions went dense,
#: which benchmarks/train_step.py made 2.1x faster with oneDNN held to AVX2.
TRAIN_S_PER_IMAGE = {"simclr": 0.0084, "simclrv2_pretrain": 0.15}
#: With `compile`: the step time divided by this, plus a one-off torch.compile of the network
#: (no gain measured for SimCLR's ResNet-18 once its small maps are dense).
TRAIN_COMPILE_SPEEDUP = {"simclr": 1.0, "simclrv2_pretrain": 2.0}
TRAIN_COMPILE_S = {"simclr": 120.0, "simclrv2_pretrain": 400.0}
#: Frozen-encoder features per image (stage 2 of SimCLRv2, the SimCLR linear probe).
FEATURE_S_PER_IMAGE = {"simclr": 0.0006, "simclrv2": 0.046}
#: Download, extraction and preprocessing; ONNX export per model; tables and plots per model.
DATA_S, EXPORT_S, TABLES_S = 90.0, 20.0, 30.0


@dataclass
class Stage:
    name: str
    jobs: int
    seconds: float


def _infer_s(model: str, chip: dict, precision: str) -> float:
    per_input = INFER_S_PER_INPUT.get(model, INFER_S_PER_INPUT[UNKNOWN_MODEL])
    return per_input * PRECISION_FACTOR.get(precision, 1.0) * BACKEND_FACTOR.get(chip["backend"], 1.0)


def _inputs_per_image(entry: dict) -> int:
    return 2 if entry.get("metric") == "pair_top1" else 1  # SimCLR scores two views per image


def _accuracy_s(plan, model: str, chip: str, precision: str) -> float:
    entry, settings = plan.chips[chip], plan.chips[chip].get("settings", {})
    images = plan.accuracy_images(chip) or plan.config["dataset"]["test_images"]
    if entry["backend"] == "tpu_mlir":  # simulated on the host unless a chip is attached
        crosscheck = settings.get("crosscheck_images", {})
        count = crosscheck.get(precision, 0) if isinstance(crosscheck, dict) else int(crosscheck)
        inputs = images * _inputs_per_image(plan.models[model])
        return (inputs * SIMULATOR_CPU_S_PER_IMAGE[precision]
                + count * CMODEL_S_PER_IMAGE[precision]) / CORES
    return images * _inputs_per_image(plan.models[model]) * _infer_s(model, entry, precision)


def _throughput_s(plan, model: str, chip: str, precision: str, batch: int) -> float:
    """The timing protocol's duration for this cell, every trial and pause included."""
    timing = plan.config["timing"]
    latency = batch * _infer_s(model, plan.chips[chip], precision)
    timed = max(int(timing["min_iterations"]) * latency, float(timing["min_seconds"]))
    if timing.get("max_iterations"):
        timed = min(timed, int(timing["max_iterations"]) * latency)
    trial = int(timing["warmup_iterations"]) * latency + timed
    trials = int(timing["trials"])
    return trials * trial + (trials - 1) * float(timing["trial_pause_seconds"])


def _compile_s(plan, chip: str, precision: str) -> float:
    backend = plan.chips[chip]["backend"]
    if backend == "tpu_mlir":
        return COMPILE_S["tpu_mlir"]
    if precision == "int8":
        return COMPILE_S["int8"]
    return COMPILE_S["host"] if plan.chips[chip]["device"] == "host" else COMPILE_S["other"]


def _contrastive_s(settings: dict, stage: str, available: int) -> float:
    images = (settings["images"] or available) * settings["epochs"]
    if settings.get("compile"):
        per_image = TRAIN_S_PER_IMAGE[stage] / TRAIN_COMPILE_SPEEDUP[stage]
        return per_image * images + TRAIN_COMPILE_S[stage]
    return TRAIN_S_PER_IMAGE[stage] * images


def _training(plan, trained: list[str]) -> Stage:
    train = plan.config["train"]
    available = 10000 * int(plan.config["dataset"]["train_batches"])
    seconds, jobs = 0.0, 0
    for model in trained:
        if model == "simclr":
            probe = train["linear_probe"]
            seconds += _contrastive_s(train["simclr"], "simclr", available)
            seconds += FEATURE_S_PER_IMAGE["simclr"] * ((probe["images"] or available)
                                                         + plan.config["dataset"]["test_images"])
            jobs += 2
        elif model == "simclrv2":
            linear = train["simclrv2"]["linear"]
            seconds += _contrastive_s(train["simclrv2"]["pretrain"], "simclrv2_pretrain", available)
            seconds += FEATURE_S_PER_IMAGE["simclrv2"] * (linear["images"] or available)
            jobs += 2
    return Stage("training", jobs, seconds + JOB_START_S * jobs)


def estimate(plan, trained_models: list[str]) -> list[Stage]:
    """Jobs and seconds per stage for a run of ``plan`` from scratch on `REFERENCE_HOST`.

    ``trained_models``: the models the workflow trains here (no checkpoint given).
    Stages run one after the other on 2 cores (host timing jobs take every core anyway).
    """
    models = list(plan.models)
    compile_cells = plan.compile_cells()
    compile_jobs = {(m, c, p, b if backends.get(plan.chips[c]["backend"]).static_batch else 0)
                    for m, c, p, b in compile_cells}  # one artefact per batch size only if static
    accuracy = plan.accuracy_cells()
    perf = plan.perf_cells()
    stages = [
        Stage("data", 1 + 2 * len(models), DATA_S),
        _training(plan, trained_models),
        Stage("export", len(models), EXPORT_S * len(models)),
        Stage("compile", len(compile_jobs), sum(_compile_s(plan, c, p) for _, c, p, _ in compile_jobs)),
        Stage("accuracy", len(accuracy), sum(_accuracy_s(plan, *cell) for cell in accuracy)),
        Stage("gate", len(plan.gate_cells()), 0.0),
        Stage("throughput", len(perf), sum(_throughput_s(plan, *cell) for cell in perf)),
        Stage("tables", 6 * len(models), TABLES_S * len(models)),
    ]
    for stage in stages:
        if stage.name not in ("training", "data"):
            stage.seconds += JOB_START_S * stage.jobs
    return stages


def duration(seconds: float) -> str:
    """``42 min``, ``5.5 h`` or ``22 days``: what a reader plans a run by."""
    if seconds < 120 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def format_estimate(stages: list[Stage]) -> str:
    """The lines printed before a run starts."""
    total = sum(stage.seconds for stage in stages)
    lines = [f"Estimated run time from scratch on a {REFERENCE_HOST}: "
             f"{duration(total)}, {sum(s.jobs for s in stages)} jobs"]
    lines += [f"  {s.name:<11} {s.jobs:>4} jobs  ~{duration(s.seconds)}" for s in stages if s.jobs]
    lines.append("  (results already up to date are not rerun; Snakemake prints "
                 "'N of M steps done' as it goes, and each job's rule names its stage)")
    return "\n".join(lines)
