"""The real workflow, end to end, on a tiny CIFAR-format archive (CI's .test config)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from chipbench import metrics
from tests.conftest import copy_run, snakemake, table_column, table_row

pytestmark = pytest.mark.slow


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_run_leaves_tables_and_results(finished_run):
    results = finished_run / "results"
    for model in ("simclr", "simclrv2"):
        for kind in ("accuracy", "fps"):
            for ext in ("md", "csv"):
                assert (results / "tables" / f"{model}_{kind}.{ext}").is_file()
        for batch in (1, 4):
            perf = read_json(results / model / "cpu" / "fp32" / f"bs{batch}" / "perf.json")
            assert perf["batch_size"] == batch
            assert perf["iterations"] >= 3 and len(perf["latencies_ms"]) == perf["iterations"]
            mean = np.mean(perf["latencies_ms"])
            assert perf["throughput_fps"] == pytest.approx(1000 * batch / mean, rel=1e-6)
            trials = perf["trials"]  # .test config: 3 trials, each ≥ 3 iterations
            assert trials["count"] == 3 and sum(trials["iterations"]) == perf["iterations"]
            bounds = np.cumsum([0] + trials["iterations"])
            trial_fps = [1000 * batch / np.mean(perf["latencies_ms"][a:b])
                         for a, b in zip(bounds[:-1], bounds[1:])]
            assert trials["fps"] == pytest.approx(trial_fps, rel=1e-6)
            assert trials["ci95"][0] <= np.mean(trial_fps) <= trials["ci95"][1]
            assert perf["weights"] == {"source": "random", "seed": 0}


def test_accuracy_records_match_their_outputs(finished_run):
    results = finished_run / "results"
    logits = np.load(results / "simclrv2" / "cpu_pytorch" / "fp32" / "outputs.npy")
    labels = np.load(results / "data" / "simclrv2" / "test_labels.npy")
    record = read_json(results / "simclrv2" / "cpu_pytorch" / "fp32" / "accuracy.json")
    assert logits.shape == (48, 10)
    assert record["n_images"] == record["images_scored"] == 48 and record["subset"] is False
    assert record["accuracy"] == pytest.approx(100 * np.mean(logits.argmax(1) == labels))

    # The CPU scores the first 16 images only (.test config accuracy_images) and says so;
    # its gate compares with the reference scored on the same 16 images.
    subset = read_json(results / "simclrv2" / "cpu" / "fp32" / "accuracy.json")
    assert subset["images_scored"] == subset["n_images"] == 16 and subset["subset"] is True
    assert np.load(results / "simclrv2" / "cpu" / "fp32" / "outputs.npy").shape == (16, 10)
    verdict = read_json(results / "simclrv2" / "cpu" / "fp32" / "gate.json")
    assert verdict["images_scored"] == 16 and verdict["agreement"]["n_outputs"] == 16
    assert verdict["gate"]["reference_accuracy"] == pytest.approx(
        100 * np.mean(logits[:16].argmax(1) == labels[:16]))

    # pair_top1 on the 16 images: two 8-pair batches of their 32 views
    embeddings = np.load(results / "simclr" / "cpu" / "fp32" / "outputs.npy")
    record = read_json(results / "simclr" / "cpu" / "fp32" / "accuracy.json")
    assert embeddings.shape == (32, 128)
    permutation = metrics.pair_permutation(16, 8, 0)
    expected = metrics.pair_matching_top1(embeddings, permutation, 0.07)["accuracy"]
    assert record["metric"] == "pair_top1"
    assert record["accuracy"] == pytest.approx(expected)


def test_tables_show_ours_beside_the_report(finished_run):
    fps = (finished_run / "results" / "tables" / "simclr_fps.md").read_text()
    assert "SimCLR bs1" in fps and "SimCLR bs4" in fps
    assert "12075" in fps  # T4 bs64 as published
    assert "random weights (seed 0)" in fps
    accuracy = (finished_run / "results" / "tables" / "simclrv2_accuracy.md").read_text()
    assert "89.26" in accuracy  # BM1684X fp32 as published
    assert "random weights (seed 0)" in accuracy


def job_intervals(workdir: Path) -> dict[str, tuple[float, float]]:
    intervals = {}
    for log in (workdir / "logs").rglob("*.log"):
        text = log.read_text()
        start = re.search(r"job started at ([\d.]+)", text)
        end = re.search(r"job finished at ([\d.]+)", text)
        if start and end:
            intervals[str(log.relative_to(workdir / "logs"))] = (float(start[1]), float(end[1]))
    return intervals


def test_cpu_timing_jobs_had_the_machine_to_themselves(finished_run):
    intervals = job_intervals(finished_run)
    timing = [name for name in intervals if name.startswith("measure_throughput/")]
    assert len(timing) == 8 and len(intervals) >= 15
    for name in timing:
        start, end = intervals[name]
        for other, (other_start, other_end) in intervals.items():
            if other != name:
                assert other_end <= start or other_start >= end, f"{other} overlapped {name}"


def test_the_run_printed_its_estimate_first(finished_run):
    stderr = (finished_run / "stderr.txt").read_text()
    first = stderr.index("Estimated run time from scratch on a 2-core x86-64 CPU")
    assert first < stderr.index("rule measure_throughput")
    assert re.search(r"^  throughput +8 jobs  ~", stderr, re.MULTILINE)
    # (timed cells: both models on cpu and cpu_pytorch, each at bs 1 and 4)


def test_rerun_does_nothing_and_keeps_tables_byte_identical(finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path / "run")
    tables = run / "results" / "tables"
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tables.iterdir()}
    result = snakemake(run)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tables.iterdir()}
    assert after == before


def test_targeted_rerun_of_one_batch_size_keeps_the_full_tables(finished_run, tmp_path):
    finished_run = copy_run(finished_run, tmp_path / "run")
    perf = finished_run / "results" / "simclr" / "cpu" / "fp32"
    bs1_before = (perf / "bs1" / "perf.json").read_bytes()
    result = snakemake(
        finished_run, "--config", "select={'batch_sizes': [4], 'models': ['simclr']}",
        "--forcerun", "measure_throughput",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (perf / "bs1" / "perf.json").read_bytes() == bs1_before
    assert read_json(perf / "bs4" / "perf.json")["started_at"] > read_json(perf / "bs1" / "perf.json")["finished_at"]
    fps = (finished_run / "results" / "tables" / "simclr_fps.md").read_text()
    assert "SimCLR bs1" in fps and "SimCLR bs4" in fps


def test_chip_missing_here_shows_dash_with_the_reason(finished_run):
    tables = finished_run / "results" / "tables"
    fps = (tables / "simclr_fps.md").read_text()
    header = fps.splitlines()[2]
    assert "310P fp16 fps" in header and "310P (report)" in header
    assert "- — cannot run here: 310P: atc not found" in fps
    # our 310P column: no figure for a chip that did not run
    assert table_row(fps, "SimCLR bs1")[table_column(fps, "310P fp16 fps")] == "—"
    assert not (finished_run / "results" / "simclr" / "ascend310p").exists()


def test_explicit_target_on_a_missing_chip_fails_with_one_line(finished_run, tmp_path):
    finished_run = copy_run(finished_run, tmp_path / "run")
    result = snakemake(finished_run, "results/simclr/ascend310p/fp16/bs1/perf.json")
    assert result.returncode != 0
    # distinct lines: the default profile also prints the failed job's log
    errors = sorted({l for l in result.stderr.splitlines() if l.startswith("error:")})
    assert errors == ["error: chip ascend310p is not available on this host: atc not found "
                      "(install the CANN toolkit and source "
                      "/usr/local/Ascend/ascend-toolkit/set_env.sh)"], result.stderr
    assert not (finished_run / "results" / "compiled" / "simclr" / "ascend310p").exists()
