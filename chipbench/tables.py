"""Result records -> the reports' tables, with the reports' own figures beside ours.

Inputs are result records (dicts, docs/DESIGN.md "Result records"), the `{chip: reason}` of
chips that cannot run on this host, and the reports' published figures
(``resources/published.yaml``, read with :func:`load_published`). Every cell is a string;
``—`` means "not run" (ours) or "not published" (report columns). A chip that did not run
never gets a number: unavailable chips are ignored even if a stale record of theirs is passed.

Report figures are shown as published, in the report's unit (fps for the SimCLR report,
bmrt_test calculate time in ms for the SimCLRv2 report), never converted; the reports' own
inconsistencies are repeated in the notes.

Results copied from other hosts (``results/imported/<label>/``, the layout of ``results/``)
are read with :func:`read_records` (``imported=``), which tags each record with
``imported: {"label", "path"}``; :func:`merge_records` then settles cells claimed by more
than one record (this host's results first, then the newest, every other claim named in a
note). Imported cells carry `` [<label>]`` and are shown even for chips unavailable here.

Everything here is pure except :func:`load_published`, :func:`read_records` and
:func:`write_table`; identical inputs give byte-identical files.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd
import yaml

from chipbench import provenance
from chipbench.errors import UserError

__all__ = [
    "MISSING",
    "accuracy_table",
    "fps_table",
    "host_label",
    "load_published",
    "merge_records",
    "read_records",
    "to_markdown",
    "weights_label",
    "write_table",
]

#: Cell of a figure that does not exist: a chip that did not run, or a figure not published.
GATE_FAILED = "✗"
LATENCY_STAGES = ("preprocess", "inference", "postprocess")
MISSING = "—"
#: Appended to a throughput cell whose latency coefficient of variation is above the threshold.
NOISY = "*"
#: Order of precision columns when the report adds precisions we did not run.
PRECISION_ORDER = ("fp32", "fp16", "bf16", "int8")


# --------------------------------------------------------------------------- published figures


def load_published(path: Path | str) -> dict:
    """The reports' figures (``resources/published.yaml``), keyed by model name."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    except FileNotFoundError:
        raise UserError(
            f"published figures {path} do not exist: restore resources/published.yaml"
        ) from None
    except yaml.YAMLError as error:
        problem = str(error).replace("\n", " ")
        raise UserError(f"published figures {path} are not valid YAML ({problem}): fix the file") from None
    if not isinstance(data, dict):
        raise UserError(f"published figures {path} must map model names to figures: fix the file")
    return data


def _block(published_model: Mapping, name: str) -> Mapping:
    return published_model.get(name) or {}


def _entries(published_model: Mapping, name: str) -> list[Mapping]:
    return list(_block(published_model, name).get("entries") or [])


def _fmt(value, decimals: int) -> str:
    return f"{float(value):.{int(decimals)}f}"


# ------------------------------------------------------------------------------------- labels


def weights_label(info: Mapping) -> str:
    """``random weights (seed 0)``, ``checkpoint NAME sha256 XXXXXXXX`` or ``onnx NAME sha256 XXXXXXXX``."""
    source = info.get("source")
    if source == "trained":
        return str(info["label"])
    if source == "random":
        return f"random weights (seed {info.get('seed')})"
    if source in ("checkpoint", "onnx"):
        return f"{source} {Path(str(info.get('path'))).name} sha256 {str(info.get('sha256'))[:8]}"
    return f"weights of unknown source {source!r}"


def host_label(host: Mapping) -> str:
    """``hostname (cpu, N cores, M GiB, os, Python x.y)`` from ``chipbench.host.describe()``."""
    parts = []
    if host.get("cpu"):
        parts.append(str(host["cpu"]))
    if host.get("cores") is not None:
        parts.append(f"{host['cores']} cores")
    if host.get("memory_gib") is not None:
        parts.append(f"{host['memory_gib']} GiB")
    if host.get("os"):
        parts.append(str(host["os"]))
    if host.get("python"):
        parts.append(f"Python {host['python']}")
    name = str(host.get("hostname") or "unknown host")
    return f"{name} ({', '.join(parts)})" if parts else name


def _backend_label(backend: Mapping) -> str:
    text = f"{backend.get('name', '?')} {backend.get('version', '?')}".strip()
    settings = backend.get("settings") or {}
    if settings:
        text += " (" + ", ".join(f"{k}={settings[k]}" for k in sorted(settings)) + ")"
    return text


class _Labels:
    """Chip names -> text. Rows and our columns use `chip_labels` (the chip presets' labels);
    report columns and ratio headers use the report's short labels (T4, 310, 310P)."""

    def __init__(self, chip_labels: Mapping[str, str], published_model: Mapping):
        self.ours = dict(chip_labels or {})
        self.report = {
            chip: entry.get("label") or chip
            for chip, entry in (published_model.get("chips") or {}).items()
        }

    def row(self, chip: str) -> str:
        return self.ours.get(chip) or self.report.get(chip) or chip

    def short(self, chip: str) -> str:
        return self.report.get(chip) or self.ours.get(chip) or chip


def _plural(word: str, items: Sequence[str]) -> str:
    if len(items) == 1:
        return f"{word}: {items[0]}"
    return f"{word} ({len(items)} different in this table): " + "; ".join(items)


def _provenance_notes(records: Sequence[Mapping], labels: _Labels) -> list[str]:
    """Weights, host(s) and runtime(s) behind the measured cells."""
    if not records:
        return []
    notes = []
    weights = sorted({weights_label(r.get("weights") or {}) for r in records})
    notes.append(_plural("weights", weights))
    hosts = sorted({host_label(r.get("host") or {}) for r in records})
    notes.append(_plural("host", hosts))
    runtimes: dict[str, set[str]] = {}
    for r in records:
        runtimes.setdefault(_backend_label(r.get("backend") or {}), set()).add(
            f"{labels.row(r['chip'])} {r['precision']}"
        )
    for runtime in sorted(runtimes):
        notes.append(f"runtime of {', '.join(sorted(runtimes[runtime]))}: {runtime}")
    notes += provenance.summary_lines(records, cell=lambda r: _cell_name(r, labels))
    notes += _import_notes(records)
    return notes


def _cell_name(record: Mapping, labels: "_Labels | None" = None) -> str:
    chip = labels.row(record["chip"]) if labels is not None else record.get("chip")
    text = f"{chip} {record.get('precision')}"
    if "throughput_fps" in record and record.get("batch_size") is not None:
        text += f" bs{record['batch_size']}"
    return text + source_suffix(record)


BLOCK_NAMES = {
    "accuracy": "accuracy",
    "fps": "fps",
    "best": "best bs row",
    "ratios": "ratios",
    "calculate_time_ms": "calculate time",
}


def _report_notes(published_model: Mapping, blocks: Iterable[str], chips: Iterable[str]) -> list[str]:
    """Where each report block comes from, its caveats, and the precision of each report chip."""
    notes = []
    for name in blocks:
        block = _block(published_model, name)
        if not block:
            continue
        source = block.get("source") or published_model.get("report")
        text = f"report {BLOCK_NAMES.get(name, name)} from {source}"
        if block.get("note"):
            text += f": {block['note']}"
        notes.append(text)
    chip_entries = published_model.get("chips") or {}
    for chip in chips:
        entry = chip_entries.get(chip) or {}
        label = entry.get("label", chip)
        if entry.get("precision") and entry.get("precision_note"):
            notes.append(f"report {label} precision: {entry['precision']} ({entry['precision_note']})")
        elif entry.get("precision"):
            notes.append(f"report {label} precision: {entry['precision']}")
        elif entry.get("precision_note"):
            notes.append(f"report {label} precision: {entry['precision_note']}")
    return notes


def _unavailable_notes(chips: Iterable[str], unavailable: Mapping[str, str], labels: _Labels) -> list[str]:
    return [
        f"{labels.row(chip)}: not available on this host: {unavailable[chip]}"
        for chip in chips
        if chip in unavailable
    ]


def _unique(items: Iterable) -> list:
    seen = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def _index(records: Iterable[Mapping], model: str, unavailable: Mapping, key) -> dict:
    """Records of `model` by `key(record)`; this host's records of chips marked unavailable
    are dropped (stale), records imported from other hosts are kept."""
    index = {}
    for record in records:
        if record.get("model") != model:
            continue
        if record.get("chip") in unavailable and not record.get("imported"):
            continue
        k = key(record)
        if k in index:
            raise ValueError(f"two result records for {model} {' '.join(map(str, k))}")
        index[k] = record
    return index


def _frame(columns: dict[str, list[str]]) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(cells, dtype=object) for name, cells in columns.items()})


def _add(columns: dict[str, list[str]], name: str, cells: list[str]) -> None:
    if name in columns:
        raise ValueError(f"two table columns would be called {name!r}: give the chips distinct labels")
    columns[name] = cells


# ----------------------------------------------------------------------------------- accuracy


def _accuracy_metric_notes(records: Sequence[Mapping]) -> list[str]:
    notes = []
    for record in records:
        details = record.get("details") or {}
        if record.get("metric") == "pair_top1":
            note = (
                "accuracy: contrastive pair-matching top-1 (%) of the two views of each image, "
                f"{details.get('n_batches')} batches of {details.get('pairs_per_batch')} images "
                f"from a seeded permutation without replacement, temperature "
                f"{details.get('temperature')}; chance {float(details.get('chance', 0)):.2f} %"
            )
        elif record.get("metric") == "top1":
            note = f"accuracy: classification top-1 (%) over {record.get('n_images')} test images"
        else:
            note = f"accuracy: {record.get('metric')} (%) over {record.get('n_images')} images"
        notes.append(note)
    return _unique(notes)


def accuracy_table(
    model: str,
    records: Iterable[Mapping],
    chips: Sequence[str],
    precisions: Sequence[str],
    unavailable: Mapping[str, str],
    published: Mapping,
    chip_labels: Mapping[str, str],
) -> tuple[pd.DataFrame, list[str]]:
    """Accuracy per chip (rows) and precision (columns), with the report's figures beside ours.

    ``chips``: this model's chips, unavailable ones included (they get a row of ``—`` and a
    note with the reason). Chips the report has figures for but that are not in ``chips``
    get a row of their own (report columns only). ``precisions``: our precision columns.
    A ``<precision> (report)`` column follows each precision the report has a figure for
    (report-only precisions come after ours, in fp32/fp16/bf16/int8 order). ``published``
    is the whole published.yaml; a model without an entry gets no report columns.
    """
    pub = (published or {}).get(model) or {}
    labels = _Labels(chip_labels, pub)
    records = list(records)

    def in_matrix(r) -> bool:
        return r.get("chip") in chips and r.get("precision") in precisions

    by_cell = _index(
        (r for r in records if in_matrix(r)), model, unavailable,
        lambda r: (r["chip"], r["precision"]),
    )
    report_entries = _entries(pub, "accuracy")
    decimals = _block(pub, "accuracy").get("decimals", 2)

    report_precisions = _unique(e.get("precision") for e in report_entries)
    column_precisions = list(precisions) + sorted(
        (p for p in report_precisions if p not in precisions and p is not None),
        key=lambda p: (PRECISION_ORDER.index(p) if p in PRECISION_ORDER else len(PRECISION_ORDER), p),
    )
    if None in report_precisions:
        column_precisions.append(None)
    report_chips = _unique(e["chip"] for e in report_entries)
    rows = _unique(list(chips) + [c for c in report_chips if c not in chips])

    def report_cell(chip, precision) -> str:
        found = [e for e in report_entries if e["chip"] == chip and e.get("precision") == precision]
        if not found:
            return MISSING
        values = _unique(_fmt(e["value"], decimals) for e in found)
        if len(values) == 1:
            return values[0]
        return ", ".join(f"{_fmt(e['value'], decimals)} (bs{e.get('batch_size')})" for e in found)

    columns: dict[str, list[str]] = {"Chip": [labels.row(c) for c in rows]}
    for precision in column_precisions:
        if precision in precisions:
            cells = []
            for chip in rows:
                record = by_cell.get((chip, precision))
                cells.append(MISSING if record is None else _accuracy_cell(record))
            _add(columns, precision, cells)
        if precision in report_precisions:
            name = f"{precision} (report)" if precision else "report (precision not stated)"
            _add(columns, name, [report_cell(chip, precision) for chip in rows])

    used = [by_cell[k] for k in sorted(by_cell)]
    notes = _accuracy_metric_notes(used)
    notes += _outside_notes(records, model, in_matrix, labels)
    notes += _unavailable_notes(rows, unavailable, labels)
    notes += [
        f"{labels.row(chip)}: report figures only (not among this run's chips)"
        for chip in rows
        if chip not in chips
    ]
    for record in used:
        bad = (record.get("details") or {}).get("nonfinite_rows") or 0
        if bad:
            notes.append(
                f"{labels.row(record['chip'])} {record['precision']}: {bad} output rows held "
                "NaN or infinity and were counted as wrong"
            )
    notes += _gate_notes(used, labels)
    notes += _source_notes(used, labels)
    batches = _unique(
        f"{labels.row(r['chip'])} {r['precision']} bs{r['batch_size']}"
        for r in used
        if r.get("batch_size") is not None
    )
    if batches:
        notes.append("batch size of our accuracy runs: " + ", ".join(batches))
    notes += _report_notes(pub, ["accuracy"], [c for c in report_chips if c in rows])
    notes += _provenance_notes(used, labels)
    return _frame(columns), notes


def _accuracy_cell(record: Mapping) -> str:
    text = f"{float(record['accuracy']):.2f}"
    gate = record.get("gate")
    if gate and not gate["passed"]:
        text += f" {GATE_FAILED}"
    return text + source_suffix(record)


def _gate_notes(records: Sequence[Mapping], labels: _Labels) -> list[str]:
    notes = []
    for record in records:
        gate = record.get("gate")
        if gate and not gate["passed"]:
            notes.append(
                f"{GATE_FAILED} {labels.row(record['chip'])} {record['precision']} fails the "
                f"accuracy gate: {gate['accuracy']:.2f} < {gate['required_accuracy']:.2f} = "
                f"{100 * gate['min_relative_accuracy']:g} % of the reference "
                f"({labels.row(gate['reference_chip'])} {gate['reference_precision']}, "
                f"{gate['reference_accuracy']:.2f})"
            )
    return notes


def _source_notes(records: Sequence[Mapping], labels: _Labels) -> list[str]:
    """Which path produced each figure that the device itself did not run, and its cross-check."""
    notes = []
    for record in records:
        source = record.get("source", "device")
        if source != "device":
            notes.append(f"{labels.row(record['chip'])} {record['precision']}: source {source}")
        check = record.get("crosscheck")
        if check:
            verdict = "exact" if check.get("exact") else (
                f"max |diff| {check['max_abs_diff']:.3g} of outputs up to "
                f"{check['max_abs_output']:.3g}")
            notes.append(
                f"{labels.row(record['chip'])} {record['precision']}: cross-checked against the "
                f"{check['reference']} on {check['n_images']} seeded images: {verdict}, "
                f"{'within' if check['passed'] else 'OUTSIDE'} tolerance"
            )
    return notes


def gate_table(records: Iterable[Mapping], chip_labels: Mapping[str, str]) -> tuple[pd.DataFrame, list[str]]:
    """Every accuracy result against the FP32 reference: accuracy, agreement, pass or fail.

    ``records``: accuracy records carrying ``gate`` (chipbench.gate.verdict plus
    ``reference_chip``/``reference_precision``) and ``agreement`` (chipbench.gate.agreement).
    """
    labels = _Labels(chip_labels, {})
    rows = sorted(
        (r for r in records if r.get("gate")),
        key=lambda r: (r["chip"], PRECISION_ORDER.index(r["precision"])
                       if r["precision"] in PRECISION_ORDER else len(PRECISION_ORDER)),
    )
    columns: dict[str, list[str]] = {
        "Chip": [labels.row(r["chip"]) + source_suffix(r) for r in rows],
        "Precision": [r["precision"] for r in rows],
        "Accuracy": [f"{r['accuracy']:.2f}" for r in rows],
        "Reference": [f"{r['gate']['reference_accuracy']:.2f}" for r in rows],
        "Relative": [
            MISSING if r["gate"]["relative_accuracy"] is None
            else f"{100 * r['gate']['relative_accuracy']:.2f} %" for r in rows
        ],
        "Top-1 agreement": [
            f"{r['agreement']['top1_agreement']:.2f} %" if "top1_agreement" in r["agreement"]
            else MISSING for r in rows
        ],
        "Mean cosine": [f"{r['agreement']['mean_cosine']:.6f}" for r in rows],
        "Min cosine": [f"{r['agreement']['min_cosine']:.6f}" for r in rows],
        "Gate": ["pass" if r["gate"]["passed"] else "FAIL" for r in rows],
    }
    notes = []
    if rows:
        gate = rows[0]["gate"]
        notes.append(
            f"reference: {labels.row(gate['reference_chip'])} {gate['reference_precision']}; a "
            f"result passes when its accuracy is ≥ {100 * gate['min_relative_accuracy']:g} % of "
            "the reference's (MLPerf-style); agreement compares each output with the "
            "reference's output for the same input"
        )
    return _frame(columns), notes


def latency_table(
    model: str, records: Iterable[Mapping], published: Mapping, chip_labels: Mapping[str, str]
) -> tuple[pd.DataFrame, list[str]]:
    """Per-image preprocess / inference / postprocess ms in the SimCLRv2 report's shape.

    Ours come from the accuracy runs (``record["per_image_ms"]``); the report's rows (its
    Python program's times) follow, labelled "(report)".
    """
    pub = (published or {}).get(model) or {}
    labels = _Labels(chip_labels, pub)
    decimals = _block(pub, "per_image_ms").get("decimals", 2)
    rows = []
    for record in sorted(
        (r for r in records if r.get("per_image_ms")), key=lambda r: (r["chip"], r["precision"])
    ):
        times = record["per_image_ms"]
        rows.append([f"{labels.row(record['chip'])} {record['precision']} bs{record['batch_size']}"
                     f"{source_suffix(record)}"]
                    + [f"{times[k]:.3f}" for k in LATENCY_STAGES])
    for entry in _entries(pub, "per_image_ms"):
        rows.append([f"{labels.short(entry['chip'])} {entry['precision']} bs{entry['batch_size']} (report)"]
                    + [_fmt(entry[k], decimals) for k in LATENCY_STAGES])
    columns = {"Model": [r[0] for r in rows]}
    for i, stage in enumerate(LATENCY_STAGES, start=1):
        columns[f"{stage} ms"] = [r[i] for r in rows]
    notes = [
        "ours: wall time per model input over the whole accuracy run, at the batch size shown "
        "(preprocess: the preprocessing stage; inference: running every batch, padding "
        "included; postprocess: scoring the outputs)"
    ]
    notes += _report_notes(pub, ["per_image_ms"], _unique(e["chip"] for e in _entries(pub, "per_image_ms")))
    return _frame(columns), notes


def estimates_table(
    model: str, manifests: Iterable[Mapping], published: Mapping, chip_labels: Mapping[str, str]
) -> tuple[pd.DataFrame, list[str]]:
    """Compiler latency estimates (no device here) beside the report's measured figures.

    ``manifests``: compiled.json contents carrying ``chip``, ``precision``, ``batch_size`` and
    ``estimated_latency_ms`` (ms per batch). Estimates are never mixed with measured figures:
    every column says "estimated (cmodel)".
    """
    pub = (published or {}).get(model) or {}
    labels = _Labels(chip_labels, pub)
    reported = {
        (e["chip"], e["precision"], int(b)): v
        for e in _entries(pub, "calculate_time_ms")
        for b, v in (e.get("by_batch") or {}).items()
    }
    decimals = _block(pub, "calculate_time_ms").get("decimals", 2)
    rows = sorted(
        (m for m in manifests if m.get("estimated_latency_ms") is not None),
        key=lambda m: (m["chip"], _precision_rank(m["precision"]), m["batch_size"]),
    )
    cells: dict[str, list[str]] = {name: [] for name in (
        "Model", "estimated (cmodel) ms per batch", "estimated (cmodel) fps",
        "report calculate time ms", "estimate / report")}
    for m in rows:
        ms, batch = float(m["estimated_latency_ms"]), int(m["batch_size"])
        report = reported.get((m["chip"], m["precision"], batch))
        cells["Model"].append(f"{labels.row(m['chip'])} {m['precision']} bs{batch}")
        cells["estimated (cmodel) ms per batch"].append(f"{ms:.3f}")
        cells["estimated (cmodel) fps"].append(f"{1000 * batch / ms:.0f}")
        cells["report calculate time ms"].append(MISSING if report is None else _fmt(report, decimals))
        cells["estimate / report"].append(MISSING if report is None else f"{ms / report:.2f}")
    notes = [
        "estimated (cmodel): the compiler's cycle-model latency for one batch "
        "(model_deploy --debug, compiler_profile_0.txt), not a measurement; fps = 1000 × "
        "batch size / estimated ms"
    ]
    notes += _report_notes(pub, ["calculate_time_ms"], _unique(m["chip"] for m in rows))
    return _frame(cells), notes


def _precision_rank(precision: str) -> int:
    return PRECISION_ORDER.index(precision) if precision in PRECISION_ORDER else len(PRECISION_ORDER)


# ---------------------------------------------------------------------------------------- fps


def _timing_text(timing: Mapping) -> str:
    text = (
        f"{timing.get('warmup_iterations')} warm-up iterations, then ≥ "
        f"{timing.get('min_iterations')} timed iterations and ≥ {timing.get('min_seconds')} s"
    )
    if timing.get("max_iterations") is not None:
        text += f" (at most {timing['max_iterations']} iterations)"
    return text


def fps_table(
    model: str,
    records: Iterable[Mapping],
    batch_sizes: Sequence[int],
    columns: Sequence[tuple[str, str]],
    unavailable: Mapping[str, str],
    published: Mapping,
    ratios: Sequence[Sequence[str]],
    chip_labels: Mapping[str, str],
    model_title: str,
    cv_threshold: float = 0.05,
) -> tuple[pd.DataFrame, list[str]]:
    """Throughput in the SimCLR report's shape.

    Rows ``<model_title> bs<N>`` for every batch size we ran or the report publishes, then
    ``best bs`` (``bs32 28070``: the batch size with the highest fps, and that fps).
    Columns, in order: ``Model``; ours per (chip, precision) in ``columns`` (integer fps,
    ``—`` when not run, ``*`` appended when the record's cv exceeds ``cv_threshold``); the
    report's fps columns (``T4 (report)`` …) and, for the SimCLRv2 report, its bmrt_test
    calculate time (``BM1684X int8 calculate time ms (report)``, ms per batch, as published);
    then per ``ratios`` pair (numerator chip, denominator chip): our ratio (2 decimals) when
    both chips are among ``columns`` (``—`` when either side did not run; one column per
    shared precision when a chip has several) and the report's ratio as printed.
    """
    pub = (published or {}).get(model) or {}
    labels = _Labels(chip_labels, pub)
    columns = [tuple(c) for c in columns]
    fps_entries = _entries(pub, "fps")
    time_entries = _entries(pub, "calculate_time_ms")
    report_batches = {int(b) for e in fps_entries + time_entries for b in (e.get("by_batch") or {})}
    batches = sorted({int(b) for b in batch_sizes} | report_batches)
    ours = {int(b) for b in batch_sizes}
    records = list(records)

    def in_matrix(r) -> bool:
        return (r.get("chip"), r.get("precision")) in columns and int(r.get("batch_size", -1)) in ours

    by_cell = _index(
        (r for r in records if in_matrix(r)), model, unavailable,
        lambda r: (r["chip"], r["precision"], int(r["batch_size"])),
    )

    def noisy(record) -> bool:
        return record is not None and float(record.get("cv", 0.0)) > cv_threshold

    def fps_text(record) -> str:
        return (f"{float(record['throughput_fps']):.0f}" + (NOISY if noisy(record) else "")
                + source_suffix(record))

    def best(chip, precision):
        found = [by_cell.get((chip, precision, b)) for b in batches]
        found = [r for r in found if r is not None]
        if not found:
            return None
        return max(found, key=lambda r: (float(r["throughput_fps"]), -int(r["batch_size"])))

    table: dict[str, list[str]] = {
        "Model": [f"{model_title} bs{b}" for b in batches] + ["best bs"]
    }
    for chip, precision in columns:
        cells = []
        for b in batches:
            record = by_cell.get((chip, precision, b))
            cells.append(MISSING if record is None else fps_text(record))
        top = best(chip, precision)
        cells.append(MISSING if top is None else f"bs{top['batch_size']} {fps_text(top)}")
        _add(table, f"{labels.row(chip)} {precision} fps", cells)

    fps_decimals = _block(pub, "fps").get("decimals", 0)
    best_entries = {e["chip"]: e for e in _entries(pub, "best")}
    best_decimals = _block(pub, "best").get("decimals", 0)
    for entry in fps_entries:
        by_batch = {int(b): v for b, v in (entry.get("by_batch") or {}).items()}
        cells = [_fmt(by_batch[b], fps_decimals) if b in by_batch else MISSING for b in batches]
        top = best_entries.get(entry["chip"])
        cells.append(
            MISSING if top is None else f"bs{top['batch_size']} {_fmt(top['fps'], best_decimals)}"
        )
        _add(table, f"{labels.short(entry['chip'])} (report)", cells)

    time_decimals = _block(pub, "calculate_time_ms").get("decimals", 2)
    for entry in time_entries:
        by_batch = {int(b): v for b, v in (entry.get("by_batch") or {}).items()}
        cells = [_fmt(by_batch[b], time_decimals) if b in by_batch else MISSING for b in batches]
        cells.append(MISSING)  # the report has no best-batch figure for calculate time
        _add(
            table,
            f"{labels.short(entry['chip'])} {entry.get('precision')} calculate time ms (report)",
            cells,
        )

    ratio_entries = _entries(pub, "ratios")
    ratio_decimals = _block(pub, "ratios").get("decimals", 6)
    ratio_notes = []
    for numerator, denominator in ratios:
        header = f"{labels.short(numerator)}/{labels.short(denominator)}"
        num_precisions = [p for c, p in columns if c == numerator]
        den_precisions = [p for c, p in columns if c == denominator]
        if num_precisions and den_precisions:
            if len(num_precisions) == 1 and len(den_precisions) == 1:
                pairs = [(num_precisions[0], den_precisions[0], header)]
            else:
                pairs = [(p, p, f"{header} {p}") for p in num_precisions if p in den_precisions]
            for pn, pd_, name in pairs:
                cells = []
                for b in batches:
                    top, bottom = by_cell.get((numerator, pn, b)), by_cell.get((denominator, pd_, b))
                    cells.append(_ratio_text(top, bottom, noisy))
                cells.append(_ratio_text(best(numerator, pn), best(denominator, pd_), noisy))
                _add(table, name, cells)
                ratio_notes.append(
                    f"{name}: {labels.row(numerator)} {pn} fps / {labels.row(denominator)} {pd_} "
                    "fps as we measured them (best bs row: ratio of the best fps)"
                )
        for entry in ratio_entries:
            if entry.get("numerator") == numerator and entry.get("denominator") == denominator:
                by_batch = {int(b): v for b, v in (entry.get("by_batch") or {}).items()}
                cells = [_fmt(by_batch[b], ratio_decimals) if b in by_batch else MISSING for b in batches]
                cells.append(MISSING if entry.get("best") is None else _fmt(entry["best"], ratio_decimals))
                _add(table, f"{header} (report)", cells)

    used = [by_cell[k] for k in sorted(by_cell)]
    notes = []
    if columns:
        timings = _unique(_timing_text(r["timing"]) for r in used if r.get("timing"))
        text = (
            "our fps = 1000 × batch size / mean latency of one batch in ms (the ais_bench "
            "definition), one batch of real test images run repeatedly"
        )
        if timings:
            text += "; timing: " + "; ".join(timings)
        if used:
            iterations = [int(r.get("iterations", 0)) for r in used]
            span = (f"{min(iterations)}" if min(iterations) == max(iterations)
                    else f"{min(iterations)}–{max(iterations)}")
            text += f"; {span} timed iterations per cell"
        notes.append(text)
        notes.append("best bs: the batch size with the highest fps, and that fps")
    flagged = [r for r in used if noisy(r)]
    if flagged:
        cells = ", ".join(
            f"{labels.row(r['chip'])} {r['precision']} bs{r['batch_size']} cv {float(r['cv']):.3f}"
            for r in flagged
        )
        notes.append(
            f"cells marked `{NOISY}` have a latency coefficient of variation (std/mean) above "
            f"{cv_threshold:g}, so the figure is noisy: {cells}; rerun on an idle machine or "
            "raise timing.min_seconds"
        )
    notes += _unavailable_notes(_unique(c for c, _ in columns), unavailable, labels)
    notes += _outside_notes(records, model, in_matrix, labels)
    notes += ratio_notes
    report_chips = _unique(e["chip"] for e in fps_entries + time_entries)
    notes += _report_notes(pub, ["fps", "best", "ratios", "calculate_time_ms"], report_chips)
    notes += _provenance_notes(used, labels)
    return _frame(table), notes


def _ratio_text(top, bottom, noisy) -> str:
    if top is None or bottom is None:
        return MISSING
    value = float(top["throughput_fps"]) / float(bottom["throughput_fps"])
    return f"{value:.2f}" + (NOISY if noisy(top) or noisy(bottom) else "")


# ------------------------------------------------------------------------------------- output


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub pipe table: first column left-aligned, the others right-aligned, padded."""
    headers = [str(c) for c in df.columns]
    rows = [[str(v).replace("|", "\\|") for v in row] for row in df.itertuples(index=False)]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells):
        padded = [
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(
        ":" + "-" * (w + 1) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths)
    ) + "|"
    return "\n".join([line(headers), rule] + [line(r) for r in rows])


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, delete=False, suffix=".tmp", encoding="utf-8", newline=""
    ) as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)


def write_table(df: pd.DataFrame, md_path, csv_path, title: str, notes: Sequence[str]) -> None:
    """Markdown (``# title``, the table, the notes as a bullet list) and CSV (the table only),
    each written atomically; no timestamps, so identical inputs give identical bytes."""
    markdown = f"# {title}\n\n{to_markdown(df)}\n"
    if notes:
        markdown += "\n" + "".join(f"- {note}\n" for note in notes)
    _write_atomic(Path(md_path), markdown)
    _write_atomic(Path(csv_path), df.to_csv(index=False, lineterminator="\n"))


# ------------------------------------------------------------------------- records, imported

#: Folder under results/ holding other hosts' results, one ``<label>/`` each.
IMPORTED_DIR = "imported"


def source_suffix(record: Mapping) -> str:
    """`` [label]`` for a record imported from results/imported/<label>/, else nothing."""
    imported = record.get("imported")
    return f" [{imported['label']}]" if imported else ""


def _source_name(record: Mapping) -> str:
    imported = record.get("imported")
    return f"results/{IMPORTED_DIR}/{imported['label']}" if imported else "this host's results"


def imported_label(path: Path | str) -> str:
    """The ``<label>`` of ``…/results/imported/<label>/<model>/…``."""
    parts = Path(path).parts
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == IMPORTED_DIR and i + 1 < len(parts) - 1:
            return parts[i + 1]
    raise UserError(
        f"{path} is not under results/{IMPORTED_DIR}/<label>/: copy other hosts' results/ "
        f"trees to results/{IMPORTED_DIR}/<label>/"
    )


def read_records(paths: Iterable, imported: Iterable = ()) -> list[dict]:
    """The result records among `paths` that exist (a targeted run has computed only some),
    then those among `imported` (records copied from other hosts under
    ``results/imported/<label>/``), each tagged ``imported: {"label", "path"}`` and keeping
    its own ``host``. Pass the result to :func:`merge_records` before tabulating."""
    records = []
    for path in map(Path, paths):
        if path.is_file():
            with open(path, encoding="utf-8") as handle:
                records.append(json.load(handle))
    for path in sorted(map(Path, imported)):
        if path.is_file():
            with open(path, encoding="utf-8") as handle:
                record = json.load(handle)
            record["imported"] = {"label": imported_label(path), "path": str(path)}
            records.append(record)
    return records


def accuracy_key(record: Mapping) -> tuple:
    """The cell of an accuracy (or gate) record: model, chip, precision."""
    return record.get("model"), record.get("chip"), record.get("precision")


def perf_key(record: Mapping) -> tuple:
    """The cell of a throughput record: model, chip, precision, batch size."""
    return record.get("model"), record.get("chip"), record.get("precision"), int(record.get("batch_size", -1))


def record_time(record: Mapping) -> float:
    """When the record was made: ``finished_at`` (throughput) or ``provenance.recorded_at``."""
    value = record.get("finished_at") or (record.get("provenance") or {}).get("recorded_at")
    return float(value) if value is not None else 0.0


def _when(record: Mapping) -> str:
    seconds = record_time(record)
    if not seconds:
        return "time not recorded"
    from datetime import datetime, timezone

    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _figure(record: Mapping) -> str:
    if "throughput_fps" in record:
        return f"{float(record['throughput_fps']):.0f} fps"
    if "accuracy" in record:
        return f"{float(record['accuracy']):.2f} %"
    return "a figure"


def _same_measurement(a: Mapping, b: Mapping) -> bool:
    strip = lambda r: {k: v for k, v in r.items() if k != "imported"}  # noqa: E731
    return strip(a) == strip(b)


def merge_records(records: Iterable[Mapping], key=perf_key) -> tuple[list[dict], list[str]]:
    """One record per cell (``key(record)``), and a note for every claim not shown.

    Rule: this host's record wins over imported ones; among imported records, the newest
    (:func:`record_time`) wins, ties going to the first label in sorted order. A claim not
    shown is never dropped silently: a note names both sources, their hosts, times and
    figures. An imported exact copy of the shown record is noted as a duplicate. Two of this
    host's records for one cell cannot come from one results tree and are an error.
    """
    groups: dict[tuple, list[dict]] = {}
    for record in records:
        groups.setdefault(key(record), []).append(dict(record))
    merged, notes = [], []
    for cell in groups:
        group = groups[cell]
        local = [r for r in group if not r.get("imported")]
        if len(local) > 1:
            raise ValueError(f"two result records of this host for {' '.join(map(str, cell))}")
        if local:
            winner = local[0]
        else:
            ordered = sorted(group, key=lambda r: r["imported"]["label"])
            winner = max(ordered, key=record_time)  # max keeps the first of equal times
        merged.append(winner)
        name = f"{cell[1]} {cell[2]}" + (f" bs{cell[3]}" if len(cell) > 3 else "")
        rule = "this host's results win" if not winner.get("imported") else "the newest wins"
        for other in group:
            if other is winner:
                continue
            if _same_measurement(other, winner):
                notes.append(
                    f"{cell[0]} {name}: {_source_name(other)} holds a copy of the record shown "
                    f"(from {_source_name(winner)}); counted once"
                )
                continue
            winner_host = host_label(winner.get("host") or {})
            other_host = host_label(other.get("host") or {})
            kind = ("same host" if winner_host == other_host
                    else f"conflict between hosts {winner_host} and {other_host}")
            notes.append(
                f"{cell[0]} {name}: {kind}: shown {_figure(winner)} from "
                f"{_source_name(winner)} ({_when(winner)}); not shown {_figure(other)} from "
                f"{_source_name(other)} ({_when(other)}) — {rule}"
            )
    return merged, notes


def attach_gates(records: Iterable[dict], gates: Iterable[Mapping]) -> None:
    """Copy each gate record's ``gate`` and ``agreement`` into the accuracy record of the same
    cell from the same source (this host's gates to this host's records, an import's to its own)."""
    by_cell = {
        (source_suffix(g), g.get("chip"), g.get("precision")): g for g in gates
    }
    for record in records:
        gate = by_cell.get((source_suffix(record), record.get("chip"), record.get("precision")))
        if gate:
            record.update({k: v for k, v in gate.items() if k in ("gate", "agreement")})


def _import_notes(records: Sequence[Mapping]) -> list[str]:
    hosts: dict[str, set[str]] = {}
    for record in records:
        if record.get("imported"):
            hosts.setdefault(record["imported"]["label"], set()).add(host_label(record.get("host") or {}))
    return [
        f"cells marked [{label}]: measured on {'; '.join(sorted(hosts[label]))}, imported from "
        f"results/{IMPORTED_DIR}/{label}/"
        for label in sorted(hosts)
    ]


def _outside_notes(records: Iterable[Mapping], model: str, in_matrix, labels: "_Labels") -> list[str]:
    """Imported records of `model` that no cell of this table holds: named, never dropped silently."""
    outside = [
        _cell_name(r, labels) for r in records
        if r.get("imported") and r.get("model") == model and not in_matrix(r)
    ]
    if not outside:
        return []
    return ["imported results outside this table's chips, precisions or batch sizes (not shown): "
            + ", ".join(_unique(outside))]


# ---------------------------------------------------------------------------------- html view

_HTML_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.2em;
       color: #1f2937; }
h1 { font-size: 1.25em; margin: 0 0 .8em 0; }
table { border-collapse: collapse; font-size: .86em; margin-bottom: 1.2em; }
th, td { border: 1px solid #d1d5db; padding: .3em .55em; vertical-align: top; }
th { background: #f3f4f6; text-align: center; }
td { text-align: right; white-space: nowrap; }
td.left { text-align: left; }
td.text { text-align: left; white-space: normal; min-width: 26em; }
td:first-child { text-align: left; }
tr:nth-child(even) td { background: #f9fafb; }
td.missing { color: #9ca3af; }
ul { font-size: .86em; line-height: 1.45; max-width: 75em; }
"""


_NUMBER = re.compile(r"^[+-]?\d")


def parse_markdown_table_file(text: str) -> tuple[str, list[str]]:
    """The ``# title`` and the bullet notes of a file written by :func:`write_table`."""
    lines = text.splitlines()
    title = lines[0][2:].strip() if lines and lines[0].startswith("# ") else ""
    notes = [line[2:] for line in lines if line.startswith("- ")]
    return title, notes


def html_page(title: str, df: pd.DataFrame, notes: Sequence[str]) -> str:
    """A small self-contained HTML page: the table and its notes (for the report's viewer)."""
    import html

    def numeric(column) -> bool:
        figures = [str(v) for v in column if str(v) not in (MISSING, "")]
        return bool(figures) and sum(bool(_NUMBER.match(v)) for v in figures) * 2 >= len(figures)

    long_columns = {i for i in range(df.shape[1]) if any(len(str(v)) > 40 for v in df.iloc[:, i])}
    left_columns = {i for i in range(1, df.shape[1]) if not numeric(df.iloc[:, i])}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for values in df.itertuples(index=False):
        cells = []
        for i, value in enumerate(values):
            classes = [c for c, on in (("text", i in long_columns), ("left", i in left_columns),
                                       ("missing", value == MISSING)) if on]
            attribute = f' class="{" ".join(classes)}"' if classes else ""
            cells.append(f"<td{attribute}>{html.escape(str(value))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    body = "\n".join(rows) if rows else f'<tr><td colspan="{len(df.columns)}">no rows</td></tr>'
    items = "".join(f"<li>{html.escape(note)}</li>\n" for note in notes)
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_HTML_STYLE}</style></head><body>\n"
        f"<h1>{html.escape(title)}</h1>\n<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n"
        f"</tbody></table>\n<ul>\n{items}</ul>\n</body></html>\n"
    )


def write_html_view(md_path, csv_path, html_path) -> None:
    """The HTML view of a table written by :func:`write_table` (its CSV and its notes)."""
    title, notes = parse_markdown_table_file(Path(md_path).read_text(encoding="utf-8"))
    df = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    _write_atomic(Path(html_path), html_page(title, df, notes))
