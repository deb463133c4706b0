"""The TensorRT backend: availability (tensorrt, a CUDA binding, the device), one engine per
batch size, and loading it into a `TensorRTRunner`."""

from __future__ import annotations

import sys
from pathlib import Path

from chipbench import devices
from chipbench.backends.base import Availability, Backend
from chipbench.backends.tensorrt.cuda import BINDING_HINT, cuda_binding
from chipbench.backends.tensorrt.engine import PRECISIONS, TRT_HINT, build_engine, builder_config
from chipbench.backends.tensorrt.runner import TensorRTRunner
from chipbench.errors import UserError
from chipbench.tools import onnx_input


class TensorRTBackend(Backend):
    name = "tensorrt"
    precisions = PRECISIONS
    static_batch = True

    def availability(self, chip: dict) -> Availability:
        try:
            import tensorrt  # noqa: F401
        except ImportError as error:
            return Availability(False, f"tensorrt is not importable ({error}): {TRT_HINT}")
        except Exception as error:  # noqa: BLE001 - e.g. a CUDA library that fails to load
            return Availability(False, f"tensorrt fails to import ({type(error).__name__}: {error})")
        settings = chip.get("settings") or {}
        if cuda_binding(settings.get("cuda_binding") or "auto") is None:
            return Availability(False, f"no CUDA Python binding imports (cuda-python, pycuda or CUDA torch): {BINDING_HINT}")
        problem = devices.cuda_device_problem(int(settings.get("device_id") or 0))
        return Availability(problem is None, problem or "")

    def version(self) -> str:
        try:
            import tensorrt

            return f"TensorRT {tensorrt.__version__}"
        except ImportError:
            return "TensorRT not installed"

    def compile(self, onnx_path, out_dir, precision, batch_size, chip, calibration, model=None):
        if not batch_size:
            raise UserError("a TensorRT engine here serves one batch size: the compile rule gave none")
        settings = chip.get("settings") or {}
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        input_name, chw, _ = onnx_input(onnx_path, "TensorRT", batch_size)
        config = builder_config(
            precision, batch_size, int(settings.get("workspace_mb") or 1024), input_name, chw,
            calibration=calibration, int8_fallback=settings.get("int8_fallback") or "fp16",
            calibration_cache=out / "calibration.cache" if precision == "int8" else None,
        )
        engine = out / f"model_bs{int(batch_size)}.engine"
        print(f"TensorRT build settings: {config}", file=sys.stderr, flush=True)
        built = build_engine(onnx_path, engine, config, int(settings.get("device_id") or 0),
                             settings.get("cuda_binding") or "auto")
        if config["calibrator"] and config["calibrator"]["cache_file"]:
            config["calibrator"]["cache_file"] = Path(config["calibrator"]["cache_file"]).name
        return {"model": engine.name, "precision": precision, "builder": config, **built}

    def load(self, compiled_dir, manifest, chip, threads):
        settings = chip.get("settings") or {}
        return TensorRTRunner(
            Path(compiled_dir) / manifest["model"], int(manifest["batch_size"]),
            device_id=int(settings.get("device_id") or 0),
            binding=settings.get("cuda_binding") or "auto",
            info={"precision": manifest.get("precision"), "flags": manifest.get("builder", {}).get("flags")},
        )


BACKEND = TensorRTBackend()

