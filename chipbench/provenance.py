"""Where a result came from: code, config, data, model, software, threads, timing, machine.

Every result record carries ``provenance`` (docs/DESIGN.md, "Result records"), built by
:func:`collect` in the job that measured it:

- ``workflow``: ``{"commit", "dirty", "repo"}`` of the workflow checkout (``git rev-parse
  HEAD``; dirty = ``git status --porcelain`` lists anything), or ``{"commit": None, "error"}``
  when the checkout is not a git repository or git is missing;
- ``config_sha256``: sha256 of the canonical JSON of the run's config (sorted keys, no
  whitespace), without ``select``, which only chooses the cells a run computes;
- ``seed``, ``dataset_md5``; ``onnx_sha256`` of the model the chip's artefact was compiled from;
- ``runtimes``: versions of the installed Python packages that matter (read from package
  metadata, nothing is imported);
- ``threads``: the job's thread count and the thread variables of the environment;
- ``timing``: how the record's times were taken (protocol, timer, fps definition);
- ``system``: the machine in MLPerf's system-description fields (``chipbench.host``);
- ``slurm``: ``{"job_id", "partition", "node"}`` of the SLURM job that made the record, or
  None outside SLURM (``chipbench.slurm``);
- ``result_source``: present when the runner's outputs do not come from the device itself
  (``Runner.result_source``, e.g. a bit-accurate simulation on the host);
- ``recorded_at``: Unix seconds when the record was made.

:func:`summary_lines` turns the provenance of a set of records into the lines the tables'
notes and the figures' captions show.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from chipbench import host, slurm

#: The workflow checkout: chipbench is imported from it (rules/common.smk puts it first on
#: PYTHONPATH), so its parent is the folder holding the Snakefile.
REPO = Path(__file__).resolve().parent.parent
GIT_TIMEOUT_S = 10.0
#: Python distributions whose versions are recorded when installed.
RUNTIME_PACKAGES = (
    "numpy", "onnx", "onnxruntime", "onnxruntime-gpu", "torch", "openvino", "tensorrt",
    "snakemake",
)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: Config keys left out of the config hash: they choose which cells run, not how.
UNHASHED_CONFIG_KEYS = ("select",)
FPS_DEFINITION = "1000 × batch size / mean latency of one batch (ms), the ais_bench definition"


def _git(repo: Path, *args: str, run=subprocess.run) -> str:
    result = run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                 timeout=GIT_TIMEOUT_S)
    if result.returncode != 0:
        lines = (result.stderr or "").strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"git {args[0]} failed")
    return result.stdout


def git_state(repo: Path | str = REPO, run=subprocess.run) -> dict:
    """Commit and dirty flag of the checkout at `repo`; ``run`` is replaceable for tests."""
    repo = Path(repo)
    try:
        commit = _git(repo, "rev-parse", "HEAD", run=run).strip()
        dirty = bool(_git(repo, "status", "--porcelain", run=run).strip())
    except FileNotFoundError:
        return {"commit": None, "dirty": None, "repo": str(repo), "error": "git is not installed"}
    except subprocess.TimeoutExpired:
        return {"commit": None, "dirty": None, "repo": str(repo),
                "error": f"git did not answer within {GIT_TIMEOUT_S:g} s"}
    except (OSError, RuntimeError) as error:
        return {"commit": None, "dirty": None, "repo": str(repo), "error": str(error)}
    return {"commit": commit, "dirty": dirty, "repo": str(repo)}


@functools.lru_cache(maxsize=None)
def _git_state_cached(repo: str) -> tuple:
    return tuple(sorted(git_state(repo).items()))


def canonical_json(data) -> str:
    """Sorted keys, no whitespace, UTF-8 as is: the same config always gives the same text."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def config_sha256(config: Mapping) -> str:
    hashed = {k: v for k, v in dict(config).items() if k not in UNHASHED_CONFIG_KEYS}
    return hashlib.sha256(canonical_json(hashed).encode("utf-8")).hexdigest()


def file_sha256(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def runtime_versions(packages: Iterable[str] = RUNTIME_PACKAGES) -> dict[str, str]:
    """Installed versions from package metadata (nothing is imported); absent ones are left out."""
    versions = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def thread_settings(threads: int | None, environ: Mapping[str, str] | None = None) -> dict:
    environ = os.environ if environ is None else environ
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {
        "job_threads": threads,
        "usable_cores": usable,
        **{name: environ.get(name) for name in THREAD_VARIABLES},
    }


def timing_description(runner=None, protocol: Mapping | None = None) -> dict:
    """How the record's times were taken: the protocol and who held the clock (the runner's
    `timer`)."""
    if protocol is None:
        return {
            "protocol": None,
            "timer": "time.perf_counter around the whole run over the test set "
                     "(per-image means in per_image_ms)",
        }
    timer = runner.timer if runner is not None else None  # no runner: nothing was timed
    return {"protocol": dict(protocol), "timer": timer, "fps": FPS_DEFINITION}


def collect(
    config: Mapping | None = None,
    onnx: Path | str | None = None,
    threads: int | None = None,
    protocol: Mapping | None = None,
    runner=None,
    system: Mapping | None = None,
    workflow: Mapping | None = None,
) -> dict:
    """The ``provenance`` of one result record (see the module docstring).

    ``runner`` (a `chipbench.backends.Runner`, or None) says who timed (``timer``) and where
    the outputs came from (``result_source``). ``system`` and ``workflow`` default to probing this machine and this checkout; tests
    pass them in.
    """
    record = {
        "workflow": dict(workflow) if workflow is not None else dict(_git_state_cached(str(REPO))),
        "config_sha256": config_sha256(config) if config is not None else None,
        "seed": (config or {}).get("seed"),
        "dataset_md5": ((config or {}).get("dataset") or {}).get("md5"),
        "onnx_sha256": file_sha256(onnx) if onnx is not None and Path(onnx).is_file() else None,
        "runtimes": runtime_versions(),
        "threads": thread_settings(threads),
        "timing": timing_description(runner, protocol),
        "system": dict(system) if system is not None else host.system_description(),
        "slurm": slurm.job(),
        "recorded_at": time.time(),
    }
    if runner is not None and runner.result_source != "device":
        record["result_source"] = runner.result_source
    return record


# ----------------------------------------------------------------------------- for the reader


def short_commit(workflow: Mapping) -> str:
    """``commit 1a2b3c4d5e6f`` (``+ uncommitted changes`` when dirty) or why there is none."""
    commit = workflow.get("commit")
    if not commit:
        return f"no commit ({workflow.get('error') or 'unknown'})"
    text = f"commit {commit[:12]}"
    return text + " + uncommitted changes" if workflow.get("dirty") else text


def system_text(system: Mapping) -> str:
    """``vm: AMD EPYC (2 cores), 23.5 GiB, Debian 12, Linux 6.1; no accelerator``."""
    text = (
        f"{system.get('system_name') or 'unknown host'}: "
        f"{system.get('host_processor_model_name') or 'unknown CPU'}"
    )
    if system.get("host_processor_core_count") is not None:
        text += f" ({system['host_processor_core_count']} cores)"
    if system.get("host_memory_capacity"):
        text += f", {system['host_memory_capacity']}"
    if system.get("operating_system"):
        text += f", {system['operating_system']}"
    devices = system.get("accelerators") or []
    if devices:
        counted: dict[str, int] = {}
        for device in devices:
            label = device.get("model") or "accelerator"
            if device.get("memory_gib") is not None:
                label += f" {device['memory_gib']} GiB"
            if device.get("driver"):
                label += f" (driver {device['driver']})"
            counted[label] = counted.get(label, 0) + 1
        text += "; " + ", ".join(f"{n} × {label}" for label, n in counted.items())
    else:
        text += "; no accelerator found"
    return text


def _grouped(values: Mapping[str, list[str]], name: str) -> list[str]:
    if not values:
        return []
    if len(values) == 1:
        return [f"{name}: {next(iter(values))}"]
    return [f"{name} ({len(values)} different): " + "; ".join(
        f"{value} ({', '.join(sorted(set(where)))})" for value, where in sorted(values.items())
    )]


def summary_lines(records: Iterable[Mapping], cell=lambda r: f"{r.get('chip')} {r.get('precision')}") -> list[str]:
    """Lines naming the code, config, data, model, software and machines behind `records`.

    A value that differs between records is listed once per value with the cells that have
    it (``cell(record)`` names a cell). Records made before provenance existed are counted.
    """
    records = list(records)
    with_provenance = [r for r in records if r.get("provenance")]
    lines = []
    fields: dict[str, dict[str, list[str]]] = {
        "workflow": {}, "config sha256": {}, "dataset md5": {}, "ONNX sha256": {},
        "Python packages": {}, "system": {},
    }
    for record in with_provenance:
        p = record["provenance"]
        where = cell(record)
        if p.get("workflow"):
            fields["workflow"].setdefault(short_commit(p["workflow"]), []).append(where)
        if p.get("config_sha256"):
            fields["config sha256"].setdefault(p["config_sha256"][:12], []).append(where)
        if p.get("dataset_md5"):
            fields["dataset md5"].setdefault(p["dataset_md5"], []).append(where)
        if p.get("onnx_sha256"):
            fields["ONNX sha256"].setdefault(p["onnx_sha256"][:12], []).append(where)
        runtimes = p.get("runtimes") or {}
        if runtimes:
            text = ", ".join(f"{k} {runtimes[k]}" for k in sorted(runtimes))
            fields["Python packages"].setdefault(text, []).append(where)
        if p.get("system"):
            fields["system"].setdefault(system_text(p["system"]), []).append(where)
    for name, values in fields.items():
        lines += _grouped(values, name)
    elsewhere = sorted({f"{cell(r)} ({r['provenance']['result_source']})"
                        for r in with_provenance if r["provenance"].get("result_source")})
    if elsewhere:
        lines.append("outputs not from the device: " + ", ".join(elsewhere))
    missing = len(records) - len(with_provenance)
    if missing:
        lines.append(f"{missing} record(s) carry no provenance (made before it was recorded)")
    return lines
