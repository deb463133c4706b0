"""The frame every workflow script runs in."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from chipbench.errors import UserError


def run_script(snakemake, main) -> None:
    """Call `main(snakemake)` with stderr sent to the job's log.

    A UserError becomes its one-line message, on the terminal and in the log, and exit
    code 1; Snakemake then removes the job's outputs, so nothing partial stays in results/.
    """
    terminal = sys.stderr
    with open(snakemake.log[0], "w") as log:
        sys.stderr = log
        # Exact job interval, so a run can be checked for jobs that overlapped.
        print(f"job started at {time.time():.6f}", file=log, flush=True)
        try:
            main(snakemake)
            print(f"job finished at {time.time():.6f}", file=log)
        except UserError as error:
            print(f"error: {error}", file=log)
            print(f"error: {error}", file=terminal)
            sys.exit(1)
        except Exception:
            traceback.print_exc(file=log)
            print(f"error in rule {snakemake.rule}: see {snakemake.log[0]}", file=terminal)
            sys.exit(1)
        finally:
            sys.stderr = terminal


def write_json(path, data) -> None:
    """Write JSON atomically (temp file + rename), with stable key order."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        json.dump(data, tmp, indent=2, sort_keys=True)
        tmp.write("\n")
    os.replace(tmp.name, path)


def read_json(path) -> dict:
    with open(path) as handle:
        return json.load(handle)
