"""Reduced-precision ONNX models shared by the CPU backends.

* :func:`convert_fp16`: every float32 tensor of the graph (weights, activations, graph input and
  output) to float16 with onnxconverter-common. ``keep_io_types=False`` on purpose: with
  ``keep_io_types=True`` the converted model fails to load when an intermediate tensor is also a
  graph output, so the runner casts the input to float16 and the output back.
* :func:`quantize_int8`: calibrated static INT8 in QDQ format with ONNX Runtime's
  ``quantize_static``: per-channel signed weights (QInt8), **unsigned activations (QUInt8)**
  (signed activations are slower than FP32 on ONNX Runtime's CPU EP and OpenVINO refuses
  them). The calibration images come from one ``.npy`` file (training images preprocessed
  exactly like the inference input) and from nowhere else:
  :class:`NpyCalibrationReader` feeds that file, in order, and records what it fed.

ONNX Runtime runs the QDQ file directly; OpenVINO reads the same file and runs it as INT8, so
both backends quantise identically.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader

from chipbench.errors import UserError

__all__ = [
    "CALIBRATE_METHODS",
    "INT8_DEFAULTS",
    "NpyCalibrationReader",
    "convert_fp16",
    "int8_settings",
    "quantize_int8",
]

#: Calibration methods a chip's ``settings.calibrate_method`` may name (ONNX Runtime's
#: ``CalibrationMethod`` members, lower-cased).
CALIBRATE_METHODS = ("minmax", "entropy", "percentile")

#: INT8 settings of a chip (``chips.<name>.settings``) and their defaults.
INT8_DEFAULTS = {
    "calibrate_method": "minmax",     # minmax, entropy or percentile
    "calibration_images": None,       # images of the calibration file to use; None = all of them
    "calibration_batch_size": 16,     # images per calibration batch (MinMax ranges ignore it)
    "reduce_range": False,            # 7-bit weights (for CPUs without VNNI, where u8s8 saturates)
}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def input_of(model_path: Path) -> tuple[str, list]:
    """Name and shape (ints or symbolic names) of the model's only graph input."""
    graph = onnx.load(str(model_path), load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise UserError(
            f"{model_path} has {len(inputs)} inputs: the CPU backends take models with one "
            "image input (N×3×H×W)"
        )
    dims = inputs[0].type.tensor_type.shape.dim
    return inputs[0].name, [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]


def int8_settings(chip: dict) -> dict:
    """The chip's INT8 settings over :data:`INT8_DEFAULTS`, checked."""
    given = (chip or {}).get("settings") or {}
    settings = {k: v if given.get(k) is None else given[k] for k, v in INT8_DEFAULTS.items()}
    method = str(settings["calibrate_method"]).lower()
    if method not in CALIBRATE_METHODS:
        raise UserError(
            f"calibrate_method {settings['calibrate_method']!r} is not known: use one of "
            f"{', '.join(CALIBRATE_METHODS)} in the chip's settings"
        )
    settings["calibrate_method"] = method
    for key in ("calibration_images", "calibration_batch_size"):
        value = settings[key]
        if value is not None and (not isinstance(value, int) or value < 1):
            raise UserError(f"{key} is {value!r}: use a positive integer in the chip's settings")
    settings["reduce_range"] = bool(settings["reduce_range"])
    return settings


class NpyCalibrationReader(CalibrationDataReader):
    """Feeds the images of ONE calibration ``.npy`` file, in file order, in batches.

    ``fed_images`` and ``fed_batches`` count what was handed to the calibrator, so the manifest
    records exactly how much of which file calibrated the model.
    """

    def __init__(self, path: Path, input_name: str, batch_size: int,
                 limit: int | None = None, image_shape: tuple | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"calibration file {self.path} does not exist: rerun the "
                            "preprocess_calibration_set rule")
        self._data = np.load(self.path, mmap_mode="r")
        if self._data.ndim != 4 or len(self._data) == 0:
            raise UserError(
                f"calibration file {self.path} holds an array of shape {self._data.shape}: "
                "expected a non-empty N×C×H×W batch of preprocessed images"
            )
        if image_shape is not None and tuple(self._data.shape[1:]) != tuple(image_shape):
            raise UserError(
                f"calibration images are {tuple(self._data.shape[1:])}, the model takes "
                f"{tuple(image_shape)}: preprocess the calibration set like the model's input"
            )
        self.input_name = input_name
        self.batch_size = int(batch_size)
        self.count = len(self._data) if limit is None else min(int(limit), len(self._data))
        self.fed_images = 0
        self.fed_batches = 0
        self._next = 0

    def __len__(self) -> int:
        return -(-self.count // self.batch_size)

    def get_next(self) -> dict | None:
        if self._next >= self.count:
            return None
        stop = min(self._next + self.batch_size, self.count)
        batch = np.ascontiguousarray(self._data[self._next : stop], dtype=np.float32)
        self._next = stop
        self.fed_images += len(batch)
        self.fed_batches += 1
        return {self.input_name: batch}

    def rewind(self) -> None:
        self._next = 0


def quantize_int8(onnx_path: Path, out_path: Path, calibration: Path | None, chip: dict) -> dict:
    """Write the calibrated QDQ INT8 model of ``onnx_path`` to ``out_path``; return its record.

    Shape inference and ONNX-level optimisation first (``quant_pre_process``), then
    ``quantize_static``: QDQ, per-channel QInt8 weights, QUInt8 activations, ranges from the
    images of ``calibration`` only (method and count from the chip's settings).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if calibration is None:
        raise UserError(
            "INT8 needs the calibration set (results/data/<model>/calibration_inputs.npy): the "
            "compile rule gave none; pass it for precision int8"
        )
    settings = int8_settings(chip)
    onnx_path, out_path, calibration = Path(onnx_path), Path(out_path), Path(calibration)
    input_name, shape = input_of(onnx_path)
    image_shape = tuple(shape[1:]) if all(isinstance(d, int) and d > 0 for d in shape[1:]) else None
    reader = NpyCalibrationReader(calibration, input_name, settings["calibration_batch_size"],
                                  settings["calibration_images"], image_shape)
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[settings["calibrate_method"]]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".quantize.", dir=out_path.parent) as scratch:
        prepared = Path(scratch) / "preprocessed.onnx"
        quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=False)
        quantize_static(
            str(prepared), str(out_path), reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=settings["reduce_range"],
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=method,
        )
    if reader.fed_images == 0:
        raise UserError(
            f"calibration file {calibration} fed no images: rebuild the calibration set"
        )
    graph = onnx.load(str(out_path), load_external_data=False).graph
    ops = Counter(node.op_type for node in graph.node)
    return {
        "tool": "onnxruntime.quantization.quantize_static",
        "format": "QDQ",
        "weights": "int8 (QInt8), per channel, symmetric",
        "activations": "uint8 (QUInt8), per tensor, asymmetric",
        "per_channel": True,
        "reduce_range": settings["reduce_range"],
        "calibrate_method": settings["calibrate_method"],
        "preprocess": "quant_pre_process (symbolic shape inference + ONNX optimisation)",
        "calibration": {
            "file": str(calibration),
            "sha256": sha256_of(calibration),
            "images_in_file": int(len(reader._data)),
            "images": reader.fed_images,
            "batches": reader.fed_batches,
            "batch_size": reader.batch_size,
        },
        "quantize_linear_nodes": ops.get("QuantizeLinear", 0),
        "dequantize_linear_nodes": ops.get("DequantizeLinear", 0),
    }


def convert_fp16(onnx_path: Path, out_path: Path) -> dict:
    """Write ``onnx_path`` with every float32 tensor in float16 to ``out_path``; return its record.

    Graph input and output become float16 too (``keep_io_types=False``): callers cast the input
    to float16 and the output back to float32.
    """
    import warnings

    import onnxconverter_common
    from onnxconverter_common import float16

    model = onnx.load(str(onnx_path))
    with warnings.catch_warnings(record=True) as caught:
        # One warning per weight value outside float16's range (clamped to ±1e-7 / ±1e4).
        warnings.simplefilter("always")
        converted = float16.convert_float_to_float16(model, keep_io_types=False)
    clamped = sum("truncated" in str(w.message) for w in caught)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(converted, str(out_path))
    onnx.checker.check_model(str(out_path))
    return {
        "tool": f"onnxconverter-common {onnxconverter_common.__version__} "
                "float16.convert_float_to_float16",
        "keep_io_types": False,
        "io_dtype": "float16",
        "weight_values_clamped_to_fp16_range": clamped,
    }
