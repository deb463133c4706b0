"""Results copied from other hosts (results/imported/<label>/): reading, merging, marking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chipbench.errors import UserError
from chipbench.report import accuracy, published as published_figures, records as result_records, throughput
from chipbench.report.context import TableContext
from chipbench.report.records import accuracy_key, merge_records, perf_key

REPO = Path(__file__).resolve().parent.parent
DASH = "—"
NOT_RUN = "not run"
LABELS = {"cpu": "CPU", "ascend310p": "310P"}
HOST_A = {"hostname": "a", "cpu": "CPU A", "cores": 2}
HOST_B = {"hostname": "b", "cpu": "CPU B", "cores": 8}
TIMING = {"warmup_iterations": 1, "min_iterations": 3, "min_seconds": 0.0, "max_iterations": None}


@pytest.fixture(scope="module")
def published():
    return published_figures.load_published(REPO / "resources" / "published.yaml")


def perf(chip, batch, fps, host=HOST_A, finished=1000.0, label=None, precision="fp32", **extra):
    record = {
        "model": "simclr", "chip": chip, "precision": precision, "batch_size": batch,
        "throughput_fps": fps, "cv": 0.01, "iterations": 10, "latency_ms": {"mean": 1.0},
        "weights": {"source": "random", "seed": 0}, "host": host,
        "backend": {"name": "onnxruntime", "version": "1", "settings": {}}, "timing": TIMING,
        "finished_at": finished, **extra,
    }
    if label:
        record["imported"] = {"label": label, "path": f"results/imported/{label}/x"}
    return record


def acc(chip, accuracy, label=None, precision="fp32", host=HOST_A, recorded=1000.0):
    record = {
        "model": "simclr", "chip": chip, "precision": precision, "metric": "pair_top1",
        "accuracy": accuracy, "n_images": 10, "batch_size": 4,
        "details": {"n_batches": 1, "pairs_per_batch": 4, "temperature": 0.07, "chance": 10.0},
        "weights": {"source": "random", "seed": 0}, "host": host,
        "backend": {"name": "onnxruntime", "version": "1", "settings": {}},
        "provenance": {"recorded_at": recorded},
    }
    if label:
        record["imported"] = {"label": label, "path": f"results/imported/{label}/x"}
    return record


def write(path: Path, record: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


# ------------------------------------------------------------------------------------ reading


def test_load_tags_imports_with_their_label_and_splits_failed_records(tmp_path):
    local = write(tmp_path / "results/simclr/cpu/fp32/bs1/perf.json", perf("cpu", 1, 100.0))
    other = write(tmp_path / "results/imported/gpu-box/simclr/cpu/fp32/bs4/perf.json",
                  perf("cpu", 4, 200.0, host=HOST_B))
    failed = write(tmp_path / "results/simclr/cpu/fp32/bs8/perf.json",
                   {"status": "failed", "reason": "r", "log": "logs/x.log", "model": "simclr",
                    "chip": "cpu", "precision": "fp32", "batch_size": 8})
    loaded = result_records.load([other, local, failed], "perf")
    assert sorted(r["throughput_fps"] for r in loaded.records) == [100.0, 200.0]
    by_batch = {r["batch_size"]: r for r in loaded.records}
    assert "imported" not in by_batch[1]
    assert by_batch[4]["imported"] == {"label": "gpu-box", "path": str(other)}
    assert by_batch[4]["host"] == HOST_B  # keeps the host it was measured on
    assert [r["batch_size"] for r in loaded.failed] == [8]
    assert loaded.notes == []


def test_load_rejects_a_corrupt_record_with_one_line(tmp_path):
    path = tmp_path / "results/simclr/cpu/fp32/accuracy.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(UserError, match=r"accuracy.json is not valid JSON .*: delete it and rerun"):
        result_records.load([path], "accuracy")


def test_imported_label_comes_from_the_imported_folder():
    assert result_records.imported_label("results/imported/lab 2/simclr/cpu/fp32/accuracy.json") == "lab 2"
    assert result_records.imported_label("/w/results/imported/b/simclr/cpu/fp32/accuracy.json") == "b"
    assert result_records.imported_label("results/simclr/cpu/fp32/accuracy.json") is None
    assert result_records.imported_label("/w/results/simclr/cpu/fp32/accuracy.json") is None


# ------------------------------------------------------------------------------------ merging


def test_this_hosts_record_wins_and_the_conflict_is_noted():
    records, notes = merge_records(
        [perf("cpu", 1, 100.0), perf("cpu", 1, 250.0, host=HOST_B, finished=9e9, label="b")],
        perf_key,
    )
    assert [r["throughput_fps"] for r in records] == [100.0]
    assert len(notes) == 1
    assert notes[0].startswith("simclr cpu fp32 bs1: conflict between hosts a (CPU A, 2 cores) "
                               "and b (CPU B, 8 cores): shown 100 fps from this host's results")
    assert "not shown 250 fps from results/imported/b" in notes[0]
    assert notes[0].endswith("this host's results win")


def test_among_imports_the_newest_wins():
    old = perf("cpu", 4, 100.0, host=HOST_B, finished=1000.0, label="b-old")
    new = perf("cpu", 4, 120.0, host=HOST_B, finished=2000.0, label="b-new")
    records, notes = merge_records([old, new], perf_key)
    assert [r["throughput_fps"] for r in records] == [120.0]
    assert notes == [
        "simclr cpu fp32 bs4: same host: shown 120 fps from results/imported/b-new "
        "(1970-01-01 00:33 UTC); not shown 100 fps from results/imported/b-old "
        "(1970-01-01 00:16 UTC) — the newest wins"
    ]


def test_equal_times_go_to_the_first_label():
    records, _ = merge_records(
        [perf("cpu", 1, 1.0, label="z"), perf("cpu", 1, 2.0, label="m")], perf_key
    )
    assert records[0]["imported"]["label"] == "m"


def test_an_imported_copy_of_the_shown_record_is_counted_once():
    local = perf("cpu", 1, 100.0)
    copy = dict(local, imported={"label": "backup", "path": "p"})
    records, notes = merge_records([local, copy], perf_key)
    assert len(records) == 1 and "imported" not in records[0]
    assert notes == ["simclr cpu fp32 bs1: results/imported/backup holds a copy of the record "
                     "shown (from this host's results); counted once"]


def test_accuracy_cells_merge_on_model_chip_precision():
    records, notes = merge_records(
        [acc("cpu", 10.0), acc("cpu", 12.0, label="b", host=HOST_B, recorded=5.0)],
        accuracy_key,
    )
    assert [r["accuracy"] for r in records] == [10.0]
    assert "shown 10.00 % from this host's results" in notes[0]
    assert "not shown 12.00 % from results/imported/b" in notes[0]


def test_two_records_of_this_host_for_one_cell_are_an_error():
    with pytest.raises(ValueError, match="two result records of this host"):
        merge_records([perf("cpu", 1, 1.0), perf("cpu", 1, 2.0)], perf_key)


def test_gates_attach_to_the_record_of_their_own_source():
    records = [acc("cpu", 10.0), acc("ascend310p", 60.0, label="b", precision="fp16")]
    gate = lambda passed: {"passed": passed, "accuracy": 1.0, "required_accuracy": 2.0}  # noqa: E731
    gates = [
        {"chip": "cpu", "precision": "fp32", "gate": gate(True), "agreement": {}},
        {"chip": "ascend310p", "precision": "fp16", "gate": gate(True), "agreement": {}},  # local: no record
        {"chip": "ascend310p", "precision": "fp16", "gate": gate(False), "agreement": {},
         "imported": {"label": "b", "path": "p"}},
    ]
    result_records.attach_gates(records, gates)
    assert records[0]["gate"]["passed"] is True
    assert records[1]["gate"]["passed"] is False


# -------------------------------------------------------------------------------- the tables


def context(published, chips, precisions, unavailable=None, batch_sizes=(1, 4)):
    return TableContext(
        model="simclr", title="SimCLR", chips=chips,
        precisions={c: [p] for c, p in zip(chips, precisions)}, chip_labels=LABELS,
        published=published["simclr"], batch_sizes=list(batch_sizes), unavailable=unavailable or {},
    )


def fps(published, records, unavailable=None, batch_sizes=(1, 4)):
    ctx = context(published, ["cpu", "ascend310p"], ["fp32", "fp16"], unavailable, batch_sizes)
    return throughput.fps_table(ctx, records)


def test_imported_cells_are_marked_and_shown_for_chips_missing_here(published):
    records = [
        perf("cpu", 1, 100.0),
        perf("ascend310p", 1, 3500.0, host=HOST_B, label="npu-lab", precision="fp16"),
        perf("ascend310p", 4, 9999.0, precision="fp16"),  # stale local record of a missing chip
    ]
    table = fps(published, records, unavailable={"ascend310p": "atc not found"})
    df = table.frame
    assert list(df["CPU fp32 fps"][:2]) == ["100", NOT_RUN]
    assert list(df["310P fp16 fps"][:2]) == ["3500 [npu-lab]", DASH]
    assert df["310P fp16 fps"].iloc[-1] == "bs1 3500 [npu-lab]"  # best bs
    assert "— cannot run here: 310P: atc not found" in table.notes
    assert table.notes[1].endswith("; [npu-lab] measured on b")
    assert "weights: random weights (seed 0) · host: a (CPU A, 2 cores); b (CPU B, 8 cores)" in table.notes


def test_imported_results_outside_the_table_are_named(published):
    records = [perf("cpu", 128, 5.0, label="big", host=HOST_B),
               perf("t4", 1, 5.0, label="big", host=HOST_B, precision="fp16")]
    assert ("imported results outside this table's chips, precisions or batch sizes (not shown): "
            "CPU fp32 bs128 [big], T4 fp16 bs1 [big]") in fps(published, records).details


def test_accuracy_and_gate_tables_mark_imported_rows(published):
    record = acc("ascend310p", 64.0, label="npu-lab", precision="fp16", host=HOST_B)
    record["gate"] = {"passed": False, "accuracy": 64.0, "required_accuracy": 65.0,
                      "reference_accuracy": 66.0, "relative_accuracy": 0.97,
                      "min_relative_accuracy": 0.99, "reference_chip": "cpu",
                      "reference_precision": "fp32"}
    record["agreement"] = {"mean_cosine": 0.9, "min_cosine": 0.5}
    ctx = context(published, ["cpu", "ascend310p"], ["fp32", "fp16"], {"ascend310p": "atc not found"})
    df = accuracy.accuracy_table(ctx, [acc("cpu", 10.0), record]).frame
    assert list(df["fp16"][:2]) == [NOT_RUN, "64.00 ✗ [npu-lab]"]
    assert list(df["fp32"][:2]) == ["10.00", DASH]
    gate = accuracy.gate_table(ctx, [record]).frame
    assert list(gate["Chip"]) == ["310P [npu-lab]"]


def test_single_host_tables_are_unchanged_by_the_merge(published):
    records = [perf("cpu", 1, 100.0), perf("cpu", 4, 200.0)]
    merged, notes = merge_records(records, perf_key)
    assert notes == [] and merged == records
    assert fps(published, merged).frame.equals(fps(published, records).frame)
    assert not any("[" in cell for cell in fps(published, merged).frame["CPU fp32 fps"])
