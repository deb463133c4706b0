"""chipbench.report table builders and resources/published.yaml: hand-built records -> exact cells."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chipbench.errors import UserError
from chipbench.report import accuracy, published as published_figures, records as result_records
from chipbench.report import render, throughput
from chipbench.report.context import NOTE_WIDTH, TableContext, first_clause

REPO = Path(__file__).resolve().parent.parent
PUBLISHED_PATH = REPO / "resources" / "published.yaml"
DASH = "—"
NOT_RUN = "not run"

HOST = {"hostname": "bench1", "cpu": "Test CPU 9000", "cores": 2}
RANDOM = {"source": "random", "seed": 0}
BACKEND = {"name": "onnxruntime", "version": "1.31.0", "settings": {"threads": 2}}
TIMING = {"warmup_iterations": 20, "min_iterations": 100, "min_seconds": 5.0, "max_iterations": 100000}
LABELS = {"cpu": "CPU (ONNX Runtime)", "ascend310": "Ascend 310", "ascend310p": "Ascend 310P"}
SIMCLR_RATIOS = [("ascend310p", "ascend310"), ("ascend310p", "t4")]


@pytest.fixture(scope="module")
def published():
    return published_figures.load_published(PUBLISHED_PATH)


def trials(spread):
    """Trial statistics of contract 4, with the given spread."""
    return {"count": 3, "fps": [1.0, 1.0 + spread, 1.0], "spread": spread, "ci95": [0.9, 1.1]}


def perf(chip, precision, batch, mean_ms, spread=0.01, model="simclr", **extra):
    record = {
        "model": model, "chip": chip, "precision": precision, "batch_size": batch,
        "throughput_fps": 1000 * batch / mean_ms, "trials": trials(spread), "iterations": 100,
        "latency_ms": {"mean": mean_ms}, "weights": RANDOM, "host": HOST, "backend": BACKEND,
        "timing": TIMING,
    }
    record.update(extra)
    return record


def acc(chip, precision, accuracy, model="simclr", metric="pair_top1", **extra):
    details = (
        {"n_batches": 78, "pairs_per_batch": 128, "temperature": 0.07, "chance": 100 / 255}
        if metric == "pair_top1" else {"correct": 1, "total": 2}
    )
    record = {
        "model": model, "chip": chip, "precision": precision, "metric": metric,
        "accuracy": accuracy, "n_images": 10000, "batch_size": 64, "details": details,
        "weights": RANDOM, "host": HOST, "backend": BACKEND,
    }
    record.update(extra)
    return record


# means (ms) of one batch -> fps = 1000·bs/mean: 250, 333.3, 400, 500, 400, 376.5; best bs16
CPU_MEANS = {1: 4.0, 4: 12.0, 8: 20.0, 16: 32.0, 32: 80.0, 64: 170.0}


def cpu_records(model="simclr", noisy=(8,)):
    return [perf("cpu", "fp32", b, m, spread=0.08 if b in noisy else 0.01, model=model)
            for b, m in CPU_MEANS.items()]


def context(published, model="simclr", columns=(("cpu", "fp32"),), batch_sizes=(), title="SimCLR",
            labels=LABELS, **kwargs):
    """The TableContext of `model` for chips and precisions `columns`."""
    chips = list(dict.fromkeys(c for c, _ in columns))
    return TableContext(
        model=model, title=title, chips=chips,
        precisions={c: [p for chip, p in columns if chip == c] for c in chips},
        chip_labels=labels, published=(published or {}).get(model) or {},
        batch_sizes=list(batch_sizes), **kwargs,
    )


def simclr_fps(published, records=None, batch_sizes=(1, 4, 8, 16, 32, 64), columns=(("cpu", "fp32"),),
               unavailable=None, ratios=SIMCLR_RATIOS, failed=(), **kwargs):
    ctx = context(published, columns=columns, batch_sizes=batch_sizes, unavailable=unavailable or {},
                  ratios=list(ratios), **kwargs)
    return throughput.fps_table(ctx, cpu_records() if records is None else records, failed)


def accuracy_table(published, records, columns, model="simclr", labels=LABELS, failed=(), **kwargs):
    ctx = context(published, model=model, columns=columns, labels=labels, **kwargs)
    return accuracy.accuracy_table(ctx, records, failed)


def column(df, name):
    return [str(x) for x in df[name].tolist()]


# ----------------------------------------------------------------------------- published.yaml


def test_published_simclr_figures_as_printed(published):
    simclr = published["simclr"]
    fps = {e["chip"]: e for e in simclr["fps"]["entries"]}
    assert fps["t4"]["by_batch"] == {1: 833, 4: 2352, 8: 5333, 16: 6666, 32: 9696, 64: 12075}
    assert fps["ascend310"]["by_batch"] == {1: 4196, 4: 7772, 8: 11732, 16: 10780, 32: 11320, 64: 11644}
    assert fps["ascend310p"]["by_batch"] == {1: 3571, 4: 12903, 8: 17391, 16: 23529, 32: 28070, 64: 27586}
    assert fps["t4"]["precision"] is None
    assert fps["ascend310"]["precision"] == fps["ascend310p"]["precision"] == "fp16"
    assert simclr["chips"]["t4"]["precision"] is None
    assert "not state" in simclr["chips"]["t4"]["precision_note"]
    assert simclr["chips"]["ascend310"]["precision"] == "fp16"
    accuracy = {(e["chip"], e["precision"]): e["value"] for e in simclr["accuracy"]["entries"]}
    assert accuracy == {("ascend310", "fp16"): 65.39, ("ascend310p", "fp16"): 65.55}
    assert simclr["accuracy"]["metric"] == "pair_top1"
    best = {e["chip"]: (e["batch_size"], e["fps"]) for e in simclr["best"]["entries"]}
    assert best == {"t4": (64, 12075), "ascend310": (64, 11732), "ascend310p": (32, 28070)}


def test_published_simclrv2_figures_as_printed(published):
    v2 = published["simclrv2"]
    accuracy = {(e["precision"], e["batch_size"]): e["value"] for e in v2["accuracy"]["entries"]}
    assert accuracy == {("fp32", 1): 89.26, ("fp16", 1): 89.25, ("int8", 1): 89.23, ("int8", 4): 89.23}
    assert {e["chip"] for e in v2["accuracy"]["entries"]} == {"bm1684x"}
    calc = {e["precision"]: e["by_batch"] for e in v2["calculate_time_ms"]["entries"]}
    assert calc == {"fp32": {1: 3.69}, "fp16": {1: 1.79}, "int8": {1: 1.48, 4: 0.50}}
    per_image = {
        (e["precision"], e["batch_size"]): (e["preprocess"], e["inference"], e["postprocess"])
        for e in v2["per_image_ms"]["entries"]
    }
    assert per_image == {
        ("fp16", 1): (0.14, 2.07, 0.17), ("fp32", 1): (0.15, 3.98, 0.17),
        ("int8", 1): (0.15, 1.85, 0.18), ("int8", 4): (0.10, 0.81, 0.11),
    }
    assert "fps" not in v2  # the report publishes no fps; never converted in the data


def test_every_published_block_names_its_source(published):
    reports = {"simclr": "simclr_ascend_report.md", "simclrv2": "simclrv2_bm1684x_report.md"}
    for model, entry in published.items():
        assert entry["report"] == reports[model]
        assert set(entry["chips"]) <= {"t4", "ascend310", "ascend310p", "bm1684x"}
        blocks = [k for k, v in entry.items() if isinstance(v, dict) and "entries" in v]
        assert blocks
        for name in blocks:
            assert entry[name]["source"].startswith(reports[model] + ", section"), (model, name)
            for item in entry[name]["entries"]:
                chips = [item[k] for k in ("chip", "numerator", "denominator") if k in item]
                assert chips and set(chips) <= set(entry["chips"])


def test_load_published_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="do not exist"):
        published_figures.load_published(tmp_path / "nope.yaml")


def test_load_published_rejects_a_non_mapping(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="model names"):
        published_figures.load_published(path)


# ------------------------------------------------------------------------------------- labels


def test_weights_labels():
    assert result_records.weights_label({"source": "random", "seed": 0}) == "random weights (seed 0)"
    assert result_records.weights_label(
        {"source": "checkpoint", "path": "/x/simclr.pth", "sha256": "1a2b3c4d5e6f"}
    ) == "checkpoint simclr.pth sha256 1a2b3c4d"
    assert result_records.weights_label(
        {"source": "onnx", "path": "m/resnet20.onnx", "sha256": "abcdef0123"}
    ) == "onnx resnet20.onnx sha256 abcdef01"


def test_host_label():
    assert result_records.host_label(HOST) == "bench1 (Test CPU 9000, 2 cores)"
    assert result_records.host_label({"hostname": "h"}) == "h"


# ---------------------------------------------------------------------------------- fps table


def test_fps_cells_are_integer_fps_and_best_row_picks_the_max(published):
    df = simclr_fps(published).frame
    assert column(df, "Model") == [
        "SimCLR bs1", "SimCLR bs4", "SimCLR bs8", "SimCLR bs16", "SimCLR bs32", "SimCLR bs64", "best bs",
    ]
    assert column(df, "CPU (ONNX Runtime) fp32 fps") == [
        "250", "333", "400*", "500", "400", "376", "bs16 500",
    ]


def test_fps_published_columns_exactly_as_printed(published):
    table = simclr_fps(published)
    df = table.frame
    assert list(df.columns) == [
        "Model", "CPU (ONNX Runtime) fp32 fps", "T4 (report)", "310 (report)", "310P (report)",
        "310P/310 (report)", "310P/T4 (report)",
    ]
    assert column(df, "T4 (report)") == ["833", "2352", "5333", "6666", "9696", "12075", "bs64 12075"]
    assert column(df, "310 (report)") == ["4196", "7772", "11732", "10780", "11320", "11644", "bs64 11732"]
    assert column(df, "310P (report)") == ["3571", "12903", "17391", "23529", "28070", "27586", "bs32 28070"]
    assert column(df, "310P/310 (report)") == [
        "0.851048", "1.555970", "1.482355", "2.182653", "2.479681", "2.369117", "2.392601",
    ]
    assert column(df, "310P/T4 (report)") == [
        "4.286914", "5.485969", "3.261016", "3.529702", "2.895008", "2.284554", "2.324637",
    ]
    # the report's sources and caveats go to the provenance file, not under the table
    text = "\n".join(table.details)
    assert "simclr_ascend_report.md, section" in text
    assert "bs64 11732fps" in text  # the report's own inconsistency is repeated
    assert "1.660190" in text
    assert "report T4 precision: the report does not state" in text
    assert "report 310P precision: fp16" in text
    assert not any("section" in note for note in table.notes)


def test_fps_noise_mark_follows_the_trial_spread(published):
    # spreads 0.08 at bs8 and bs16, 0.01 elsewhere; the default threshold is 3 %
    table = simclr_fps(published, records=cpu_records(noisy=(8, 16)))
    cells = column(table.frame, "CPU (ONNX Runtime) fp32 fps")
    assert cells == ["250", "333", "400*", "500*", "400", "376", "bs16 500*"]
    assert table.notes[1] == ("marks: * trial spread above 3 %; (report): as published, — if not")
    assert "noisy cells: CPU (ONNX Runtime) fp32 bs8 spread 8.0 %, CPU (ONNX Runtime) fp32 bs16 " \
           "spread 8.0 %" in table.details
    # a looser threshold flags nothing, and says nothing about noise
    table = simclr_fps(published, records=cpu_records(noisy=(8, 16)), noise_threshold=0.1)
    assert not any("*" in c for c in column(table.frame, "CPU (ONNX Runtime) fp32 fps"))
    assert not any("noisy" in n for n in table.notes + table.details)


def test_fps_noise_threshold_is_exclusive_and_records_without_trials_are_never_marked(published):
    at_threshold = perf("cpu", "fp32", 1, 4.0, spread=0.03)
    above = perf("cpu", "fp32", 4, 8.0, spread=0.0301)
    without = perf("cpu", "fp32", 8, 8.0)
    del without["trials"]
    without["cv"] = 0.9  # the per-iteration CV no longer marks anything
    df = simclr_fps(published, records=[at_threshold, above, without], batch_sizes=(1, 4, 8)).frame
    assert column(df, "CPU (ONNX Runtime) fp32 fps")[:3] == ["250", "500*", "1000"]


def test_fps_rows_cover_the_reports_batch_sizes_and_ours_say_not_run(published):
    records = [perf("cpu", "fp32", 1, 4.0), perf("cpu", "fp32", 4, 8.0)]
    df = simclr_fps(published, records=records, batch_sizes=(1, 4)).frame
    assert column(df, "Model")[-1] == "best bs"
    assert len(df) == 7  # bs1..bs64 as in the report, + best
    assert column(df, "CPU (ONNX Runtime) fp32 fps") == ["250", "500"] + [NOT_RUN] * 4 + ["bs4 500"]
    assert column(df, "T4 (report)")[-2] == "12075"


def test_fps_ignores_records_outside_the_matrix(published):
    records = cpu_records() + [
        perf("cpu", "fp32", 2, 1.0),                    # batch size not in the matrix
        perf("cpu", "fp16", 1, 1.0),                    # precision not among the columns
        perf("cpu", "fp32", 1, 1.0, model="simclrv2"),  # another model
    ]
    df = simclr_fps(published, records=records).frame
    assert column(df, "CPU (ONNX Runtime) fp32 fps")[0] == "250"
    assert "SimCLR bs2" not in column(df, "Model")


def test_fps_best_ties_go_to_the_smaller_batch(published):
    records = [perf("cpu", "fp32", 4, 8.0), perf("cpu", "fp32", 8, 16.0)]  # 500 fps both
    df = simclr_fps(published, records=records, batch_sizes=(4, 8)).frame
    assert column(df, "CPU (ONNX Runtime) fp32 fps")[-1] == "bs4 500"


def test_fps_our_ratio_and_dash_when_a_side_is_missing(published):
    records = [
        perf("ascend310p", "fp16", 1, 1.0),   # 1000 fps
        perf("ascend310", "fp16", 1, 4.0),    # 250
        perf("ascend310p", "fp16", 4, 2.0),   # 2000
        perf("ascend310p", "fp16", 8, 2.0),   # 4000 (310 has no bs4 / bs8)
        perf("ascend310", "fp16", 8, 4.0),    # 2000
    ]
    table = simclr_fps(
        published, records=records, batch_sizes=(1, 4, 8),
        columns=[("ascend310p", "fp16"), ("ascend310", "fp16")],
    )
    df = table.frame
    assert column(df, "Ascend 310P fp16 fps")[:3] == ["1000", "2000", "4000"]
    assert column(df, "Ascend 310 fp16 fps")[:3] == ["250", NOT_RUN, "2000"]
    ratio = column(df, "310P/310")
    assert ratio[:3] == ["4.00", DASH, "2.00"]
    assert ratio[3:6] == [DASH, DASH, DASH]  # bs16..64: neither ran
    assert ratio[-1] == "2.00"  # best 4000 / best 2000
    assert column(df, "310P/310 (report)")[0] == "0.851048"
    # T4 is not one of our chips: only the report's 310P/T4 column
    assert "310P/T4" not in df.columns and "310P/T4 (report)" in df.columns
    assert any(n.startswith("310P/310: Ascend 310P fp16 fps / Ascend 310 fp16 fps") for n in table.details)
    columns = list(df.columns)
    assert columns.index("310P/310") < columns.index("310P/310 (report)")


def test_fps_unavailable_chip_is_dash_with_reason_even_with_a_stale_record(published):
    records = cpu_records() + [perf("ascend310", "fp16", 1, 1.0), perf("ascend310p", "fp16", 1, 1.0)]
    table = simclr_fps(
        published, records=records,
        columns=[("cpu", "fp32"), ("ascend310p", "fp16"), ("ascend310", "fp16")],
        unavailable={"ascend310": "atc not found (install CANN)"},
    )
    df = table.frame
    assert column(df, "Ascend 310 fp16 fps") == [DASH] * 7
    assert column(df, "310P/310")[0] == DASH
    assert column(df, "310P/310")[-1] == DASH
    assert column(df, "Ascend 310P fp16 fps")[:2] == ["1000", NOT_RUN]
    assert "— cannot run here: Ascend 310: atc not found (install CANN)" in table.notes
    assert table.notes[1].startswith("marks: — cannot run here; not run: not selected or not yet "
                                     "measured; * trial")


def test_a_precision_the_host_cannot_run_is_dash_with_its_reason(published):
    records = [perf("cpu", "fp32", 1, 4.0), perf("cpu", "bf16", 1, 2.0)]  # a stale bf16 record
    table = simclr_fps(
        published, records=records, batch_sizes=(1,), columns=[("cpu", "fp32"), ("cpu", "bf16")],
        unavailable_precisions={"cpu": {"bf16": "no native bf16 on this CPU (avx512_bf16 or amx)"}},
    )
    assert column(table.frame, "CPU (ONNX Runtime) bf16 fps")[:2] == [DASH, DASH]
    assert column(table.frame, "CPU (ONNX Runtime) fp32 fps")[0] == "250"
    assert ("— cannot run here: CPU (ONNX Runtime) bf16: no native bf16 on this CPU "
            "(avx512_bf16 or amx)") in table.notes
    df = accuracy_table(published, [acc("cpu", "fp32", 50.0)], [("cpu", "fp32"), ("cpu", "bf16")],
                        unavailable_precisions={"cpu": {"bf16": "no native bf16"}}).frame
    assert column(df, "bf16")[0] == DASH and column(df, "fp32")[0] == "50.00"


def test_long_reasons_shrink_to_their_first_clause_and_stay_whole_in_the_details(published):
    atc = "atc not found (install the CANN toolkit and source " + "x" * 60 + "/set_env.sh)"
    table = simclr_fps(
        published, records=cpu_records(),
        columns=[("cpu", "fp32"), ("cpu", "bf16"), ("ascend310p", "fp16"), ("ascend310", "fp16")],
        unavailable={"ascend310": atc, "ascend310p": atc},
        unavailable_precisions={"cpu": {"bf16": "this CPU has no native bfloat16 (OpenVINO "
                                                "reports no BF16 capability)"}},
        details_file="t.provenance.json",
    )
    assert ("— cannot run here: Ascend 310P, Ascend 310: atc not found; CPU (ONNX Runtime) bf16: "
            "this CPU has no native bfloat16") in table.notes
    assert f"— cannot run here: Ascend 310: {atc}" in table.details
    assert first_clause("a: b (c); d") == "a" and first_clause("e; f (g)") == "e"


def failed_perf(chip, precision, batch, reason="compile failed: atc exited 1", model="simclr"):
    return {"status": "failed", "reason": reason, "log": f"logs/compile_model/{model}_{chip}.log",
            "rule": "measure_throughput", "model": model, "chip": chip, "precision": precision,
            "batch_size": batch, "provenance": {"config_sha256": "f" * 64}}


def test_three_cell_states_are_told_apart(published):
    """— cannot run here, not run (not selected or not yet measured), failed (reason and log)."""
    records = [perf("cpu", "fp32", 1, 4.0, provenance={"config_sha256": "a" * 64})]
    failed = [failed_perf("cpu", "fp32", 4, reason="onnxruntime: out of memory")]
    table = simclr_fps(
        published, records=records, failed=failed, batch_sizes=(1, 4, 8),
        columns=[("cpu", "fp32"), ("ascend310", "fp16")], unavailable={"ascend310": "atc not found"},
    )
    ours = column(table.frame, "CPU (ONNX Runtime) fp32 fps")
    assert ours[:3] == ["250", "failed", NOT_RUN]
    assert column(table.frame, "Ascend 310 fp16 fps")[:3] == [DASH, DASH, DASH]
    assert table.notes[1].startswith(
        "marks: — cannot run here; not run: not selected or not yet measured; failed: the job failed")
    assert ("failed: CPU (ONNX Runtime) fp32 bs4: onnxruntime: out of memory "
            "(logs/compile_model/simclr_cpu.log)") in table.notes
    # the config hash covers the failed record too
    assert table.notes[-1].startswith(f"config sha256 {'a' * 12}, {'f' * 12}; settings and provenance:")


def test_every_cell_of_a_chip_failed_makes_best_failed(published):
    failed = [failed_perf("cpu", "fp32", b) for b in (1, 4)]
    df = simclr_fps(published, records=[], failed=failed, batch_sizes=(1, 4)).frame
    assert column(df, "CPU (ONNX Runtime) fp32 fps")[:2] == ["failed", "failed"]
    assert column(df, "CPU (ONNX Runtime) fp32 fps")[-1] == "failed"


def test_accuracy_failed_cell_names_reason_and_log(published):
    failed = [{"status": "failed", "reason": "compile failed: tpuc-opt crashed",
               "log": "logs/compile_model/simclr_bm1684x_int8_bs1.log", "rule": "measure_accuracy",
               "model": "simclr", "chip": "bm1684x", "precision": "int8"}]
    table = accuracy_table(published, [acc("cpu", "fp32", 50.0)], [("cpu", "fp32"), ("bm1684x", "int8")],
                           labels={**LABELS, "bm1684x": "BM1684X"}, failed=failed)
    rows = column(table.frame, "Chip")
    assert column(table.frame, "int8")[rows.index("BM1684X")] == "failed"
    assert column(table.frame, "int8")[rows.index("CPU (ONNX Runtime)")] == NOT_RUN
    assert ("failed: BM1684X int8: compile failed: tpuc-opt crashed "
            "(logs/compile_model/simclr_bm1684x_int8_bs1.log)") in table.notes


def test_fps_ratio_per_shared_precision_when_a_chip_has_several(published):
    records = [
        perf("ascend310p", "fp16", 1, 1.0), perf("ascend310p", "int8", 1, 0.5),
        perf("ascend310", "fp16", 1, 2.0), perf("ascend310", "int8", 1, 2.0),
    ]
    df = simclr_fps(
        published, records=records, batch_sizes=(1,), ratios=[("ascend310p", "ascend310")],
        columns=[("ascend310p", "fp16"), ("ascend310p", "int8"), ("ascend310", "fp16"), ("ascend310", "int8")],
    ).frame
    assert column(df, "310P/310 fp16")[0] == "2.00"
    assert column(df, "310P/310 int8")[0] == "4.00"


def test_fps_noisy_side_marks_the_ratio(published):
    records = [perf("ascend310p", "fp16", 1, 1.0, spread=0.2), perf("ascend310", "fp16", 1, 2.0)]
    df = simclr_fps(
        published, records=records, batch_sizes=(1,), ratios=[("ascend310p", "ascend310")],
        columns=[("ascend310p", "fp16"), ("ascend310", "fp16")],
    ).frame
    assert column(df, "310P/310")[0] == "2.00*"


def test_fps_simclrv2_shows_calculate_time_in_ms_never_fps(published):
    ctx = context(published, model="simclrv2", batch_sizes=(1, 4), title="SimCLRv2")
    table = throughput.fps_table(ctx, cpu_records(model="simclrv2", noisy=()))
    df = table.frame
    assert list(df.columns) == [
        "Model", "CPU (ONNX Runtime) fp32 fps",
        "BM1684X fp32 calculate time ms (report)",
        "BM1684X fp16 calculate time ms (report)",
        "BM1684X int8 calculate time ms (report)",
    ]
    assert column(df, "Model") == ["SimCLRv2 bs1", "SimCLRv2 bs4", "best bs"]
    assert column(df, "BM1684X fp32 calculate time ms (report)") == ["3.69", DASH, DASH]
    assert column(df, "BM1684X fp16 calculate time ms (report)") == ["1.79", DASH, DASH]
    assert column(df, "BM1684X int8 calculate time ms (report)") == ["1.48", "0.50", DASH]
    assert column(df, "CPU (ONNX Runtime) fp32 fps") == ["250", "333", "bs4 333"]
    text = "\n".join(table.details)
    assert "divided by the batch size" in text
    assert "section 7.1 bmrt_test" in text
    assert "8000" not in df.to_csv()  # 4 / 0.50 ms would be 8000 fps: never converted


def test_fps_model_without_published_figures(published):
    ctx = context(published, model="resnet20", batch_sizes=(1,), title="ResNet-20", ratios=SIMCLR_RATIOS)
    table = throughput.fps_table(ctx, [perf("cpu", "fp32", 1, 2.0, model="resnet20")])
    assert list(table.frame.columns) == ["Model", "CPU (ONNX Runtime) fp32 fps"]
    assert column(table.frame, "CPU (ONNX Runtime) fp32 fps") == ["500", "bs1 500"]
    assert not any("report" in n for n in table.notes + table.details)


def test_fps_notes_carry_protocol_weights_host_and_config_and_details_the_runtime(published):
    records = [dict(r, provenance={"config_sha256": "c0ffee" * 11}) for r in cpu_records(noisy=())]
    table = simclr_fps(published, records=records, details_file="simclr_fps.provenance.json")
    assert table.notes[0] == (
        "fps = 1000 × batch size / mean latency of one batch (ms); best bs: the batch size with "
        "the highest fps; timed 20 warm-up, then ≥ 100 iterations and ≥ 5.0 s per trial, 3 trials "
        "per cell")
    assert "weights: random weights (seed 0) · host: bench1 (Test CPU 9000, 2 cores)" in table.notes
    assert table.notes[-1] == ("config sha256 c0ffeec0ffee; settings and provenance: "
                               "simclr_fps.provenance.json")
    assert "runtime of CPU (ONNX Runtime) fp32: onnxruntime 1.31.0 (threads=2)" in table.details
    assert "100 timed iterations per cell" in table.details
    assert ("timing: max_iterations 100000, min_iterations 100, min_seconds 5.0, "
            "warmup_iterations 20") in table.details


def test_fps_notes_summarise_many_weights_and_hosts(published):
    records = cpu_records(noisy=())
    records[1] = dict(records[1], weights={"source": "checkpoint", "path": "a/simclr.pth", "sha256": "feedbeef99"})
    records[2] = dict(records[2], host={"hostname": "bench2", "cpu": "Other CPU", "cores": 8})
    table = simclr_fps(published, records=records)
    assert ("weights: checkpoint simclr.pth sha256 feedbeef; random weights (seed 0) · host: "
            "bench1 (Test CPU 9000, 2 cores); bench2 (Other CPU, 8 cores)") in table.notes
    records[3] = dict(records[3], host={"hostname": "bench3-" + "x" * 120, "cpu": "CPU", "cores": 8})
    table = simclr_fps(published, records=records, details_file="t.provenance.json")
    assert "weights: 2 kinds · hosts: 3, listed in t.provenance.json" in table.notes
    assert any(line.startswith("host: bench1") and "bench3-" in line for line in table.details)


def test_note_budget_holds_on_a_busy_table(published):
    """Every state, an import, a noisy cell, two hosts: still at most six notes of ≤ 200 characters."""
    records = cpu_records(noisy=(8,)) + [
        dict(perf("ascend310p", "fp16", 1, 1.0), imported={"label": "npu-lab", "path": "p"},
             host={"hostname": "npu", "cpu": "Kunpeng", "cores": 96}),
    ]
    failed = [failed_perf("cpu", "int8", b, reason="x" * 150) for b in (1, 4, 8)]
    table = simclr_fps(
        published, records=records, failed=failed,
        columns=[("cpu", "fp32"), ("cpu", "int8"), ("ascend310p", "fp16"), ("ascend310", "fp16")],
        unavailable={"ascend310": "atc not found (install the CANN toolkit and source "
                                  "/usr/local/Ascend/ascend-toolkit/set_env.sh)"},
    )
    assert len(table.notes) <= 6, table.notes
    assert all(len(note) <= NOTE_WIDTH for note in table.notes), table.notes
    assert "failed: 3 cells, listed in the provenance file" in table.notes
    assert any("[npu-lab] measured on npu" in note for note in table.notes)
    assert any("npu (Kunpeng, 96 cores)" in note for note in table.notes)


def test_fps_duplicate_records_are_an_error(published):
    with pytest.raises(ValueError, match="two result records"):
        simclr_fps(published, records=cpu_records() + [perf("cpu", "fp32", 1, 3.0)])


def test_fps_clashing_column_names_are_an_error(published):
    with pytest.raises(ValueError, match="two table columns"):
        simclr_fps(published, records=[], batch_sizes=(1,), columns=[("a", "fp32"), ("b", "fp32")],
                   labels={"a": "Same label", "b": "Same label"}, ratios=[])


# ----------------------------------------------------------------------------- accuracy table


def test_accuracy_simclr_cells_and_report_columns(published):
    table = accuracy_table(published, [acc("cpu", "fp32", 12.3456)], [("cpu", "fp32")])
    df, notes = table.frame, table.notes
    assert list(df.columns) == ["Chip", "fp32", "fp16 (report)"]
    assert column(df, "Chip") == ["CPU (ONNX Runtime)", "Ascend 310", "Ascend 310P"]
    assert column(df, "fp32") == ["12.35", NOT_RUN, NOT_RUN]
    assert column(df, "fp16 (report)") == [DASH, "65.39", "65.55"]
    assert "pair-matching top-1" in notes[0] and "chance 0.39 %" in notes[0]
    assert "78 batches of 128 images" in notes[0]
    assert "Ascend 310: report figures only (not among this run's chips)" in table.details
    assert "with replacement" in "\n".join(table.details)  # why the report's figure is not reproducible
    assert "weights: random weights (seed 0) · host: bench1 (Test CPU 9000, 2 cores)" in notes


def test_accuracy_simclrv2_report_precisions(published):
    table = accuracy_table(published, [acc("cpu", "fp32", 89.0, model="simclrv2", metric="top1")],
                           [("cpu", "fp32")], model="simclrv2")
    df = table.frame
    assert list(df.columns) == ["Chip", "fp32", "fp32 (report)", "fp16 (report)", "int8 (report)"]
    assert column(df, "Chip") == ["CPU (ONNX Runtime)", "BM1684X"]
    assert column(df, "fp32") == ["89.00", NOT_RUN]
    assert column(df, "fp32 (report)") == [DASH, "89.26"]
    assert column(df, "fp16 (report)") == [DASH, "89.25"]
    assert column(df, "int8 (report)") == [DASH, "89.23"]  # bs1 and bs4 agree: one figure
    assert table.notes[0] == "accuracy: classification top-1 (%) over 10000 test images"
    assert "batch size of our accuracy runs: CPU (ONNX Runtime) fp32 bs64" in table.details


def test_accuracy_report_figures_that_differ_by_batch_are_both_shown():
    published = {"m": {
        "chips": {"x": {"label": "X"}},
        "accuracy": {"source": "r.md, section 1", "decimals": 2, "entries": [
            {"chip": "x", "precision": "int8", "batch_size": 1, "value": 80.0},
            {"chip": "x", "precision": "int8", "batch_size": 4, "value": 79.5},
        ]},
    }}
    df = accuracy_table(published, [], [], model="m", labels={}).frame
    assert column(df, "int8 (report)") == ["80.00 (bs1), 79.50 (bs4)"]


def test_accuracy_unavailable_chip_row_with_reason_and_no_number(published):
    records = [acc("cpu", "fp32", 50.0), acc("ascend310", "fp16", 65.0)]  # stale 310 record
    table = accuracy_table(published, records, [("cpu", "fp32"), ("ascend310", "fp16")],
                           unavailable={"ascend310": "ais_bench not installed"})
    df = table.frame
    assert list(df.columns) == ["Chip", "fp32", "fp16", "fp16 (report)"]
    rows = {c: i for i, c in enumerate(column(df, "Chip"))}
    assert column(df, "fp32")[rows["Ascend 310"]] == DASH
    assert column(df, "fp16")[rows["Ascend 310"]] == DASH
    assert column(df, "fp16 (report)")[rows["Ascend 310"]] == "65.39"
    assert column(df, "fp16")[rows["CPU (ONNX Runtime)"]] == NOT_RUN  # fp16 not chosen for the CPU
    assert "— cannot run here: Ascend 310: ais_bench not installed" in table.notes
    assert not any("Ascend 310: report figures only" in n for n in table.details)


def test_accuracy_ignores_records_outside_the_matrix(published):
    records = [
        acc("cpu", "fp32", 50.0),
        acc("ascend310", "fp16", 99.0),                  # chip not in this run: report row only
        acc("cpu", "int8", 99.0),                        # precision not in this run
        acc("cpu", "fp32", 99.0, model="simclrv2"),      # another model
    ]
    df = accuracy_table(published, records, [("cpu", "fp32")]).frame
    assert column(df, "fp32") == ["50.00", NOT_RUN, NOT_RUN]
    assert "99.00" not in df.to_csv()


def test_accuracy_duplicate_records_are_an_error(published):
    with pytest.raises(ValueError, match="two result records"):
        accuracy_table(published, [acc("cpu", "fp32", 1.0), acc("cpu", "fp32", 2.0)], [("cpu", "fp32")])


def test_accuracy_model_without_published_figures(published):
    table = accuracy_table(published, [acc("cpu", "fp32", 91.0, model="resnet20", metric="top1")],
                           [("cpu", "fp32")], model="resnet20")
    assert list(table.frame.columns) == ["Chip", "fp32"]
    assert column(table.frame, "fp32") == ["91.00"]
    assert not any("report" in n for n in table.notes + table.details)


def test_accuracy_nan_rows_are_detailed(published):
    record = acc("cpu", "fp32", 10.0)
    record["details"] = dict(record["details"], nonfinite_rows=3)
    table = accuracy_table(published, [record], [("cpu", "fp32")])
    assert any("3 output rows held NaN" in n for n in table.details)


def test_accuracy_with_no_records_has_no_provenance(published):
    table = accuracy_table(published, [], [("cpu", "fp32")])
    assert column(table.frame, "fp32") == [NOT_RUN, NOT_RUN, NOT_RUN]
    assert not any(n.startswith(("weights", "config")) for n in table.notes)
    assert not any(n.startswith(("weights", "host")) for n in table.details)


# -------------------------------------------------------------------------------------- files


SIMCLR_FPS_MARKDOWN = """\
# SimCLR throughput (fps)

| Model       |   CPU (ONNX Runtime) fp32 fps |   T4 (report) |   310 (report) |   310P (report) |   310P/310 (report) |   310P/T4 (report) |
|:------------|------------------------------:|--------------:|---------------:|----------------:|--------------------:|-------------------:|
| SimCLR bs1  |                           250 |           833 |           4196 |            3571 |            0.851048 |           4.286914 |
| SimCLR bs4  |                           333 |          2352 |           7772 |           12903 |            1.555970 |           5.485969 |
| SimCLR bs8  |                          400* |          5333 |          11732 |           17391 |            1.482355 |           3.261016 |
| SimCLR bs16 |                           500 |          6666 |          10780 |           23529 |            2.182653 |           3.529702 |
| SimCLR bs32 |                           400 |          9696 |          11320 |           28070 |            2.479681 |           2.895008 |
| SimCLR bs64 |                           376 |         12075 |          11644 |           27586 |            2.369117 |           2.284554 |
| best bs     |                      bs16 500 |    bs64 12075 |     bs64 11732 |      bs32 28070 |            2.392601 |           2.324637 |
"""


def write(table, folder: Path, title="SimCLR throughput (fps)", notes=()):
    paths = [folder / "simclr_fps.md", folder / "simclr_fps.csv", folder / "simclr_fps.provenance.json"]
    render.write_table(table, title, *paths, notes)
    return paths


def test_write_table_markdown_csv_and_provenance_file(published, tmp_path):
    table = simclr_fps(published)
    md, csv, provenance = write(table, tmp_path / "out", notes=["merge: a conflict"])
    text = md.read_text(encoding="utf-8")
    assert text.startswith(SIMCLR_FPS_MARKDOWN + "\n- ")
    assert text.endswith("".join(f"- {n}\n" for n in table.notes))
    lines = csv.read_text(encoding="utf-8").splitlines()
    assert lines[0] == (
        "Model,CPU (ONNX Runtime) fp32 fps,T4 (report),310 (report),310P (report),"
        "310P/310 (report),310P/T4 (report)"
    )
    assert lines[1] == "SimCLR bs1,250,833,4196,3571,0.851048,4.286914"
    assert lines[-1] == "best bs,bs16 500,bs64 12075,bs64 11732,bs32 28070,2.392601,2.324637"
    assert len(lines) == 8  # header + 7 rows, no notes
    info = json.loads(provenance.read_text(encoding="utf-8"))
    assert info["title"] == "SimCLR throughput (fps)" and info["notes"] == table.notes
    assert info["details"] == table.details + ["merge: a conflict"]
    assert "runtime of CPU (ONNX Runtime) fp32: onnxruntime 1.31.0 (threads=2)" in info["details"]
    assert "runtime of" not in text  # settings stay out of the table's notes
    assert sorted(p.name for p in md.parent.iterdir()) == [
        "simclr_fps.csv", "simclr_fps.md", "simclr_fps.provenance.json"]


def test_write_table_is_byte_identical_for_identical_inputs(published, tmp_path):
    outputs = [[p.read_bytes() for p in write(simclr_fps(published), tmp_path / run)] for run in "ab"]
    assert outputs[0] == outputs[1]


def test_write_table_replaces_escapes_and_honours_the_umask(tmp_path):
    import os

    import pandas as pd

    from chipbench.report.context import Table

    md = tmp_path / "simclr_fps.md"
    md.write_text("old")
    old = os.umask(0o022)
    try:
        write(Table(pd.DataFrame({"A": ["x|y"], "B": ["1"]}), []), tmp_path, title="Title")
    finally:
        os.umask(old)
    assert md.read_text() == "# Title\n\n| A    |   B |\n|:-----|----:|\n| x\\|y |   1 |\n"
    assert (tmp_path / "simclr_fps.csv").read_text() == "A,B\nx|y,1\n"
    assert md.stat().st_mode & 0o777 == 0o644


def test_html_view_comes_from_the_csv_and_provenance_file(published, tmp_path):
    failed = [failed_perf("cpu", "fp32", 4)]
    table = simclr_fps(published, records=cpu_records()[:1], failed=failed, batch_sizes=(1, 4))
    md, csv, provenance = write(table, tmp_path)
    md.write_text("not read by the view")
    render.write_html_view(csv, provenance, tmp_path / "view.html")
    page = (tmp_path / "view.html").read_text(encoding="utf-8")
    assert "<h1>SimCLR throughput (fps)</h1>" in page
    assert '<td class="failed">failed</td>' in page
    assert "<li>failed: CPU (ONNX Runtime) fp32 bs4: compile failed: atc exited 1" in page
    assert "<summary>Settings and provenance</summary>" in page
    assert "runtime of CPU (ONNX Runtime) fp32: onnxruntime 1.31.0 (threads=2)" in page


def gated(record, accuracy, reference_accuracy, top1_agreement=None):
    from chipbench import gate

    verdict = gate.verdict(accuracy, reference_accuracy, 0.99)
    verdict.update(reference_chip="cpu", reference_precision="fp32")
    agreement = {"mean_cosine": 0.99, "min_cosine": 0.5, "n_outputs": 10}
    if top1_agreement is not None:
        agreement["top1_agreement"] = top1_agreement
    return {**record, "gate": verdict, "agreement": agreement}


def test_accuracy_marks_a_result_that_fails_the_gate(published):
    records = [
        gated(acc("cpu", "fp32", 80.0, model="simclrv2", metric="top1"), 80.0, 80.0, 100.0),
        gated(acc("cpu", "int8", 70.0, model="simclrv2", metric="top1"), 70.0, 80.0, 85.5),
    ]
    table = accuracy_table(published, records, [("cpu", "fp32"), ("cpu", "int8")], model="simclrv2")
    assert column(table.frame, "fp32")[0] == "80.00" and column(table.frame, "int8")[0] == "70.00 ✗"
    assert table.notes[1] == ("marks: not run: not selected or not yet measured; ✗ fails the "
                              "accuracy gate; (report): as published, — if not")
    assert ("✗ CPU (ONNX Runtime) int8 fails the accuracy gate: 70.00 < 79.20 = 99 % of the "
            "reference (CPU (ONNX Runtime) fp32, 80.00)") in table.details
    gate = accuracy.gate_table(context(published, model="simclrv2"), records)
    assert list(gate.frame["Gate"]) == ["pass", "FAIL"]
    assert list(gate.frame["Relative"]) == ["100.00 %", "87.50 %"]
    assert list(gate.frame["Top-1 agreement"]) == ["100.00 %", "85.50 %"]
    assert gate.notes[0].startswith("reference: CPU (ONNX Runtime) fp32; a result passes at")


def test_gate_table_without_a_reference_says_so(published):
    gate = accuracy.gate_table(context(published), [acc("cpu", "fp32", 1.0)])
    assert len(gate.frame) == 0
    assert gate.notes[0] == "no accuracy gate: the reference chip (config gate.reference_chip) did not run"


def test_latency_table_ours_then_the_reports_rows(published):
    record = acc("cpu", "fp32", 80.0, model="simclrv2", metric="top1",
                 per_image_ms={"preprocess": 0.0123, "inference": 4.5, "postprocess": 0.01})
    table = accuracy.latency_table(context(published, model="simclrv2"), [record])
    df = table.frame
    assert df.iloc[0].tolist() == ["CPU (ONNX Runtime) fp32 bs64", "0.012", "4.500", "0.010"]
    assert df.iloc[-1].tolist() == ["BM1684X int8 bs4 (report)", "0.10", "0.81", "0.11"]
    assert len(df) == 5
    assert table.notes[0].startswith("ours: wall time per model input over the whole accuracy run")


def test_estimates_never_pass_for_measurements_and_sit_beside_the_report(published):
    manifests = [
        {"chip": "bm1684x", "precision": "int8", "batch_size": 4, "estimated_latency_ms": 0.64},
        {"chip": "bm1684x", "precision": "fp32", "batch_size": 1, "estimated_latency_ms": 2.34},
        {"chip": "cpu", "precision": "fp32", "batch_size": None},  # no estimate: left out
    ]
    ctx = context(published, model="simclrv2", labels={"bm1684x": "BM1684X"})
    table = throughput.estimates_table(ctx, manifests)
    assert table.frame.values.tolist() == [
        ["BM1684X fp32 bs1", "2.340", "427", "3.69", "0.63"],
        ["BM1684X int8 bs4", "0.640", "6250", "0.50", "1.28"],
    ]
    assert list(table.frame.columns)[1:3] == ["estimated (cmodel) ms per batch", "estimated (cmodel) fps"]
    assert table.notes[0].startswith("estimated (cmodel): the compiler's cycle-model latency")


def test_accuracy_names_a_simulated_source_and_its_crosscheck(published):
    record = acc("bm1684x", "int8", 10.0, model="simclrv2", metric="top1",
                 source="tpu_mlir: simulated on the host",
                 crosscheck={"reference": "bmodel on the cmodel simulator", "n_images": 32,
                             "exact": True, "passed": True, "max_abs_diff": 0.0,
                             "max_abs_output": 3.0})
    table = accuracy_table(published, [record], [("bm1684x", "int8")], model="simclrv2",
                           labels={"bm1684x": "BM1684X"})
    assert "BM1684X int8: source tpu_mlir: simulated on the host" in table.details
    assert ("BM1684X int8: cross-checked against the bmodel on the cmodel simulator on 32 "
            "seeded images: exact, within tolerance") in table.details
