"""The throughput table (the SimCLR report's shape) and the compiler-estimates table."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from chipbench.report.context import (
    NOISY,
    NOT_PUBLISHED,
    Table,
    TableContext,
    absent,
    add_column,
    fit,
    frame,
    index,
    outside_details,
    provenance_details,
    standard_notes,
)
from chipbench.report.published import block, by_batch, entries, fmt, precision_rank, report_details, unique
from chipbench.report.records import cell_name, source_suffix

FPS_DEFINITION = ("fps = 1000 × batch size / mean latency of one batch (ms); best bs: the batch "
                  "size with the highest fps")


def timing_text(timing: Mapping) -> str:
    return (f"{timing.get('warmup_iterations')} warm-up, then ≥ {timing.get('min_iterations')} "
            f"iterations and ≥ {timing.get('min_seconds')} s")


def full_timing_text(timing: Mapping) -> str:
    return ", ".join(f"{key} {timing[key]}" for key in sorted(timing))


def spread(record: Mapping | None) -> float | None:
    """The trial spread of a throughput record, (max−min)/median of its trial fps; None
    without trials."""
    trials = (record or {}).get("trials") or {}
    return None if trials.get("spread") is None else float(trials["spread"])


def fps_table(ctx: TableContext, records: Iterable[Mapping], failed: Iterable[Mapping] = ()) -> Table:
    """Throughput in the SimCLR report's shape.

    Rows ``<title> bs<N>`` for every batch size we ran or the report publishes, then ``best
    bs`` (``bs32 28070``: the batch size with the highest fps, and that fps). Columns: ``Model``;
    ours per chip × precision (integer fps, or a cell state; ``*`` when the trial spread is
    above ``ctx.noise_threshold``); the report's fps columns and, for the SimCLRv2 report,
    its bmrt_test calculate time (ms per batch, as published); then per ``ctx.ratios`` pair
    (numerator chip, denominator chip) our ratio when both chips are ours (one column per
    shared precision when a chip has several) and the report's ratio as printed.
    """
    pub, labels = ctx.published, ctx.labels
    columns = [(c, p) for c in ctx.chips for p in ctx.precisions.get(c) or ()]
    fps_entries, time_entries = entries(pub, "fps"), entries(pub, "calculate_time_ms")
    ours = {int(b) for b in ctx.batch_sizes}
    batches = sorted(ours | {b for e in fps_entries + time_entries for b in by_batch(e)})
    records = list(records)

    def in_matrix(r) -> bool:
        return (r.get("chip"), r.get("precision")) in columns and int(r.get("batch_size", -1)) in ours

    def key(r):
        return r["chip"], r["precision"], int(r["batch_size"])

    by_cell = index((r for r in records if in_matrix(r)), ctx, key)
    failures = index((r for r in failed if in_matrix(r)), ctx, key)

    def noisy(record) -> bool:
        value = spread(record)
        return value is not None and value > ctx.noise_threshold

    def fps_text(record) -> str:
        return f"{float(record['throughput_fps']):.0f}" + (NOISY if noisy(record) else "") + source_suffix(record)

    def best(chip, precision):
        found = [r for r in (by_cell.get((chip, precision, b)) for b in batches) if r is not None]
        return max(found, key=lambda r: (float(r["throughput_fps"]), -int(r["batch_size"])), default=None)

    def failure_of(chip, precision):
        return next((failures[k] for k in sorted(failures) if k[:2] == (chip, precision)), None)

    table: dict[str, list[str]] = {"Model": [f"{ctx.title} bs{b}" for b in batches] + ["best bs"]}
    ours_cells: list[str] = []
    for chip, precision in columns:
        cells = []
        for b in batches:
            record = by_cell.get((chip, precision, b))
            cells.append(fps_text(record) if record else absent(ctx, chip, precision, failures.get((chip, precision, b))))
        top = best(chip, precision)
        cells.append(f"bs{top['batch_size']} {fps_text(top)}" if top
                     else absent(ctx, chip, precision, failure_of(chip, precision)))
        ours_cells += cells
        add_column(table, f"{labels.row(chip)} {precision} fps", cells)

    best_entries = {e["chip"]: e for e in entries(pub, "best")}
    for entry in fps_entries:
        values = by_batch(entry)
        decimals = block(pub, "fps").get("decimals", 0)
        cells = [fmt(values[b], decimals) if b in values else NOT_PUBLISHED for b in batches]
        top = best_entries.get(entry["chip"])
        cells.append(NOT_PUBLISHED if top is None else
                     f"bs{top['batch_size']} {fmt(top['fps'], block(pub, 'best').get('decimals', 0))}")
        add_column(table, f"{labels.short(entry['chip'])} (report)", cells)
    for entry in time_entries:
        values = by_batch(entry)
        decimals = block(pub, "calculate_time_ms").get("decimals", 2)
        cells = [fmt(values[b], decimals) if b in values else NOT_PUBLISHED for b in batches]
        cells.append(NOT_PUBLISHED)  # the report has no best-batch figure for calculate time
        add_column(table, f"{labels.short(entry['chip'])} {entry.get('precision')} calculate time ms (report)", cells)

    details = []
    for numerator, denominator in ctx.ratios:
        header = f"{labels.short(numerator)}/{labels.short(denominator)}"
        top_precisions = [p for c, p in columns if c == numerator]
        bottom_precisions = [p for c, p in columns if c == denominator]
        if len(top_precisions) == 1 and len(bottom_precisions) == 1:
            pairs = [(top_precisions[0], bottom_precisions[0], header)]
        else:
            pairs = [(p, p, f"{header} {p}") for p in top_precisions if p in bottom_precisions]
        for pn, pd_, name in pairs:
            cells = [ratio_text(by_cell.get((numerator, pn, b)), by_cell.get((denominator, pd_, b)), noisy)
                     for b in batches]
            cells.append(ratio_text(best(numerator, pn), best(denominator, pd_), noisy))
            add_column(table, name, cells)
            details.append(f"{name}: {labels.row(numerator)} {pn} fps / {labels.row(denominator)} {pd_} "
                           "fps as we measured them (best bs row: ratio of the best fps)")
        for entry in entries(pub, "ratios"):
            if (entry.get("numerator"), entry.get("denominator")) == (numerator, denominator):
                values = by_batch(entry)
                decimals = block(pub, "ratios").get("decimals", 6)
                cells = [fmt(values[b], decimals) if b in values else NOT_PUBLISHED for b in batches]
                cells.append(NOT_PUBLISHED if entry.get("best") is None else fmt(entry["best"], decimals))
                add_column(table, f"{header} (report)", cells)

    used = [by_cell[k] for k in sorted(by_cell)]
    timings = unique(timing_text(r["timing"]) for r in used if r.get("timing"))
    protocol = FPS_DEFINITION
    if len(timings) == 1:
        protocol += f"; timed {timings[0]}"
    trials = sorted({int(r["trials"]["count"]) for r in used if (r.get("trials") or {}).get("count")})
    if trials:
        protocol += f" per trial, {trials[0]}{f'–{trials[-1]}' if len(trials) > 1 else ''} trials per cell"
    notes = [fit(protocol, FPS_DEFINITION)]
    marks = []
    flagged = [r for r in used if noisy(r)]
    if flagged:
        marks.append(f"{NOISY} trial spread above {100 * ctx.noise_threshold:g} %")
        details.append("noisy cells: " + ", ".join(
            f"{cell_name(r, labels.row)} spread {100 * spread(r):.1f} %" for r in flagged))
    if fps_entries or time_entries:
        marks.append(f"(report): as published, {NOT_PUBLISHED} if not")
    notes += standard_notes(ctx, used, [failures[k] for k in sorted(failures)], ours_cells, marks)
    details += [f"timing: {text}" for text in unique(full_timing_text(r["timing"]) for r in used if r.get("timing"))]
    if used:
        iterations = sorted(int(r.get("iterations", 0)) for r in used)
        details.append(f"{iterations[0]}–{iterations[-1]} timed iterations per cell"
                       if iterations[0] != iterations[-1] else f"{iterations[0]} timed iterations per cell")
    details += outside_details(records, ctx, in_matrix)
    report_chips = unique(e["chip"] for e in fps_entries + time_entries)
    details += report_details(pub, ["fps", "best", "ratios", "calculate_time_ms"], report_chips)
    details += provenance_details(used, ctx)
    return Table(frame(table), notes, details)


def ratio_text(top, bottom, noisy) -> str:
    if top is None or bottom is None:
        return NOT_PUBLISHED
    value = float(top["throughput_fps"]) / float(bottom["throughput_fps"])
    return f"{value:.2f}" + (NOISY if noisy(top) or noisy(bottom) else "")


def estimates_table(ctx: TableContext, manifests: Iterable[Mapping]) -> Table:
    """Compiler latency estimates (no device here) beside the report's measured figures.

    ``manifests``: compiled.json contents carrying ``chip``, ``precision``, ``batch_size`` and
    ``estimated_latency_ms`` (ms per batch). Estimates are never mixed with measured figures:
    every column says "estimated (cmodel)".
    """
    pub, labels = ctx.published, ctx.labels
    reported = {(e["chip"], e["precision"], b): v
                for e in entries(pub, "calculate_time_ms") for b, v in by_batch(e).items()}
    decimals = block(pub, "calculate_time_ms").get("decimals", 2)
    rows = sorted((m for m in manifests if m.get("estimated_latency_ms") is not None),
                  key=lambda m: (m["chip"], precision_rank(m["precision"]), m["batch_size"]))
    cells: dict[str, list[str]] = {name: [] for name in (
        "Model", "estimated (cmodel) ms per batch", "estimated (cmodel) fps",
        "report calculate time ms", "estimate / report")}
    for m in rows:
        ms, batch = float(m["estimated_latency_ms"]), int(m["batch_size"])
        report = reported.get((m["chip"], m["precision"], batch))
        cells["Model"].append(f"{labels.row(m['chip'])} {m['precision']} bs{batch}")
        cells["estimated (cmodel) ms per batch"].append(f"{ms:.3f}")
        cells["estimated (cmodel) fps"].append(f"{1000 * batch / ms:.0f}")
        cells["report calculate time ms"].append(NOT_PUBLISHED if report is None else fmt(report, decimals))
        cells["estimate / report"].append(NOT_PUBLISHED if report is None else f"{ms / report:.2f}")
    notes = ["estimated (cmodel): the compiler's cycle-model latency for one batch, not a "
             "measurement; fps = 1000 × batch size / estimated ms"]
    if not rows:
        notes.append("no compiled artefact of this model carries a compiler estimate")
    details = ["estimates come from model_deploy --debug (compiler_profile_0.txt)"]
    details += report_details(pub, ["calculate_time_ms"], unique(m["chip"] for m in rows))
    return Table(frame(cells), notes, details)
