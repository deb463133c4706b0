"""Loading result records: this host's and those copied from other hosts, merged per cell.

Results copied from other hosts live under ``results/imported/<label>/`` in the layout of
``results/``. :func:`load` is the one loader of every tabulate and plot script: it reads the
record files a rule declares as inputs, tags each imported one with
``imported: {"label", "path"}``, settles cells claimed by more than one record
(:func:`merge_records`) and splits failed records (``"status": "failed"``) from the rest.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from chipbench.backends.base import COMPILED_MANIFEST
from chipbench.errors import UserError

#: Folder under results/ holding other hosts' results, one ``<label>/`` each.
IMPORTED_DIR = "imported"
FAILED = "failed"


def is_failed(record: Mapping) -> bool:
    """A failed record (a matrix job that failed on its cell); a missing status is ok."""
    return record.get("status", "ok") == FAILED


def accuracy_key(record: Mapping) -> tuple:
    """The cell of an accuracy (or gate) record: model, chip, precision."""
    return record.get("model"), record.get("chip"), record.get("precision")


def perf_key(record: Mapping) -> tuple:
    """The cell of a throughput record: model, chip, precision, batch size."""
    return record.get("model"), record.get("chip"), record.get("precision"), int(record.get("batch_size", -1))


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


def backend_label(backend: Mapping) -> str:
    text = f"{backend.get('name', '?')} {backend.get('version', '?')}".strip()
    settings = backend.get("settings") or {}
    if settings:
        text += " (" + ", ".join(f"{k}={settings[k]}" for k in sorted(settings)) + ")"
    return text


def source_suffix(record: Mapping) -> str:
    """`` [label]`` for a record imported from results/imported/<label>/, else nothing."""
    imported = record.get("imported")
    return f" [{imported['label']}]" if imported else ""


def source_name(record: Mapping) -> str:
    imported = record.get("imported")
    return f"results/{IMPORTED_DIR}/{imported['label']}" if imported else "this host's results"


def cell_name(record: Mapping, chip_label=None) -> str:
    """``CPU fp32 bs4 [label]``: a record's cell, its chip named by `chip_label(chip)`."""
    chip = record.get("chip")
    text = f"{chip_label(chip) if chip_label else chip} {record.get('precision')}"
    timed = "throughput_fps" in record or is_failed(record)  # a failed record names a batch size for throughput only
    if timed and record.get("batch_size") is not None:
        text += f" bs{record['batch_size']}"
    return text + source_suffix(record)


# ------------------------------------------------------------------------------------ reading


def imported_label(path: Path | str) -> str | None:
    """The ``<label>`` of ``…/results/imported/<label>/<model>/…``, or None for this host's."""
    parts = Path(path).parts
    for i in range(len(parts) - 3, -1, -1):
        if parts[i] == "results" and parts[i + 1] == IMPORTED_DIR:
            return parts[i + 2]
    return None


def read_record(path: Path | str) -> dict:
    """One record file; an imported one is tagged ``imported: {"label", "path"}`` and keeps
    its own ``host``."""
    with open(path, encoding="utf-8") as handle:
        try:
            record = json.load(handle)
        except json.JSONDecodeError as error:
            raise UserError(f"result record {path} is not valid JSON ({error}): delete it and "
                            "rerun, or fix the copy under results/imported/") from None
    label = imported_label(path)
    if label is not None:
        record["imported"] = {"label": label, "path": str(path)}
    return record


def record_time(record: Mapping) -> float:
    """When the record was made: ``finished_at`` (throughput) or ``provenance.recorded_at``."""
    value = record.get("finished_at") or (record.get("provenance") or {}).get("recorded_at")
    return float(value) if value is not None else 0.0


def _when(record: Mapping) -> str:
    seconds = record_time(record)
    if not seconds:
        return "time not recorded"
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _figure(record: Mapping) -> str:
    if is_failed(record):
        return "a failed run"
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

    This host's record wins over imported ones; among imported records the newest
    (:func:`record_time`) wins, ties going to the first label in sorted order. Every claim not
    shown gets a note naming both sources, their hosts, times and figures; an imported exact
    copy of the shown record is noted as a duplicate. Two of this host's records for one cell
    cannot come from one results tree and are an error.
    """
    groups: dict[tuple, list[dict]] = {}
    for record in records:
        groups.setdefault(key(record), []).append(dict(record))
    merged, notes = [], []
    for cell, group in groups.items():
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
                    f"{cell[0]} {name}: {source_name(other)} holds a copy of the record shown "
                    f"(from {source_name(winner)}); counted once"
                )
                continue
            winner_host = host_label(winner.get("host") or {})
            other_host = host_label(other.get("host") or {})
            kind = ("same host" if winner_host == other_host
                    else f"conflict between hosts {winner_host} and {other_host}")
            notes.append(
                f"{cell[0]} {name}: {kind}: shown {_figure(winner)} from "
                f"{source_name(winner)} ({_when(winner)}); not shown {_figure(other)} from "
                f"{source_name(other)} ({_when(other)}) — {rule}"
            )
    return merged, notes


def attach_gates(records: Iterable[dict], gates: Iterable[Mapping]) -> None:
    """Copy each gate record's ``gate`` and ``agreement`` into the accuracy record of the same
    cell from the same source (this host's gates to this host's records, an import's to its own)."""
    by_cell = {
        (source_suffix(g), g.get("chip"), g.get("precision")): g for g in gates if not is_failed(g)
    }
    for record in records:
        gate = by_cell.get((source_suffix(record), record.get("chip"), record.get("precision")))
        if gate:
            record.update({k: v for k, v in gate.items() if k in ("gate", "agreement")})


@dataclass
class Loaded:
    """Records of one kind, one per cell: `records` ok, `failed` failed, `notes` on merging."""

    records: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


KEYS = {"accuracy": accuracy_key, "perf": perf_key}


def load(paths: Iterable, kind: str, gates: Iterable = ()) -> Loaded:
    """Every record among `paths` (this host's and imported ones), merged per cell;
    `gates` (gate.json paths) attach to the accuracy records of their own source."""
    merged, notes = merge_records((read_record(p) for p in sorted(map(str, paths))), KEYS[kind])
    loaded = Loaded(notes=notes)
    for record in merged:
        (loaded.failed if is_failed(record) else loaded.records).append(record)
    if gates:
        attach_gates(loaded.records, [read_record(p) for p in gates])
    return loaded


def compiled_manifests(folders: Iterable) -> list[dict]:
    """The ``compiled.json`` of each compiled artefact folder
    (``…/<chip>/<precision>/<shape>/``), with its chip and precision; failed compiles left out."""
    manifests = []
    for folder in map(Path, folders):
        if (folder / COMPILED_MANIFEST).is_file():
            manifest = read_record(folder / COMPILED_MANIFEST)
            if not is_failed(manifest):
                manifests.append({"chip": folder.parts[-3], "precision": folder.parts[-2], **manifest})
    return manifests
