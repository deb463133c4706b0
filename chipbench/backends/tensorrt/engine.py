"""TensorRT engine build: the settings as plain data (`builder_config`, tested without
TensorRT), the INT8 entropy calibrator, and the build itself through the TensorRT Python API."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from chipbench.backends.tensorrt.cuda import open_cuda
from chipbench.errors import UserError

PRECISIONS = ("fp32", "fp16", "int8")
TRT_HINT = "pip install tensorrt (a build matching the NVIDIA driver's CUDA version)"


def builder_config(
    precision: str,
    batch_size: int,
    workspace_mb: int = 1024,
    input_name: str = "input",
    input_chw: tuple[int, int, int] = (3, 32, 32),
    calibration=None,
    int8_fallback: str = "fp16",
    calibration_cache=None,
) -> dict:
    """Everything the engine build sets, as data.

    * ``flags``: `trt.BuilderFlag` members set — fp32: none; fp16: ``FP16``; int8: ``INT8``
      plus ``FP16`` when `int8_fallback` is fp16 (layers without INT8 kernels then run fp16,
      as ``trtexec --int8 --fp16``), ``INT8`` alone when it is fp32.
    * ``clear_flags``: fp32 clears ``TF32`` (on by default on Ampere and later GPUs), so the
      fp32 column really is fp32.
    * ``workspace_bytes``: the WORKSPACE memory-pool limit.
    * ``explicit_batch`` and ``profile``: one optimisation profile, min = opt = max =
      (N, C, H, W), for the input `input_name` (the ONNX batch dimension is symbolic).
    * ``calibrator`` (int8): IInt8EntropyCalibrator2 over the calibration .npy (training
      images, never the test set), batches of N, with its cache file.
    """
    if precision not in PRECISIONS:
        raise UserError(
            f"precision {precision!r} is not supported by TensorRT here: use one of {', '.join(PRECISIONS)}"
        )
    n = int(batch_size)
    if n < 1:
        raise UserError(f"batch size {batch_size} is not positive: use a batch size ≥ 1")
    if int(workspace_mb) < 1:
        raise UserError(f"workspace_mb is {workspace_mb}: set a positive workspace in the chip's settings")
    if int8_fallback not in ("fp16", "fp32"):
        raise UserError(f"int8_fallback {int8_fallback!r} is not known: use fp16 or fp32")
    shape = (n, *(int(x) for x in input_chw))
    flags = {"fp32": [], "fp16": ["FP16"], "int8": ["INT8"] + (["FP16"] if int8_fallback == "fp16" else [])}
    calibrator = None
    if precision == "int8":
        if calibration is None:
            raise UserError("INT8 needs the calibration set: the compile rule gave none")
        calibrator = {
            "class": "IInt8EntropyCalibrator2",
            "data": str(calibration),
            "batch_size": n,
            "cache_file": str(calibration_cache) if calibration_cache else None,
        }
    return {
        "precision": precision,
        "flags": flags[precision],
        "clear_flags": ["TF32"] if precision == "fp32" else [],
        "workspace_bytes": int(workspace_mb) * 2**20,
        "explicit_batch": True,
        "profile": {"input": input_name, "min": shape, "opt": shape, "max": shape},
        "calibrator": calibrator,
    }


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as error:
        raise UserError(f"tensorrt is not importable ({error}): {TRT_HINT}") from None
    return trt


def make_entropy_calibrator(trt, cuda, data: np.ndarray, batch_size: int, cache_file=None):
    """An IInt8EntropyCalibrator2 feeding `data` (N, C, H, W float32) in batches of `batch_size`.

    Built only when tensorrt imports (the base class comes from it). Whole batches only:
    the last partial batch is not fed.
    """

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.index = 0
            self.batches_fed = 0
            self.buffer = cuda.alloc(int(np.prod(data.shape[1:])) * 4 * batch_size)

        def get_batch_size(self):
            return batch_size

        def get_batch(self, names):
            if self.index + batch_size > len(data):
                return None
            chunk = np.ascontiguousarray(data[self.index:self.index + batch_size], dtype=np.float32)
            cuda.h2d_sync(self.buffer, chunk)
            self.index += batch_size
            self.batches_fed += 1
            return [self.buffer.ptr]

        def read_calibration_cache(self):
            if cache_file and Path(cache_file).is_file():
                return Path(cache_file).read_bytes()
            return None

        def write_calibration_cache(self, cache):
            if cache_file:
                Path(cache_file).write_bytes(bytes(cache))

    return EntropyCalibrator()


def build_engine(onnx_path, engine_path, config: dict, device_id: int = 0, binding: str = "auto") -> dict:
    """Build and write a serialized engine from `onnx_path` with `builder_config` settings."""
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    explicit = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    if config["explicit_batch"] and explicit is not None:  # the only mode (and deprecated) in TRT 10
        flags |= 1 << int(explicit)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise UserError(f"TensorRT cannot parse {onnx_path}: {errors}")
    builder_settings = builder.create_builder_config()
    if hasattr(builder_settings, "set_memory_pool_limit"):
        builder_settings.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, config["workspace_bytes"])
    else:  # TensorRT < 8.4
        builder_settings.max_workspace_size = config["workspace_bytes"]
    for flag in config["flags"]:
        builder_settings.set_flag(getattr(trt.BuilderFlag, flag))
    for flag in config["clear_flags"]:
        if hasattr(trt.BuilderFlag, flag):
            builder_settings.clear_flag(getattr(trt.BuilderFlag, flag))
    profile_spec = config["profile"]
    profile = builder.create_optimization_profile()
    profile.set_shape(profile_spec["input"], profile_spec["min"], profile_spec["opt"], profile_spec["max"])
    builder_settings.add_optimization_profile(profile)
    calibrator = None
    if config["calibrator"]:
        spec = config["calibrator"]
        data = np.load(spec["data"], mmap_mode="r")
        if len(data) < spec["batch_size"]:
            raise UserError(
                f"the calibration set holds {len(data)} images, fewer than one batch of "
                f"{spec['batch_size']}: raise dataset.calibration_images"
            )
        cuda = open_cuda(device_id, binding)
        calibrator = make_entropy_calibrator(trt, cuda, data, spec["batch_size"], spec["cache_file"])
        builder_settings.int8_calibrator = calibrator
        if hasattr(builder_settings, "set_calibration_profile"):
            builder_settings.set_calibration_profile(profile)
    serialized = builder.build_serialized_network(network, builder_settings)
    if serialized is None:
        raise UserError("TensorRT could not build the engine: its messages are in the job log")
    Path(engine_path).write_bytes(bytes(memoryview(serialized)))
    return {"calibration_batches": calibrator.batches_fed if calibrator else None,
            "tensorrt_version": trt.__version__}

