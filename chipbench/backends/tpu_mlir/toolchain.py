"""TPU-MLIR's tools for the BM1684X: the files they write, their command lines, the chip
settings, and the parser of the compiler's latency estimate.

The platform option is `--chip bm1684x`: tpu-mlir 1.30.2 accepts `--chip` and its newer
alias `--processor` for model_deploy and run_calibration (releases before ~1.7 know only
`--chip`), so `--chip` works with every release this backend was written against.
"""

from __future__ import annotations

import re
from pathlib import Path

from chipbench import tpu_mlir_env
from chipbench.errors import UserError

TARGET = "bm1684x"
MODULE_NAME = "model"
TOP_MLIR = f"{MODULE_NAME}.mlir"
TEST_INPUT = "test_input.npz"
TOP_OUTPUTS = f"{MODULE_NAME}_top_outputs.npz"
CALIBRATION_DIR = "calibration_data"
CALIBRATION_TABLE = f"{MODULE_NAME}_cali_table"
BMODEL = f"{MODULE_NAME}.bmodel"
PROFILE_NAMES = ("compiler_profile_0.txt", f"{BMODEL}.compiler_profile_0.txt")

QUANTIZE = {"fp32": "F32", "fp16": "F16", "int8": "INT8"}

#: Chip settings and their defaults (resources/chips.yaml may override each).
DEFAULT_SETTINGS = {
    "mode": "auto",  # auto: the chip when present, else the simulator; or "chip" / "simulator"
    "devid": 0,  # device id of the chip (sail.Engine, bmrt_test --devid)
    "calibration_images": 100,  # INT8 calibration images (run_calibration --input_num, × batch)
    "skip_bmodel_validation": ["fp16"],  # cmodel F16 is ~25 s/image: validate the tpu.mlir only
    # tpu.mlir vs the bmodel on the cmodel simulator, on this many seeded test images after an
    # accuracy run (0 = off); a number, or one per precision (cmodel F16 is slow).
    "crosscheck_images": {"fp32": 32, "fp16": 4, "int8": 32},
    "crosscheck_seed": 0,
    "keep_intermediates": False,  # keep every file model_deploy --debug leaves
    "workers": "auto",  # simulator processes (one OpenMP thread each); auto = the job's threads
}


def settings_of(chip: dict) -> dict:
    merged = dict(DEFAULT_SETTINGS)
    merged.update({k: v for k, v in (chip.get("settings") or {}).items() if v is not None})
    return merged


def _shape_text(shape) -> str:
    return "[[" + ",".join(str(int(d)) for d in shape) + "]]"


def transform_command(
    onnx_path, mlir, input_shape, test_input=None, test_result=None, model_name=MODULE_NAME,
    venv: Path | None = None,
) -> list[str]:
    """model_transform.py: ONNX -> top mlir; with a test input, also its reference outputs."""
    command = tpu_mlir_env.tool_command(
        "model_transform",
        "--model_name", model_name,
        "--model_def", onnx_path,
        "--input_shapes", _shape_text(input_shape),
        "--mlir", mlir,
        venv=venv,
    )
    if test_input:
        command += ["--test_input", str(test_input), "--test_result", str(test_result)]
    return command


def calibration_command(mlir, dataset, input_num: int, table, venv: Path | None = None) -> list[str]:
    """run_calibration.py: INT8 calibration table from a folder of .npy input batches."""
    return tpu_mlir_env.tool_command(
        "run_calibration", mlir,
        "--dataset", dataset,
        "--input_num", int(input_num),
        "--chip", TARGET,
        "-o", table,
        venv=venv,
    )


def deploy_command(
    mlir, precision: str, bmodel, calibration_table=None, test_input=None, test_reference=None,
    tolerance: str | None = None, skip_validation: bool = False, venv: Path | None = None,
) -> list[str]:
    """model_deploy.py: top mlir -> *_tpu.mlir + .bmodel, keeping intermediates (--debug)."""
    if precision not in QUANTIZE:
        raise UserError(
            f"TPU-MLIR cannot compile precision {precision!r}: use one of {', '.join(QUANTIZE)}"
        )
    if precision == "int8" and not calibration_table:
        raise UserError("INT8 deployment needs a calibration table: give the calibration set")
    command = tpu_mlir_env.tool_command(
        "model_deploy",
        "--mlir", mlir,
        "--quantize", QUANTIZE[precision],
        venv=venv,
    )
    if calibration_table:
        command += ["--calibration_table", str(calibration_table)]
    command += ["--chip", TARGET, "--model", str(bmodel)]
    if test_input:
        command += ["--test_input", str(test_input), "--test_reference", str(test_reference)]
        if tolerance:
            command += ["--tolerance", tolerance]
        if skip_validation:
            command += ["--skip_validation"]
    command += ["--debug"]
    return command


_PROFILE_RUNTIME = re.compile(r"runtime:\s*([0-9.eE+-]+)\s*ms")
_PROFILE_FLOPS = re.compile(r"flops:\s*(\d+)")


def parse_compiler_profile(text: str) -> dict:
    """The compiler's latency estimate from compiler_profile_0.txt ("runtime: X ms").

    A model split into several subnets prints one summary per subnet; the estimate is their
    sum. Cycle-model figure for one batch, not a measurement.
    """
    runtimes = [float(x) for x in _PROFILE_RUNTIME.findall(text)]
    if not runtimes:
        raise ValueError("no 'runtime: X ms' line in the compiler profile")
    flops = [int(x) for x in _PROFILE_FLOPS.findall(text)]
    return {
        "estimated_latency_ms": sum(runtimes),
        "subnets": len(runtimes),
        "flops": sum(flops) if flops else None,
    }


def find_compiler_profile(folder: Path) -> Path | None:
    for name in PROFILE_NAMES:
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None

