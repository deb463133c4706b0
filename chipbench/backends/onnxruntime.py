"""ONNX Runtime on the host CPU (CPU execution provider): FP32, FP16 and calibrated INT8.

* fp32: the exported ONNX as it is.
* fp16: every float tensor converted to float16 (`chipbench.quantize.convert_fp16`), input and
  output included; the runner casts the float32 batch to float16 and the output back to
  float32, inside the timed call. The CPU EP has float16 kernels for few operators: ONNX
  Runtime inserts Casts around the others and runs them in float32. Compile measures how many
  nodes of the optimised graph actually take float16 tensors and records it (`fp16_note`).
  The inserted Casts also keep most convolutions out of ORT's fast blocked (NCHWc) layout, so
  FP16 here is slower than FP32 (SimCLR, 2 threads: about 5× at batch ≥ 16).
* int8: the calibrated QDQ model of `chipbench.quantize.quantize_int8` (QUInt8 activations,
  per-channel QInt8 weights); ONNX Runtime fuses the QDQ pairs into integer kernels
  (QLinearConv, QGemm, …), which compile records.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from chipbench.backends.base import Availability, Backend, Runner
from chipbench.errors import UserError
from chipbench.tools import link_or_copy

MODEL_FILE = "model.onnx"
IO_DTYPES = {"fp32": "float32", "fp16": "float16", "int8": "float32"}
OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")

# ONNX TensorProto element types of the floats we follow through the optimised graph.
_FLOAT, _FLOAT16 = 1, 10


def session_options(threads: int, graph_optimization: str):
    import onnxruntime as ort

    if graph_optimization not in OPTIMIZATION_LEVELS:
        raise UserError(
            f"graph_optimization {graph_optimization!r} is not known: use one of "
            f"{', '.join(OPTIMIZATION_LEVELS)} in the chip's settings"
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    level = "ORT_DISABLE_ALL" if graph_optimization == "disable" \
        else f"ORT_ENABLE_{graph_optimization.upper()}"
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.log_severity_level = 3  # no warning about serialising a host-specific graph
    return options


def optimized_graph(model_path: Path, threads: int, graph_optimization: str, io_dtype: str):
    """The graph ONNX Runtime actually runs (after its optimisations and inserted Casts).

    Also runs one batch of zeros through the session, so a model that loads but cannot run
    fails here, at compile time. Returns the optimised GraphProto.
    """
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="chipbench-ort-") as scratch:
        options = session_options(threads, graph_optimization)
        options.optimized_model_filepath = str(Path(scratch) / "optimized.onnx")
        try:
            session = ort.InferenceSession(str(model_path), options,
                                           providers=["CPUExecutionProvider"])
            inp = session.get_inputs()[0]
            shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
            output = session.run(None, {inp.name: np.zeros(shape, dtype=io_dtype)})[0]
        except Exception as error:  # noqa: BLE001 - ONNX Runtime raises several types
            text = str(error).strip()
            first = text.splitlines()[0][:300] if text else type(error).__name__
            raise UserError(f"ONNX Runtime cannot run the compiled {model_path.name}: {first}; "
                            "see the job log") from error
        if not np.isfinite(np.asarray(output, dtype=np.float64)).all():
            raise UserError(f"the compiled {model_path.name} gives non-finite outputs on zeros: "
                            "the conversion broke the model")
        return onnx.load(options.optimized_model_filepath).graph


def float_types_of_nodes(graph) -> Counter:
    """How many non-Cast nodes of `graph` compute on float16 and on float32 tensors.

    Element types are propagated from the graph input and initializers: a Cast gives its `to`
    type, any other node the type of its first input of known type.
    """
    types = {t.name: t.data_type for t in graph.initializer}
    for value in list(graph.input) + list(graph.value_info):
        types[value.name] = value.type.tensor_type.elem_type
    counts = Counter()
    for node in graph.node:
        if node.op_type == "Cast":
            to = next(a.i for a in node.attribute if a.name == "to")
            types.update({name: to for name in node.output})
            continue
        known = [types[name] for name in node.input if name in types]
        elem = known[0] if known else 0
        types.update({name: elem for name in node.output if name not in types})
        counts[{_FLOAT16: "float16", _FLOAT: "float32"}.get(elem, "other")] += 1
    return counts


def fp16_execution(graph) -> dict:
    """What the CPU EP makes of an FP16 model: where the arithmetic really happens."""
    counts = float_types_of_nodes(graph)
    casts = sum(n.op_type == "Cast" for n in graph.node)
    inserted = sum(n.op_type == "Cast" and n.name.startswith("InsertedPrecisionFreeCast")
                   for n in graph.node)
    convs = [n for n in graph.node if n.op_type in ("Conv", "FusedConv")]
    blocked = sum(n.domain == "com.microsoft.nchwc" for n in convs)
    computing = counts["float16"] + counts["float32"]
    arithmetic = ("float32" if counts["float16"] == 0 else "mostly float32"
                  if counts["float32"] > counts["float16"] else "mostly float16")
    note = (
        "CPU execution provider: nodes without a float16 CPU kernel run in float32 between Casts "
        f"ONNX Runtime inserts ({inserted} inserted here); after optimisation "
        f"{counts['float32']} of {computing} nodes compute on float32 tensors and "
        f"{counts['float16']} on float16, so this FP16 result shows float16 rounding of the "
        f"weights, input and output with {arithmetic} arithmetic; {blocked} of {len(convs)} "
        "convolutions use ONNX Runtime's blocked NCHWc kernels (the Casts hinder that layout "
        "optimisation), so FP16 speed here is not a float16 speed and can be below FP32's"
    )
    return {
        "nodes_on_float16": counts["float16"],
        "nodes_on_float32": counts["float32"],
        "casts": casts,
        "inserted_casts": inserted,
        "convolutions": len(convs),
        "convolutions_nchwc": blocked,
        "fp16_note": note,
    }


def op_histogram(graph) -> dict:
    return dict(sorted(Counter(node.op_type for node in graph.node).items()))


class OrtRunner(Runner):
    def __init__(self, model_path: Path, threads: int, graph_optimization: str,
                 io_dtype: str = "float32", extra_settings: dict | None = None):
        import onnxruntime as ort

        options = session_options(threads, graph_optimization)
        self._session = ort.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )
        self._input_name = self._session.get_inputs()[0].name
        self._cast = np.dtype(io_dtype) != np.float32
        self._io_dtype = np.dtype(io_dtype)
        self._settings = {
            "provider": "CPUExecutionProvider",
            "intra_op_num_threads": int(threads),
            "inter_op_num_threads": 1,
            "execution_mode": "sequential",
            "graph_optimization_level": graph_optimization,
            "io_dtype": str(self._io_dtype),
        }
        if self._cast:
            self._settings["io_casts"] = (
                f"input float32→{self._io_dtype} and output back to float32 by the runner, "
                "inside every timed call"
            )
        self._settings.update(extra_settings or {})

    def run(self, batch: np.ndarray) -> np.ndarray:
        if self._cast:
            output = self._session.run(None, {self._input_name: batch.astype(self._io_dtype)})[0]
            return output.astype(np.float32)
        return self._session.run(None, {self._input_name: batch})[0]

    def settings(self) -> dict:
        return dict(self._settings)


def runtime_settings(chip: dict, threads: int | None = None) -> tuple[int, str]:
    settings = (chip or {}).get("settings") or {}
    return (int(settings.get("threads") or threads or os.cpu_count() or 1),
            settings.get("graph_optimization") or "all")


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    precisions = ("fp32", "fp16", "int8")
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

    def compile(self, onnx_path, out_dir, precision, batch_size, chip, calibration, model=None):
        onnx_path, out_dir = Path(onnx_path), Path(out_dir)
        if precision not in self.precisions:
            raise UserError(
                f"ONNX Runtime on the CPU cannot run precision {precision!r}: use one of "
                f"{', '.join(self.precisions)} in chips.<name>.precisions"
            )
        target = out_dir / MODEL_FILE
        manifest = {"model": MODEL_FILE, "precision": precision, "io_dtype": IO_DTYPES[precision]}
        if precision == "fp32":
            link_or_copy(onnx_path, target)
            return manifest
        threads, level = runtime_settings(chip)
        if precision == "fp16":
            from chipbench.quantize import convert_fp16

            manifest["conversion"] = convert_fp16(onnx_path, target)
            graph = optimized_graph(target, threads, level, "float16")
            manifest["fp16_execution"] = fp16_execution(graph)
            manifest["fp16_note"] = manifest["fp16_execution"]["fp16_note"]
        else:
            from chipbench.quantize import quantize_int8

            manifest["quantization"] = quantize_int8(onnx_path, target, calibration, chip)
            graph = optimized_graph(target, threads, level, "float32")
        manifest["optimized_graph_ops"] = op_histogram(graph)
        return manifest

    def load(self, compiled_dir, manifest, chip, threads):
        threads, level = runtime_settings(chip, threads)
        extra = {}
        if manifest.get("fp16_note"):
            extra["fp16_note"] = manifest["fp16_note"]
        if manifest.get("quantization"):
            q = manifest["quantization"]
            extra["int8"] = {k: q[k] for k in ("format", "weights", "activations",
                                                "calibrate_method")}
            extra["int8"]["calibration_images"] = q["calibration"]["images"]
        return OrtRunner(
            Path(compiled_dir) / manifest["model"], threads=threads, graph_optimization=level,
            io_dtype=manifest.get("io_dtype", "float32"), extra_settings=extra,
        )


BACKEND = OnnxRuntimeBackend()
