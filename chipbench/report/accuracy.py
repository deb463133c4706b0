"""The accuracy, accuracy-gate and per-image-time tables of one model."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from chipbench.report.context import (
    GATE_FAILED,
    NOT_PUBLISHED,
    NOT_RUN,
    Table,
    TableContext,
    absent,
    add_column,
    frame,
    index,
    outside_details,
    provenance_details,
    standard_notes,
)
from chipbench.report.published import (
    block,
    entries,
    fmt,
    precision_rank,
    report_details,
    unique,
)
from chipbench.report.records import source_suffix

LATENCY_STAGES = ("preprocess", "inference", "postprocess")


def metric_text(record: Mapping) -> str:
    details = record.get("details") or {}
    if record.get("metric") == "pair_top1":
        return (
            "accuracy: contrastive pair-matching top-1 (%) of the two views of each image, "
            f"{details.get('n_batches')} batches of {details.get('pairs_per_batch')} images "
            f"from a seeded permutation without replacement, temperature "
            f"{details.get('temperature')}; chance {float(details.get('chance', 0)):.2f} %"
        )
    if record.get("metric") == "top1":
        return f"accuracy: classification top-1 (%) over {record.get('n_images')} test images"
    return f"accuracy: {record.get('metric')} (%) over {record.get('n_images')} images"


def our_precisions(ctx: TableContext) -> list[str]:
    """Precision columns of ours: every precision of this model's chips, fp32 → int8 first."""
    found = unique(p for chip in ctx.chips for p in ctx.precisions.get(chip) or ())
    return sorted(found, key=lambda p: (precision_rank(p), p))


def accuracy_cell(record: Mapping) -> str:
    text = f"{float(record['accuracy']):.2f}"
    gate = record.get("gate")
    if gate and not gate["passed"]:
        text += f" {GATE_FAILED}"
    return text + source_suffix(record)


def accuracy_table(ctx: TableContext, records: Iterable[Mapping], failed: Iterable[Mapping] = ()) -> Table:
    """Accuracy per chip (rows) and precision (columns), with the report's figures beside ours.

    Rows: this model's chips (those that cannot run here read ``—``), then chips the report
    has figures for (report columns only; ours read ``not run``). A ``<precision> (report)``
    column follows each precision the report has a figure for (report-only precisions after
    ours, fp32/fp16/bf16/int8 first).
    """
    pub, labels = ctx.published, ctx.labels
    precisions = our_precisions(ctx)
    records = list(records)

    def in_matrix(r) -> bool:
        return r.get("chip") in ctx.chips and r.get("precision") in precisions

    by_cell = index((r for r in records if in_matrix(r)), ctx, lambda r: (r["chip"], r["precision"]))
    failures = index((r for r in failed if in_matrix(r)), ctx, lambda r: (r["chip"], r["precision"]))
    report_entries = entries(pub, "accuracy")
    decimals = block(pub, "accuracy").get("decimals", 2)
    report_precisions = unique(e.get("precision") for e in report_entries)
    columns_of = precisions + sorted(
        (p for p in report_precisions if p not in precisions and p is not None),
        key=lambda p: (precision_rank(p), p))
    if None in report_precisions:
        columns_of.append(None)
    report_chips = unique(e["chip"] for e in report_entries)
    rows = unique(list(ctx.chips) + [c for c in report_chips if c not in ctx.chips])

    def report_cell(chip, precision) -> str:
        found = [e for e in report_entries if e["chip"] == chip and e.get("precision") == precision]
        values = unique(fmt(e["value"], decimals) for e in found)
        if len(values) <= 1:
            return values[0] if values else NOT_PUBLISHED
        return ", ".join(f"{fmt(e['value'], decimals)} (bs{e.get('batch_size')})" for e in found)

    def our_cell(chip, precision) -> str:
        record = by_cell.get((chip, precision))
        if record is not None:
            return accuracy_cell(record)
        if chip not in ctx.chips or precision not in (ctx.precisions.get(chip) or ()):
            return NOT_RUN if ctx.cannot_run(chip) is None else absent(ctx, chip, precision, None)
        return absent(ctx, chip, precision, failures.get((chip, precision)))

    columns: dict[str, list[str]] = {"Chip": [labels.row(c) for c in rows]}
    ours: list[str] = []
    for precision in columns_of:
        if precision in precisions:
            cells = [our_cell(chip, precision) for chip in rows]
            ours += cells
            add_column(columns, precision, cells)
        if precision in report_precisions:
            name = f"{precision} (report)" if precision else "report (precision not stated)"
            add_column(columns, name, [report_cell(chip, precision) for chip in rows])

    used = [by_cell[k] for k in sorted(by_cell)]
    marks = []
    if any(GATE_FAILED in cell for cell in ours):
        marks.append(f"{GATE_FAILED} fails the accuracy gate")
    if report_entries:
        marks.append(f"(report): as published, {NOT_PUBLISHED} if not")
    notes = unique(metric_text(r) for r in used)[:1]
    notes += standard_notes(ctx, used, [failures[k] for k in sorted(failures)], ours, marks)
    details = unique(metric_text(r) for r in used)[1:]
    details += outside_details(records, ctx, in_matrix)
    details += [f"{labels.row(chip)}: report figures only (not among this run's chips)"
                for chip in rows if chip not in ctx.chips]
    for record in used:
        bad = (record.get("details") or {}).get("nonfinite_rows") or 0
        if bad:
            details.append(f"{labels.row(record['chip'])} {record['precision']}: {bad} output rows "
                           "held NaN or infinity and were counted as wrong")
    details += gate_details(used, labels)
    details += source_details(used, labels)
    batches = unique(f"{labels.row(r['chip'])} {r['precision']} bs{r['batch_size']}"
                     for r in used if r.get("batch_size") is not None)
    if batches:
        details.append("batch size of our accuracy runs: " + ", ".join(batches))
    details += report_details(pub, ["accuracy"], [c for c in report_chips if c in rows])
    details += provenance_details(used, ctx)
    return Table(frame(columns), notes, details)


def gate_details(records: Sequence[Mapping], labels) -> list[str]:
    lines = []
    for record in records:
        gate = record.get("gate")
        if gate and not gate["passed"]:
            lines.append(
                f"{GATE_FAILED} {labels.row(record['chip'])} {record['precision']} fails the "
                f"accuracy gate: {gate['accuracy']:.2f} < {gate['required_accuracy']:.2f} = "
                f"{100 * gate['min_relative_accuracy']:g} % of the reference "
                f"({labels.row(gate['reference_chip'])} {gate['reference_precision']}, "
                f"{gate['reference_accuracy']:.2f})"
            )
    return lines


def source_details(records: Sequence[Mapping], labels) -> list[str]:
    """Which path produced each figure that the device itself did not run, and its cross-check."""
    lines = []
    for record in records:
        cell = f"{labels.row(record['chip'])} {record['precision']}"
        source = record.get("source", "device")
        if source != "device":
            lines.append(f"{cell}: source {source}")
        check = record.get("crosscheck")
        if check:
            verdict = "exact" if check.get("exact") else (
                f"max |diff| {check['max_abs_diff']:.3g} of outputs up to "
                f"{check['max_abs_output']:.3g}")
            lines.append(
                f"{cell}: cross-checked against the {check['reference']} on {check['n_images']} "
                f"seeded images: {verdict}, {'within' if check['passed'] else 'OUTSIDE'} tolerance"
            )
    return lines


def gate_table(ctx: TableContext, records: Iterable[Mapping], failed: Iterable[Mapping] = ()) -> Table:
    """Every accuracy result against the FP32 reference: accuracy, agreement, pass or fail.

    ``records``: accuracy records carrying ``gate`` (chipbench.gate.verdict plus
    ``reference_chip``/``reference_precision``) and ``agreement`` (chipbench.gate.agreement).
    """
    labels = ctx.labels
    rows = sorted((r for r in records if r.get("gate")),
                  key=lambda r: (r["chip"], precision_rank(r["precision"])))
    columns: dict[str, list[str]] = {
        "Chip": [labels.row(r["chip"]) + source_suffix(r) for r in rows],
        "Precision": [r["precision"] for r in rows],
        "Accuracy": [f"{r['accuracy']:.2f}" for r in rows],
        "Reference": [f"{r['gate']['reference_accuracy']:.2f}" for r in rows],
        "Relative": [
            NOT_PUBLISHED if r["gate"]["relative_accuracy"] is None
            else f"{100 * r['gate']['relative_accuracy']:.2f} %" for r in rows
        ],
        "Top-1 agreement": [
            f"{r['agreement']['top1_agreement']:.2f} %" if "top1_agreement" in r["agreement"]
            else NOT_PUBLISHED for r in rows
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
            f"result passes at ≥ {100 * gate['min_relative_accuracy']:g} % of the reference's "
            "accuracy (MLPerf-style); agreement compares outputs for the same input"
        )
    else:
        notes.append("no accuracy gate: the reference chip (config gate.reference_chip) did not run")
    notes += standard_notes(ctx, rows, list(failed), [])
    return Table(frame(columns), notes, provenance_details(rows, ctx))


def latency_table(ctx: TableContext, records: Iterable[Mapping]) -> Table:
    """Per-image preprocess / inference / postprocess ms in the SimCLRv2 report's shape.

    Ours come from the accuracy runs (``record["per_image_ms"]``); the report's rows (its
    Python program's times) follow, labelled "(report)".
    """
    pub, labels = ctx.published, ctx.labels
    decimals = block(pub, "per_image_ms").get("decimals", 2)
    shown = sorted((r for r in records if r.get("per_image_ms")), key=lambda r: (r["chip"], r["precision"]))
    rows = [[f"{labels.row(r['chip'])} {r['precision']} bs{r['batch_size']}{source_suffix(r)}"]
            + [f"{r['per_image_ms'][k]:.3f}" for k in LATENCY_STAGES] for r in shown]
    for entry in entries(pub, "per_image_ms"):
        rows.append([f"{labels.short(entry['chip'])} {entry['precision']} bs{entry['batch_size']} (report)"]
                    + [fmt(entry[k], decimals) for k in LATENCY_STAGES])
    columns = {"Model": [r[0] for r in rows]}
    for i, stage in enumerate(LATENCY_STAGES, start=1):
        columns[f"{stage} ms"] = [r[i] for r in rows]
    notes = [
        "ours: wall time per model input over the whole accuracy run, at the batch size shown "
        "(preprocess; inference: every batch, padding included; postprocess: scoring)"
    ]
    notes += standard_notes(ctx, shown, [], [])
    details = report_details(pub, ["per_image_ms"], unique(e["chip"] for e in entries(pub, "per_image_ms")))
    return Table(frame(columns), notes, details + provenance_details(shown, ctx))
