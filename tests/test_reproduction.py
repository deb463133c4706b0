"""chipbench.report.reproduction: every published figure beside ours, with generated reasons."""

from __future__ import annotations

from pathlib import Path

import pytest

from chipbench.report import published as published_figures, render, reproduction
from chipbench.report.context import TableContext

REPO = Path(__file__).resolve().parent.parent
DASH = "—"
LABELS = {"cpu": "CPU", "ascend310": "310", "ascend310p": "310P", "t4": "T4", "bm1684x": "BM1684X"}
HOST = {"hostname": "h", "cpu": "CPU X", "cores": 4}
TIMER = "chipbench.timing.measure: time.perf_counter around each call"


@pytest.fixture(scope="module")
def published():
    return published_figures.load_published(REPO / "resources" / "published.yaml")


def perf(chip, precision, batch, fps, model="simclr", label=None):
    record = {
        "model": model, "chip": chip, "precision": precision, "batch_size": batch,
        "throughput_fps": fps, "latency_ms": {"mean": 1000 * batch / fps}, "host": HOST,
        "weights": {"source": "random", "seed": 0},
        "provenance": {"timing": {"timer": TIMER}, "seed": 0},
    }
    if label:
        record["imported"] = {"label": label, "path": "p"}
    return record


def acc(chip, precision, accuracy, model="simclr", metric="pair_top1", batch=64, **extra):
    return {
        "model": model, "chip": chip, "precision": precision, "metric": metric,
        "accuracy": accuracy, "batch_size": batch, "host": HOST,
        "weights": {"source": "random", "seed": 0}, "provenance": {"seed": 0}, **extra,
    }


SIMCLR_MATRIX = {
    "cpu": {"precisions": ["fp32"], "batch_sizes": [1, 4, 8, 16, 32, 64]},
    "ascend310": {"precisions": ["fp16"], "batch_sizes": [1, 4, 8, 16, 32, 64]},
    "ascend310p": {"precisions": ["fp16"], "batch_sizes": [1, 4, 8, 16, 32, 64]},
    "t4": {"precisions": ["fp16"], "batch_sizes": [1, 4, 8, 16, 32, 64]},
}
MISSING = {"ascend310": "atc not found", "t4": "tensorrt is not importable"}


def context(published, model, unavailable, **kw):
    return TableContext(model=model, title=model, chips=[], precisions={}, chip_labels=LABELS,
                        published=published.get(model) or {}, unavailable=unavailable, **kw)


def table(published, model, matrix, accuracy=(), perfs=(), unavailable=None, untimed=None, **kw):
    """(frame, notes + details) of the reproduction table."""
    built = reproduction.reproduction_table(
        context(published, model, unavailable or {}), matrix, list(accuracy), list(perfs),
        untimed=untimed, **kw)
    return built.frame, built.notes + built.details


def simclr(published, accuracy=(), perfs=(), matrix=SIMCLR_MATRIX, unavailable=MISSING, **kw):
    return table(published, "simclr", matrix, accuracy, perfs, unavailable, dict(unavailable), **kw)


def rows(df, **where):
    found = df
    for column, value in where.items():
        found = found[found[column] == value]
    return found.to_dict("records")


def test_one_row_per_published_figure(published):
    df, notes = simclr(published)
    # accuracy 2 + fps 3 chips × 6 + best 3 + ratios 2 × (6 + best)
    assert len(df) == 2 + 18 + 3 + 14
    assert list(df.columns) == ["Figure", "Chip", "Precision", "Batch", "Reported", "Reproduced",
                                "Difference", "Difference %", "Status", "Reason"]
    assert set(df["Status"]) == {"no figure of ours"}
    assert notes[1].endswith("37 published figures: 0 within tolerance, 0 differs, 37 no figure of ours")


def test_reasons_for_missing_figures_come_from_the_matrix_and_availability(published):
    matrix = dict(SIMCLR_MATRIX, ascend310p={"precisions": ["int8"], "batch_sizes": [1]})
    df, _ = simclr(published, matrix=matrix)
    t4 = rows(df, Figure="fps", Chip="T4", Batch="bs1")[0]
    assert t4["Reason"].startswith("no T4 here: tensorrt is not importable")
    assert t4["Precision"] == "not stated (ours fp16)"  # the report does not say; we run fp16
    p310 = rows(df, Figure="fps", Chip="310P", Batch="bs8")[0]
    assert p310["Reason"].startswith("we do not run 310P fp16 (config chips.ascend310p.precisions)")
    no_chip = dict(SIMCLR_MATRIX)
    del no_chip["ascend310"]
    df, _ = simclr(published, matrix=no_chip, unavailable={})
    assert rows(df, Figure="fps", Chip="310", Batch="bs1")[0]["Reason"].startswith(
        "310 is not among this run's chips (config models.simclr.chips)")


def test_batch_sizes_we_do_not_time_and_results_not_yet_on_disk(published):
    matrix = dict(SIMCLR_MATRIX, ascend310p={"precisions": ["fp16"], "batch_sizes": [1, 4]})
    df, _ = simclr(published, matrix=matrix, unavailable={})
    assert rows(df, Figure="fps", Chip="310P", Batch="bs8")[0]["Reason"].startswith(
        "we do not time 310P at bs8 (batch sizes in the config: 1, 4)")
    assert rows(df, Figure="fps", Chip="310P", Batch="bs1")[0]["Reason"].startswith(
        "no result on disk yet")


def test_report_inconsistencies_are_found_by_recomputing(published):
    df, notes = simclr(published)
    best_310 = rows(df, Figure="best bs (fps)", Chip="310")[0]
    assert ("report inconsistent: its fps rows make bs8 (11732 fps) the best for 310, its best "
            "row says bs64 11732") in best_310["Reason"]
    assert "report inconsistent" not in rows(df, Figure="best bs (fps)", Chip="310P")[0]["Reason"]
    ratio = {r["Batch"]: r["Reason"] for r in rows(df, Figure="fps ratio", Chip="310P/310")}
    assert ("report inconsistent: its own fps give 12903 / 7772 = 1.660190, it prints 1.555970"
            in ratio["bs4"])
    # the other printed ratios agree with the report's own (rounded) fps
    assert not any("inconsistent" in ratio[b] for b in ("bs1", "bs8", "bs16", "bs32", "bs64", "best"))
    # the block notes are numbered and referenced
    assert any(n.startswith("[3] report best bs row") for n in notes)
    assert "report note [3]" in best_310["Reason"]


def test_our_figures_beside_the_report_with_differences(published):
    records = [perf("ascend310p", "fp16", b, f) for b, f in
               {1: 3500.0, 4: 10000.0, 8: 17391.0, 16: 20000.0, 32: 28000.0, 64: 27000.0}.items()]
    records.append(perf("ascend310", "fp16", 4, 7772.0))
    df, notes = simclr(published, perfs=records, unavailable={"t4": "no"})
    bs1 = rows(df, Figure="fps", Chip="310P", Batch="bs1")[0]
    assert (bs1["Reported"], bs1["Reproduced"], bs1["Difference"], bs1["Difference %"]) == (
        "3571", "3500", "-71", "-2.0 %")
    assert bs1["Status"] == "within tolerance" and bs1["Reason"] == ""
    bs4 = rows(df, Figure="fps", Chip="310P", Batch="bs4")[0]
    assert bs4["Status"] == "differs" and bs4["Difference %"] == "-22.5 %"
    assert bs4["Reason"] == f"ours timed by {TIMER}; report note [2]"
    best = rows(df, Figure="best bs (fps)", Chip="310P")[0]
    assert (best["Reported"], best["Reproduced"], best["Status"]) == (
        "bs32 28070", "bs32 28000", "within tolerance")
    ratio = rows(df, Figure="fps ratio", Chip="310P/310", Batch="bs4")[0]
    assert ratio["Reproduced"] == f"{10000 / 7772:.6f}"
    assert ratio["Status"] == "differs"  # 1.286670 against the printed 1.555970
    assert ratio["Reason"].startswith("report inconsistent: its own fps give")
    assert not any(n.startswith("workflow") for n in notes)  # these records name no commit


def test_accuracy_with_random_weights_and_seeded_pairs(published):
    df, _ = simclr(published, accuracy=[acc("ascend310p", "fp16", 3.2)])
    row = rows(df, Figure="accuracy (%)", Chip="310P")[0]
    assert (row["Reported"], row["Reproduced"], row["Difference"]) == ("65.55", "3.20", "-62.35")
    assert row["Reason"] == (
        "different weights: ours random weights (seed 0), the report's a trained model; "
        "ours: pairs from a seeded permutation (seed 0); report note [1]"
    )
    df, _ = simclr(published, accuracy=[acc("ascend310p", "fp16", 65.4, weights={
        "source": "checkpoint", "path": "ck/simclr.pth", "sha256": "0badc0de99"})])
    row = rows(df, Figure="accuracy (%)", Chip="310P")[0]
    assert row["Status"] == "within tolerance" and row["Reason"] == ""


def test_imported_figures_are_marked(published):
    df, _ = simclr(published, perfs=[perf("ascend310p", "fp16", 1, 3571.0, label="npu-lab")])
    assert rows(df, Figure="fps", Chip="310P", Batch="bs1")[0]["Reproduced"] == "3571 [npu-lab]"


SIMCLRV2_MATRIX = {
    "cpu": {"precisions": ["fp32"], "batch_sizes": [1, 4]},
    "bm1684x": {"precisions": ["fp32", "fp16", "int8"], "batch_sizes": [1, 4]},
}
SIMULATED = "tpu_mlir: the quantized *_tpu.mlir run bit-accurately on the host CPU (no chip)"


def test_untimed_chip_shows_the_compiler_estimate_but_never_compares_it(published):
    estimates = {("bm1684x", "int8", 1): {"estimated_latency_ms": 1.25}}
    accuracy = [acc("bm1684x", "int8", 89.0, model="simclrv2", metric="top1", batch=1,
                    source=SIMULATED, per_image_ms={"preprocess": 0.15, "inference": 300.0,
                                                    "postprocess": 0.18})]
    df, notes = table(published, "simclrv2", SIMCLRV2_MATRIX, accuracy,
                      untimed={"bm1684x": "throughput needs the device: no sophon-sail"},
                      estimates=estimates)
    calc = rows(df, Figure="calculate time (ms per batch)", Precision="int8", Batch="bs1")[0]
    assert calc["Reproduced"] == DASH and calc["Status"] == "no figure of ours"
    assert calc["Reason"].startswith(
        "BM1684X is not timed here: throughput needs the device: no sophon-sail; the compiler's "
        "estimate is 1.25 ms per batch (800 fps): a cycle-model figure, not a measurement")
    accuracy_row = rows(df, Figure="accuracy (%)", Precision="int8", Batch="bs1")[0]
    assert accuracy_row["Reproduced"] == "89.00" and accuracy_row["Status"] == "within tolerance"
    bs4 = rows(df, Figure="accuracy (%)", Precision="int8", Batch="bs4")[0]
    assert bs4["Reproduced"] == "89.00"  # batch size does not change predictions
    inference = rows(df, Figure="per-image inference (ms)", Precision="int8", Batch="bs1")[0]
    assert inference["Reproduced"] == DASH
    assert inference["Reason"].startswith(f"our inference ran as {SIMULATED}")
    pre = rows(df, Figure="per-image preprocess (ms)", Precision="int8", Batch="bs1")[0]
    assert pre["Reproduced"] == "0.15" and pre["Status"] == "within tolerance"
    later = rows(df, Figure="per-image preprocess (ms)", Precision="int8", Batch="bs4")[0]
    assert later["Reason"] == ("our per-image times come from the accuracy run at bs1, the "
                               "report's at bs4")


def test_a_simulated_accuracy_that_differs_says_so(published):
    accuracy = [acc("bm1684x", "fp32", 10.0, model="simclrv2", metric="top1", batch=1,
                    source=SIMULATED)]
    df, _ = table(published, "simclrv2", SIMCLRV2_MATRIX, accuracy)
    row = rows(df, Figure="accuracy (%)", Precision="fp32")[0]
    assert f"ours from {SIMULATED}" in row["Reason"]
    assert "different weights" in row["Reason"] and "pairs" not in row["Reason"]


def test_model_without_published_figures_has_an_empty_table(published):
    df, notes = table(published, "resnet20", {})
    assert len(df) == 0 and "0 published figures" in notes[1]


def test_failed_cells_and_unrunnable_precisions_give_their_reason(published):
    failed = [{"status": "failed", "reason": "atc exited 1", "log": "logs/compile_model/x.log",
               "model": "simclr", "chip": "ascend310p", "precision": "fp16", "batch_size": 4}]
    built = reproduction.reproduction_table(
        context(published, "simclr", {}, unavailable_precisions={"t4": {"fp16": "no fp16 engine"}}),
        SIMCLR_MATRIX, [], [], failed=failed)
    bs4 = rows(built.frame, Figure="fps", Chip="310P", Batch="bs4")[0]
    assert bs4["Reason"].startswith("the job failed: atc exited 1 (logs/compile_model/x.log)")
    best = rows(built.frame, Figure="best bs (fps)", Chip="310P")[0]
    assert best["Reason"].startswith("the job failed: atc exited 1")
    t4 = rows(built.frame, Figure="fps", Chip="T4", Batch="bs1")[0]
    assert t4["Reason"].startswith("no T4 fp16 here: no fp16 engine")
    assert "failed: ascend310p fp16 bs4: atc exited 1 (logs/compile_model/x.log)" in built.details


def test_written_like_every_table_with_few_short_notes(published, tmp_path):
    built = reproduction.reproduction_table(context(published, "simclr", MISSING), SIMCLR_MATRIX,
                                            [], [], untimed=MISSING)
    paths = [tmp_path / "r.md", tmp_path / "r.csv", tmp_path / "r.provenance.json"]
    render.write_table(built, "SimCLR reproduction", *paths)
    text = paths[0].read_text()
    assert text.startswith("# SimCLR reproduction\n\n| Figure")
    assert "- report note [n]: the report's caveats, listed in the provenance file" in text
    assert "[1] report accuracy" in paths[2].read_text()
    assert len(built.notes) <= 6 and all(len(n) <= 200 for n in built.notes)
