"""One failing cell of the matrix: the other cells finish, the failure is recorded, listed at the
end of a non-zero run, and redone (alone) by the next run."""

from __future__ import annotations

import json
import os
import re
import stat

import pytest

from chipbench import failures
from tests.conftest import make_workdir, snakemake, write_config

pytestmark = pytest.mark.slow

BOGUS = "calibrate_method 'bogus' is not known: use one of minmax, entropy, percentile in the chip's settings"
CELLS = ("compiled/simclr/cpu/{p}/dynamic/compiled.json", "simclr/cpu/{p}/accuracy.json",
         "simclr/cpu/{p}/bs1/perf.json", "simclr/cpu/{p}/gate.json")
TARGETS = [f"results/{cell.format(p=p)}".removesuffix("/compiled.json")
           for cell in CELLS for p in ("fp32", "int8")]


def matrix(workdir, calibrate_method):
    """simclr on ONNX Runtime fp32 + int8 and the PyTorch reference, batch size 1."""
    return write_config(workdir / f"cells_{calibrate_method}.yaml", {
        "models": {"simclr": {"chips": ["cpu", "cpu_pytorch"]}},
        "chips": {"cpu": {"precisions": ["fp32", "int8"],
                          "settings": {"calibrate_method": calibrate_method}}},
        "batch_sizes": [1],
        "select": {"models": ["simclr"], "chips": ["cpu", "cpu_pytorch"]},
    })


def job_counts(dry_run_output: str) -> dict[str, int]:
    """Rule -> job count from the "Job stats" table of `snakemake -n`."""
    table = dry_run_output.split("Job stats:", 1)[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)
            if m[1] != "total"}


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory):
    workdir = make_workdir(tmp_path_factory.mktemp("cells"))
    umask = os.umask(0o027)
    try:
        result = snakemake(workdir, *TARGETS, configs=[matrix(workdir, "bogus")])
    finally:
        os.umask(umask)
    return workdir, result


def test_one_failed_compile_leaves_the_other_cells_finished(failed_run):
    workdir, result = failed_run
    assert result.returncode != 0
    results = workdir / "results"
    for path in ("simclr/cpu/fp32/accuracy.json", "simclr/cpu/fp32/bs1/perf.json",
                 "simclr/cpu/fp32/gate.json", "simclr/cpu_pytorch/fp32/accuracy.json"):
        record = json.loads((results / path).read_text())
        assert record["status"] == "ok", path
    compile_log = "logs/compile_model/simclr_cpu_int8_dynamic.log"
    compiled = json.loads((results / "compiled/simclr/cpu/int8/dynamic/compiled.json").read_text())
    assert compiled["status"] == "failed" and compiled["reason"] == BOGUS
    assert compiled["log"] == compile_log and BOGUS in (workdir / compile_log).read_text()
    for cell in CELLS[1:]:
        record = json.loads((results / cell.format(p="int8")).read_text())
        assert (record["status"], record["reason"], record["log"]) == (
            "failed", f"compile failed: {BOGUS}", compile_log)
        assert (record["model"], record["chip"], record["precision"]) == ("simclr", "cpu", "int8")
        assert record["provenance"]["config_sha256"]
    assert json.loads((results / CELLS[2].format(p="int8")).read_text())["batch_size"] == 1
    # Nothing half-made stays in the failed artefact folder.
    assert sorted(p.name for p in (results / "compiled/simclr/cpu/int8/dynamic").iterdir()) == [
        ".snakemake_timestamp", "compiled.json"]


def test_the_run_says_which_cells_failed_and_exits_non_zero(failed_run):
    _, result = failed_run
    assert (f"failed cell simclr cpu int8 (compile_model): {BOGUS}; the run goes on "
            "(log logs/compile_model/simclr_cpu_int8_dynamic.log)") in result.stderr
    listing = result.stderr.split("4 of 12 matrix results failed", 1)[1].splitlines()
    assert listing[1:5] == [
        f"  results/compiled/simclr/cpu/int8/dynamic: {BOGUS} "
        "(log logs/compile_model/simclr_cpu_int8_dynamic.log)",
        f"  results/simclr/cpu/int8/accuracy.json: compile failed: {BOGUS} "
        "(log logs/compile_model/simclr_cpu_int8_dynamic.log)",
        f"  results/simclr/cpu/int8/bs1/perf.json: compile failed: {BOGUS} "
        "(log logs/compile_model/simclr_cpu_int8_dynamic.log)",
        f"  results/simclr/cpu/int8/gate.json: compile failed: {BOGUS} "
        "(log logs/compile_model/simclr_cpu_int8_dynamic.log)",
    ]
    assert result.stderr.rstrip().endswith(
        "error: some cells of the matrix failed (listed above): fix their cause, then rerun "
        "to compute them again")


def test_every_result_file_honours_the_umask(failed_run):
    workdir, _ = failed_run
    modes = {str(p.relative_to(workdir)): stat.S_IMODE(p.stat().st_mode)
             for p in (workdir / "results").rglob("*") if p.is_file()}
    assert len(modes) > 20
    assert {path: mode for path, mode in modes.items() if mode != 0o640} == {}


def test_next_run_redoes_only_the_failed_cells_and_recovers(failed_run):
    workdir, _ = failed_run
    for cell in CELLS:
        assert (workdir / "results" / cell.format(p="int8")).stat().st_mtime == 0
    dry = snakemake(workdir, "-n", *TARGETS, configs=[matrix(workdir, "bogus")])
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert job_counts(dry.stdout) == {"compile_model": 1, "measure_accuracy": 1,
                                      "measure_throughput": 1, "check_accuracy_gate": 1}
    # The recovery: fix the cause named in the reason (the chip's setting) and rerun.
    fixed = snakemake(workdir, *TARGETS, configs=[matrix(workdir, "minmax")])
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    for cell in CELLS:
        record = json.loads((workdir / "results" / cell.format(p="int8")).read_text())
        assert record["status"] == "ok", cell


def test_a_failed_transform_step_is_named_by_each_precision_it_serves():
    """The transform step (one per artefact folder, no precision) fails: every precision's
    compile, and what follows it, names it as this cell's own cause."""
    log = "logs/transform_model/m_bm1684x_bs1.log"
    step = failures.cell_of("transform_model", {"model": "m", "chip": "bm1684x", "shape": "bs1"})
    assert step == {"model": "m", "chip": "bm1684x", "precision": None, "batch_size": 1,
                    "rule": "transform_model"}
    reason = "TPU-MLIR model_transform failed with exit code 1"
    record = failures.failed_record(step, reason, log, dict(rule="transform_model", reason=reason,
                                                            log=log), {})
    for precision in ("fp32", "int8"):
        compile_cell = failures.cell_of(
            "compile_model", {"model": "m", "chip": "bm1684x", "precision": precision, "shape": "bs1"})
        assert failures.upstream_reason(record, compile_cell) == f"transform failed: {reason}"
    # a failure on another chip (a gate's reference) is still named with its cell
    gate_cell = failures.cell_of("check_accuracy_gate", {"model": "m", "chip": "cpu", "precision": "int8"})
    assert failures.upstream_reason(record, gate_cell) == f"transform on bm1684x failed: {reason}"
