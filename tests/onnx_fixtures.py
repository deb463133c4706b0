"""Tiny hand-made ONNX models for tests of bring-your-own ONNX handling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def tiny_model(path: Path, input_shape=("N", 3, 32, 32), width=10, inputs=1,
               dtype=TensorProto.FLOAT) -> Path:
    """Global average pool -> flatten -> MatMul to `width` values per image."""
    weights = numpy_helper.from_array(np.ones((input_shape[1], width), np.float32), "w")
    graph_inputs = [helper.make_tensor_value_info(f"x{i}", dtype, list(input_shape))
                    for i in range(inputs)]
    nodes = [helper.make_node("GlobalAveragePool", ["x0"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("MatMul", ["flat", "w"], ["y"])]
    graph = helper.make_graph(nodes, "tiny", graph_inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [input_shape[0], width])],
                              [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path
