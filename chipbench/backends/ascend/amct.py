"""INT8 on Ascend: AMCT for ONNX calibrates on the calibration set with ONNX Runtime and
writes a ``*deploy_model.onnx`` (compiled by ATC, fp16 for the layers it does not quantize)
and a ``*fake_quant_model.onnx`` (INT8 simulation on the CPU)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from chipbench.errors import UserError


def amct_plan(
    onnx,
    calibration_npy,
    work_dir,
    n_calibration: int,
    calibration_batch_size: int = 50,
    skip_layers=(),
    activation_offset: bool = True,
) -> dict:
    """The AMCT (ONNX) post-training quantization steps, as data.

    Steps (CANN AMCT ONNX API; names checked against the AMCT guide: ``create_quant_config``,
    ``quantize_model(config_file, model_file, modified_onnx_file, record_file)``,
    ``save_model(modified_onnx_file, record_file, save_path)``):

    1. ``create_quant_config`` writes the quantization config for `batch_num` batches;
    2. ``quantize_model`` writes the calibration model (``modified_model.onnx``) and the
       record file;
    3. calibrate: exactly `batch_num` forward passes of `calibration_batch_size` training
       images through the calibration model in ONNX Runtime, with AMCT's custom operators
       (``amct_onnx.AMCT_SO`` session options);
    4. ``save_model`` fills the record and writes ``{save_path}_deploy_model.onnx`` (for ATC)
       and ``{save_path}_fake_quant_model.onnx`` (INT8 simulation on ONNX Runtime).
    """
    work = Path(work_dir)
    batch = int(calibration_batch_size)
    if batch < 1:
        raise UserError(
            f"amct_batch_size is {batch}: set a positive calibration batch size in the chip's settings"
        )
    batch_num = int(n_calibration) // batch
    if batch_num < 1:
        raise UserError(
            f"the calibration set holds {n_calibration} images, fewer than one AMCT calibration "
            f"batch of {batch}: raise dataset.calibration_images or lower the chip's amct_batch_size"
        )
    config_file = str(work / "config.json")
    record_file = str(work / "record.txt")
    modified = str(work / "modified_model.onnx")
    save_path = str(work / "model")
    return {
        "work_dir": str(work),
        "batch_num": batch_num,
        "calibration_batch_size": batch,
        "calibration_images_used": batch_num * batch,
        "deploy_onnx": f"{save_path}_deploy_model.onnx",
        "fake_quant_onnx": f"{save_path}_fake_quant_model.onnx",
        "steps": [
            ("create_quant_config", {
                "config_file": config_file,
                "model_file": str(onnx),
                "skip_layers": list(skip_layers),
                "batch_num": batch_num,
                "activation_offset": bool(activation_offset),
            }),
            ("quantize_model", {
                "config_file": config_file,
                "model_file": str(onnx),
                "modified_onnx_file": modified,
                "record_file": record_file,
            }),
            ("calibrate", {
                "model": modified,
                "data": str(calibration_npy),
                "batch_num": batch_num,
                "batch_size": batch,
            }),
            ("save_model", {
                "modified_onnx_file": modified,
                "record_file": record_file,
                "save_path": save_path,
            }),
        ],
    }


def run_amct_plan(plan: dict, amct, calibration: np.ndarray, input_name: str) -> dict:
    """Execute `amct_plan` steps with the `amct` module (``amct_onnx``, or a test double)."""
    import onnxruntime as ort

    Path(plan["work_dir"]).mkdir(parents=True, exist_ok=True)
    for name, kwargs in plan["steps"]:
        print(f"AMCT step {name}: {json.dumps(kwargs, sort_keys=True)}", file=sys.stderr, flush=True)
        if name != "calibrate":
            getattr(amct, name)(**kwargs)
            continue
        # AMCT_SO: ONNX Runtime SessionOptions with AMCT's custom operators registered (the
        # name used by the AMCT samples; the calibration model does not load without them).
        options = getattr(amct, "AMCT_SO", None)
        if options is None:
            raise UserError(
                "amct_onnx.AMCT_SO is missing: AMCT's ONNX Runtime custom operators are not "
                "built; build them (amct_onnx_op: python3 setup.py build) and retry"
            )
        session = ort.InferenceSession(kwargs["model"], options, providers=["CPUExecutionProvider"])
        batch = kwargs["batch_size"]
        for i in range(kwargs["batch_num"]):
            chunk = np.ascontiguousarray(calibration[i * batch:(i + 1) * batch], dtype=np.float32)
            session.run(None, {input_name: chunk})
    # The guide promises file names *containing* "deploy" / "fake_quant"; the AMCT samples
    # show {save_path}_deploy_model.onnx and {save_path}_fake_quant_model.onnx. Take those,
    # else the one file of the save_path prefix that carries the keyword.
    found = {}
    for key, keyword in (("deploy_onnx", "deploy"), ("fake_quant_onnx", "fake_quant")):
        if Path(plan[key]).is_file():
            found[key] = plan[key]
            continue
        save_path = Path(plan["steps"][-1][1]["save_path"])
        matches = sorted(save_path.parent.glob(f"{save_path.name}*{keyword}*.onnx"))
        if len(matches) != 1:
            raise UserError(
                f"AMCT save_model wrote no single {keyword} model next to {save_path} "
                f"(found {len(matches)}): see the AMCT messages in the job log"
            )
        found[key] = str(matches[0])
    return found


def quantize_int8(onnx, calibration_npy, work_dir, calibration_batch_size: int = 50,
                  input_name: str = "input", static_batch: int | None = None) -> dict:
    """AMCT post-training INT8 quantization of `onnx` on the calibration images.

    Runs the AMCT Python API when ``amct_onnx`` imports; otherwise raises a UserError naming
    what is missing. `static_batch` is the ONNX input's fixed batch dimension, if it has one
    (calibration batches must then have exactly that size).
    """
    try:
        import amct_onnx as amct
    except ImportError as error:
        raise UserError(
            f"INT8 on Ascend needs AMCT for ONNX, but amct_onnx does not import ({error}): "
            "pip install the amct_onnx wheel shipped with the CANN toolkit (tools/amct) and "
            "build its custom operators, or drop int8 from the chip's precisions"
        ) from None
    if calibration_npy is None:
        raise UserError("INT8 compilation needs the calibration set: the rule gave none")
    calibration = np.load(calibration_npy, mmap_mode="r")
    batch = static_batch or calibration_batch_size
    plan = amct_plan(onnx, calibration_npy, work_dir, len(calibration), batch)
    result = run_amct_plan(plan, amct, calibration, input_name)
    result.update(batch_num=plan["batch_num"], calibration_batch_size=plan["calibration_batch_size"],
                  calibration_images_used=plan["calibration_images_used"])
    return result

