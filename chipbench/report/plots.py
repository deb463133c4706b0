"""Figures of the report: throughput, latency distributions and accuracy, with provenance.

Each ``*_figure`` function takes result records (this host's and imported ones, loaded with
``chipbench.report.records.load``; imported series are labelled `` [label]``) and the model's entry of
resources/published.yaml, and returns a matplotlib Figure (Agg backend, no display needed).
Every figure carries a one-line provenance footer; :func:`caption_rst` writes the full
provenance as reStructuredText for the figure's caption in the Snakemake report.

- :func:`fps_figure`: fps against batch size (log-x), one solid line per chip × precision,
  the report's published fps curves dashed.
- :func:`latency_figure`: the distribution of every timed iteration (perf.json
  ``latencies_ms``) per batch size, one panel per chip × precision; the report's bmrt_test
  calculate times (ms per batch) drawn on the panel of the same chip and precision.
- :func:`accuracy_figure`: accuracy per chip × precision, the report's figures beside ours,
  and the accuracy gate's threshold (gate.json) drawn as a line.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

from chipbench import provenance  # noqa: E402
from chipbench.report.published import entries, precision_rank  # noqa: E402
from chipbench.report.records import host_label, source_suffix, weights_label  # noqa: E402
from chipbench.files import write_atomic  # noqa: E402

__all__ = ["FIGURES", "accuracy_figure", "caption_rst", "fps_figure", "latency_figure", "save",
           "write_figure"]

DPI = 110
REPORT_STYLE = {"linestyle": "--", "linewidth": 1.4, "marker": "s", "markersize": 4, "alpha": 0.8}


def _series_key(record: Mapping, chip_order: Sequence[str] = ()) -> tuple:
    """Chips in the order of the chip presets, then precisions fp32 → int8, then source."""
    chip = record["chip"]
    position = list(chip_order).index(chip) if chip in chip_order else len(chip_order)
    return position, chip, precision_rank(record["precision"]), record["precision"], source_suffix(record)


def _series_name(record: Mapping, chip_labels: Mapping[str, str]) -> str:
    return (f"{chip_labels.get(record['chip'], record['chip'])} {record['precision']}"
            f"{source_suffix(record)}")


def _report_label(published_model: Mapping, chip: str) -> str:
    return ((published_model.get("chips") or {}).get(chip) or {}).get("label") or chip


def footer_text(records: Iterable[Mapping]) -> str:
    """One line: commit, config hash, weights and hosts of the records drawn."""
    records = list(records)
    if not records:
        return "no results drawn"
    parts = []
    commits = sorted({provenance.short_commit((r.get("provenance") or {}).get("workflow") or {})
                      for r in records if r.get("provenance")})
    if commits:
        parts.append(", ".join(commits))
    configs = sorted({str(r["provenance"].get("config_sha256"))[:8] for r in records
                      if r.get("provenance")})
    if configs:
        parts.append("config " + ", ".join(configs))
    parts.append(", ".join(sorted({weights_label(r.get("weights") or {}) for r in records})))
    hosts = sorted({(r.get("host") or {}).get("hostname") or "?" for r in records})
    parts.append("host " + ", ".join(hosts))
    return " · ".join(parts)


def _finish(fig, records: Sequence[Mapping]) -> None:
    fig.text(0.01, 0.005, footer_text(records), fontsize=7, color="0.35", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.03, 1, 1))


def _empty(fig, ax, text: str):
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, wrap=True)
    return fig


# ----------------------------------------------------------------------------------------- fps


def fps_figure(title: str, records: Iterable[Mapping], published_model: Mapping,
               chip_labels: Mapping[str, str]):
    """Throughput against batch size: ours solid, the report's published curves dashed."""
    records = [r for r in records if r.get("throughput_fps") is not None]
    fig, ax = plt.subplots(figsize=(9, 5.2), dpi=DPI)
    series: dict[tuple, list[Mapping]] = {}
    for record in records:
        series.setdefault(_series_key(record, list(chip_labels)), []).append(record)
    batches = set()
    for key in sorted(series):
        points = sorted(series[key], key=lambda r: int(r["batch_size"]))
        x = [int(r["batch_size"]) for r in points]
        batches.update(x)
        ax.plot(x, [float(r["throughput_fps"]) for r in points], marker="o", linewidth=2,
                label=_series_name(points[0], chip_labels))
    for entry in entries(published_model, "fps"):
        by_batch = sorted((int(b), float(v)) for b, v in (entry.get("by_batch") or {}).items())
        if not by_batch:
            continue
        batches.update(b for b, _ in by_batch)
        precision = entry.get("precision") or "precision not stated"
        ax.plot([b for b, _ in by_batch], [v for _, v in by_batch], **REPORT_STYLE,
                label=f"{_report_label(published_model, entry['chip'])} {precision} (report)")
    if not batches:
        _empty(fig, ax, f"{title}: no throughput figures (ours or the report's)")
        _finish(fig, records)
        return fig
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(batches), [str(b) for b in sorted(batches)])
    ax.minorticks_off()
    ax.set_ylim(bottom=0)
    ax.set_xlabel("batch size")
    ax.set_ylabel("throughput (images/s) = 1000 × batch size / mean latency (ms)")
    ax.set_title(f"{title}: throughput by batch size (ours solid, the report's dashed)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    _finish(fig, records)
    return fig


# ------------------------------------------------------------------------------------- latency


def latency_figure(title: str, records: Iterable[Mapping], published_model: Mapping,
                   chip_labels: Mapping[str, str]):
    """Per-iteration latency distributions (box: quartiles, whiskers: 5th–95th percentile,
    triangle: mean) per batch size, one panel per chip × precision."""
    records = [r for r in records if r.get("latencies_ms")]
    series: dict[tuple, list[Mapping]] = {}
    for record in records:
        series.setdefault(_series_key(record, list(chip_labels)), []).append(record)
    keys = sorted(series)
    columns = min(3, max(1, len(keys)))
    rows = max(1, -(-len(keys) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns + 0.6, 3.9 * rows + 0.4),
                             dpi=DPI, squeeze=False)
    if not keys:
        _empty(fig, axes[0][0], f"{title}: no timed iterations to draw")
        _finish(fig, records)
        return fig
    calculate = {
        (e["chip"], e.get("precision")): {int(b): float(v) for b, v in (e.get("by_batch") or {}).items()}
        for e in entries(published_model, "calculate_time_ms")
    }
    for ax, key in zip(axes.flat, keys):
        points = sorted(series[key], key=lambda r: int(r["batch_size"]))
        data = [np.asarray(r["latencies_ms"], dtype=float) for r in points]
        labels = [f"bs{r['batch_size']}\nn={len(d)}" for r, d in zip(points, data)]
        ax.boxplot(data, whis=(5, 95), showfliers=False, showmeans=True, widths=0.6,
                   tick_labels=labels)
        report = calculate.get((key[1], key[3])) or {}
        for i, record in enumerate(points, start=1):
            value = report.get(int(record["batch_size"]))
            if value is not None:
                ax.hlines(value, i - 0.4, i + 0.4, colors="C3", linestyles="--",
                          label="report calculate time" if i == 1 else None)
        ax.set_yscale("log")
        ax.set_ylabel("latency of one batch (ms)")
        ax.set_title(_series_name(points[0], chip_labels), fontsize=10)
        ax.grid(True, axis="y", which="both", alpha=0.25)
        if report:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle(f"{title}: latency per timed iteration\n(box: quartiles, whiskers: 5–95 %, "
                 "▲ mean, bar: median)", fontsize=10)
    _finish(fig, records)
    return fig


# ------------------------------------------------------------------------------------ accuracy


def accuracy_figure(title: str, records: Iterable[Mapping], published_model: Mapping,
                    chip_labels: Mapping[str, str]):
    """Accuracy per chip × precision: ours as bars, the report's as hollow bars beside them,
    and the accuracy gate's threshold (required accuracy) as a dashed line."""
    records = sorted((r for r in records if r.get("accuracy") is not None),
                     key=lambda r: _series_key(r, list(chip_labels)))
    report_entries = entries(published_model, "accuracy")
    report_by_cell: dict[tuple, list[Mapping]] = {}
    for entry in report_entries:
        report_by_cell.setdefault((entry["chip"], entry.get("precision")), []).append(entry)
    categories: list[tuple] = []
    for record in records:
        cell = (record["chip"], record["precision"])
        if cell not in categories:
            categories.append(cell)
    for cell in report_by_cell:
        if cell not in categories:
            categories.append(cell)
    fig, ax = plt.subplots(figsize=(max(7.5, 1.4 * len(categories) + 2), 5.8), dpi=DPI)
    if not categories:
        _empty(fig, ax, f"{title}: no accuracy figures (ours or the report's)")
        _finish(fig, records)
        return fig
    x = np.arange(len(categories))
    ours_by_cell: dict[tuple, list[Mapping]] = {}
    for record in records:
        ours_by_cell.setdefault((record["chip"], record["precision"]), []).append(record)
    width = 0.38
    drew_ours = drew_report = drew_failed = False
    for i, cell in enumerate(categories):
        mine = ours_by_cell.get(cell) or []
        for j, record in enumerate(mine):
            offset = -width / 2 if cell in report_by_cell else 0.0
            gate = record.get("gate")
            failed = bool(gate) and not gate.get("passed")
            bar = ax.bar(i + offset + j * 0.05, float(record["accuracy"]), width, color="C0",
                         edgecolor="C3" if failed else "C0", linewidth=2 if failed else 0.5,
                         hatch="//" if failed else None)
            drew_ours = True
            drew_failed = drew_failed or failed
            ax.bar_label(bar, [f"{float(record['accuracy']):.2f}{source_suffix(record)}"
                               + (" ✗" if failed else "")], fontsize=8, padding=2)
        for entry in report_by_cell.get(cell) or []:
            offset = width / 2 if mine else 0.0
            bar = ax.bar(i + offset, float(entry["value"]), width, fill=False, edgecolor="0.3",
                         linestyle="--", label=None if drew_report else "the report's")
            drew_report = True
            batch = f" bs{entry['batch_size']}" if entry.get("batch_size") is not None else ""
            ax.bar_label(bar, [f"{float(entry['value']):.2f}{batch}"], fontsize=7, padding=2,
                         color="0.3")
            break  # one report bar per cell (figures at several batch sizes agree or are in the table)
    gates = [r["gate"] for r in records if r.get("gate")]
    thresholds = sorted({(round(float(g["required_accuracy"]), 6), g.get("reference_chip"),
                          g.get("reference_precision"), float(g["reference_accuracy"]),
                          float(g["min_relative_accuracy"])) for g in gates})
    for k, (required, ref_chip, ref_precision, ref_acc, share) in enumerate(thresholds):
        ax.axhline(required, color="C3", linestyle="--", linewidth=1.3,
                   label=(f"gate: ≥ {100 * share:g} % of {chip_labels.get(ref_chip, ref_chip)} "
                          f"{ref_precision} ({ref_acc:.2f}) = {required:.2f}"))
    names = []
    for chip, precision in categories:
        label = chip_labels.get(chip) or _report_label(published_model, chip)
        names.append(f"{label}\n{precision or 'precision not stated'}")
    ax.set_xticks(x, names, fontsize=8)
    ax.set_ylabel("accuracy (%)")
    top = max([float(r["accuracy"]) for r in records] + [float(e["value"]) for e in report_entries]
              + [t[0] for t in thresholds] + [1.0])
    ax.set_ylim(0, min(100.0, top * 1.15 + 2))
    ax.set_title(f"{title}: accuracy by chip and precision"
                 + ("" if thresholds else " (no accuracy gate: its reference did not run)"))
    ax.grid(True, axis="y", alpha=0.3)
    # legend entries from empty bars, so a failing bar never styles the "ours" entry
    if drew_ours:
        ax.bar(0, 0, 0, color="C0", label="ours")
    if drew_failed:
        ax.bar(0, 0, 0, color="C0", edgecolor="C3", hatch="//", label="fails the gate ✗")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    _finish(fig, records)
    return fig


# -------------------------------------------------------------------------------------- output


def save(fig, path: Path | str) -> None:
    """PNG without a timestamp or version in its metadata, written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
    os.replace(tmp, path)


_RST_SPECIAL = "\\`*_|[]<>"


def rst_escape(text: str) -> str:
    return "".join("\\" + c if c in _RST_SPECIAL else c for c in str(text))


def caption_rst(records: Iterable[Mapping], sources: Sequence[str] = ()) -> str:
    """The provenance of a figure as reStructuredText, for its caption in the report:
    the cells drawn (and where they came from), then code, config, data, model, software,
    machines (chipbench.provenance.summary_lines)."""
    records = list(records)
    lines = ["**Provenance of this figure**", ""]
    if not records:
        lines.append("- no result records: the figure shows the report's figures only")
    else:
        cells = sorted({f"{r['chip']} {r['precision']}"
                        + (f" bs{r['batch_size']}" if "throughput_fps" in r else "")
                        + source_suffix(r) for r in records})
        lines.append(f"- {len(records)} result record(s): " + rst_escape(", ".join(cells)))
        weights = sorted({weights_label(r.get("weights") or {}) for r in records})
        lines.append("- weights: " + rst_escape("; ".join(weights)))
        hosts = sorted({host_label(r.get("host") or {}) for r in records})
        lines.append("- host: " + rst_escape("; ".join(hosts)))
        for line in provenance.summary_lines(records):
            lines.append("- " + rst_escape(line))
    for source in sources:
        lines.append("- " + rst_escape(source))
    return "\n".join(lines) + "\n"


#: Figure kinds the workflow draws (rules/report.smk): kind -> figure function.
FIGURES = {"fps": fps_figure, "latency": latency_figure, "accuracy": accuracy_figure}


def write_figure(kind: str, title: str, records: Sequence[Mapping], published_model: Mapping,
                 chip_labels: Mapping[str, str], png, caption, sources: Sequence[str] = ()) -> None:
    """Draw figure `kind` to `png` and its provenance caption (reStructuredText) to `caption`."""
    save(FIGURES[kind](title, records, published_model, chip_labels), png)
    write_atomic(caption, caption_rst(records, sources))
