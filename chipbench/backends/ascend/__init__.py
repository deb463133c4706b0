"""Huawei Ascend 310 / 310P: ATC compiles the ONNX model, ais_bench (or msit) runs it.

* compile (`backend`, `commands`): ``atc --framework=5 ...`` gives one ``.om`` per batch size
  (static shapes); precision through ``--precision_mode_v2`` (CANN ≥ 7) or the legacy
  ``--precision_mode`` (chip setting ``atc_precision_flag``), never both;
* INT8 (`amct`): AMCT for ONNX calibrates first, and ATC compiles its deploy model;
* run (`runner`, `outputs`): ``python3 -m ais_bench`` (or ``msit benchmark``) over a folder of
  one raw float32 file per image, its output files and ``*_summary.json`` read back.

The npu-smi table is read by `chipbench.devices`, shared with the host description.
"""

from chipbench.backends.ascend.backend import BACKEND

__all__ = ["BACKEND"]
