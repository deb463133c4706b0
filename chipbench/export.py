"""PyTorch -> ONNX export, and the check that ONNX Runtime reproduces PyTorch's outputs.

The exported graph has one input ``input`` (N x 3 x 32 x 32 float32) and one output ``output``,
both with a symbolic batch dimension ``batch``, so one file serves every batch size. (The
original report's export script named ``dynamic_axes`` without defining it and crashed.)
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from chipbench.files import publish
from chipbench.onnx_io import INPUT_SHAPE

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "compare_with_torch", "export_onnx"]

INPUT_NAME = "input"
OUTPUT_NAME = "output"
BATCH_DIM = "batch"

REL_ERROR_DEFINITION = (
    "max |onnxruntime - torch| over all output elements divided by max |torch output|"
)


def export_onnx(model: nn.Module, path: Path | str, opset: int = 17) -> None:
    """Export ``model`` (evaluated in eval mode) to one self-contained ONNX file at ``path``.

    Uses the TorchScript exporter (``dynamo=False``), which needs no ``onnxscript`` and embeds
    every weight in the file. Written to a temporary file in the same folder, checked with
    ``onnx.checker.check_model``, then renamed into place, so ``path`` is either the complete
    checked model or untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros((1, *INPUT_SHAPE), dtype=torch.float32)
    was_training = model.training
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        model.eval()
        with torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter is deprecated in favour of dynamo; it is what we want.
            warnings.simplefilter("ignore", category=DeprecationWarning)
            warnings.simplefilter("ignore", category=FutureWarning)
            torch.onnx.export(
                model,
                (dummy,),
                str(tmp),
                dynamo=False,
                export_params=True,
                opset_version=opset,
                do_constant_folding=True,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: BATCH_DIM}, OUTPUT_NAME: {0: BATCH_DIM}},
            )
        onnx.checker.check_model(str(tmp), full_check=False)
        _assert_self_contained(tmp)
        publish(tmp, path)
    finally:
        model.train(was_training)
        if tmp.exists():
            tmp.unlink()


def _assert_self_contained(path: Path) -> None:
    proto = onnx.load(str(path), load_external_data=False)
    external = [
        t.name
        for t in proto.graph.initializer
        if t.data_location == onnx.TensorProto.EXTERNAL
    ]
    if external:
        raise RuntimeError(f"ONNX export wrote external data for {external[:3]}; expected one file")


def _to_numpy_inputs(inputs: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(inputs, dtype=np.float32)
    if array.ndim != 4 or array.shape[0] < 1:
        raise ValueError(f"inputs must be a non-empty NCHW batch, got shape {array.shape}")
    return array


def compare_with_torch(model: nn.Module, onnx_path: Path | str, inputs: np.ndarray) -> dict:
    """Run ``inputs`` (one batch) through PyTorch and through ONNX Runtime (CPU); compare.

    Returns ``max_abs_error``, ``max_rel_error`` (defined in ``rel_error_definition``),
    ``n_inputs``, ``batch_size``, ``output_shape``, ``onnxruntime_version``, ``torch_version``.
    """
    import onnxruntime as ort

    array = _to_numpy_inputs(inputs)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            expected = model(torch.from_numpy(array.copy())).detach().cpu().numpy()
    finally:
        model.train(was_training)

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    input_name = session.get_inputs()[0].name
    actual = session.run(None, {input_name: array})[0]
    if actual.shape != expected.shape:
        raise RuntimeError(
            f"ONNX output shape {actual.shape} differs from PyTorch's {expected.shape}"
        )

    diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    max_abs = float(diff.max())
    scale = float(np.abs(expected).max())
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    return {
        "max_abs_error": max_abs,
        "max_rel_error": max_rel,
        "rel_error_definition": REL_ERROR_DEFINITION,
        "max_abs_torch_output": scale,
        "n_inputs": int(array.shape[0]),
        "batch_size": int(array.shape[0]),
        "output_shape": list(expected.shape),
        "onnxruntime_version": ort.__version__,
        "torch_version": torch.__version__,
    }
