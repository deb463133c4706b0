"""Checks of a bring-your-own ONNX model, made when the config is read: a model the matrix
cannot feed or score stops the run with one line before any job runs."""

from __future__ import annotations

from pathlib import Path

import onnx

from chipbench.errors import UserError
from chipbench.onnx_io import INPUT_SHAPE, onnx_io_summary

#: Output width each metric needs (None: any vector).
METRIC_WIDTH = {"top1": 10, "pair_top1": None}


def dims(shape) -> str:
    return "×".join("N" if not isinstance(d, int) else str(d) for d in shape)


def check(path: Path, metric: str, batch_sizes, key: str, shown: str | None = None) -> None:
    """Raise UserError unless `path` parses, takes one float32 N×3×32×32 input whose batch
    dimension is dynamic or every batch size of `batch_sizes`, and gives per image what
    `metric` scores: 10 logits for top1, a vector for pair_top1. `key` names the config key,
    `shown` the path as the config gives it."""
    where = f"ONNX model {shown or path} (config {key})"
    try:
        onnx.load(str(path), load_external_data=False)
    except Exception as error:  # noqa: BLE001 - protobuf's DecodeError, or what onnx rejects
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UserError(
            f"{where} does not parse as ONNX ({first}): give the .onnx file an ONNX exporter "
            "wrote"
        ) from None
    summary = onnx_io_summary(path)
    inputs = summary["inputs"]
    if len(inputs) != 1:
        raise UserError(
            f"{where} has {len(inputs)} inputs ({', '.join(i['name'] for i in inputs)}): "
            "export it with one input, the image batch N×3×32×32"
        )
    shape, dtype = inputs[0]["shape"], inputs[0]["dtype"]
    if dtype != "float32" or len(shape) != 4 or tuple(shape[1:]) != INPUT_SHAPE:
        raise UserError(
            f"{where} takes a {dtype} {dims(shape)} input; the benchmark feeds float32 "
            "N×3×32×32 CIFAR-10 images: export it for that input"
        )
    fixed = shape[0] if isinstance(shape[0], int) else None
    others = sorted(b for b in set(batch_sizes) if fixed is not None and b != fixed)
    if others:
        raise UserError(
            f"{where} has a fixed batch size {fixed} but the matrix runs it at batch size "
            f"{', '.join(map(str, others))}: export it with a dynamic batch dimension, or set "
            f"{key.rsplit('.', 1)[0]}.batch_sizes: [{fixed}]"
        )
    output = _inferred_output_shape(path) or summary["outputs"][0]["shape"]
    if not output:
        return  # no shape declared or inferred: the accuracy job's scoring checks it
    width = METRIC_WIDTH[metric]
    known_width = len(output) == 2 and isinstance(output[1], int)
    if len(output) != 2 or (width is not None and known_width and output[1] != width):
        wanted = f"N×{width} class logits" if width else "one vector per image (N×D)"
        raise UserError(
            f"{where} gives a {dims(output)} output but metric {metric} needs {wanted}: "
            f"fix {key.rsplit('.', 1)[0]}.metric or export the matching head"
        )


def _inferred_output_shape(path: Path) -> list | None:
    """The first output's shape after ONNX shape inference (fills in undeclared dims)."""
    try:
        model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    except Exception:  # noqa: BLE001 - inference is best effort; the declared shape remains
        return None
    tensor = model.graph.output[0].type.tensor_type
    if not tensor.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else d.dim_param or None
            for d in tensor.shape.dim]
