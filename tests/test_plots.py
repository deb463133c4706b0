"""chipbench.report.plots: the report's figures render, with their provenance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chipbench.report import plots, published as published_figures

REPO = Path(__file__).resolve().parent.parent
LABELS = {"cpu": "CPU (ONNX Runtime)", "ascend310p": "310P", "bm1684x": "BM1684X"}
PROVENANCE = {
    "workflow": {"commit": "0123456789abcdef" * 2 + "01234567", "dirty": True},
    "config_sha256": "c0ffee" * 10 + "c0ff", "dataset_md5": "d" * 32,
    "system": {"system_name": "bench1", "host_processor_model_name": "CPU X",
               "host_processor_core_count": 4, "accelerators": []},
}


@pytest.fixture(scope="module")
def published():
    return published_figures.load_published(REPO / "resources" / "published.yaml")


def perf(chip, precision, batch, mean_ms, label=None, model="simclr"):
    latencies = list(np.random.default_rng(batch).normal(mean_ms, mean_ms / 20, 50))
    record = {
        "model": model, "chip": chip, "precision": precision, "batch_size": batch,
        "throughput_fps": 1000 * batch / mean_ms, "latencies_ms": latencies,
        "host": {"hostname": "bench1", "cpu": "CPU X", "cores": 4},
        "weights": {"source": "random", "seed": 0}, "provenance": PROVENANCE,
    }
    if label:
        record["imported"] = {"label": label, "path": "p"}
    return record


def acc(chip, precision, accuracy, passed=True, model="simclr"):
    return {
        "model": model, "chip": chip, "precision": precision, "accuracy": accuracy,
        "host": {"hostname": "bench1"}, "weights": {"source": "random", "seed": 0},
        "provenance": PROVENANCE,
        "gate": {"passed": passed, "required_accuracy": 9.9, "reference_accuracy": 10.0,
                 "reference_chip": "cpu", "reference_precision": "fp32",
                 "min_relative_accuracy": 0.99, "accuracy": accuracy},
    }


def rendered(path: Path) -> tuple[int, int, int]:
    """(width, height, distinct colours) of a PNG."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        return image.width, image.height, len(image.getcolors(image.width * image.height))


def test_fps_figure_with_report_curves(published, tmp_path):
    records = [perf("cpu", "fp32", b, m) for b, m in ((1, 2.0), (4, 5.0), (8, 9.0))]
    records.append(perf("ascend310p", "fp16", 1, 0.3, label="npu-lab"))
    fig = plots.fps_figure("SimCLR", records, published["simclr"], LABELS)
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels[:2] == ["CPU (ONNX Runtime) fp32", "310P fp16 [npu-lab]"]
    assert "T4 precision not stated (report)" in labels and "310P fp16 (report)" in labels
    dashed = [line for line in ax.get_lines() if "(report)" in line.get_label()]
    assert dashed and all(line.get_linestyle() == "--" for line in dashed)
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "4", "8", "16", "32", "64"]
    plots.save(fig, tmp_path / "fps.png")
    width, height, colours = rendered(tmp_path / "fps.png")
    assert width > 500 and height > 300 and colours > 50


def test_latency_figure_one_panel_per_series_with_report_times(published, tmp_path):
    records = [perf("cpu", "fp32", b, m, model="simclrv2") for b, m in ((1, 2.0), (4, 5.0))]
    records += [perf("bm1684x", "int8", 1, 1.5, model="simclrv2", label="sophon-box")]
    fig = plots.latency_figure("SimCLRv2", records, published["simclrv2"], LABELS)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["CPU (ONNX Runtime) fp32", "BM1684X int8 [sophon-box]"]
    bm = next(ax for ax in fig.axes if ax.get_title().startswith("BM1684X"))
    assert [c.get_label() for c in bm.collections] == ["report calculate time"]
    assert bm.collections[0].get_segments()[0][0][1] == pytest.approx(1.48)
    plots.save(fig, tmp_path / "latency.png")
    assert rendered(tmp_path / "latency.png")[2] > 50


def test_accuracy_figure_draws_the_gate_threshold(published, tmp_path):
    records = [acc("cpu", "fp32", 10.0), acc("ascend310p", "fp16", 5.0, passed=False)]
    fig = plots.accuracy_figure("SimCLR", records, published["simclr"], LABELS)
    ax = fig.axes[0]
    gate = [line for line in ax.get_lines() if line.get_label().startswith("gate")]
    assert len(gate) == 1 and gate[0].get_ydata()[0] == pytest.approx(9.9)
    assert gate[0].get_label() == "gate: ≥ 99 % of CPU (ONNX Runtime) fp32 (10.00) = 9.90"
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["CPU (ONNX Runtime)\nfp32", "310P\nfp16", "310\nfp16"]
    texts = [t.get_text() for t in ax.texts]
    assert "5.00 ✗" in texts and "65.55" in texts  # ours failing; the report's 310P
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "fails the gate ✗" in legend and "the report's" in legend
    plots.save(fig, tmp_path / "accuracy.png")
    assert rendered(tmp_path / "accuracy.png")[2] > 50


def test_figures_without_records_still_render(published, tmp_path):
    for kind, figure in plots.FIGURES.items():
        fig = figure("M", [], {}, LABELS)
        plots.save(fig, tmp_path / f"{kind}.png")
        assert (tmp_path / f"{kind}.png").stat().st_size > 1000


def test_footer_and_caption_carry_the_provenance(published, tmp_path):
    records = [perf("cpu", "fp32", 1, 2.0), perf("cpu", "fp32", 4, 5.0, label="other")]
    footer = plots.footer_text(records)
    assert footer == ("commit 0123456789ab + uncommitted changes · config c0ffeec0 · "
                      "random weights (seed 0) · host bench1")
    plots.write_figure("fps", "SimCLR", records, published["simclr"], LABELS,
                       tmp_path / "f.png", tmp_path / "f.rst", ["a conflict note_"])
    caption = (tmp_path / "f.rst").read_text()
    assert caption.startswith("**Provenance of this figure**\n\n- 2 result record(s): "
                              "cpu fp32 bs1, cpu fp32 bs4 \\[other\\]")
    assert "- workflow: commit 0123456789ab + uncommitted changes" in caption
    assert "- config sha256: c0ffeec0ffee" in caption
    assert "- a conflict note\\_" in caption  # escaped for reStructuredText
    from docutils.core import publish_parts

    html = publish_parts(caption, writer="html",
                         settings_overrides={"report_level": 2, "halt_level": 2})["body"]
    assert "cpu fp32 bs4 [other]" in html and "conflict note_" in html


def test_figures_are_byte_identical_for_identical_input(published, tmp_path):
    records = [perf("cpu", "fp32", b, m) for b, m in ((1, 2.0), (4, 5.0))]
    for name in ("a.png", "b.png"):
        plots.save(plots.fps_figure("SimCLR", records, published["simclr"], LABELS), tmp_path / name)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
