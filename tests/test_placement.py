"""Where a chip's jobs run on a cluster: placement data, its overrides, the plan's probing
on a submit host, the SLURM resources the dry run shows, and the SLURM job in provenance."""

from __future__ import annotations

import re

import pytest
import yaml

from chipbench import backends, slurm
from chipbench import config as cfg
from chipbench.backends.base import Availability
from tests.conftest import REPO, snakemake, write_config


def default_config(**chips) -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["chips"].update(chips)
    return config


def test_placement_overrides_the_preset_key_by_key(tmp_path):
    config = default_config(ascend310p={"placement": {"partition": "atlas", "constraint": None}})
    plan = cfg.resolve(config, tmp_path, check_availability=False)
    assert plan.chips["ascend310p"]["placement"] == {
        "gres": "npu:1", "constraint": None, "partition": "atlas"}
    assert plan.chips["bm1684x"]["placement"] == {"partition": "bm1684x"}
    assert "placement" not in plan.chips["cpu"]


@pytest.mark.usefixtures("own_capability_cache")
def test_on_a_cluster_placed_chips_are_probed_where_they_run(tmp_path, monkeypatch):
    probed = []

    def absent(self, chip):
        probed.append(chip["backend"])
        return Availability(False, f"no {chip['backend']} here")

    for name in ("tensorrt", "onnxruntime"):
        monkeypatch.setattr(type(backends.get(name)), "availability", absent)
    config = default_config(cpu={"placement": {"partition": "cpu"}}, cpu_pytorch={})

    here = cfg.resolve(config, tmp_path)
    assert here.unavailable["t4"] == "no tensorrt here"
    assert here.unavailable["cpu"] == "no onnxruntime here"

    probed.clear()
    cluster = cfg.resolve(config, tmp_path, on_cluster=True)
    assert "t4" not in cluster.unavailable and "cpu" not in cluster.unavailable
    assert probed == []  # neither has been asked on this host


@pytest.mark.usefixtures("own_capability_cache")
def test_unplaced_chip_is_still_probed_on_the_submit_host(tmp_path, monkeypatch):
    monkeypatch.setattr(type(backends.get("pytorch")), "availability",
                        lambda self, chip: Availability(False, "no torch here"))
    plan = cfg.resolve(default_config(), tmp_path, on_cluster=True)
    assert plan.unavailable["cpu_pytorch"] == "no torch here"


def test_slurm_job_comes_from_the_variables_slurm_sets():
    assert slurm.job({}) is None
    assert slurm.job({"SLURM_JOB_ID": "42", "SLURM_JOB_PARTITION": "bm1684x",
                      "SLURMD_NODENAME": "sophon1"}) == {
        "job_id": "42", "partition": "bm1684x", "node": "sophon1"}


def dry_run_jobs(text: str) -> list[dict]:
    """rule, wildcards and resources of each job a dry run lists."""
    jobs = []
    for block in re.split(r"\n(?=rule \w+:)", text)[1:]:
        job = {"rule": block.split(":", 1)[0].removeprefix("rule ")}
        for key in ("wildcards", "resources"):
            line = re.search(rf"^\s+{key}: (.*)$", block, re.M)
            job[key] = dict(i.split("=", 1) for i in line[1].split(", ")) if line else {}
        jobs.append(job)
    return jobs


#: chip -> (partition, gres of its device jobs, --exclusive for its timing jobs) for the CI
#: config (.test/config.yaml) with the overrides below (which add the BM1684X, placed by its
#: preset); ascend310p keeps its preset.
EXPECTED = {
    "cpu": ("chipa", None, True),
    "cpu_pytorch": ("chipb", "npu:1", True),   # timed on the host CPU: the node, and the npu
    "bm1684x": ("bm1684x", None, True),
    "ascend310p": (None, "npu:1", False),      # the NPU to itself is enough
}


def test_slurm_dry_run_shows_each_chips_jobs_with_their_placement(workdir):
    overrides = write_config(workdir / "placement.yaml", {
        "models": {"simclrv2": {"chips": ["cpu", "cpu_pytorch", "bm1684x"]}},
        "chips": {"cpu": {"placement": {"partition": "chipa"}},
                  "cpu_pytorch": {"placement": {"partition": "chipb", "gres": "npu:1"}}},
    })
    result = snakemake(workdir, "-n", "--profile", str(REPO / "profiles" / "slurm"),
                       configs=[overrides], cores=None)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = [j for j in dry_run_jobs(result.stdout) if j["wildcards"].get("chip")]
    # Not available on a CI host, ascend310p and bm1684x are scheduled all the same: their
    # own machines answer on a cluster.
    assert {j["wildcards"]["chip"] for j in jobs} == set(EXPECTED)
    assert {j["rule"] for j in jobs} == {"transform_model", "compile_model", "measure_accuracy",
                                         "measure_throughput", "check_accuracy_gate"}
    # only the BM1684X's backend has a transform step; it goes where the chip's compiles go
    assert {j["wildcards"]["chip"] for j in jobs if j["rule"] == "transform_model"} == {"bm1684x"}
    for job in jobs:
        resources = job["resources"]
        partition, gres, exclusive = EXPECTED[job["wildcards"]["chip"]]
        assert resources.get("slurm_partition") == partition, job
        holds_device = job["rule"] != "check_accuracy_gate"
        assert resources.get("gres") == (gres if holds_device else None), job
        timing = job["rule"] in ("measure_accuracy", "measure_throughput")
        whole_node = "--exclusive" if timing and exclusive else None
        assert resources.get("slurm_extra") == whole_node, job
