"""SOPHGO BM1684X through TPU-MLIR: compile on the host, run on the chip or without it.

Compile (`backend`, `toolchain`), in the compile rule's output folder, with the tools of the
TPU-MLIR venv (`chipbench.tpu_mlir_env`, Python 3.10):

    model_transform.py  ONNX -> top-dialect model.mlir (+ reference outputs of a test batch)
    run_calibration.py  INT8 only: calibration table from the calibration set
    model_deploy.py     model.mlir -> quantized model_bm1684x_<q>_tpu.mlir + model.bmodel;
                        --debug keeps the *_tpu.mlir and leaves compiler_profile_0.txt, whose
                        "runtime: X ms" is the compiler's cycle-model latency estimate

Run:
- on a BM1684X (sophon-sail importable and a device node present, `chip`): `sail.Engine` for
  outputs, `bmrt_test` ("calculate time") for timing;
- without the chip (`simulator`): the quantized `*_tpu.mlir` on the host CPU through pymlir,
  cross-checked against the .bmodel on the cmodel simulator. Without the chip nothing is
  timed: the compiler's estimate is recorded in compiled.json and no measured figure is ever
  made up (`timing_availability`).
"""

from chipbench.backends.tpu_mlir.backend import BACKEND

__all__ = ["BACKEND"]
