"""Reading what ais_bench / msit leave: the order of its input files, its output files, and
its ``*_summary.json`` of timings."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np

from chipbench import timing
from chipbench.backends.ascend.commands import output_format
from chipbench.errors import UserError
from chipbench.tools import INPUT_FILE_SUFFIX, input_file_name

SUMMARY_SUFFIX = "_summary.json"


def natural_key(name: str):
    """ais_bench's order of input files: digit runs compared as numbers, text case-folded."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def input_stems(input_dir) -> list[str]:
    """Stems of the input files ais_bench reads from `input_dir`, in its (natural) order."""
    files = [p.name for p in Path(input_dir).iterdir() if p.suffix.lower() in (".bin", ".npy")]
    return [name.rsplit(".", 1)[0] for name in sorted(sorted(files), key=natural_key)]


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
        path = Path(input_dir) / f"{stems[index]}{INPUT_FILE_SUFFIX}"
        if not path.is_file() or path.stat().st_size != expected:
            raise UserError(f"{path} is not a {expected}-byte float32 image file: rebuild {input_dir}")
        if not np.array_equal(np.fromfile(path, dtype="<f4"),
                              np.asarray(inputs[index], dtype=np.float32).ravel()):
            raise UserError(f"{path} does not hold image {index} of the test set: rebuild {input_dir}")
    return stems


def _load_output(path: Path, outfmt: str, dtype, why: str = "") -> np.ndarray:
    if not path.is_file():
        raise UserError(
            f"ais_bench wrote no output {path.name} in {path.parent}: {why}see the ais_bench "
            "messages in the job log"
        )
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
    `chipbench.tools.write_input_files`).
    """
    outfmt = output_format(outfmt)
    result = Path(result_dir)
    n, bs = int(n_inputs), int(batch_size)
    if stems is None:
        stems = [input_file_name(i, n) for i in range(n)]
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
                data = _load_output(path, outfmt, dtype, "the run did not cover every input; ")
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

