"""TensorRT and ONNX Runtime GPU backends without a GPU: the exact builder settings, the
build and timing code against recording stand-ins of the TensorRT/CUDA APIs, and honest
"not on this host" reasons."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import yaml

from chipbench import devices
from chipbench.backends import onnxruntime_gpu
from chipbench.backends.tensorrt import BACKEND, backend
from chipbench.backends.tensorrt import cuda as cuda_api
from chipbench.backends.tensorrt import engine as trt_engine
from chipbench.backends.tensorrt import runner as trt_runner_module
from chipbench.backends.tensorrt.cuda import DeviceBuffer
from chipbench.backends.tensorrt.engine import builder_config
from chipbench.errors import UserError

REPO = Path(__file__).resolve().parent.parent
CHIPS = yaml.safe_load((REPO / "resources" / "chips.yaml").read_text())


def importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def ort_has_cuda() -> bool:
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


# These check the honest "not on this host" answers of a host without a GPU stack (CI's);
# on a GPU host they do not apply.
no_tensorrt = pytest.mark.skipif(importable("tensorrt"), reason="tensorrt is installed here")
no_cuda = pytest.mark.skipif(devices.cuda_device_count()[0] > 0 or importable("cuda") or importable("pycuda"),
                             reason="a CUDA binding or device is present here")
no_ort_gpu = pytest.mark.skipif(ort_has_cuda(), reason="onnxruntime-gpu is installed here")


# ---------------------------------------------------------------------------- builder settings


@pytest.mark.parametrize("batch", [1, 4, 8, 16, 32, 64])
def test_builder_config_fp16(batch):
    assert builder_config("fp16", batch, 1024) == {
        "precision": "fp16",
        "flags": ["FP16"],
        "clear_flags": [],
        "workspace_bytes": 1024 * 2**20,
        "explicit_batch": True,
        "profile": {"input": "input", "min": (batch, 3, 32, 32), "opt": (batch, 3, 32, 32),
                    "max": (batch, 3, 32, 32)},
        "calibrator": None,
    }


def test_builder_config_fp32_clears_tf32():
    config = builder_config("fp32", 8, 512)
    assert config["flags"] == [] and config["clear_flags"] == ["TF32"]
    assert config["workspace_bytes"] == 512 * 2**20 and config["calibrator"] is None


def test_builder_config_int8_entropy_calibrator_on_calibration_set():
    config = builder_config("int8", 32, 1024, calibration="/d/calibration_inputs.npy",
                            calibration_cache="/c/calibration.cache")
    assert config["flags"] == ["INT8", "FP16"] and config["clear_flags"] == []
    assert config["calibrator"] == {
        "class": "IInt8EntropyCalibrator2",
        "data": "/d/calibration_inputs.npy",
        "batch_size": 32,
        "cache_file": "/c/calibration.cache",
    }
    assert config["profile"]["min"] == config["profile"]["max"] == (32, 3, 32, 32)
    assert builder_config("int8", 1, 64, calibration="c.npy", int8_fallback="fp32")["flags"] == ["INT8"]


def test_builder_config_rejects_what_it_cannot_build():
    with pytest.raises(UserError, match="calibration set"):
        builder_config("int8", 8, 1024)
    with pytest.raises(UserError, match="bf16"):
        builder_config("bf16", 8, 1024)
    with pytest.raises(UserError, match="int8_fallback"):
        builder_config("int8", 8, 1024, calibration="c.npy", int8_fallback="int4")
    with pytest.raises(UserError, match="batch size 0"):
        builder_config("fp16", 0, 1024)


# ---------------------------------------------------------------------------- availability


def test_presets():
    assert CHIPS["t4"]["backend"] == "tensorrt" and CHIPS["t4"]["device"] == "cuda0"
    assert CHIPS["t4"]["precisions"] == ["fp16"] and CHIPS["t4"]["label"] == "T4"
    assert CHIPS["t4_ort"]["backend"] == "onnxruntime_gpu" and CHIPS["t4_ort"]["device"] == "cuda0"
    assert BACKEND.static_batch and set(BACKEND.precisions) == {"fp32", "fp16", "int8"}


@no_tensorrt
def test_tensorrt_unavailable_here_says_why():
    result = BACKEND.availability(CHIPS["t4"])
    assert result.ok is False
    assert result.reason.startswith("tensorrt is not importable (No module named 'tensorrt')")
    assert "pip install tensorrt" in result.reason


def test_tensorrt_availability_progresses(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))
    monkeypatch.setattr(backend, "cuda_binding", lambda preference="auto": None)
    assert BACKEND.availability(CHIPS["t4"]).reason.startswith(
        "no CUDA Python binding imports (cuda-python, pycuda or CUDA torch): pip install cuda-python")
    monkeypatch.setattr(backend, "cuda_binding", lambda preference="auto": "cuda-python")
    monkeypatch.setattr(devices, "cuda_device_count", lambda: (0, "nvidia-smi -L"))
    assert BACKEND.availability(CHIPS["t4"]).reason == (
        "no CUDA device visible (nvidia-smi -L): check the NVIDIA driver with nvidia-smi")
    monkeypatch.setattr(devices, "cuda_device_count", lambda: (1, "torch.cuda"))
    assert BACKEND.availability(CHIPS["t4"]).ok
    t4_on_1 = {**CHIPS["t4"], "settings": {**CHIPS["t4"]["settings"], "device_id": 1}}
    assert BACKEND.availability(t4_on_1).reason == "CUDA device 1 does not exist (1 visible, torch.cuda)"


@no_cuda
def test_no_cuda_binding_or_device_on_this_host():
    assert cuda_api.cuda_binding("auto") is None
    count, how = devices.cuda_device_count()
    assert count == 0 and how
    with pytest.raises(UserError, match="no CUDA Python binding imports"):
        cuda_api.open_cuda(0)
    with pytest.raises(UserError, match="cuda_binding 'cupy' is not known"):
        cuda_api.cuda_binding("cupy")


@no_ort_gpu
def test_onnxruntime_gpu_unavailable_here_says_why():
    result = onnxruntime_gpu.BACKEND.availability(CHIPS["t4_ort"])
    assert result.ok is False
    assert result.reason.startswith("onnxruntime has no CUDAExecutionProvider (available: ")
    assert "CPUExecutionProvider" in result.reason and "pip install onnxruntime-gpu" in result.reason
    trt_ep = {**CHIPS["t4_ort"], "settings": {"provider": "tensorrt"}}
    assert "no TensorrtExecutionProvider" in onnxruntime_gpu.BACKEND.availability(trt_ep).reason


def test_onnxruntime_gpu_availability_checks_the_device(monkeypatch):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(devices, "cuda_device_count", lambda: (0, "nvidia-smi -L"))
    assert onnxruntime_gpu.BACKEND.availability(CHIPS["t4_ort"]).reason.startswith("no CUDA device visible")
    monkeypatch.setattr(devices, "cuda_device_count", lambda: (2, "torch.cuda"))
    assert onnxruntime_gpu.BACKEND.availability(CHIPS["t4_ort"]).ok


def test_onnxruntime_gpu_provider_settings(tmp_path):
    assert onnxruntime_gpu.provider_options("CUDAExecutionProvider", 1, False) == {"device_id": 1}
    assert onnxruntime_gpu.provider_options("TensorrtExecutionProvider", 0, True) == {
        "device_id": 0, "trt_fp16_enable": True}
    with pytest.raises(UserError, match="set settings.provider: tensorrt"):
        onnxruntime_gpu.BACKEND.compile(tmp_path / "m.onnx", tmp_path, "fp16", None, CHIPS["t4_ort"], None)
    with pytest.raises(UserError, match="provider 'rocm' is not known"):
        onnxruntime_gpu.provider_of({"settings": {"provider": "rocm"}})
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    manifest = onnxruntime_gpu.BACKEND.compile(tmp_path / "m.onnx", tmp_path / "c", "fp32", None, CHIPS["t4_ort"], None)
    assert manifest == {"model": "model.onnx", "precision": "fp32", "provider": "CUDAExecutionProvider"}


# ---------------------------------------------------------------------------- stand-ins


class FakeCuda:
    """The small CUDA API of tensorrt.open_cuda, on host memory, with a scripted clock:
    a copy of n bytes takes n / 1e6 ms, an enqueue 0.2 ms."""

    name = "fake"

    def __init__(self):
        self.now = 0.0
        self.memory = {}
        self.log = []

    def alloc(self, nbytes):
        buffer = np.zeros(nbytes, np.uint8)
        self.memory[buffer.ctypes.data] = buffer
        return DeviceBuffer(buffer.ctypes.data, nbytes, keep=buffer)

    def pinned(self, shape, dtype):
        return np.zeros(shape, dtype)

    def stream(self):
        return "stream"

    def stream_handle(self, stream):
        return 77

    def h2d(self, buffer, array, stream):
        buffer.keep[: array.nbytes] = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        self.now += array.nbytes / 1e6
        self.log.append("h2d")

    def d2h(self, array, buffer, stream):
        array.reshape(-1).view(np.uint8)[:] = buffer.keep[: array.nbytes]
        self.now += array.nbytes / 1e6
        self.log.append("d2h")

    def event(self):
        return {}

    def record(self, event, stream):
        event["t"] = self.now
        self.log.append("record")

    def synchronize(self, event):
        self.log.append("sync")

    def elapsed_ms(self, start, end):
        return end["t"] - start["t"]

    def h2d_sync(self, buffer, array):
        buffer.keep[: array.nbytes] = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        self.log.append("h2d_sync")


def fake_tensorrt(recorder: list, cuda: FakeCuda | None = None, build_ok: bool = True):
    """A tensorrt module recording every builder call; its engine sums each image."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.0.0-fake"

    class Enum:
        def __init__(self, **members):
            for k, v in members.items():
                setattr(self, k, v)

    trt.BuilderFlag = Enum(FP16="FP16", INT8="INT8", TF32="TF32")
    trt.MemoryPoolType = Enum(WORKSPACE="WORKSPACE")
    trt.NetworkDefinitionCreationFlag = Enum(EXPLICIT_BATCH=0)
    trt.TensorIOMode = Enum(INPUT="INPUT", OUTPUT="OUTPUT")
    trt.nptype = lambda dtype: np.float32

    class Logger:
        WARNING = 2

        def __init__(self, level):
            pass

    class Recording:
        def __init__(self, name):
            self._name = name

        def __getattr__(self, attr):
            def call(*args):
                recorder.append((f"{self._name}.{attr}", args))
                return Recording(attr)
            return call

        def __setattr__(self, attr, value):
            if attr.startswith("_"):
                object.__setattr__(self, attr, value)
            else:
                recorder.append((f"{self._name}.{attr}=", value))

    class Builder(Recording):
        def __init__(self, logger):
            super().__init__("builder")

        def create_builder_config(self):
            recorder.append(("builder.create_builder_config", ()))
            return Recording("config")

        def build_serialized_network(self, network, config):
            recorder.append(("builder.build_serialized_network", ()))
            return b"ENGINE" if build_ok else None

    class OnnxParser:
        num_errors = 0

        def __init__(self, network, logger):
            pass

        def parse(self, data):
            recorder.append(("parser.parse", (len(data),)))
            return True

    class IInt8EntropyCalibrator2:
        def __init__(self):
            recorder.append(("IInt8EntropyCalibrator2.__init__", ()))

    class Engine:
        num_io_tensors = 2
        names = ["input", "output"]

        def get_tensor_name(self, i):
            return self.names[i]

        def get_tensor_mode(self, name):
            return "INPUT" if name == "input" else "OUTPUT"

        def get_tensor_shape(self, name):
            return (-1, 3, 32, 32) if name == "input" else (-1, 1)

        def get_tensor_dtype(self, name):
            return "float"

        def create_execution_context(self):
            return Context()

    class Context:
        def __init__(self):
            self.shapes, self.addresses = {}, {}

        def set_input_shape(self, name, shape):
            self.shapes[name] = shape

        def get_tensor_shape(self, name):
            return self.shapes["input"] if name == "input" else (self.shapes["input"][0], 1)

        def set_tensor_address(self, name, ptr):
            self.addresses[name] = ptr

        def execute_async_v3(self, handle):
            assert handle == 77
            n = self.shapes["input"][0]
            x = cuda.memory[self.addresses["input"]].view(np.float32).reshape(n, -1)
            cuda.memory[self.addresses["output"]].view(np.float32)[:] = x.sum(axis=1)
            cuda.now += 0.2
            cuda.log.append("execute")
            return True

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            assert data == b"ENGINE"
            return Engine()

    trt.Logger, trt.Builder, trt.OnnxParser, trt.Runtime = Logger, Builder, OnnxParser, Runtime
    trt.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2
    return trt


# ---------------------------------------------------------------------------- build


def test_build_engine_applies_the_builder_settings(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(calls))
    (tmp_path / "model.onnx").write_bytes(b"x" * 10)
    config = builder_config("fp16", 8, 256)
    built = trt_engine.build_engine(tmp_path / "model.onnx", tmp_path / "model_bs8.engine", config)
    assert (tmp_path / "model_bs8.engine").read_bytes() == b"ENGINE"
    assert built == {"calibration_batches": None, "tensorrt_version": "10.0.0-fake"}
    assert [name for name, _ in calls] == [
        "builder.create_network", "parser.parse", "builder.create_builder_config",
        "config.set_memory_pool_limit", "config.set_flag", "builder.create_optimization_profile",
        "create_optimization_profile.set_shape", "config.add_optimization_profile",
        "builder.build_serialized_network",
    ]
    assert calls[0][1] == (1,)  # 1 << EXPLICIT_BATCH
    assert calls[3][1] == ("WORKSPACE", 256 * 2**20)
    assert calls[4][1] == ("FP16",)
    assert calls[6][1] == ("input", (8, 3, 32, 32), (8, 3, 32, 32), (8, 3, 32, 32))


def test_build_engine_int8_sets_calibrator_and_fp32_clears_tf32(tmp_path, monkeypatch):
    calls = []
    cuda = FakeCuda()
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(calls, cuda))
    monkeypatch.setattr(trt_engine, "open_cuda", lambda device_id=0, preference="auto": cuda)
    (tmp_path / "model.onnx").write_bytes(b"x")
    np.save(tmp_path / "calibration.npy", np.ones((20, 3, 32, 32), np.float32))
    config = builder_config("int8", 8, 64, calibration=tmp_path / "calibration.npy")
    trt_engine.build_engine(tmp_path / "model.onnx", tmp_path / "e.engine", config)
    names = [name for name, _ in calls]
    assert ("config.set_flag", ("INT8",)) in calls and ("config.set_flag", ("FP16",)) in calls
    assert "IInt8EntropyCalibrator2.__init__" in names
    assert "config.int8_calibrator=" in names and "config.set_calibration_profile" in names
    calls.clear()
    trt_engine.build_engine(tmp_path / "model.onnx", tmp_path / "e.engine", builder_config("fp32", 8, 64))
    assert ("config.clear_flag", ("TF32",)) in calls
    assert not [c for c in calls if c[0] == "config.set_flag"]


def test_build_failure_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt([], build_ok=False))
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(UserError, match="could not build the engine"):
        trt_engine.build_engine(tmp_path / "model.onnx", tmp_path / "e", builder_config("fp16", 1, 64))


def test_entropy_calibrator_feeds_whole_batches_and_caches(tmp_path):
    trt = fake_tensorrt([])
    cuda = FakeCuda()
    data = np.arange(10 * 3 * 32 * 32, dtype=np.float32).reshape(10, 3, 32, 32)
    calibrator = trt_engine.make_entropy_calibrator(trt, cuda, data, 4, tmp_path / "calibration.cache")
    assert isinstance(calibrator, trt.IInt8EntropyCalibrator2) and calibrator.get_batch_size() == 4
    first = calibrator.get_batch(["input"])
    assert first == [calibrator.buffer.ptr]
    np.testing.assert_array_equal(calibrator.buffer.keep.view(np.float32), data[:4].ravel())
    assert calibrator.get_batch(["input"]) is not None
    assert calibrator.get_batch(["input"]) is None  # 8 of 10 images: no partial batch
    assert calibrator.batches_fed == 2
    assert calibrator.read_calibration_cache() is None
    calibrator.write_calibration_cache(b"TRT-8601-EntropyCalibration2")
    assert calibrator.read_calibration_cache() == b"TRT-8601-EntropyCalibration2"


# ---------------------------------------------------------------------------- run and timing


@pytest.fixture
def trt_runner(tmp_path, monkeypatch):
    cuda = FakeCuda()
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt([], cuda))
    monkeypatch.setattr(trt_runner_module, "open_cuda", lambda device_id=0, preference="auto": cuda)
    (tmp_path / "model_bs4.engine").write_bytes(b"ENGINE")
    manifest = {"model": "model_bs4.engine", "batch_size": 4, "precision": "fp16", "builder": {"flags": ["FP16"]}}
    runner = BACKEND.load(tmp_path, manifest, CHIPS["t4"], threads=1)
    return runner, cuda


def test_runner_outputs_and_settings(trt_runner):
    runner, cuda = trt_runner
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(runner.run(x)[:, 0], x.reshape(4, -1).sum(axis=1), rtol=1e-5)
    assert cuda.log == ["record", "h2d", "record", "execute", "record", "d2h", "record", "sync"]
    outputs = runner.run_all(np.concatenate([x, x[:2]]), 4)  # base class pads the last batch
    assert outputs.shape == (6, 1)
    settings = runner.settings()
    assert settings["flags"] == ["FP16"] and settings["tensorrt_version"] == "10.0.0-fake"
    assert "GPU compute time" in settings["timed_quantity"]
    with pytest.raises(UserError, match="batches of 4, not 2"):
        runner.run(x[:2])


def test_benchmark_reports_compute_and_host_latency_apart(trt_runner):
    runner, cuda = trt_runner
    x = np.ones((4, 3, 32, 32), np.float32)
    protocol = {"warmup_iterations": 2, "min_iterations": 5, "min_seconds": 0.0, "max_iterations": 50}
    compute = runner.benchmark(x, protocol)
    assert compute.tolist() == pytest.approx([0.2] * 5)
    assert cuda.log.count("execute") == 7  # 2 warm-up + 5 timed
    h2d, d2h = x.nbytes / 1e6, 4 * 4 / 1e6
    extra = runner.benchmark_extra
    assert extra["h2d_ms"] == pytest.approx(h2d) and extra["d2h_ms"] == pytest.approx(d2h)
    assert extra["host_latency_ms"]["mean"] == pytest.approx(h2d + 0.2 + d2h)
    assert extra["host_throughput_fps"] == pytest.approx(4000 / (h2d + 0.2 + d2h))


def test_benchmark_min_seconds_counts_compute_time_and_respects_the_cap(trt_runner):
    runner, _ = trt_runner
    x = np.ones((4, 3, 32, 32), np.float32)
    protocol = {"warmup_iterations": 0, "min_iterations": 5, "min_seconds": 0.002, "max_iterations": 50}
    assert len(runner.benchmark(x, protocol)) == 10  # 10 × 0.2 ms = 2 ms
    protocol["max_iterations"] = 7
    assert len(runner.benchmark(x, protocol)) == 7


def test_compile_writes_engine_and_manifest(tmp_path, monkeypatch):
    from tests.test_ascend import tiny_onnx

    calls = []
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(calls))
    model = tiny_onnx(tmp_path / "model.onnx")
    manifest = BACKEND.compile(model, tmp_path / "bs16", "fp16", 16, CHIPS["t4"], None)
    assert manifest["model"] == "model_bs16.engine" and (tmp_path / "bs16" / "model_bs16.engine").is_file()
    assert manifest["builder"]["flags"] == ["FP16"]
    assert manifest["builder"]["profile"]["opt"] == (16, 3, 32, 32)
    with pytest.raises(UserError, match="one batch size"):
        BACKEND.compile(model, tmp_path / "x", "fp16", None, CHIPS["t4"], None)
