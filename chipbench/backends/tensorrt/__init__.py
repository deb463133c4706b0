"""NVIDIA GPUs through TensorRT: one serialized engine per batch size, timed with CUDA events.

* compile (`engine`): the TensorRT Python API parses the ONNX model and builds a serialized
  engine with the settings `builder_config` describes (FP16 / INT8 flags, workspace limit,
  one explicit batch profile min = opt = max = (N, 3, 32, 32), an IInt8EntropyCalibrator2 on
  the calibration images for INT8).
* run (`runner`): like trtexec, CUDA events around each iteration's copies and enqueue.

Device memory, streams and events go through `cuda` (cuda-python, pycuda or CUDA torch).
"""

from chipbench.backends.tensorrt.backend import BACKEND

__all__ = ["BACKEND"]
