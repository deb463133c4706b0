"""A small CUDA API (device buffers, pinned host arrays, streams, events) over whichever
Python binding imports: cuda-python, pycuda or a CUDA build of torch (settings.cuda_binding
picks one). Nothing imports at module import time."""

from __future__ import annotations

import atexit
import ctypes

import numpy as np

from chipbench.devices import import_cudart
from chipbench.errors import UserError

CUDA_BINDINGS = ("cuda-python", "pycuda", "torch")
BINDING_HINT = "pip install cuda-python (or pycuda)"


def _binding_importable(name: str) -> bool:
    try:
        if name == "cuda-python":
            import_cudart()
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


class DeviceBuffer:
    def __init__(self, ptr: int, nbytes: int, keep=None):
        self.ptr = int(ptr)
        self.nbytes = int(nbytes)
        self.keep = keep  # the binding's own allocation object, kept alive


class _CudaPython:
    name = "cuda-python"

    def __init__(self, device_id: int):
        self.rt = import_cudart()
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

