"""The TPU-MLIR backend: availability, compilation on the host (model_transform, INT8
run_calibration, model_deploy) and loading onto the chip or into the host simulation."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np

from chipbench import tpu_mlir_env
from chipbench.backends.base import COMPILED_MANIFEST, Availability, Backend
from chipbench.backends.tpu_mlir.chip import SailRunner, chip_status
from chipbench.backends.tpu_mlir.simulator import MlirRunner
from chipbench.backends.tpu_mlir.toolchain import (
    BMODEL,
    CALIBRATION_DIR,
    CALIBRATION_TABLE,
    MODULE_NAME,
    PROFILE_NAMES,
    QUANTIZE,
    TARGET,
    TEST_INPUT,
    TOP_MLIR,
    TOP_OUTPUTS,
    calibration_command,
    deploy_command,
    find_compiler_profile,
    parse_compiler_profile,
    settings_of,
    transform_command,
)
from chipbench.errors import UserError
from chipbench.tools import onnx_input, run_logged


def write_calibration_set(calibration: Path, folder: Path, batch_size: int, images: int) -> int:
    """The calibration images as run_calibration's dataset: one .npy batch (B,C,H,W) per file.

    They are the calibration set preprocessed exactly like the inference input (the workflow's
    preprocess rule), in order; returns the number of files.
    """
    data = np.load(calibration, mmap_mode="r")
    files = max(1, min(len(data), int(images)) // batch_size)
    if len(data) < batch_size:
        raise UserError(
            f"the calibration set {calibration} has {len(data)} images, fewer than the batch "
            f"size {batch_size}: raise dataset.calibration_images"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        batch = np.ascontiguousarray(data[index * batch_size:(index + 1) * batch_size],
                                     dtype=np.float32)
        np.save(folder / f"{index:05d}.npy", batch)
    return files


def _test_input(calibration: Path | None, batch_size: int, shape, seed: int = 0) -> np.ndarray:
    """Validation batch: real calibration images when given, else seeded normal noise."""
    if calibration is not None:
        data = np.load(calibration, mmap_mode="r")
        if len(data) >= batch_size:
            return np.ascontiguousarray(data[:batch_size], dtype=np.float32)
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch_size, *shape)).astype(np.float32)


def tool_threads() -> int:
    """The tools' OpenMP threads: the job's own, which Snakemake exports to every job as
    OMP_NUM_THREADS (1 for a compile: two compiles side by side on 2 cores each running 2
    threads cost ~25 % more CPU time), else the cores this process may use."""
    given = os.environ.get("OMP_NUM_THREADS", "")
    if given.isdigit() and int(given) > 0:
        return int(given)
    return max(1, len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else 2


def _copy_transform(transformed: Path, out_dir: Path) -> dict:
    """The transform step's files, copied (never linked: model_deploy must not write into
    the folder every precision reads) into the compile folder, where the tools run; returns
    the step's manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in transformed.iterdir():
        # not the step's manifest, nor Snakemake's hidden timestamp of a folder output
        if path.is_file() and path.name != COMPILED_MANIFEST and not path.name.startswith("."):
            shutil.copy2(path, out_dir / path.name)
    return json.loads((transformed / COMPILED_MANIFEST).read_text())


def _prune(out_dir: Path, keep: set[str]) -> None:
    """Drop what model_deploy --debug leaves beside the artefacts (the *_tpu.mlir with its
    weights, the .bmodel, the profile, the calibration table and the small top model.mlir,
    whose weights go: it is kept to show the imported graph)."""
    patterns = ("*_tpu_opt.mlir", "*_final.mlir", "*_tpu_lowered_*_weight.npz",
                "*_tpu_addressed_*_weight.npz", "*_origin.mlir", "*_top_f32_all_origin_weight.npz",
                "*_opt.onnx", "*.layer_group_debugger.json", "final_opt.mlir",
                # the top mlir's weights (94 MB for ResNet-50) and every tensor of its
                # reference run: inputs of model_deploy only
                "*_top_f32_all_weight.npz", TOP_OUTPUTS)
    for pattern in patterns:
        for path in out_dir.glob(pattern):
            if path.name not in keep and path.is_file():
                path.unlink()
    shutil.rmtree(out_dir / CALIBRATION_DIR, ignore_errors=True)


class TpuMlirBackend(Backend):
    name = "tpu_mlir"
    precisions = ("fp32", "fp16", "int8")
    static_batch = True
    transforms_model = True

    def availability(self, chip: dict) -> Availability:
        settings = settings_of(chip)
        mode = settings["mode"]
        if mode not in ("auto", "chip", "simulator"):
            return Availability(False, f"settings.mode is {mode!r}: use auto, chip or simulator")
        device = chip_status(int(settings["devid"]))
        toolchain = self.toolchain_status()
        if mode == "chip" and not device.ok:
            return device
        if not toolchain.ok:
            # Compilation always happens on the host, with TPU-MLIR.
            return toolchain
        return Availability(True)

    def toolchain_status(self) -> Availability:
        if tpu_mlir_env.is_ready() or tpu_mlir_env.venv_python().exists():
            return Availability(True)
        if tpu_mlir_env.find_python310() is not None:
            return Availability(True)
        return Availability(
            False,
            "TPU-MLIR needs Python 3.10 and none was found (pyenv versions 3.10.* or "
            "python3.10 on PATH); install one, e.g. `pyenv install 3.10`",
        )

    def needs_calibration(self, precision: str) -> bool:
        """Every precision: INT8 calibrates on it, F32/F16 validate the compile on real images."""
        return True

    def timing_availability(self, chip: dict) -> Availability:
        """Throughput is measured on the chip only (the simulator's speed says nothing of it)."""
        settings = settings_of(chip)
        if settings["mode"] == "simulator":
            return Availability(False, "settings.mode is simulator: no chip timing")
        return chip_status(int(settings["devid"]))

    def version(self) -> str:
        installed = tpu_mlir_env.installed_version()
        if installed:
            return installed
        for line in tpu_mlir_env.REQUIREMENTS.read_text().splitlines():
            if line.lower().startswith(("tpu-mlir==", "tpu_mlir==")):
                return line.split("==", 1)[1].strip() + " (not installed yet)"
        return "unknown"

    def transform(self, onnx_path, out_dir, batch_size, chip, calibration):
        """model_transform: the ONNX as TPU-MLIR's top-level MLIR at one batch size, with the
        validation batch (the first calibration images) and its reference outputs, which
        every precision's model_deploy compares with. Returns its manifest."""
        if not batch_size:
            raise UserError("TPU-MLIR artefacts have a static batch size: compile per batch size")
        out_dir = Path(out_dir).absolute()
        out_dir.mkdir(parents=True, exist_ok=True)
        onnx_path = Path(onnx_path).absolute()
        calibration = Path(calibration).absolute() if calibration else None
        tpu_mlir_env.ensure_venv()
        input_name, shape, _ = onnx_input(onnx_path, "TPU-MLIR")
        np.savez(out_dir / TEST_INPUT, **{input_name: _test_input(calibration, batch_size, shape)})
        command = transform_command(onnx_path, TOP_MLIR, (batch_size, *shape), TEST_INPUT,
                                    TOP_OUTPUTS)
        seconds = run_logged(command, cwd=out_dir, what="TPU-MLIR model_transform",
                             env=tpu_mlir_env.tool_env(tool_threads()))
        return {
            "input_name": input_name,
            "input_shape": [batch_size, *shape],
            "command": " ".join(map(str, command)),
            "seconds": seconds,
            "tpu_mlir_version": self.version(),
        }

    def compile(self, onnx_path, out_dir, precision, batch_size, chip, calibration, model=None,
                transformed=None):
        if precision not in QUANTIZE:
            raise UserError(
                f"TPU-MLIR cannot compile precision {precision!r}: use one of "
                f"{', '.join(QUANTIZE)} in chips.<name>.precisions"
            )
        settings = settings_of(chip)
        out_dir = Path(out_dir).absolute()
        calibration = Path(calibration).absolute() if calibration else None
        if precision == "int8" and calibration is None:
            raise UserError(
                "INT8 on BM1684X needs the calibration set (calibration_inputs.npy): "
                "the compile rule must pass it for int8"
            )
        tpu_mlir_env.ensure_venv()
        if transformed is None:
            transform = self.transform(onnx_path, out_dir, batch_size, chip, calibration)
        else:
            transform = _copy_transform(Path(transformed), out_dir)
        env = tpu_mlir_env.tool_env(tool_threads())
        input_name = transform["input_name"]
        timings = {"transform": transform["seconds"]}
        commands = {"transform": transform["command"]}

        table = None
        calibration_info = None
        if precision == "int8":
            files = write_calibration_set(calibration, out_dir / CALIBRATION_DIR, batch_size,
                                          int(settings["calibration_images"]))
            command = calibration_command(TOP_MLIR, CALIBRATION_DIR, files, CALIBRATION_TABLE)
            commands["calibration"] = " ".join(map(str, command))
            timings["calibration"] = run_logged(command, cwd=out_dir, what="TPU-MLIR run_calibration", env=env)
            table = CALIBRATION_TABLE
            calibration_info = {"table": table, "files": files, "images": files * batch_size,
                                "source": str(calibration)}

        skip = precision in (settings.get("skip_bmodel_validation") or [])
        tolerance = (settings.get("tolerance") or {}).get(precision)
        for stale in PROFILE_NAMES:
            (out_dir / stale).unlink(missing_ok=True)
        command = deploy_command(TOP_MLIR, precision, BMODEL, table, TEST_INPUT, TOP_OUTPUTS,
                                 tolerance=tolerance, skip_validation=skip)
        commands["deploy"] = " ".join(map(str, command))
        timings["deploy"] = run_logged(command, cwd=out_dir, what="TPU-MLIR model_deploy", env=env)

        tpu_mlir = sorted(out_dir.glob(f"{MODULE_NAME}_{TARGET}_*_tpu.mlir"))
        if len(tpu_mlir) != 1 or not (out_dir / BMODEL).is_file():
            raise UserError(
                f"model_deploy left no single *_tpu.mlir and {BMODEL} in {out_dir}: see the log"
            )
        tpu_mlir = tpu_mlir[0]
        weight_file = re.search(r'module\.weight_file = "([^"]+)"',
                                tpu_mlir.read_text(errors="replace")[:4000])
        profile = find_compiler_profile(out_dir)
        estimate = parse_compiler_profile(profile.read_text()) if profile else {}
        if not settings["keep_intermediates"]:
            keep = {tpu_mlir.name, BMODEL, weight_file.group(1) if weight_file else ""}
            _prune(out_dir, keep)
        return {
            "chip": TARGET,
            "precision": precision,
            "quantize": QUANTIZE[precision],
            "bmodel": BMODEL,
            "tpu_mlir": tpu_mlir.name,
            "tpu_mlir_weights": weight_file.group(1) if weight_file else None,
            "input_name": input_name,
            "input_shape": transform["input_shape"],
            "estimated_latency_ms": estimate.get("estimated_latency_ms"),
            "estimate": {**estimate, "source": profile.name if profile else None,
                         "what": "compiler cycle-model estimate per batch, not a measurement"},
            "calibration": calibration_info,
            "bmodel_validated_on_cmodel": not skip,
            "timings_s": timings,
            "commands": commands,
            "tpu_mlir_version": self.version(),
        }

    def load(self, compiled_dir, manifest, chip, threads):
        settings = settings_of(chip)
        mode = settings["mode"]
        device = chip_status(int(settings["devid"])) if mode != "simulator" else None
        if mode == "chip" and not device.ok:
            raise UserError(f"settings.mode is chip but the BM1684X is not usable: {device.reason}")
        if device is not None and device.ok:
            return SailRunner(Path(compiled_dir) / manifest["bmodel"], int(settings["devid"]))
        return MlirRunner(Path(compiled_dir), manifest, threads, chip.get("settings"))


BACKEND = TpuMlirBackend()

