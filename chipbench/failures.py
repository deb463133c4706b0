"""Failed cell records: one matrix job failed, and the rest of the matrix still finishes.

A job of the matrix (compile, accuracy, throughput, gate) that fails writes its declared
outputs as a failed record and succeeds, so Snakemake goes on with every other cell:

    {"status": "failed", "reason": "<one line>", "log": "logs/...", "rule": ..., "model": ...,
     "chip": ..., "precision": ..., "batch_size": <throughput and static compiles>,
     "cause": {"rule", "reason", "log"} of the job that really failed, "provenance": {...}}

A job whose input is a failed record fails the same way, naming that cause. Readers treat a
record without "status" as ok (records of older runs, records imported from other hosts).
At the end of the run every failed record is listed and made older than anything (mtime 0),
so the next run computes those cells again and keeps the finished ones.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from chipbench.backends.base import COMPILED_MANIFEST

#: What each matrix rule's result is called in a reason ("compile failed: ...").
RESULT_NAMES = {
    "transform_model": "transform",
    "compile_model": "compile",
    "measure_accuracy": "accuracy",
    "measure_throughput": "throughput",
    "check_accuracy_gate": "gate",
}
#: Snakemake's mtime carrier of a directory output.
DIRECTORY_TIMESTAMP = ".snakemake_timestamp"


def is_failed(record: dict) -> bool:
    return record.get("status", "ok") == "failed"


def record_file(output: Path | str) -> Path:
    """The record file of a matrix output: a compiled folder's compiled.json, or the file."""
    output = Path(output)
    return output / COMPILED_MANIFEST if output.suffix == "" else output


def read_record(output: Path | str) -> dict | None:
    """The record of a matrix output, or None when it is not there or not a JSON record."""
    path = record_file(output)
    if path.suffix != ".json" or not path.is_file():
        return None
    with open(path) as handle:
        record = json.load(handle)
    return record if isinstance(record, dict) else None


def failed_input(inputs) -> dict | None:
    """The first failed record among a job's inputs (None when every input is usable)."""
    found = failed_outputs(inputs)
    return found[0][1] if found else None


def cell_of(rule: str, wildcards) -> dict:
    """model, chip, precision (and batch_size when the job has one) of a job's wildcards."""
    cell = {key: wildcards.get(key) for key in ("model", "chip", "precision")}
    if wildcards.get("batch"):
        cell["batch_size"] = int(wildcards["batch"])
    elif str(wildcards.get("shape", "")).startswith("bs"):
        cell["batch_size"] = int(wildcards["shape"][2:])
    return dict(cell, rule=rule)


def upstream_reason(upstream: dict, cell: dict) -> str:
    """`compile failed: <reason>`, naming the upstream cell when it is another one (the gate's
    reference). A step shared by every precision (transform) has none: it is this cell's."""
    cause = upstream["cause"]
    name = RESULT_NAMES.get(cause["rule"], cause["rule"])
    other = upstream.get("chip") != cell["chip"] or upstream.get("precision") not in (
        None, cell["precision"])
    named = " ".join(str(upstream[key]) for key in ("chip", "precision") if upstream.get(key))
    where = f" on {named}" if other else ""
    return f"{name}{where} failed: {cause['reason']}"


def failed_record(cell: dict, reason: str, log: str, cause: dict, provenance: dict) -> dict:
    return dict(cell, status="failed", reason=reason, log=log, cause=cause,
                provenance=provenance)


def mark_stale(output: Path | str) -> None:
    """Make a failed output older than any input (mtime 0), so the next run redoes it.

    Snakemake touches outputs after a job, so this runs at the end of the run.
    """
    output = Path(output)
    carriers = [output / DIRECTORY_TIMESTAMP, output / COMPILED_MANIFEST] if output.is_dir() \
        else [output]
    for path in carriers:
        if path.exists():
            os.utime(path, (0, 0))


def failed_outputs(outputs) -> list[tuple[str, dict]]:
    """(output, record) of each failed record among `outputs` (matrix outputs)."""
    found = []
    for output in outputs:
        record = read_record(output)
        if record is not None and is_failed(record):
            found.append((str(output), record))
    return found
