"""ONNX Runtime on the host CPU (CPU execution provider)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from chipbench.backends.base import Availability, Backend, Runner

MODEL_FILE = "model.onnx"


def link_or_copy(source: Path, dest: Path) -> None:
    """Hard-link when possible: compiled copies of a 100 MB model should not cost disk."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


class OrtRunner(Runner):
    def __init__(self, model_path: Path, threads: int, graph_optimization: str):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = getattr(
            ort.GraphOptimizationLevel, f"ORT_ENABLE_{graph_optimization.upper()}"
        )
        self._session = ort.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )
        self._input_name = self._session.get_inputs()[0].name
        self._settings = {
            "provider": "CPUExecutionProvider",
            "intra_op_num_threads": threads,
            "inter_op_num_threads": 1,
            "execution_mode": "sequential",
            "graph_optimization_level": graph_optimization,
        }

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input_name: batch})[0]

    def settings(self) -> dict:
        return dict(self._settings)


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    precisions = ("fp32",)
    static_batch = False

    def availability(self, chip: dict) -> Availability:
        try:
            import onnxruntime  # noqa: F401
        except ImportError as error:
            return Availability(False, f"onnxruntime is not importable ({error})")
        return Availability(True)

    def version(self) -> str:
        import onnxruntime

        return onnxruntime.__version__

    def compile(self, onnx_path, out_dir, precision, batch_size, chip, calibration):
        link_or_copy(Path(onnx_path), Path(out_dir) / MODEL_FILE)
        return {"model": MODEL_FILE, "precision": precision}

    def load(self, compiled_dir, manifest, chip, threads):
        settings = chip.get("settings", {})
        return OrtRunner(
            Path(compiled_dir) / manifest["model"],
            threads=settings.get("threads") or threads,
            graph_optimization=settings.get("graph_optimization", "all"),
        )


BACKEND = OnnxRuntimeBackend()
