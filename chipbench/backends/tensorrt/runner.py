"""A static-batch TensorRT engine on one GPU, timed like trtexec: CUDA events around the
host→device copy, the enqueue and the device→host copy of every iteration. "GPU compute
time" (enqueue only) is the timed quantity, comparable with ais_bench's NPU compute time;
host latency (H2D + compute + D2H) is reported beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from chipbench import timing
from chipbench.backends.base import Runner
from chipbench.backends.tensorrt.cuda import open_cuda
from chipbench.backends.tensorrt.engine import import_tensorrt
from chipbench.errors import UserError


class TensorRTRunner(Runner):
    """A static-batch engine on one GPU; pinned host buffers, one stream, four events."""

    timer = "CUDA events around the TensorRT enqueue (GPU compute time), as trtexec"

    def __init__(self, engine_path, batch_size: int, device_id: int = 0, binding: str = "auto",
                 info: dict | None = None):
        trt = import_tensorrt()
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

