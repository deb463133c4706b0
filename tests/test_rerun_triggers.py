"""Only what changes a result reruns it: the rules `snakemake -n` schedules after one config
key changes, on a copy of the finished CI run (Snakemake's default rerun triggers, params
included). Its matrix: both metrics (simclr: pair_top1, simclrv2: top1), each on cpu and on
the gate's reference cpu_pytorch, at batch sizes 1 and 4."""

from __future__ import annotations

import json

import pytest

from tests.conftest import copy_run, snakemake, write_config
from tests.test_failed_cells import job_counts

pytestmark = pytest.mark.slow

TABLES_OF_ACCURACY = {"tabulate_accuracy": 1, "plot_accuracy": 1, "tabulate_reproduction": 1,
                      "render_table": 4}
#: config change -> jobs per rule that `snakemake -n` schedules (besides the target rule `all`).
RERUNS = {
    "pair_top1 settings rerun the pair_top1 model's accuracy only": (
        {"metrics": {"pair_top1": {"temperature": 0.5}}},
        {"measure_accuracy": 2, "check_accuracy_gate": 2, **TABLES_OF_ACCURACY},
    ),
    "the gate threshold reruns the gates only": (
        {"gate": {"min_relative_accuracy": 0.5}},
        {"check_accuracy_gate": 4, "tabulate_accuracy": 2, "plot_accuracy": 2,
         "render_table": 6},
    ),
    "the timing protocol reruns throughput": (
        {"timing": {"min_iterations": 4}},
        {"measure_throughput": 8, "tabulate_fps": 2, "plot_fps": 2, "plot_latency": 2,
         "tabulate_reproduction": 2, "render_table": 4},
    ),
    "ratio columns are the FPS tables' own": (
        {"tables": {"ratios": [["cpu", "cpu_pytorch"]]}},
        {"tabulate_fps": 2, "render_table": 2},
    ),
    "a model's title renames it in the tables only": (
        {"models": {"simclr": {"title": "SimCLR (ours)"}}},
        {"tabulate_accuracy": 1, "tabulate_fps": 1, "tabulate_estimates": 1,
         "tabulate_reproduction": 1, "plot_accuracy": 1, "plot_fps": 1, "plot_latency": 1,
         "render_table": 6},
    ),
}


@pytest.fixture(scope="module")
def finished(finished_run, tmp_path_factory):
    return copy_run(finished_run, tmp_path_factory.mktemp("triggers") / "run")


@pytest.mark.parametrize("case", sorted(RERUNS))
def test_rules_a_config_change_reruns(finished, case):
    change, expected = RERUNS[case]
    result = snakemake(finished, "-n", configs=[write_config(finished / "change.yaml", change)])
    assert result.returncode == 0, result.stderr[-3000:]
    assert job_counts(result.stdout) == {"all": 1, **expected}


def test_a_gate_only_change_gives_the_gate_records_the_new_config_hash(finished):
    gate = finished / "results" / "simclrv2" / "cpu" / "fp32" / "gate.json"
    accuracy = gate.with_name("accuracy.json")
    before, accuracy_before = json.loads(gate.read_text()), accuracy.read_bytes()
    assert before["provenance"]["config_sha256"] == json.loads(accuracy_before)["provenance"]["config_sha256"]
    change = write_config(finished / "gate.yaml", {"gate": {"min_relative_accuracy": 0.5}})
    result = snakemake(finished, str(gate.relative_to(finished)), configs=[change])
    assert result.returncode == 0, result.stderr[-3000:]
    after = json.loads(gate.read_text())
    assert after["gate"]["min_relative_accuracy"] == 0.5
    assert after["provenance"]["config_sha256"] != before["provenance"]["config_sha256"]
    assert accuracy.read_bytes() == accuracy_before  # not rerun
