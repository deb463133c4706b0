"""Huawei Ascend 310 / 310P: ATC compiles the ONNX model, ais_bench (or msit) runs it.

Toolchain (REFERENCE.md §1a):

* compile: ``atc --framework=5 ...`` gives one ``.om`` per batch size (static shapes);
  precision through ``--precision_mode_v2`` (CANN ≥ 7) or the legacy ``--precision_mode``
  (chip setting ``atc_precision_flag``), never both;
* INT8: AMCT for ONNX (``amct_onnx``) calibrates on the calibration set with ONNX Runtime and
  writes a ``*deploy_model.onnx`` (compiled by ATC with fp16 for the layers it does not
  quantize) and a ``*fake_quant_model.onnx`` (INT8 simulation on the CPU);
* run: ``python3 -m ais_bench`` (or its successor ``msit benchmark``) over a folder of one
  raw float32 ``.bin`` file per image; it writes one output file per input file and a
  ``<output_dirname>_summary.json`` holding the NPU compute time of every timed iteration.

Nothing here imports a CANN module at import time: a host without the toolchain loses
nothing, and `availability` names the first missing piece.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from chipbench import timing
from chipbench.backends.base import Availability, Backend, Runner
from chipbench.errors import UserError

__all__ = [
    "BACKEND",
    "ais_bench_command",
    "amct_cli_command",
    "amct_plan",
    "atc_command",
    "collect_outputs",
    "find_atc",
    "parse_npu_smi_info",
    "parse_summary",
    "quantize_int8",
    "write_bin_inputs",
]

PRECISIONS = ("fp16", "fp32", "int8")

#: ``--precision_mode_v2`` value per precision (CANN ≥ 7.0). INT8 compiles the AMCT deploy
#: model: its quantized layers run INT8 whatever the flag, the rest run fp16 — never
#: ``origin``, which would keep them fp32 and is not what a quantized model is built for.
PRECISION_MODE_V2 = {"fp16": "fp16", "fp32": "origin", "int8": "fp16"}
#: Legacy ``--precision_mode`` value per precision (older CANN, before precision_mode_v2).
PRECISION_MODE_LEGACY = {
    "fp16": "force_fp16",
    "fp32": "must_keep_origin_dtype",
    "int8": "force_fp16",
}
PRECISION_FLAGS = ("precision_mode_v2", "precision_mode")

SETUP_HINT = "install the CANN toolkit and source /usr/local/Ascend/ascend-toolkit/set_env.sh"
DRIVER_HINT = "install the Ascend NPU driver and firmware (npu-smi ships with the driver)"
#: Where the driver installs npu-smi when /usr/local/sbin is not on PATH.
NPU_SMI_FALLBACKS = ("/usr/local/sbin/npu-smi", "/usr/local/bin/npu-smi")
SUBPROCESS_TIMEOUT_S = 15

OUTPUT_FORMATS = ("NPY", "TXT", "BIN")
SUMMARY_SUFFIX = "_summary.json"
BIN_SUFFIX = ".bin"


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


def atc_command(
    onnx,
    output_stem,
    batch_size: int,
    soc_version: str,
    precision: str,
    input_name: str = "input",
    precision_flag: str = "precision_mode_v2",
    input_chw: tuple[int, int, int] = (3, 32, 32),
) -> list[str]:
    """The exact ``atc`` argument list compiling `onnx` to ``{output_stem}.om``.

    `precision_flag` is ``precision_mode_v2`` (CANN ≥ 7.0: ``fp16`` | ``origin``) or
    ``precision_mode`` (older CANN: ``force_fp16`` | ``must_keep_origin_dtype``); exactly one
    of the two is given. For ``int8``, `onnx` is the AMCT deploy model and the flag is fp16.
    """
    if precision not in PRECISIONS:
        raise UserError(
            f"precision {precision!r} is not supported on Ascend: use one of {', '.join(PRECISIONS)}"
        )
    if precision_flag == "precision_mode_v2":
        flag = f"--precision_mode_v2={PRECISION_MODE_V2[precision]}"
    elif precision_flag == "precision_mode":
        flag = f"--precision_mode={PRECISION_MODE_LEGACY[precision]}"
    else:
        raise UserError(
            f"atc_precision_flag {precision_flag!r} is not known: use precision_mode_v2 "
            "(CANN ≥ 7.0) or precision_mode (older CANN) in the chip's settings"
        )
    if int(batch_size) < 1:
        raise UserError(f"batch size {batch_size} is not positive: use a batch size ≥ 1")
    c, h, w = (int(x) for x in input_chw)
    return [
        "atc",
        "--framework=5",
        f"--model={onnx}",
        f"--output={output_stem}",
        "--input_format=NCHW",
        f"--input_shape={input_name}:{int(batch_size)},{c},{h},{w}",
        f"--soc_version={soc_version}",
        "--log=info",
        flag,
    ]


def ais_bench_command(
    om,
    input_dir,
    output_dir,
    batch_size: int,
    outfmt: str = "NPY",
    loop: int | None = None,
    warmup: int | None = None,
    device: int | None = 0,
    output_dirname: str | None = None,
    tool: str = "ais_bench",
    python: str = "python3",
) -> list[str]:
    """The exact benchmark-tool argument list.

    ``tool="ais_bench"``: ``python3 -m ais_bench --model … --input … --output …
    [--output_dirname …] --outfmt NPY --batchsize N [--loop L] [--warmup_count W]
    [--device D]`` (option names of ais_bench's own parser).
    ``tool="msit"``: ``msit benchmark --om-model … --input … --output … [--output-dirname …]
    --outfmt NPY --batch-size N [--loop L] [--warmup-count W] [--device D]`` (option names of
    the msit benchmark guide). ``--batchsize``/``--batch-size`` only feeds the tool's
    throughput figure; batching itself follows the .om's input size.
    `python` is the interpreter that has ais_bench installed (the runner passes its own).
    """
    outfmt = outfmt.upper()
    if outfmt not in OUTPUT_FORMATS:
        raise UserError(f"outfmt {outfmt!r} is not known: use one of {', '.join(OUTPUT_FORMATS)}")
    if tool == "ais_bench":
        command = [python, "-m", "ais_bench", "--model", str(om)]
        names = {"dirname": "--output_dirname", "bs": "--batchsize", "warmup": "--warmup_count"}
    elif tool == "msit":
        command = ["msit", "benchmark", "--om-model", str(om)]
        names = {"dirname": "--output-dirname", "bs": "--batch-size", "warmup": "--warmup-count"}
    else:
        raise UserError(f"benchmark tool {tool!r} is not known: use ais_bench or msit")
    command += ["--input", str(input_dir), "--output", str(output_dir)]
    if output_dirname is not None:
        command += [names["dirname"], str(output_dirname)]
    command += ["--outfmt", outfmt, names["bs"], str(int(batch_size))]
    if loop is not None:
        command += ["--loop", str(int(loop))]
    if warmup is not None:
        command += [names["warmup"], str(int(warmup))]
    if device is not None:
        command += ["--device", str(int(device))]
    return command


# --------------------------------------------------------------------------------------------
# INT8 through AMCT
# --------------------------------------------------------------------------------------------


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


def amct_cli_command(onnx, save_path, data_dir, input_name: str, batch_size: int, batch_num: int,
                     input_chw=(3, 32, 32)) -> list[str]:
    """The ``amct_onnx calibration`` command line equivalent to `amct_plan` (not run here).

    Option names are those of the AMCT command-line guide (--model, --save_path, --input_shape,
    --data_dir, --data_types, --batch_num). Not verified: how the CLI groups the .bin files of
    `data_dir` into batches (we assume one file holds one batch of `input_shape`), so the
    workflow runs the Python API (`quantize_int8`) and this is for people reproducing by hand.
    """
    c, h, w = (int(x) for x in input_chw)
    return [
        "amct_onnx", "calibration",
        f"--model={onnx}",
        f"--save_path={save_path}",
        f"--input_shape={input_name}:{int(batch_size)},{c},{h},{w}",
        f"--data_dir={data_dir}",
        "--data_types=float32",
        f"--batch_num={int(batch_num)}",
    ]


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


# --------------------------------------------------------------------------------------------
# Input and output files of ais_bench
# --------------------------------------------------------------------------------------------


def bin_name(index: int, total: int) -> str:
    return f"{index:0{max(5, len(str(max(total - 1, 0))))}d}"


def write_bin_inputs(inputs: np.ndarray, out_dir) -> list[Path]:
    """One raw little-endian float32 NCHW file ``{index:05d}.bin`` per image, in order.

    ais_bench sorts a folder's files naturally and concatenates consecutive files into a batch
    (the model's input size / the file size = files per batch); zero-padded names make that
    order the images' order. The folder must not hold other .bin/.npy files (ais_bench would
    read them too).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = len(inputs)
    names = [bin_name(i, n) + BIN_SUFFIX for i in range(n)]
    wanted = set(names)
    foreign = sorted(
        p.name for p in out.iterdir()
        if p.suffix.lower() in (".bin", ".npy") and p.name not in wanted
    )
    if foreign:
        raise UserError(
            f"{out} already holds {len(foreign)} other input files (e.g. {foreign[0]}) that "
            "ais_bench would also read: use an empty folder"
        )
    paths = []
    for i, name in enumerate(names):
        path = out / name
        np.ascontiguousarray(inputs[i], dtype="<f4").tofile(path)
        paths.append(path)
    return paths


def natural_key(name: str):
    """ais_bench's order of input files: digit runs compared as numbers, text case-folded."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def input_stems(input_dir) -> list[str]:
    """Stems of the input files ais_bench reads from `input_dir`, in its (natural) order."""
    files = [p.name for p in Path(input_dir).iterdir() if p.suffix.lower() in (".bin", ".npy")]
    return [name.rsplit(".", 1)[0] for name in sorted(sorted(files), key=natural_key)]


def _load_output(path: Path, outfmt: str, dtype) -> np.ndarray:
    if outfmt == "NPY":
        return np.load(path)
    if outfmt == "TXT":
        # ais_bench writes one line per index of the first axis, values space-separated.
        return np.loadtxt(path, dtype=np.float64, ndmin=2).astype(dtype)
    return np.fromfile(path, dtype=dtype)


def collect_outputs(
    result_dir,
    n_inputs: int,
    batch_size: int,
    outfmt: str = "NPY",
    stems: list[str] | None = None,
    output_index: int = 0,
    dtype=np.float32,
) -> np.ndarray:
    """Model outputs in image order from ais_bench's result folder, padding dropped.

    Naming rule (ais_bench/msit ``save_tensors_to_file``; msit guide "Save Output Data"):
    an output file is ``{input stem}_{output index}.{npy|txt|bin}`` — the stem is the input
    file's name up to its first dot. When one batch concatenates several input files (our
    per-image .bin files at bs > 1), ais_bench splits the batch output along axis 0 and writes
    one file per input file, named after that file, and writes nothing for the padding that
    fills the last batch. Older ais_infer releases wrote the whole batch to one file named
    after the batch's first input file; that layout is read too (its padding rows dropped).
    `stems` are the input stems in ais_bench's order (default ``00000`` … as written by
    `write_bin_inputs`).
    """
    outfmt = outfmt.upper()
    if outfmt not in OUTPUT_FORMATS:
        raise UserError(f"outfmt {outfmt!r} is not known: use one of {', '.join(OUTPUT_FORMATS)}")
    result = Path(result_dir)
    n, bs = int(n_inputs), int(batch_size)
    if stems is None:
        stems = [bin_name(i, n) for i in range(n)]
    if len(stems) != n:
        raise UserError(f"{len(stems)} input names given for {n} inputs: they must match")
    ext = outfmt.lower()

    def path_of(stem: str) -> Path:
        return result / f"{stem.split('.')[0]}_{output_index}.{ext}"

    per_input = bs == 1 or n < 2 or path_of(stems[1]).is_file()
    rows = []
    for start in range(0, n, bs):
        real = min(bs, n - start)
        if per_input:
            for stem in stems[start:start + real]:
                path = path_of(stem)
                if not path.is_file():
                    raise UserError(
                        f"ais_bench wrote no output {path.name} in {result}: the run did not "
                        "cover every input; see the ais_bench messages in the job log"
                    )
                data = _load_output(path, outfmt, dtype)
                if outfmt == "BIN":
                    data = data.reshape(1, -1)
                if data.ndim < 2 or data.shape[0] != 1:
                    raise UserError(
                        f"{path.name} holds an array of shape {data.shape}, not one image's "
                        "output: cannot map it to images"
                    )
                rows.append(data)
        else:
            path = path_of(stems[start])
            if not path.is_file():
                raise UserError(
                    f"ais_bench wrote no output {path.name} in {result}: see the ais_bench "
                    "messages in the job log"
                )
            data = _load_output(path, outfmt, dtype)
            if outfmt == "BIN":
                if data.size % bs:
                    raise UserError(
                        f"{path.name} holds {data.size} values, not a multiple of batch size {bs}"
                    )
                data = data.reshape(bs, -1)
            if len(data) != bs:
                raise UserError(
                    f"{path.name} holds {len(data)} rows for a batch of {bs}: cannot map it to images"
                )
            rows.extend(data[i:i + 1] for i in range(real))
    return np.concatenate(rows, axis=0)


def find_summary(output_dir, output_dirname: str | None = None) -> Path:
    """``<output>/<output_dirname>_summary.json`` (or the newest ``*_summary.json``)."""
    out = Path(output_dir)
    if output_dirname is not None:
        path = out / f"{output_dirname}{SUMMARY_SUFFIX}"
        if not path.is_file():
            raise UserError(f"the benchmark tool wrote no {path}: see its messages in the job log")
        return path
    found = sorted(out.glob(f"*{SUMMARY_SUFFIX}"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise UserError(f"the benchmark tool wrote no *{SUMMARY_SUFFIX} in {out}: see the job log")
    return found[-1]


def _batch_size_from_args(args) -> int | None:
    if not isinstance(args, list):
        return None
    args = [str(a) for a in args]
    for i, arg in enumerate(args):
        for name in ("--batchsize", "--batch-size", "--batch_size"):
            if arg == name and i + 1 < len(args):
                return int(args[i + 1])
            if arg.startswith(name + "="):
                return int(arg.split("=", 1)[1])
    return None


def _percentile_key(block: dict):
    for key in ("percentile(99%)", "P99"):
        if key in block:
            return block[key]
    return None


def parse_summary(path, batch_size: int | None = None) -> dict:
    """Perf-record fields from an ais_bench / msit ``*_summary.json``.

    The file holds ``NPU_compute_time``, ``H2D_latency`` and ``D2H_latency`` (each ``min``,
    ``max``, ``mean``, ``median``, ``percentile(99%)`` — ``P99`` in newer releases — and
    ``count``, in ms), ``throughput``, ``npu_compute_time_list`` (ms per timed iteration,
    warm-up excluded; [start, end] pairs in the multi-thread mode), ``pid`` and ``args``.

    Returns `timing.summarize` of the compute-time list (throughput_fps = 1000 · batch size /
    mean NPU compute time, the ais_bench definition; p90 and std need the list) plus
    ``latencies_ms``, ``h2d_ms`` / ``d2h_ms`` (mean host↔device copy times, reported apart
    because NPU compute time excludes them) and ``tool_summary`` (the tool's own figures).
    `batch_size` defaults to the tool's command line (``--batchsize``) in ``args``.
    """
    data = json.loads(Path(path).read_text())
    compute = data.get("NPU_compute_time")
    if not isinstance(compute, dict) or "mean" not in compute:
        raise UserError(f"{path} has no NPU_compute_time block: it is not an ais_bench summary")
    if batch_size is None:
        batch_size = _batch_size_from_args(data.get("args"))
    if batch_size is None:
        raise UserError(f"{path} does not say its batch size (no --batchsize in args): pass it")
    raw = data.get("npu_compute_time_list") or []
    latencies = [
        float(x[1]) - float(x[0]) if isinstance(x, (list, tuple)) else float(x) for x in raw
    ]
    tool = {
        "NPU_compute_time": {k: compute.get(k) for k in ("min", "max", "mean", "median", "count")},
        "throughput": data.get("throughput"),
    }
    tool["NPU_compute_time"]["p99"] = _percentile_key(compute)
    if latencies:
        record = timing.summarize(latencies, batch_size)
        reported = float(compute["mean"])
        if reported > 0 and abs(record["latency_ms"]["mean"] - reported) > 0.01 * reported:
            print(
                f"warning: {path}: mean of npu_compute_time_list "
                f"{record['latency_ms']['mean']:.6f} ms differs from NPU_compute_time.mean "
                f"{reported:.6f} ms by more than 1 %", file=sys.stderr,
            )
    else:
        mean = float(compute["mean"])
        record = {
            "throughput_fps": 1000.0 * int(batch_size) / mean,
            "latency_ms": {
                "mean": mean, "median": compute.get("median"), "p90": None,
                "p99": _percentile_key(compute), "min": compute.get("min"),
                "max": compute.get("max"), "std": None,
            },
            "cv": None,
            "iterations": int(compute.get("count") or 0),
            "duration_s": None,
        }
    record["latencies_ms"] = latencies
    record["batch_size"] = int(batch_size)
    for key, block in (("h2d_ms", data.get("H2D_latency")), ("d2h_ms", data.get("D2H_latency"))):
        record[key] = float(block["mean"]) if isinstance(block, dict) and "mean" in block else None
    record["tool_summary"] = tool
    return record


# --------------------------------------------------------------------------------------------
# Host checks
# --------------------------------------------------------------------------------------------


def find_atc() -> str | None:
    """``atc`` on PATH, else under $ASCEND_TOOLKIT_HOME or $ASCEND_HOME_PATH."""
    found = shutil.which("atc")
    if found:
        return found
    for variable in ("ASCEND_TOOLKIT_HOME", "ASCEND_HOME_PATH"):
        home = os.environ.get(variable)
        if not home:
            continue
        for relative in ("bin/atc", "atc/bin/atc", "compiler/bin/atc"):
            candidate = Path(home) / relative
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return None


def find_npu_smi() -> str | None:
    found = shutil.which("npu-smi")
    if found:
        return found
    for candidate in NPU_SMI_FALLBACKS:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def ais_bench_importable() -> bool:
    try:
        return importlib.util.find_spec("ais_bench") is not None
    except (ImportError, ValueError):
        return False


def benchmark_tool(chip: dict) -> str | None:
    """The tool to run: the chip's ``settings.tool`` (ais_bench | msit | auto) if present."""
    wanted = (chip.get("settings") or {}).get("tool") or "auto"
    has_ais = ais_bench_importable()
    has_msit = shutil.which("msit") is not None
    if wanted == "ais_bench":
        return "ais_bench" if has_ais else None
    if wanted == "msit":
        return "msit" if has_msit else None
    return "ais_bench" if has_ais else "msit" if has_msit else None


_BUS_ID = re.compile(r"^[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-9A-Fa-f]$")


def parse_npu_smi_info(text: str) -> list[dict]:
    """Chips listed by ``npu-smi info``: one dict per chip row of the status table.

    The table gives two rows per chip: ``| NPU  Name | Health | …`` then ``| Chip  Device |
    Bus-Id | …`` (a card with several chips repeats the second row). Returns
    ``{"npu", "name", "health", "chip", "device", "bus_id"}`` with ints where the table has
    them (``device`` is None when the table shows none). The process table that follows the
    status table is ignored (its second column is a process id, not a bus id).
    """
    chips = []
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) < 2:
            continue
        first = cells[0].split()
        if len(first) != 2 or not first[0].isdigit():
            continue
        second = cells[1].split()
        if second and _BUS_ID.match(second[0]):
            if current is None:
                continue
            chips.append({
                "npu": current["npu"],
                "name": current["name"],
                "health": current["health"],
                "chip": int(first[0]),
                "device": int(first[1]) if first[1].isdigit() else None,
                "bus_id": second[0],
            })
        elif second and second[0].isalpha():
            current = {"npu": int(first[0]), "name": first[1], "health": second[0]}
    return chips


def soc_chip_name(soc_version: str) -> str:
    """npu-smi's chip name for a soc_version: ``Ascend310P3`` → ``310P3``."""
    return soc_version[len("Ascend"):] if soc_version.startswith("Ascend") else soc_version


def _describe(chips: list[dict]) -> str:
    return ", ".join(f"{c['name']} on device {c['device']}" for c in chips) or "no chip"


class AscendBackend(Backend):
    name = "ascend"
    precisions = PRECISIONS
    static_batch = True
    #: The accuracy run reads the test set as per-image .bin files
    #: (``results/data/{model}/bin_inputs``, rule write_bin_inputs): pass that folder to
    #: ``run_all(..., input_dir=...)``.
    bin_inputs = True

    def availability(self, chip: dict) -> Availability:
        soc = chip.get("soc_version")
        if not soc:
            return Availability(False, "the chip entry has no soc_version (e.g. Ascend310P3)")
        if find_atc() is None:
            return Availability(False, f"atc not found ({SETUP_HINT})")
        if benchmark_tool(chip) is None:
            wanted = (chip.get("settings") or {}).get("tool") or "auto"
            what = {
                "ais_bench": f"ais_bench is not importable by {sys.executable}",
                "msit": "msit is not on PATH",
            }.get(wanted, f"ais_bench is not importable by {sys.executable} and msit is not on PATH")
            return Availability(
                False,
                f"{what} (pip install the aclruntime and ais_bench wheels into this environment, "
                "or install msit with its benchmark component)",
            )
        npu_smi = find_npu_smi()
        if npu_smi is None:
            return Availability(False, f"npu-smi not found ({DRIVER_HINT})")
        try:
            result = subprocess.run(
                [npu_smi, "info"], capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            return Availability(False, f"npu-smi info did not answer within {SUBPROCESS_TIMEOUT_S} s")
        except OSError as error:
            return Availability(False, f"npu-smi info could not run ({error})")
        if result.returncode != 0:
            message = (result.stderr or result.stdout).strip().splitlines()
            detail = f": {message[0]}" if message else ""
            return Availability(False, f"npu-smi info failed with exit code {result.returncode}{detail}")
        chips = parse_npu_smi_info(result.stdout)
        wanted_name = soc_chip_name(soc)
        matching = [c for c in chips if c["name"] == wanted_name]
        if not matching:
            return Availability(
                False, f"npu-smi info lists no {wanted_name} chip for soc_version {soc} "
                f"(found {_describe(chips)})"
            )
        device_id = (chip.get("settings") or {}).get("device_id")
        if device_id is not None and not any(c["device"] == int(device_id) for c in matching):
            return Availability(
                False, f"npu-smi info lists {_describe(matching)}, none on device {device_id} "
                "(settings.device_id)"
            )
        return Availability(True)

    def version(self) -> str:
        from importlib import metadata

        parts = [f"CANN {cann_version() or 'unknown'}"]
        for package in ("ais_bench", "msit"):
            try:
                parts.append(f"{package} {metadata.version(package)}")
            except metadata.PackageNotFoundError:
                continue
        return "; ".join(parts)

    def compile(self, onnx_path, out_dir, precision, batch_size, chip, calibration):
        if precision not in PRECISIONS:
            raise UserError(
                f"precision {precision!r} is not supported on Ascend: use one of {', '.join(PRECISIONS)}"
            )
        if not batch_size:
            raise UserError("ATC compiles one batch size per .om: the compile rule gave none")
        atc = find_atc()
        if atc is None:
            raise UserError(f"atc not found ({SETUP_HINT})")
        settings = chip.get("settings") or {}
        out = Path(out_dir).resolve()
        out.mkdir(parents=True, exist_ok=True)
        onnx_path = Path(onnx_path).resolve()
        input_name, chw, static = onnx_input(onnx_path)
        if static is not None and static != int(batch_size):
            raise UserError(
                f"{onnx_path} has a fixed batch size {static}; ATC cannot compile it for "
                f"batch size {batch_size}: export the model with a symbolic batch dimension"
            )
        manifest = {"precision": precision, "soc_version": chip["soc_version"], "input_name": input_name}
        source = onnx_path
        if precision == "int8":
            amct = quantize_int8(
                onnx_path, calibration, out / "amct",
                calibration_batch_size=int(settings.get("amct_batch_size") or 50),
                input_name=input_name, static_batch=static,
            )
            source = Path(amct["deploy_onnx"])
            manifest["amct"] = {k: (Path(v).relative_to(out).as_posix() if k.endswith("onnx") else v)
                                for k, v in amct.items()}
        flag = settings.get("atc_precision_flag") or "precision_mode_v2"
        stem = out / f"model_bs{int(batch_size)}"
        command = atc_command(source, stem, batch_size, chip["soc_version"], precision,
                              input_name=input_name, precision_flag=flag, input_chw=chw)
        command[0] = atc
        # ATC leaves fusion_result.json and kernel_meta/ in its working directory: keep them
        # with the artefact rather than in the workflow's directory.
        run_logged(command, cwd=out, what="atc")
        om = stem.with_suffix(".om")
        if not om.is_file():
            raise UserError(f"atc exited 0 but wrote no {om}: see the ATC messages in the job log")
        manifest.update(model=om.name, atc_command=command, precision_flag=command[-1])
        return manifest

    def load(self, compiled_dir, manifest, chip, threads):
        settings = chip.get("settings") or {}
        tool = benchmark_tool(chip)
        if tool is None:
            raise UserError("neither ais_bench nor msit is available: see the chip's availability")
        return AscendRunner(
            Path(compiled_dir) / manifest["model"],
            batch_size=int(manifest["batch_size"]),
            device_id=int(settings.get("device_id") or 0),
            tool=tool,
            outfmt=str(settings.get("outfmt") or "NPY").upper(),
            info={k: manifest.get(k) for k in ("soc_version", "precision", "precision_flag")},
        )


def onnx_input(path) -> tuple[str, tuple[int, int, int], int | None]:
    """(name, (C, H, W), fixed batch size or None) of the model's first real input."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if not inputs:
        raise UserError(f"{path} has no graph input")
    first = inputs[0]
    dims = first.type.tensor_type.shape.dim
    values = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    if len(values) != 4 or any(v is None for v in values[1:]):
        raise UserError(
            f"{path}: input {first.name} has shape {values}; ATC here needs N×C×H×W with fixed C, H, W"
        )
    return first.name, tuple(values[1:]), values[0] or None


def cann_version() -> str | None:
    """Best effort: ``version=`` of the toolkit's ``ascend_toolkit_install.info``.

    (Where CANN records its version differs between releases; not verified on every one.)
    """
    homes = [os.environ.get(v) for v in ("ASCEND_TOOLKIT_HOME", "ASCEND_HOME_PATH")]
    homes.append("/usr/local/Ascend/ascend-toolkit/latest")
    for home in filter(None, homes):
        for info in [Path(home) / "ascend_toolkit_install.info", *Path(home).glob("*/ascend_toolkit_install.info")]:
            try:
                for line in info.read_text().splitlines():
                    if line.startswith("version="):
                        return line.split("=", 1)[1].strip()
            except OSError:
                continue
    return None


def run_logged(command: list[str], cwd=None, what: str | None = None) -> None:
    """Run `command`, its line logged verbatim and its output sent to stderr (the job log)."""
    what = what or Path(command[0]).name
    print("+ " + shlex.join(str(c) for c in command), file=sys.stderr, flush=True)
    try:
        try:
            fileno = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):
            fileno = None
        if fileno is not None:
            result = subprocess.run(command, cwd=cwd, stdout=fileno, stderr=subprocess.STDOUT)
        else:
            result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
            sys.stderr.write(result.stdout + result.stderr)
    except FileNotFoundError as error:
        raise UserError(f"{what} could not start ({error}): {SETUP_HINT}") from None
    if result.returncode != 0:
        raise UserError(
            f"{what} failed with exit code {result.returncode}: its messages and the full "
            "command are in the job log"
        )


# --------------------------------------------------------------------------------------------
# Runner
# --------------------------------------------------------------------------------------------


class AscendRunner(Runner):
    """A static-batch .om on one NPU, driven by ais_bench / msit."""

    def __init__(self, om_path, batch_size: int, device_id: int = 0, tool: str = "ais_bench",
                 outfmt: str = "NPY", info: dict | None = None):
        self.om_path = Path(om_path)
        self.batch_size = int(batch_size)
        self.device_id = int(device_id)
        self.tool = tool
        self.outfmt = outfmt
        self.info = dict(info or {})
        self._session = None
        #: Extra perf-record fields of the last `benchmark` (host↔device copy times, the
        #: tool's own summary): measure_throughput merges them into perf.json.
        self.benchmark_extra: dict = {}

    def settings(self) -> dict:
        return {
            "tool": self.tool,
            "device_id": self.device_id,
            "outfmt": self.outfmt,
            "timed_quantity": "NPU compute time (ais_bench NPU_compute_time, warm-up excluded)",
            **{k: v for k, v in self.info.items() if v is not None},
        }

    def _command(self, input_dir, output_dir, dirname, loop=None, warmup=None) -> list[str]:
        return ais_bench_command(
            self.om_path, input_dir, output_dir, self.batch_size, self.outfmt, loop=loop,
            warmup=warmup, device=self.device_id, output_dirname=dirname, tool=self.tool,
            python=sys.executable,
        )

    def run(self, batch: np.ndarray) -> np.ndarray:
        """One batch through ais_bench's Python API (``InferSession.infer``)."""
        if self._session is None:
            try:
                from ais_bench.infer.interface import InferSession
            except ImportError as error:
                raise UserError(
                    f"ais_bench's Python API does not import ({error}): pip install the aclruntime "
                    "and ais_bench wheels into this environment"
                ) from None
            self._session = InferSession(self.device_id, str(self.om_path))
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if len(batch) != self.batch_size:
            raise UserError(f"{self.om_path.name} takes batches of {self.batch_size}, not {len(batch)}")
        return np.asarray(self._session.infer([batch], mode="static")[0])

    def run_all(self, inputs: np.ndarray, batch_size: int, input_dir=None) -> np.ndarray:
        """Outputs for every input, in order: ais_bench over a folder of per-image .bin files.

        `input_dir` is a folder written by `write_bin_inputs` for these same inputs (the
        workflow's ``results/data/{model}/bin_inputs``); without it the files are written to a
        temporary folder first.
        """
        if int(batch_size) != self.batch_size:
            raise UserError(
                f"{self.om_path.name} was compiled for batch size {self.batch_size}, not "
                f"{batch_size}: compile the accuracy batch size"
            )
        n = len(inputs)
        with tempfile.TemporaryDirectory(prefix="chipbench-ais-") as tmp:
            tmp = Path(tmp)
            if input_dir is None:
                input_dir = tmp / "inputs"
                write_bin_inputs(inputs, input_dir)
            stems = check_input_dir(input_dir, inputs)
            run_logged(self._command(input_dir, tmp / "out", "outputs"), what=self.tool)
            return collect_outputs(tmp / "out" / "outputs", n, self.batch_size, self.outfmt, stems=stems)

    def _bench_once(self, batch: np.ndarray, loop: int, warmup: int) -> dict:
        with tempfile.TemporaryDirectory(prefix="chipbench-ais-") as tmp:
            tmp = Path(tmp)
            write_bin_inputs(batch, tmp / "inputs")
            run_logged(self._command(tmp / "inputs", tmp / "out", "bench", loop, warmup), what=self.tool)
            summary = parse_summary(find_summary(tmp / "out", "bench"), self.batch_size)
        if summary["iterations"] != loop:
            print(f"note: asked for --loop {loop}, the summary counts {summary['iterations']} "
                  "timed iterations", file=sys.stderr)
        return summary

    def benchmark(self, batch: np.ndarray, protocol: dict) -> np.ndarray:
        """NPU compute time (ms) of each timed iteration, measured by ais_bench.

        ``--warmup_count`` = warmup_iterations; ``--loop`` = min_iterations. When those
        iterations sum to less than min_seconds, the run is repeated once with enough loops
        for min_seconds (at the first run's mean), never more than max_iterations; the second
        run's figures are the result.
        """
        warmup = int(protocol.get("warmup_iterations", 0))
        minimum = max(1, int(protocol.get("min_iterations", 1)))
        cap = protocol.get("max_iterations")
        loop = min(minimum, int(cap)) if cap else minimum
        summary = self._bench_once(batch, loop, warmup)
        seconds = float(protocol.get("min_seconds", 0.0))
        timed = sum(summary["latencies_ms"]) / 1000.0 if summary["latencies_ms"] else 0.0
        mean = summary["latency_ms"]["mean"]
        if timed < seconds and mean > 0 and (not cap or loop < int(cap)):
            wanted = max(minimum, math.ceil(seconds * 1000.0 / mean * 1.05))
            loop = min(wanted, int(cap)) if cap else wanted
            summary = self._bench_once(batch, loop, warmup)
        self.benchmark_extra = {
            "h2d_ms": summary["h2d_ms"],
            "d2h_ms": summary["d2h_ms"],
            "tool_summary": summary["tool_summary"],
        }
        if not summary["latencies_ms"]:
            raise UserError("the ais_bench summary has no npu_compute_time_list: upgrade ais_bench")
        return np.asarray(summary["latencies_ms"], dtype=np.float64)


def check_input_dir(input_dir, inputs: np.ndarray) -> list[str]:
    """Stems of `input_dir`'s files in ais_bench order, after checking they are `inputs`."""
    stems = input_stems(input_dir)
    n = len(inputs)
    if len(stems) != n:
        raise UserError(
            f"{input_dir} holds {len(stems)} input files for {n} images: rebuild it "
            "(delete it and rerun the workflow)"
        )
    expected = int(np.prod(inputs.shape[1:])) * 4
    for index in sorted({0, n - 1}):
        path = Path(input_dir) / f"{stems[index]}{BIN_SUFFIX}"
        if not path.is_file() or path.stat().st_size != expected:
            raise UserError(f"{path} is not a {expected}-byte float32 image file: rebuild {input_dir}")
        if not np.array_equal(np.fromfile(path, dtype="<f4"),
                              np.asarray(inputs[index], dtype=np.float32).ravel()):
            raise UserError(f"{path} does not hold image {index} of the test set: rebuild {input_dir}")
    return stems


BACKEND = AscendBackend()
