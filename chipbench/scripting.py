"""The frame every workflow script runs in."""

from __future__ import annotations

import json
import shutil
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from chipbench import failures, provenance
from chipbench.errors import RunError, UserError
from chipbench.files import write_atomic


def run_script(snakemake, main, cell: bool = False) -> None:
    """Call `main(snakemake)` with stderr sent to the job's log.

    A UserError becomes its one-line message, on the terminal and in the log. Any other
    exception leaves its traceback in the log and says so in one line.

    A job of the matrix (`cell=True`: compile, accuracy, throughput, gate) that fails writes
    its outputs as a failed record (chipbench.failures) and exits 0, so the other cells go
    on; so does one whose input is a failed record, naming that cause. A RunError, and any
    failure of another job, exits
    with code 1, and Snakemake removes its outputs, so nothing partial stays in results/.
    """
    terminal = sys.stderr
    with open(snakemake.log[0], "w") as log:
        sys.stderr = log
        # Exact job interval, so a run can be checked for jobs that overlapped.
        print(f"job started at {time.time():.6f}", file=log, flush=True)
        try:
            upstream = failures.failed_input(snakemake.input) if cell else None
            if upstream is None:
                main(snakemake)
                print(f"job finished at {time.time():.6f}", file=log)
                return
            where = failures.cell_of(snakemake.rule, snakemake.wildcards)
            reason = failures.upstream_reason(upstream, where)
            print(f"not run: {reason} (see {upstream['cause']['log']})", file=log)
            write_failed(snakemake, reason, upstream["cause"])
            return
        except UserError as error:
            print(f"error: {error}", file=log)
            reason, line = str(error), f"error: {error}"
            cell = cell and not isinstance(error, RunError)
        except Exception as error:
            traceback.print_exc(file=log)
            first = (str(error).strip().splitlines() or [""])[0][:300]
            reason = f"{type(error).__name__} in rule {snakemake.rule}: {first}".rstrip(": ")
            line = f"error in rule {snakemake.rule}: see {snakemake.log[0]}"
        finally:
            sys.stderr = terminal
    if not cell:
        print(line, file=terminal)
        sys.exit(1)
    cause = {"rule": snakemake.rule, "reason": reason, "log": snakemake.log[0]}
    write_failed(snakemake, reason, cause)
    where = " ".join(str(v) for k, v in failures.cell_of(snakemake.rule, snakemake.wildcards).items()
                     if k != "rule")
    print(f"failed cell {where} ({snakemake.rule}): {reason}; the run goes on "
          f"(log {snakemake.log[0]})", file=terminal)


def write_failed(snakemake, reason: str, cause: dict) -> None:
    """Every declared output as a failed record: a .json file is the record, a folder (a
    compiled artefact) holds nothing but the record as its compiled.json, and a .npy file
    (accuracy outputs) is an empty array, so nothing half-written is taken for a result."""
    record = failures.failed_record(
        failures.cell_of(snakemake.rule, snakemake.wildcards), reason, cause["log"], cause,
        provenance.collect(config=snakemake.config, threads=snakemake.threads),
    )
    for output in map(Path, snakemake.output):
        if output.suffix == ".npy":
            output.parent.mkdir(parents=True, exist_ok=True)
            with open(output, "wb") as handle:
                np.save(handle, np.zeros(0, dtype=np.float32))
            continue
        if output.suffix == "":
            shutil.rmtree(output, ignore_errors=True)
        write_json(failures.record_file(output), record)


def write_json(path, data) -> None:
    """Write JSON atomically (temp file + rename), with stable key order."""
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path) -> dict:
    with open(path) as handle:
        return json.load(handle)
