"""ONNX Runtime on an NVIDIA GPU: CUDAExecutionProvider, or TensorrtExecutionProvider.

A second way to drive the same GPU as the `tensorrt` backend, with ONNX Runtime's own
kernels (CUDA EP) or its TensorRT integration (TensorRT EP). Needs the ``onnxruntime-gpu``
wheel, which provides the same ``onnxruntime`` module as the CPU wheel: install one or the
other, not both.

Timing is the core protocol around ``session.run`` on host arrays, so a latency here is a
host latency (H2D + compute + D2H + ONNX Runtime overhead), not the device compute time the
tensorrt backend and ais_bench report; the settings record say so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from chipbench import devices
from chipbench.backends.base import Availability, Backend, Runner
from chipbench.errors import UserError
from chipbench.tools import link_or_copy

MODEL_FILE = "model.onnx"

PROVIDERS = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
INSTALL_HINT = "pip uninstall onnxruntime && pip install onnxruntime-gpu (matching the CUDA/cuDNN version)"


def provider_of(chip: dict) -> str:
    wanted = (chip.get("settings") or {}).get("provider") or "cuda"
    if wanted not in PROVIDERS:
        raise UserError(f"provider {wanted!r} is not known: use {' or '.join(PROVIDERS)} in the chip's settings")
    return PROVIDERS[wanted]


def provider_options(provider: str, device_id: int, fp16: bool) -> dict:
    """Options passed with the execution provider (names from ONNX Runtime's EP documentation)."""
    options = {"device_id": int(device_id)}
    if provider == "TensorrtExecutionProvider":
        options["trt_fp16_enable"] = bool(fp16)
    return options


class OrtGpuRunner(Runner):
    def __init__(self, model_path: Path, provider: str, device_id: int, fp16: bool):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._provider_options = provider_options(provider, device_id, fp16)
        self._session = ort.InferenceSession(
            str(model_path), options,
            providers=[(provider, self._provider_options), "CPUExecutionProvider"],
        )
        active = self._session.get_providers()
        if not active or active[0] != provider:
            raise UserError(
                f"ONNX Runtime did not start {provider} (active: {', '.join(active)}): its CUDA "
                "libraries failed to load; see the ONNX Runtime messages in the job log"
            )
        self._input_name = self._session.get_inputs()[0].name
        self._settings = {
            "provider": provider,
            "provider_options": dict(self._provider_options),
            "active_providers": active,
            "timed_quantity": "host latency of session.run on host arrays (H2D + compute + D2H)",
        }

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input_name: batch})[0]

    def settings(self) -> dict:
        return dict(self._settings)


class OrtGpuBackend(Backend):
    name = "onnxruntime_gpu"
    precisions = ("fp32", "fp16")
    static_batch = False

    def availability(self, chip: dict) -> Availability:
        try:
            import onnxruntime
        except ImportError as error:
            return Availability(False, f"onnxruntime is not importable ({error}): {INSTALL_HINT}")
        provider = provider_of(chip)
        available = onnxruntime.get_available_providers()
        if provider not in available:
            return Availability(
                False, f"onnxruntime has no {provider} (available: {', '.join(available)}): {INSTALL_HINT}"
            )
        problem = devices.cuda_device_problem(int((chip.get("settings") or {}).get("device_id") or 0))
        return Availability(problem is None, problem or "")

    def version(self) -> str:
        import onnxruntime

        return onnxruntime.__version__

    def compile(self, onnx_path, out_dir, precision, batch_size, chip, calibration, model=None):
        provider = provider_of(chip)
        if precision not in self.precisions:
            raise UserError(f"precision {precision!r} is not supported here: use fp32 or fp16")
        if precision == "fp16" and provider != "TensorrtExecutionProvider":
            raise UserError(
                "fp16 on ONNX Runtime GPU runs through TensorRT (trt_fp16_enable): set "
                "settings.provider: tensorrt for this chip, or use precision fp32"
            )
        link_or_copy(Path(onnx_path), Path(out_dir) / MODEL_FILE)
        return {"model": MODEL_FILE, "precision": precision, "provider": provider}

    def load(self, compiled_dir, manifest, chip, threads):
        settings = chip.get("settings") or {}
        return OrtGpuRunner(
            Path(compiled_dir) / manifest["model"], provider_of(chip),
            int(settings.get("device_id") or 0), fp16=manifest.get("precision") == "fp16",
        )


BACKEND = OrtGpuBackend()
