"""The SLURM job a result was made in: provenance ``slurm`` (docs/cluster.md).

SLURM sets these variables in every job it starts; outside a job there is none.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def job(environ: Mapping[str, str] | None = None) -> dict | None:
    """``{"job_id", "partition", "node"}`` of the SLURM job this process runs in, else None."""
    environ = os.environ if environ is None else environ
    if not environ.get("SLURM_JOB_ID"):
        return None
    return {
        "job_id": environ["SLURM_JOB_ID"],
        "partition": environ.get("SLURM_JOB_PARTITION"),
        "node": environ.get("SLURMD_NODENAME"),
    }
