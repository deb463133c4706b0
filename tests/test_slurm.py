"""The tiny workflow on a real one-node SLURM cluster, through `--profile profiles/slurm`.

Two chips are placed on two partitions of the one node (config placement overrides); SLURM's
own records say where each job ran, and the tables must match a local run's apart from
timings. Needs root and Debian's slurmctld, slurmd, slurm-client and munge (.ci/run).
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import time

import pytest

from tests.conftest import REPO, make_workdir, snakemake_command, write_config
from tests.slurm_cluster import NODE_FEATURE, Cluster, missing_reason

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(missing_reason() is not None, reason=str(missing_reason())),
]

#: Partition standing for each chip's machines; cpu_pytorch also takes the node's one NPU
#: and its feature, as an Ascend chip would.
PARTITIONS = {"cpu": "chipa", "cpu_pytorch": "chipb"}
#: One model (every SLURM job costs a few seconds of start-up and polling), otherwise the CI
#: config, whose whole run on this host (conftest.finished_run) the tables must match.
OVERRIDES = {
    "select": {"models": ["simclrv2"]},
    "models": {"simclrv2": {"chips": ["cpu", "cpu_pytorch"]}},
    "chips": {
        "cpu": {"placement": {"partition": PARTITIONS["cpu"]}},
        "cpu_pytorch": {"placement": {"partition": PARTITIONS["cpu_pytorch"], "gres": "npu:1",
                                      "constraint": NODE_FEATURE}},
    },
}
CHIP_RULES = ("compile_model", "measure_accuracy", "measure_throughput", "check_accuracy_gate")
TIMING_RULES = ("measure_accuracy", "measure_throughput")
#: A hang (e.g. a status check that never answers) fails the test after this long.
RUN_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("slurm"), list(PARTITIONS.values()))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory, request):
    """The run through SLURM and the CI config's run on this host (conftest.finished_run),
    side by side: the SLURM run spends most of its time waiting for the plugin's next status
    check, and the local run, which other test files share, computes meanwhile (or is
    already there). Both workdirs, and SLURM's record of its jobs."""
    on_slurm = make_workdir(tmp_path_factory.mktemp("on_slurm"))
    started = time.monotonic()
    # The profile's first status check comes 5 s after a submission, then 10 s later each time
    # (the plugin's back-off); this cluster's jobs take seconds, so the test checks from 1 s.
    overrides = write_config(on_slurm / "placement.yaml", OVERRIDES)
    command = snakemake_command(
        on_slurm, "--profile", str(REPO / "profiles" / "slurm"),
        "--slurm-init-seconds-before-status-checks", "1", configs=[overrides], cores=None)
    log = on_slurm / "snakemake_output.log"  # a file: a full pipe would stall the run
    with open(log, "w") as output, subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT,
            env={**os.environ, **cluster.env}) as slurm:
        try:
            local = request.getfixturevalue("finished_run")
            slurm.wait(timeout=RUN_TIMEOUT_S)
        finally:
            slurm.kill()  # a no-op once it has ended
    assert slurm.returncode == 0, log.read_text()[-4000:]
    print(f"\nworkflow through profiles/slurm: {time.monotonic() - started:.1f} s")
    return on_slurm, local, slurm_jobs(cluster)


def slurm_jobs(cluster) -> dict[str, dict]:
    """Every job SLURM still remembers (MinJobAge), by job id: the rule and wildcards the
    plugin writes into the job's comment, and where SLURM ran it."""
    fields = ("job_id", "partition", "node", "comment", "gres", "features", "oversubscribe")
    text = cluster.run("squeue", "--states=all", "-h", "-o", "%i|%P|%N|%k|%b|%f|%h")
    jobs = {}
    for line in text.splitlines():
        job = dict(zip(fields, line.split("|")))
        rule, _, wildcards = job["comment"].removeprefix("rule_").partition("_wildcards_")
        jobs[job["job_id"]] = {**job, "rule": rule, "chip": chip_of(wildcards)}
    return jobs


def chip_of(wildcards: str) -> str | None:
    """The chip in a job's wildcard values ("simclr_cpu_pytorch_fp32_1" -> cpu_pytorch)."""
    for model in OVERRIDES["models"]:
        if wildcards.startswith(f"{model}_"):
            rest = wildcards.removeprefix(f"{model}_")
            chips = sorted((c for c in PARTITIONS if rest.startswith(f"{c}_")), key=len)
            return chips[-1] if chips else None
    return None


def records(workdir, chip):
    paths = [*workdir.glob(f"results/*/{chip}/*/accuracy.json"),
             *workdir.glob(f"results/*/{chip}/*/bs*/perf.json")]
    return {str(p.relative_to(workdir)): json.loads(p.read_text()) for p in paths}


def test_each_chips_jobs_ran_in_its_partition(runs):
    workdir, _, jobs = runs
    print(f"\n{'rule':<22}{'chip':<13}{'partition':<11}{'node':<11}job id")
    for job in sorted(jobs.values(), key=lambda j: int(j["job_id"])):
        print(f"{job['rule']:<22}{job['chip'] or '-':<13}{job['partition']:<11}"
              f"{job['node']:<11}{job['job_id']}")
    for chip, partition in PARTITIONS.items():
        ran = {j["rule"] for j in jobs.values() if j["chip"] == chip}
        assert ran == set(CHIP_RULES), chip
        for job in (j for j in jobs.values() if j["chip"] == chip):
            assert job["partition"] == partition, job
            assert job["node"] == "localhost", job
        # Every result names the SLURM job that made it, and SLURM agrees where that was.
        found = records(workdir, chip)
        assert len(found) == 3  # accuracy, bs1 and bs4 throughput of simclrv2
        for path, record in found.items():
            slurm = record["provenance"]["slurm"]
            assert slurm["partition"] == partition and slurm["node"] == "localhost", path
            job = jobs[slurm["job_id"]]
            assert job["rule"] in TIMING_RULES and job["chip"] == chip, (path, job)
    npu_jobs = [j for j in jobs.values() if j["chip"] == "cpu_pytorch"]
    assert {j["features"] for j in npu_jobs} == {NODE_FEATURE}
    assert {j["gres"] for j in npu_jobs if j["rule"] != "check_accuracy_gate"} == {"gres:npu:1"}
    # The rest (data, export) ran in the default partition; tables and plots on this host.
    others = {j["rule"] for j in jobs.values() if j["chip"] is None}
    assert {j["partition"] for j in jobs.values() if j["chip"] is None} == {"chipa"}
    assert not others & {"tabulate_accuracy", "tabulate_fps", "render_table", "plot_fps"}
    assert {"export_onnx", "preprocess_test_set"} <= others


def test_timing_jobs_have_the_node_to_themselves(runs):
    _, _, jobs = runs
    chip_jobs = [j for j in jobs.values() if j["chip"]]
    assert {j["oversubscribe"] for j in chip_jobs if j["rule"] in TIMING_RULES} == {"NO"}
    assert "NO" not in {j["oversubscribe"] for j in chip_jobs if j["rule"] not in TIMING_RULES}


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


#: Tables of measured times (and what is derived from them): compared with every number,
#: and its noise flag "*", masked.
TIMED_TABLES = ("fps", "latency", "reproduction", "estimates")


def without_numbers(rows):
    return [[re.sub(r"\d+(\.\d+)?\*?", "#", cell) for cell in row] for row in rows]


def test_tables_match_a_local_run_apart_from_timings(runs):
    workdir, local_run, _ = runs
    tables = sorted(p.name for p in (workdir / "results" / "tables").glob("*.csv"))
    assert tables == sorted(p.name for p in (local_run / "results" / "tables").glob(
        "simclrv2_*.csv"))  # the local run has both models
    assert {t.split("_", 1)[1] for t in tables} == {f"{k}.csv" for k in (
        "accuracy", "gate", *TIMED_TABLES)}
    for name in tables:
        here, there = (read_csv(d / "results" / "tables" / name) for d in (local_run, workdir))
        if name.removesuffix(".csv").split("_", 1)[1] in TIMED_TABLES:
            here, there = without_numbers(here), without_numbers(there)
        assert here == there, name
