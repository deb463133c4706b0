"""Reproduction check: every figure the reports publish, beside ours, with why they differ.

One row per published cell (resources/published.yaml): accuracy, fps per batch size, the
best-batch row, fps ratios, bmrt_test calculate time and per-image times. Each row has the
reported figure, ours for the same chip, precision and batch size (this host's results, or
an import's marked `` [label]``), the difference (ours − reported, absolute and %), a status
and the known reasons, all generated from the records, the config matrix and the published
data:

- no figure of ours: the chip is not in this run, is not available here (the backend's
  reason), is not timed here (and the compiler's estimate when one exists, which is never
  counted as a measurement), the precision or batch size is not in the config, or the
  result is not on disk yet;
- a difference: different weights (random, or a checkpoint the report does not identify),
  a different metric, outputs from a simulator rather than the chip, a precision the report
  does not state, and the report's own caveats (``note`` of each block, numbered in the
  notes) and inconsistencies found by recomputing its best-batch row and ratios from its own
  fps rows.

Pure: records and mappings in, a :class:`~chipbench.report.context.Table` out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from chipbench import provenance
from chipbench.report.context import Table, TableContext, frame, standard_notes
from chipbench.report.published import BLOCK_NAMES, block, entries, fmt, precision_rank, unique
from chipbench.report.records import cell_name, source_suffix, weights_label

MISSING = "—"

#: When ours counts as reproducing the report: accuracy within this many percentage points,
#: every other figure within this fraction of the reported value.
DEFAULT_TOLERANCE = {"accuracy_points": 0.5, "relative": 0.10}
#: The blocks of published.yaml this table checks, in row order.
BLOCKS = ("accuracy", "fps", "best", "ratios", "calculate_time_ms", "per_image_ms")
TIMED_BLOCKS = ("fps", "best", "ratios", "calculate_time_ms")
STAGES = ("preprocess", "inference", "postprocess")

WITHIN = "within tolerance"
DIFFERS = "differs"
NO_FIGURE = "no figure of ours"


class _Rows:
    """What the rows need: our records by cell, the matrix, the reasons, the labels."""

    def __init__(self, ctx: TableContext, matrix, accuracy_records, perf_records, failed,
                 untimed, estimates):
        self.table = ctx
        self.model = ctx.model
        self.pub = ctx.published
        self.labels = ctx.labels
        self.matrix = {c: dict(v) for c, v in (matrix or {}).items()}
        self.unavailable = dict(ctx.unavailable)
        self.untimed = dict(untimed or {})
        self.estimates = dict(estimates or {})
        self.accuracy = {
            (r["chip"], r["precision"]): r for r in accuracy_records if r.get("model") == self.model
            and ctx.usable(r)
        }
        self.perf = {
            (r["chip"], r["precision"], int(r["batch_size"])): r
            for r in perf_records if r.get("model") == self.model and ctx.usable(r)
        }
        self.failed = {
            (r.get("chip"), r.get("precision"), r.get("batch_size")): r
            for r in failed if r.get("model") == self.model
        }
        self.note_numbers: dict[str, int] = {}
        self.notes: list[str] = []

    def block_note(self, name: str) -> str | None:
        """``report note [n]`` for a block with a caveat, numbering the notes on first use."""
        found = block(self.pub, name)
        if not found.get("note"):
            return None
        if name not in self.note_numbers:
            self.note_numbers[name] = len(self.note_numbers) + 1
            source = found.get("source") or self.pub.get("report")
            self.notes.append(
                f"[{self.note_numbers[name]}] report {BLOCK_NAMES.get(name, name)} "
                f"({source}): {found['note']}"
            )
        return f"report note [{self.note_numbers[name]}]"

    def our_precisions(self, chip: str, precision: str | None) -> list[str | None]:
        """Our precisions to compare with a report figure: the same one, or every one we run
        when the report does not state it."""
        if precision is not None:
            return [precision]
        ours = list((self.matrix.get(chip) or {}).get("precisions") or [])
        ours += [p for (c, p) in self.accuracy if c == chip and p not in ours]
        ours += [p for (c, p, _) in self.perf if c == chip and p not in ours]
        ours.sort(key=lambda p: (precision_rank(p), p))
        return ours or [None]

    def missing(self, chip: str, precision: str | None, batch: int | None, timed: bool) -> list[str]:
        """Why we have no figure for this cell: the first reason that applies."""
        label = self.labels.short(chip)
        entry = self.matrix.get(chip)
        if entry is None:
            return [f"{label} is not among this run's chips (config models.{self.model}.chips)"]
        reason = self.table.cannot_run(chip, precision)
        if reason is not None:
            where = label if chip in self.unavailable else f"{label} {precision}"
            return [f"no {where} here: {reason}"]
        if precision is None:
            return [f"the report does not state the precision and we run none on {label}"]
        if precision not in (entry.get("precisions") or []):
            return [f"we do not run {label} {precision} (config chips.{chip}.precisions)"]
        if batch is not None and timed and batch not in (entry.get("batch_sizes") or []):
            sizes = ", ".join(map(str, entry.get("batch_sizes") or [])) or "none"
            return [f"we do not time {label} at bs{batch} (batch sizes in the config: {sizes})"]
        if timed and chip in self.untimed:
            reasons = [f"{label} is not timed here: {self.untimed[chip]}"]
            estimate = self.estimates.get((chip, precision, batch))
            if estimate and estimate.get("estimated_latency_ms") is not None:
                ms = float(estimate["estimated_latency_ms"])
                reasons.append(
                    f"the compiler's estimate is {ms:.2f} ms per batch ({1000 * batch / ms:.0f} "
                    f"fps): a cycle-model figure, not a measurement, so not compared "
                    f"(results/tables/{self.model}_estimates)"
                )
            return reasons
        failed = self.failed.get((chip, precision, batch if timed else None))
        if failed is None and timed and batch is None:  # the best bs row: any failed batch size
            failed = next((r for k, r in self.failed.items() if k[:2] == (chip, precision)), None)
        if failed is not None:
            return [f"the job failed: {failed.get('reason')} ({failed.get('log')})"]
        return ["no result on disk yet: run the workflow for this cell"]

    def differences(self, record: Mapping, kind: str, precision_stated: bool) -> list[str]:
        """Known reasons why our figure from `record` may differ from the report's."""
        reasons = []
        if kind in ("accuracy",):
            weights = record.get("weights") or {}
            if weights.get("source") == "random":
                reasons.append(f"different weights: ours {weights_label(weights)}, the "
                               "report's a trained model")
            elif weights:
                reasons.append(f"weights: ours {weights_label(weights)}; the report does not "
                               "identify its checkpoint")
            theirs = block(self.pub, "accuracy").get("metric")
            if theirs and record.get("metric") and theirs != record["metric"]:
                reasons.append(f"different metric: ours {record['metric']}, the report's {theirs}")
            seed = (record.get("provenance") or {}).get("seed")
            if record.get("metric") == "pair_top1":
                reasons.append("ours: pairs from a seeded permutation"
                               + (f" (seed {seed})" if seed is not None else ""))
        source = record.get("source") or (record.get("provenance") or {}).get("result_source")
        if source and source != "device":
            reasons.append(f"ours from {source}")
        if kind != "accuracy":
            timer = ((record.get("provenance") or {}).get("timing") or {}).get("timer")
            if timer:
                reasons.append(f"ours timed by {timer}")
        if not precision_stated:
            reasons.append(f"the report does not state its precision; ours {record['precision']}")
        return reasons


@dataclass
class _Reported:
    """One published figure: what it is, whose, and as printed."""

    figure: str
    chip: str
    stated: str | None  # the precision the report states, or None
    batch: str
    kind: str  # accuracy | fps | ratio | latency
    value: float
    text: str
    decimals: int


@dataclass
class _Ours:
    """Our figure for the same cell (`value` None: `missing` says why)."""

    precision: str | None
    value: float | None
    records: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    text: str | None = None


def _difference(kind: str, reported: float, ours: float, tolerance: Mapping) -> tuple[float, float, bool]:
    """(ours − reported, the same as % of reported, within tolerance)."""
    delta = ours - reported
    percent = 100 * delta / reported if reported else math.nan
    if kind == "accuracy":
        within = abs(delta) <= tolerance["accuracy_points"]
    else:
        within = reported != 0 and abs(delta / reported) <= tolerance["relative"]
    return delta, percent, within


def _signed(value: float, decimals: int) -> str:
    text = f"{value:+.{decimals}f}"
    return f"{0:.{decimals}f}" if float(text) == 0 else text


def _percent(value: float) -> str:
    return MISSING if math.isnan(value) else _signed(value, 1) + " %"


def _present(item) -> list:
    """``[item]``, or ``[]`` for None."""
    return [] if item is None else [item]


def _row(reported: _Reported, precision: str, reproduced: str, delta: str, percent: str,
         status: str, reasons: list[str]) -> dict:
    return {
        "Figure": reported.figure, "Chip": reported.chip, "Precision": precision,
        "Batch": reported.batch, "Reported": reported.text, "Reproduced": reproduced,
        "Difference": delta, "Difference %": percent, "Status": status,
        "Reason": "; ".join(unique(reasons)),
    }


def reproduction_table(
    context: TableContext,
    matrix: Mapping[str, Mapping],
    accuracy_records: Iterable[Mapping],
    perf_records: Iterable[Mapping],
    *,
    failed: Iterable[Mapping] = (),
    untimed: Mapping[str, str] | None = None,
    estimates: Mapping[tuple, Mapping] | None = None,
    tolerance: Mapping = DEFAULT_TOLERANCE,
) -> Table:
    """Every published figure of ``context.model`` beside ours.

    ``accuracy_records``/``perf_records``: merged records (``records.load``), imported ones
    included; ``failed``: failed records of either kind. ``matrix``: this model's chips as
    ``{chip: {"precisions", "batch_sizes", "accuracy_batch_size"}}``. ``context.unavailable``:
    chips that cannot run here; ``untimed``: chips that cannot be timed here (``{chip:
    reason}``). ``estimates``: ``{(chip, precision, batch): compiled.json}`` of artefacts
    carrying ``estimated_latency_ms``.
    """
    failed = list(failed)
    accuracy_records, perf_records = list(accuracy_records), list(perf_records)
    ctx = _Rows(context, matrix, accuracy_records, perf_records, failed, untimed, estimates)
    pub = ctx.pub
    chips = pub.get("chips") or {}
    rows: list[dict] = []
    used: list[Mapping] = []

    def precision_text(stated, ours):
        if stated is not None:
            return stated
        return f"not stated (ours {ours})" if ours else "not stated"

    def compare(reported: _Reported, ours: _Ours, caveats: list[str]) -> None:
        """Append one row. `caveats`: the report's inconsistencies for this cell (always
        shown) and its block note reference (shown with every reason)."""
        inconsistencies = [c for c in caveats if c.startswith("report inconsistent")]
        references = [c for c in caveats if c not in inconsistencies]
        precision = precision_text(reported.stated, ours.precision)
        if ours.value is None:
            rows.append(_row(reported, precision, MISSING, MISSING, MISSING, NO_FIGURE,
                             ours.missing + inconsistencies + references))
            return
        delta, percent, within = _difference(reported.kind, float(reported.value), float(ours.value),
                                             tolerance)
        reasons = []
        if not within:
            for record in ours.records:
                reasons += ctx.differences(record, reported.kind, reported.stated is not None)
            reasons += references
            if not reasons:
                reasons.append("no known reason: check the setup against the report's")
        used.extend(ours.records)
        suffix = "".join(unique(source_suffix(r) for r in ours.records))
        rows.append(_row(
            reported, precision, (ours.text or fmt(ours.value, reported.decimals)) + suffix,
            _signed(delta, reported.decimals), _percent(percent), WITHIN if within else DIFFERS,
            inconsistencies + reasons,
        ))

    # accuracy -------------------------------------------------------------------------------
    decimals = block(pub, "accuracy").get("decimals", 2)
    for entry in entries(pub, "accuracy"):
        chip, stated, batch = entry["chip"], entry.get("precision"), entry.get("batch_size")
        caveats = _present(ctx.block_note("accuracy"))
        for precision in ctx.our_precisions(chip, stated):
            record = ctx.accuracy.get((chip, precision))
            compare(
                _Reported("accuracy (%)", ctx.labels.short(chip), stated,
                          f"bs{batch}" if batch is not None else "not stated", "accuracy",
                          entry["value"], fmt(entry["value"], decimals), decimals),
                _Ours(precision, None if record is None else record["accuracy"], _present(record),
                      [] if record else ctx.missing(chip, precision, None, timed=False)),
                caveats,
            )

    # fps per batch size -------------------------------------------------------------------------
    decimals = block(pub, "fps").get("decimals", 0)
    fps_by_chip: dict[str, dict[int, float]] = {}
    for entry in entries(pub, "fps"):
        chip, stated = entry["chip"], entry.get("precision")
        by_batch = {int(b): v for b, v in (entry.get("by_batch") or {}).items()}
        fps_by_chip[chip] = by_batch
        caveats = _present(ctx.block_note("fps"))
        for precision in ctx.our_precisions(chip, stated):
            for batch, value in sorted(by_batch.items()):
                record = ctx.perf.get((chip, precision, batch))
                compare(
                    _Reported("fps", ctx.labels.short(chip), stated, f"bs{batch}", "fps", value,
                              fmt(value, decimals), decimals),
                    _Ours(precision, None if record is None else record["throughput_fps"],
                          _present(record),
                          [] if record else ctx.missing(chip, precision, batch, timed=True)),
                    caveats,
                )

    def our_best(chip, precision):
        found = [r for (c, p, _), r in ctx.perf.items() if c == chip and p == precision]
        if not found:
            return None
        return max(found, key=lambda r: (float(r["throughput_fps"]), -int(r["batch_size"])))

    # best-batch row -----------------------------------------------------------------------------
    decimals = block(pub, "best").get("decimals", 0)
    for entry in entries(pub, "best"):
        chip = entry["chip"]
        stated = (chips.get(chip) or {}).get("precision")
        caveats = _present(ctx.block_note("best"))
        own = fps_by_chip.get(chip) or {}
        if own:
            top = max(own, key=lambda b: (own[b], -b))
            if top != int(entry["batch_size"]) or float(own[top]) != float(entry["fps"]):
                caveats.insert(0, (
                    f"report inconsistent: its fps rows make bs{top} ({fmt(own[top], 0)} fps) "
                    f"the best for {ctx.labels.short(chip)}, its best row says "
                    f"bs{entry['batch_size']} {fmt(entry['fps'], decimals)}"
                ))
        for precision in ctx.our_precisions(chip, stated):
            best = our_best(chip, precision) if precision else None
            ours_batches = sorted(b for (c, p, b) in ctx.perf if c == chip and p == precision)
            coverage = [] if int(entry["batch_size"]) in ours_batches or not ours_batches else [
                f"our batch sizes ({', '.join(map(str, ours_batches))}) do not include the "
                f"report's best bs{entry['batch_size']}"
            ]
            compare(
                _Reported("best bs (fps)", ctx.labels.short(chip), stated, "best", "fps", entry["fps"],
                          f"bs{entry['batch_size']} {fmt(entry['fps'], decimals)}", decimals),
                _Ours(precision, None if best is None else best["throughput_fps"], _present(best),
                      [] if best else ctx.missing(chip, precision, None, timed=True),
                      None if best is None else f"bs{best['batch_size']} {float(best['throughput_fps']):.0f}"),
                coverage + caveats,
            )

    # ratios -------------------------------------------------------------------------------------
    decimals = block(pub, "ratios").get("decimals", 6)
    best_entries = {e["chip"]: e for e in entries(pub, "best")}
    for entry in entries(pub, "ratios"):
        num, den = entry["numerator"], entry["denominator"]
        name = f"{ctx.labels.short(num)}/{ctx.labels.short(den)}"
        note = ctx.block_note("ratios")
        num_p = (chips.get(num) or {}).get("precision")
        den_p = (chips.get(den) or {}).get("precision")
        stated = None if num_p is None or den_p is None else f"{num_p}/{den_p}"
        cells = [(int(b), v) for b, v in (entry.get("by_batch") or {}).items()]
        if entry.get("best") is not None:
            cells.append((None, entry["best"]))
        for batch, value in cells:
            caveats = _present(note)
            if batch is None:
                top, bottom = best_entries.get(num), best_entries.get(den)
                own = (top["fps"], bottom["fps"]) if top and bottom else None
            else:
                a = (fps_by_chip.get(num) or {}).get(batch)
                b = (fps_by_chip.get(den) or {}).get(batch)
                own = (a, b) if a is not None and b is not None else None
            if own:
                recomputed = float(own[0]) / float(own[1])
                # its fps are printed rounded to integers: allow for that and the ratio's rounding
                slack = recomputed * (0.5 / float(own[0]) + 0.5 / float(own[1])) + 0.5 * 10**-decimals
                if abs(recomputed - float(value)) > slack:
                    caveats.insert(0, (
                        f"report inconsistent: its own fps give {fmt(own[0], 0)} / "
                        f"{fmt(own[1], 0)} = {recomputed:.{decimals}f}, it prints "
                        f"{fmt(value, decimals)}"
                    ))
            for pn in ctx.our_precisions(num, num_p):
                for pd_ in ctx.our_precisions(den, den_p):
                    if batch is None:
                        top, bottom = our_best(num, pn), our_best(den, pd_)
                    else:
                        top, bottom = ctx.perf.get((num, pn, batch)), ctx.perf.get((den, pd_, batch))
                    missing = []
                    if top is None:
                        missing += ctx.missing(num, pn, batch, timed=True)
                    if bottom is None:
                        missing += ctx.missing(den, pd_, batch, timed=True)
                    ours = (None if top is None or bottom is None
                            else float(top["throughput_fps"]) / float(bottom["throughput_fps"]))
                    compare(
                        _Reported("fps ratio", name, stated, "best" if batch is None else f"bs{batch}",
                                  "ratio", value, fmt(value, decimals), decimals),
                        _Ours(f"{pn}/{pd_}", ours, [r for r in (top, bottom) if r], missing),
                        caveats,
                    )

    # bmrt_test calculate time ---------------------------------------------------------------------
    decimals = block(pub, "calculate_time_ms").get("decimals", 2)
    for entry in entries(pub, "calculate_time_ms"):
        chip, stated = entry["chip"], entry.get("precision")
        caveats = _present(ctx.block_note("calculate_time_ms"))
        for precision in ctx.our_precisions(chip, stated):
            for batch, value in sorted((int(b), v) for b, v in (entry.get("by_batch") or {}).items()):
                record = ctx.perf.get((chip, precision, batch))
                compare(
                    _Reported("calculate time (ms per batch)", ctx.labels.short(chip), stated,
                              f"bs{batch}", "latency", value, fmt(value, decimals), decimals),
                    _Ours(precision,
                          None if record is None else (record.get("latency_ms") or {}).get("mean"),
                          _present(record),
                          [] if record else ctx.missing(chip, precision, batch, timed=True)),
                    caveats,
                )

    # per-image times ------------------------------------------------------------------------------
    decimals = block(pub, "per_image_ms").get("decimals", 2)
    for entry in entries(pub, "per_image_ms"):
        chip, stated, batch = entry["chip"], entry.get("precision"), int(entry["batch_size"])
        caveats = _present(ctx.block_note("per_image_ms"))
        for precision in ctx.our_precisions(chip, stated):
            record = ctx.accuracy.get((chip, precision))
            times = (record or {}).get("per_image_ms")
            missing = [] if times else ctx.missing(chip, precision, None, timed=False)
            if times and int(record.get("batch_size", -1)) != batch:
                missing = [f"our per-image times come from the accuracy run at "
                           f"bs{record['batch_size']}, the report's at bs{batch}"]
                times = None
            source = (record or {}).get("source", "device")
            for stage in STAGES:
                ours, why = (times or {}).get(stage), missing
                if ours is not None and stage == "inference" and source != "device":
                    # a simulation's speed on the host says nothing of the chip's
                    ours, why = None, [f"our inference ran as {source}: its time is not the "
                                       "chip's, so not compared"]
                compare(
                    _Reported(f"per-image {stage} (ms)", ctx.labels.short(chip), stated, f"bs{batch}",
                              "latency", entry[stage], fmt(entry[stage], decimals), decimals),
                    _Ours(precision, ours, _present(record if ours is not None else None), why),
                    caveats,
                )

    columns = ["Figure", "Chip", "Precision", "Batch", "Reported", "Reproduced", "Difference",
               "Difference %", "Status", "Reason"]
    counts = {s: sum(r["Status"] == s for r in rows) for s in (WITHIN, DIFFERS, NO_FIGURE)}
    notes = [
        "reproduced: ours for the same chip, precision and batch size; difference: ours − "
        "reported, in the report's unit and as % of it; reasons for every figure that differs or is missing",
        f"{WITHIN}: accuracy ±{tolerance['accuracy_points']:g} points, other figures "
        f"±{100 * tolerance['relative']:g} %; {len(rows)} published figures: "
        + ", ".join(f"{n} {s}" for s, n in counts.items()),
    ]
    if ctx.notes:
        notes.append(f"report note [n]: the report's caveats, listed in {context.details_file}")
    shown = []
    for record in used:
        if not any(record is u for u in shown):
            shown.append(record)
    notes += standard_notes(context, shown, [], [])
    details = list(ctx.notes)
    for chip, entry in chips.items():
        if entry.get("precision_note"):
            details.append(f"report {entry.get('label', chip)} precision: "
                           f"{entry.get('precision') or 'not stated'} ({entry['precision_note']})")
    details += [f"failed: {cell_name(r)}: {r.get('reason')} ({r.get('log')})" for r in failed]
    details += provenance.summary_lines(shown, cell=cell_name)
    return Table(frame({c: [r[c] for r in rows] for c in columns}), notes, details)
