"""The reports' published figures (``resources/published.yaml``) and the labels of chips.

Report figures are shown as published, in the report's unit, never converted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from chipbench.errors import UserError

#: Order of precision columns and series.
PRECISION_ORDER = ("fp32", "fp16", "bf16", "int8")
#: What each block of published.yaml is called in notes.
BLOCK_NAMES = {
    "accuracy": "accuracy",
    "fps": "fps",
    "best": "best bs row",
    "ratios": "ratios",
    "calculate_time_ms": "calculate time",
}


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


def block(published_model: Mapping, name: str) -> Mapping:
    """One block (``fps``, ``accuracy``, …) of a model's published figures, or {}."""
    return published_model.get(name) or {}


def entries(published_model: Mapping, name: str) -> list[Mapping]:
    return list(block(published_model, name).get("entries") or [])


def by_batch(entry: Mapping) -> dict[int, float]:
    return {int(b): v for b, v in (entry.get("by_batch") or {}).items()}


def fmt(value, decimals: int) -> str:
    return f"{float(value):.{int(decimals)}f}"


def precision_rank(precision) -> int:
    return PRECISION_ORDER.index(precision) if precision in PRECISION_ORDER else len(PRECISION_ORDER)


def unique(items: Iterable) -> list:
    """`items` without repeats, in first-seen order."""
    seen = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


class Labels:
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


def report_details(published_model: Mapping, blocks: Iterable[str], chips: Iterable[str]) -> list[str]:
    """Where each report block comes from, its caveats, and the precision of each report chip."""
    lines = []
    for name in blocks:
        found = block(published_model, name)
        if not found:
            continue
        source = found.get("source") or published_model.get("report")
        text = f"report {BLOCK_NAMES.get(name, name)} from {source}"
        if found.get("note"):
            text += f": {found['note']}"
        lines.append(text)
    chip_entries = published_model.get("chips") or {}
    for chip in chips:
        entry = chip_entries.get(chip) or {}
        stated = [str(x) for x in (entry.get("precision"), entry.get("precision_note")) if x]
        if len(stated) == 2:
            lines.append(f"report {entry.get('label', chip)} precision: {stated[0]} ({stated[1]})")
        elif stated:
            lines.append(f"report {entry.get('label', chip)} precision: {stated[0]}")
    return lines
