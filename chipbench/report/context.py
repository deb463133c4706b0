"""What a table builder is given (:class:`TableContext`), what it returns (:class:`Table`),
the states of a cell, and the few notes every table carries.

A cell of ours reads a figure, or one of three states: ``—`` the chip (or this precision of
it) cannot run here, ``not run`` the cell was not selected or has not been measured yet,
``failed`` its job failed. Under a table sit at most about six short notes (metric and
protocol, marks, why cells cannot run or failed, weights and host, config hash); everything
else (runtime settings, merge and import details, the report's caveats, full provenance)
goes to the table's provenance file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from chipbench import provenance
from chipbench.report.published import Labels, unique
from chipbench.report.records import backend_label, cell_name, host_label, weights_label

CANNOT_RUN = "—"
NOT_RUN = "not run"
FAILED = "failed"
#: Report cells with no published figure.
NOT_PUBLISHED = "—"
NOISY = "*"
GATE_FAILED = "✗"
#: No note line is longer than this; a longer one is summarised and left to the provenance file.
NOTE_WIDTH = 200
DEFAULT_NOISE_THRESHOLD = 0.03


@dataclass
class TableContext:
    """One model's matrix as the tables see it. `precisions` maps each chip to the precisions
    of its columns; `unavailable` is {chip: reason}, `unavailable_precisions`
    {chip: {precision: reason}}, both for what cannot run here; `published` is the model's
    entry of published.yaml."""

    model: str
    title: str
    chips: Sequence[str]
    precisions: Mapping[str, Sequence[str]]
    chip_labels: Mapping[str, str]
    published: Mapping = field(default_factory=dict)
    batch_sizes: Sequence[int] = ()
    unavailable: Mapping[str, str] = field(default_factory=dict)
    unavailable_precisions: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    ratios: Sequence[Sequence[str]] = ()
    noise_threshold: float = DEFAULT_NOISE_THRESHOLD
    details_file: str = "the provenance file"

    @property
    def labels(self) -> Labels:
        return Labels(self.chip_labels, self.published)

    def cannot_run(self, chip: str, precision: str | None = None) -> str | None:
        """Why `chip` (or `precision` on it) cannot run here, or None."""
        if chip in self.unavailable:
            return self.unavailable[chip]
        return (self.unavailable_precisions.get(chip) or {}).get(precision)

    def usable(self, record: Mapping) -> bool:
        """Records of this model; this host's stale records of what cannot run here are
        ignored, imported ones are kept."""
        return record.get("model") == self.model and (
            bool(record.get("imported"))
            or self.cannot_run(record.get("chip"), record.get("precision")) is None)


@dataclass
class Table:
    """A built table: the frame, the notes under it, and the details of its provenance file."""

    frame: pd.DataFrame
    notes: list[str]
    details: list[str] = field(default_factory=list)


def frame(columns: dict[str, list[str]]) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(cells, dtype=object) for name, cells in columns.items()})


def add_column(columns: dict[str, list[str]], name: str, cells: list[str]) -> None:
    if name in columns:
        raise ValueError(f"two table columns would be called {name!r}: give the chips distinct labels")
    columns[name] = cells


def index(records: Iterable[Mapping], ctx: TableContext, key) -> dict:
    """Usable records (:meth:`TableContext.usable`) by `key(record)`."""
    found = {}
    for record in records:
        if not ctx.usable(record):
            continue
        k = key(record)
        if k in found:
            raise ValueError(f"two result records for {ctx.model} {' '.join(map(str, k))}")
        found[k] = record
    return found


def absent(ctx: TableContext, chip: str, precision: str, failed: Mapping | None) -> str:
    """The state of a cell of ours with no figure."""
    if ctx.cannot_run(chip, precision) is not None:
        return CANNOT_RUN
    return FAILED if failed is not None else NOT_RUN


def fit(text: str, shorter: str) -> str:
    """`text`, or `shorter` when `text` is over :data:`NOTE_WIDTH` characters."""
    return text if len(text) <= NOTE_WIDTH else shorter


def _listed(title: str, items: Sequence[str], what: str, ctx: TableContext) -> str:
    return fit(f"{title}: " + "; ".join(items),
               f"{title}: {len(items)} {what}, listed in {ctx.details_file}")


def first_clause(reason: str) -> str:
    """The head of a reason, before its detail or fix ("atc not found")."""
    return reason.split(" (", 1)[0].split("; ", 1)[0].split(": ", 1)[0]


def cannot_run_reasons(ctx: TableContext) -> list[tuple[str, str]]:
    """(column, reason) of every chip, or chip precision, of the table that cannot run here."""
    labels = ctx.labels
    reasons = [(labels.row(chip), ctx.unavailable[chip]) for chip in ctx.chips if chip in ctx.unavailable]
    return reasons + [(f"{labels.row(chip)} {precision}", reason)
                      for chip in ctx.chips if chip not in ctx.unavailable
                      for precision, reason in sorted((ctx.unavailable_precisions.get(chip) or {}).items())]


def _cannot_run_note(reasons: Sequence[tuple[str, str]], ctx: TableContext) -> str:
    """Every cell that cannot run here with its reason: in full when that fits a note, else
    each reason's first clause, columns sharing it named together (the full reasons are in
    the provenance file the config-hash note names); a count only when even that is too long."""
    title = f"{CANNOT_RUN} cannot run here"
    full = f"{title}: " + "; ".join(f"{where}: {reason}" for where, reason in reasons)
    grouped: dict[str, list[str]] = {}
    for where, reason in reasons:
        grouped.setdefault(first_clause(reason), []).append(where)
    short = f"{title}: " + "; ".join(
        f"{', '.join(wheres)}: {reason}" for reason, wheres in grouped.items())
    return fit(full, fit(short, f"{title}: {len(reasons)} columns, listed in {ctx.details_file}"))


def standard_notes(ctx: TableContext, shown: Sequence[Mapping], failed: Sequence[Mapping],
                   cells: Iterable[str], marks: Sequence[str] = ()) -> list[str]:
    """The notes after a table's metric line: marks, what cannot run, what failed, weights
    and host, config hash. `cells` are the cell texts of ours (so that only the states used
    are explained); `marks` are the table's own marks with their meaning."""
    labels = ctx.labels
    texts = set(cells)
    meaning = [text for state, text in ((CANNOT_RUN, f"{CANNOT_RUN} cannot run here"),
                                        (NOT_RUN, f"{NOT_RUN}: not selected or not yet measured"),
                                        (FAILED, f"{FAILED}: the job failed")) if state in texts]
    meaning += marks
    imported = sorted({(r["imported"]["label"], (r.get("host") or {}).get("hostname") or "?")
                       for r in shown if r.get("imported")})
    notes = []
    if meaning or imported:
        text = "marks: " + "; ".join(meaning + [f"[{label}] measured on {host}" for label, host in imported])
        notes.append(fit(text, "marks: " + "; ".join(meaning)))
    reasons = cannot_run_reasons(ctx)
    if reasons and CANNOT_RUN in texts:
        notes.append(_cannot_run_note(reasons, ctx))
    if failed:
        notes.append(_listed(FAILED, [
            f"{cell_name(r, labels.row)}: {r.get('reason')} ({r.get('log')})" for r in failed
        ], "cells", ctx))
    if shown:
        weights = sorted({weights_label(r.get("weights") or {}) for r in shown})
        hosts = sorted({host_label(r.get("host") or {}) for r in shown})
        notes.append(fit(
            "weights: " + "; ".join(weights) + " · host: " + "; ".join(hosts),
            f"weights: {len(weights)} kinds · hosts: {len(hosts)}, listed in {ctx.details_file}"))
    hashes = sorted({str((r.get("provenance") or {}).get("config_sha256"))[:12]
                     for r in list(shown) + list(failed) if (r.get("provenance") or {}).get("config_sha256")})
    if hashes:
        notes.append(fit(f"config sha256 {', '.join(hashes)}; settings and provenance: {ctx.details_file}",
                         f"config sha256: {len(hashes)} different; settings and provenance: {ctx.details_file}"))
    return notes


def provenance_details(records: Sequence[Mapping], ctx: TableContext) -> list[str]:
    """Why columns cannot run here (in full), then the weights, hosts and runtimes behind the
    cells shown, then their full provenance."""
    reasons = [f"{CANNOT_RUN} cannot run here: {where}: {reason}" for where, reason in cannot_run_reasons(ctx)]
    if not records:
        return reasons
    labels = ctx.labels
    details = reasons + ["weights: " + "; ".join(sorted({weights_label(r.get("weights") or {}) for r in records})),
               "host: " + "; ".join(sorted({host_label(r.get("host") or {}) for r in records}))]
    runtimes: dict[str, set[str]] = {}
    for r in records:
        runtimes.setdefault(backend_label(r.get("backend") or {}), set()).add(
            f"{labels.row(r['chip'])} {r['precision']}")
    details += [f"runtime of {', '.join(sorted(runtimes[text]))}: {text}" for text in sorted(runtimes)]
    return details + provenance.summary_lines(records, cell=lambda r: cell_name(r, labels.row))


def outside_details(records: Iterable[Mapping], ctx: TableContext, in_matrix) -> list[str]:
    """Imported records of this model that no cell of the table holds: named, never dropped silently."""
    outside = [cell_name(r, ctx.labels.row) for r in records
               if r.get("imported") and r.get("model") == ctx.model and not in_matrix(r)]
    if not outside:
        return []
    return ["imported results outside this table's chips, precisions or batch sizes (not shown): "
            + ", ".join(unique(outside))]
