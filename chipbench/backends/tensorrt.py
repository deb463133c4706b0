"""NVIDIA GPUs through TensorRT: one serialized engine per batch size, timed with CUDA events.

* compile: the TensorRT Python API parses the ONNX model and builds a serialized engine with
  the settings `builder_config` describes (FP16 / INT8 flags, workspace limit, one explicit
  batch profile min = opt = max = (N, 3, 32, 32), an IInt8EntropyCalibrator2 on the
  calibration images for INT8). `builder_config` is plain data so the settings are tested
  without TensorRT.
* run: like trtexec, each iteration records CUDA events around the host→device copy, the
  enqueue and the device→host copy; "GPU compute time" (enqueue only) is the timed quantity
  (comparable with ais_bench's NPU compute time) and host latency (H2D + compute + D2H) is
  reported beside it.

Device memory, streams and events go through cuda-python, pycuda or a CUDA build of torch,
whichever imports (settings.cuda_binding picks one). Nothing imports at module import time.
"""

from __future__ import annotations

import atexit
import ctypes
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from chipbench import timing
from chipbench.backends.base import Availability, Backend, Runner
from chipbench.errors import UserError

__all__ = ["BACKEND", "builder_config", "build_engine", "cuda_device_availability", "cuda_device_count", "open_cuda"]

PRECISIONS = ("fp32", "fp16", "int8")
CUDA_BINDINGS = ("cuda-python", "pycuda", "torch")
TRT_HINT = "pip install tensorrt (a build matching the NVIDIA driver's CUDA version)"
BINDING_HINT = "pip install cuda-python (or pycuda)"


# --------------------------------------------------------------------------------------------
# Builder settings (plain data)
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# CUDA through whichever Python binding is installed
# --------------------------------------------------------------------------------------------


def _import_cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python ≥ 12.6 (only form in 13)
    except ImportError:
        from cuda import cudart  # older cuda-python
    return cudart


def _binding_importable(name: str) -> bool:
    try:
        if name == "cuda-python":
            _import_cudart()
        elif name == "pycuda":
            import pycuda.driver  # noqa: F401
        elif name == "torch":
            import torch

            return bool(torch.cuda.is_available())
        return True
    except Exception:  # noqa: BLE001 - any import failure means "not usable"
        return False


def cuda_binding(preference: str | None = "auto") -> str | None:
    """The CUDA Python binding to use: `preference` if importable, else the first that is."""
    if preference and preference != "auto":
        if preference not in CUDA_BINDINGS:
            raise UserError(f"cuda_binding {preference!r} is not known: use auto or {', '.join(CUDA_BINDINGS)}")
        return preference if _binding_importable(preference) else None
    return next((b for b in CUDA_BINDINGS if _binding_importable(b)), None)


def cuda_device_availability(device_id: int) -> Availability:
    """Whether CUDA device `device_id` is visible."""
    count, how = cuda_device_count()
    if count == 0:
        return Availability(False, f"no CUDA device visible ({how}): check the NVIDIA driver with nvidia-smi")
    if device_id >= count:
        return Availability(False, f"CUDA device {device_id} does not exist ({count} visible, {how})")
    return Availability(True)


def cuda_device_count() -> tuple[int, str]:
    """(number of CUDA devices, how it was found). 0 when none is visible or nothing can tell.

    Tries torch.cuda, then cuda-python, then pycuda, then ``nvidia-smi -L``.
    """
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.device_count(), "torch.cuda"
    except Exception:  # noqa: BLE001
        pass
    try:
        cudart = _import_cudart()
        err, count = cudart.cudaGetDeviceCount()
        if int(err) == 0:
            return int(count), "cuda-python cudaGetDeviceCount"
        return 0, f"cuda-python cudaGetDeviceCount error {int(err)}"
    except Exception:  # noqa: BLE001
        pass
    try:
        import pycuda.driver as drv

        drv.init()
        return drv.Device.count(), "pycuda"
    except Exception:  # noqa: BLE001
        pass
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=15)
            if out.returncode == 0:
                return sum(line.startswith("GPU ") for line in out.stdout.splitlines()), "nvidia-smi -L"
        except (OSError, subprocess.TimeoutExpired):
            pass
    return 0, "no CUDA device found by torch.cuda, cuda-python, pycuda or nvidia-smi"


class DeviceBuffer:
    def __init__(self, ptr: int, nbytes: int, keep=None):
        self.ptr = int(ptr)
        self.nbytes = int(nbytes)
        self.keep = keep  # the binding's own allocation object, kept alive


class _CudaPython:
    name = "cuda-python"

    def __init__(self, device_id: int):
        self.rt = _import_cudart()
        self._check(self.rt.cudaSetDevice(int(device_id)), "cudaSetDevice")
        self._pinned = []

    def _check(self, result, what):
        err = result[0]
        if int(err) != 0:
            raise RuntimeError(f"{what} failed: CUDA error {int(err)} ({err})")
        return result[1] if len(result) == 2 else result[1:]

    def alloc(self, nbytes):
        return DeviceBuffer(self._check(self.rt.cudaMalloc(int(nbytes)), "cudaMalloc"), nbytes)

    def pinned(self, shape, dtype):
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        ptr = self._check(self.rt.cudaMallocHost(nbytes), "cudaMallocHost")
        self._pinned.append(ptr)
        raw = (ctypes.c_byte * nbytes).from_address(int(ptr))
        return np.frombuffer(raw, dtype=dtype).reshape(shape)

    def stream(self):
        return self._check(self.rt.cudaStreamCreate(), "cudaStreamCreate")

    def stream_handle(self, stream) -> int:
        return int(stream)

    def h2d(self, buffer, array, stream):
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.rt.cudaMemcpyAsync(buffer.ptr, array.ctypes.data, array.nbytes, kind, stream),
                    "cudaMemcpyAsync H2D")

    def d2h(self, array, buffer, stream):
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self.rt.cudaMemcpyAsync(array.ctypes.data, buffer.ptr, array.nbytes, kind, stream),
                    "cudaMemcpyAsync D2H")

    def event(self):
        return self._check(self.rt.cudaEventCreate(), "cudaEventCreate")

    def record(self, event, stream):
        self._check(self.rt.cudaEventRecord(event, stream), "cudaEventRecord")

    def synchronize(self, event):
        self._check(self.rt.cudaEventSynchronize(event), "cudaEventSynchronize")

    def elapsed_ms(self, start, end) -> float:
        return float(self._check(self.rt.cudaEventElapsedTime(start, end), "cudaEventElapsedTime"))

    def h2d_sync(self, buffer, array):
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.rt.cudaMemcpy(buffer.ptr, array.ctypes.data, array.nbytes, kind), "cudaMemcpy")


class _PyCuda:
    name = "pycuda"

    def __init__(self, device_id: int):
        import pycuda.driver as drv

        self.drv = drv
        drv.init()
        self.context = drv.Device(int(device_id)).make_context()
        atexit.register(self.context.pop)  # pycuda warns about a context left on the stack

    def alloc(self, nbytes):
        allocation = self.drv.mem_alloc(int(nbytes))
        return DeviceBuffer(int(allocation), nbytes, keep=allocation)

    def pinned(self, shape, dtype):
        return self.drv.pagelocked_empty(tuple(shape), np.dtype(dtype))

    def stream(self):
        return self.drv.Stream()

    def stream_handle(self, stream) -> int:
        return int(stream.handle)

    def h2d(self, buffer, array, stream):
        self.drv.memcpy_htod_async(buffer.ptr, array, stream)

    def d2h(self, array, buffer, stream):
        self.drv.memcpy_dtoh_async(array, buffer.ptr, stream)

    def event(self):
        return self.drv.Event()

    def record(self, event, stream):
        event.record(stream)

    def synchronize(self, event):
        event.synchronize()

    def elapsed_ms(self, start, end) -> float:
        return float(end.time_since(start))

    def h2d_sync(self, buffer, array):
        self.drv.memcpy_htod(buffer.ptr, array)


class _Torch:
    name = "torch"

    def __init__(self, device_id: int):
        import torch

        self.torch = torch
        self.device = torch.device("cuda", int(device_id))
        torch.cuda.set_device(self.device)

    def alloc(self, nbytes):
        tensor = self.torch.empty(int(nbytes), dtype=self.torch.uint8, device=self.device)
        return DeviceBuffer(tensor.data_ptr(), nbytes, keep=tensor)

    def pinned(self, shape, dtype):
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        host = self.torch.empty(nbytes, dtype=self.torch.uint8, pin_memory=True)
        array = host.numpy().view(np.dtype(dtype)).reshape(shape)
        return array

    def stream(self):
        return self.torch.cuda.Stream(device=self.device)

    def stream_handle(self, stream) -> int:
        return int(stream.cuda_stream)

    def _bytes(self, array):
        return self.torch.from_numpy(array.reshape(-1).view(np.uint8))

    def h2d(self, buffer, array, stream):
        with self.torch.cuda.stream(stream):
            buffer.keep[: array.nbytes].copy_(self._bytes(array), non_blocking=True)

    def d2h(self, array, buffer, stream):
        with self.torch.cuda.stream(stream):
            self._bytes(array).copy_(buffer.keep[: array.nbytes], non_blocking=True)

    def event(self):
        return self.torch.cuda.Event(enable_timing=True)

    def record(self, event, stream):
        event.record(stream)

    def synchronize(self, event):
        event.synchronize()

    def elapsed_ms(self, start, end) -> float:
        return float(start.elapsed_time(end))

    def h2d_sync(self, buffer, array):
        buffer.keep[: array.nbytes].copy_(self._bytes(np.ascontiguousarray(array)))
        self.torch.cuda.synchronize(self.device)


def open_cuda(device_id: int = 0, preference: str | None = "auto"):
    """A small CUDA API (buffers, pinned host arrays, streams, events) on `device_id`."""
    binding = cuda_binding(preference)
    if binding is None:
        raise UserError(f"no CUDA Python binding imports: {BINDING_HINT}")
    return {"cuda-python": _CudaPython, "pycuda": _PyCuda, "torch": _Torch}[binding](device_id)


# --------------------------------------------------------------------------------------------
# Engine build
# --------------------------------------------------------------------------------------------


def _import_tensorrt():
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
    trt = _import_tensorrt()
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


# --------------------------------------------------------------------------------------------
# Runner
# --------------------------------------------------------------------------------------------


class TensorRTRunner(Runner):
    """A static-batch engine on one GPU; pinned host buffers, one stream, four events."""

    def __init__(self, engine_path, batch_size: int, device_id: int = 0, binding: str = "auto",
                 info: dict | None = None):
        trt = _import_tensorrt()
        self.batch_size = int(batch_size)
        self.device_id = int(device_id)
        self.info = dict(info or {})
        self.cuda = open_cuda(device_id, binding)
        self.trt_version = trt.__version__
        logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(logger)
        self.engine = self._runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self.engine is None:
            raise UserError(f"TensorRT cannot load {engine_path}: rebuild it with this TensorRT version")
        self.context = self.engine.create_execution_context()
        self.stream = self.cuda.stream()
        self.events = [self.cuda.event() for _ in range(4)]
        self.inputs, self.outputs = [], []  # (name or binding index, host array, device buffer)
        self._v3 = hasattr(self.engine, "num_io_tensors")
        if self._v3:
            for i in range(self.engine.num_io_tensors):
                name = self.engine.get_tensor_name(i)
                is_input = self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
                if is_input and -1 in tuple(self.engine.get_tensor_shape(name)):
                    shape = (self.batch_size, *tuple(self.engine.get_tensor_shape(name))[1:])
                    self.context.set_input_shape(name, shape)
            for i in range(self.engine.num_io_tensors):
                name = self.engine.get_tensor_name(i)
                shape = tuple(self.context.get_tensor_shape(name))
                dtype = trt.nptype(self.engine.get_tensor_dtype(name))
                self._add(name, shape, dtype, self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT)
                self.context.set_tensor_address(name, self._last_buffer.ptr)
        else:  # TensorRT 8.0 - 8.4: bindings
            self.bindings = [0] * self.engine.num_bindings
            for i in range(self.engine.num_bindings):
                if self.engine.binding_is_input(i) and -1 in tuple(self.engine.get_binding_shape(i)):
                    self.context.set_binding_shape(i, (self.batch_size, *tuple(self.engine.get_binding_shape(i))[1:]))
            for i in range(self.engine.num_bindings):
                shape = tuple(self.context.get_binding_shape(i))
                dtype = trt.nptype(self.engine.get_binding_dtype(i))
                self._add(i, shape, dtype, self.engine.binding_is_input(i))
                self.bindings[i] = self._last_buffer.ptr
        if len(self.inputs) != 1 or not self.outputs:
            raise UserError("the engine must have one input and at least one output")
        self.benchmark_extra: dict = {}

    def _add(self, key, shape, dtype, is_input):
        host = self.cuda.pinned(shape, dtype)
        self._last_buffer = self.cuda.alloc(host.nbytes)
        (self.inputs if is_input else self.outputs).append((key, host, self._last_buffer))

    def settings(self) -> dict:
        return {
            "device_id": self.device_id,
            "cuda_binding": self.cuda.name,
            "tensorrt_version": self.trt_version,
            "timed_quantity": "GPU compute time (CUDA events around the enqueue); host latency "
                              "(H2D + compute + D2H) reported apart, as trtexec",
            **{k: v for k, v in self.info.items() if v is not None},
        }

    def _iteration(self, batch: np.ndarray) -> tuple[float, float, float, float]:
        """(h2d, compute, d2h, host latency) in ms for one batch."""
        _, in_host, in_dev = self.inputs[0]
        np.copyto(in_host, np.asarray(batch, dtype=in_host.dtype).reshape(in_host.shape))
        e0, e1, e2, e3 = self.events
        handle = self.cuda.stream_handle(self.stream)
        self.cuda.record(e0, self.stream)
        self.cuda.h2d(in_dev, in_host, self.stream)
        self.cuda.record(e1, self.stream)
        ok = (self.context.execute_async_v3(handle) if self._v3
              else self.context.execute_async_v2(self.bindings, handle))
        if ok is False:
            raise RuntimeError("TensorRT enqueue failed")
        self.cuda.record(e2, self.stream)
        for _, host, dev in self.outputs:
            self.cuda.d2h(host, dev, self.stream)
        self.cuda.record(e3, self.stream)
        self.cuda.synchronize(e3)
        elapsed = self.cuda.elapsed_ms
        return elapsed(e0, e1), elapsed(e1, e2), elapsed(e2, e3), elapsed(e0, e3)

    def run(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) != self.batch_size:
            raise UserError(f"the engine takes batches of {self.batch_size}, not {len(batch)}")
        self._iteration(batch)
        return self.outputs[0][1].copy()

    def benchmark(self, batch: np.ndarray, protocol: dict) -> np.ndarray:
        """GPU compute time per iteration (ms) under the core protocol (summed compute time
        counts towards min_seconds); H2D, D2H and host latency go to `benchmark_extra`."""
        for _ in range(int(protocol.get("warmup_iterations", 0))):
            self._iteration(batch)
        minimum = int(protocol.get("min_iterations", 1))
        seconds = float(protocol.get("min_seconds", 0.0))
        cap = protocol.get("max_iterations")
        rows = []
        while True:
            if cap is not None and len(rows) >= int(cap):
                break
            if len(rows) >= minimum and sum(r[1] for r in rows) / 1000.0 >= seconds:
                break
            rows.append(self._iteration(batch))
        h2d, compute, d2h, host = (np.asarray(col, dtype=np.float64) for col in zip(*rows))
        host_summary = timing.summarize(host, self.batch_size)
        self.benchmark_extra = {
            "h2d_ms": float(h2d.mean()),
            "d2h_ms": float(d2h.mean()),
            "host_latency_ms": host_summary["latency_ms"],
            "host_throughput_fps": host_summary["throughput_fps"],
        }
        return compute


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
        return cuda_device_availability(int(settings.get("device_id") or 0))

    def version(self) -> str:
        try:
            import tensorrt

            return f"TensorRT {tensorrt.__version__}"
        except ImportError:
            return "TensorRT not installed"

    def compile(self, onnx_path, out_dir, precision, batch_size, chip, calibration):
        from chipbench.backends.ascend import onnx_input

        if not batch_size:
            raise UserError("a TensorRT engine here serves one batch size: the compile rule gave none")
        settings = chip.get("settings") or {}
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        input_name, chw, static = onnx_input(onnx_path)
        if static is not None and static != int(batch_size):
            raise UserError(
                f"{onnx_path} has a fixed batch size {static}, not {batch_size}: export it with a symbolic batch dimension"
            )
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
