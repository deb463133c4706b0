"""What an ONNX file declares: its inputs, outputs and opset, read with the onnx package only.

Kept apart from chipbench.export, which imports torch: the config check of a bring-your-own
model (chipbench.imported) runs on every parse of the Snakefile, where a torch import would
cost seconds.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from chipbench.errors import UserError

#: The image every model takes: C×H×W of a CIFAR-10 image.
INPUT_SHAPE = (3, 32, 32)


def _value_info(value: onnx.ValueInfoProto) -> dict:
    tensor = value.type.tensor_type
    shape: list[int | str | None] = []
    for dim in tensor.shape.dim:
        if dim.HasField("dim_value"):
            shape.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            shape.append(dim.dim_param)
        else:
            shape.append(None)
    try:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
    except (KeyError, TypeError, ValueError):
        dtype = onnx.TensorProto.DataType.Name(tensor.elem_type).lower()
    return {"name": value.name, "shape": shape, "dtype": dtype}


def onnx_io_summary(path: Path | str) -> dict:
    """Input/output names, dtypes and shapes (symbolic dims as strings) and the ONNX opset."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"ONNX model {path} does not exist: fix the path")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # a protobuf DecodeError, or anything else onnx rejects
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"{path} is not an ONNX model ({first}): pass a .onnx file written by an ONNX exporter"
        ) from None
    if not proto.graph.output:
        raise UserError(
            f"{path} is not an ONNX model (the graph has no outputs): "
            "pass a .onnx file written by an ONNX exporter"
        )
    initializers = {t.name for t in proto.graph.initializer}
    opset = next(
        (int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), None
    )
    return {
        "inputs": [_value_info(v) for v in proto.graph.input if v.name not in initializers],
        "outputs": [_value_info(v) for v in proto.graph.output],
        "opset": opset,
        "ir_version": int(proto.ir_version),
        "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
    }
