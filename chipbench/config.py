"""Turns the validated config into the benchmark matrix, with checks the schema cannot make.

Schema validation (types, ranges, known keys) happens in rules/common.smk through
`snakemake.utils.validate`; this module adds what needs the presets or the file system, and
answers every question the rules ask about the matrix.
"""

from __future__ import annotations

import copy
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from chipbench import backends
from chipbench.backends import Availability
from chipbench.capabilities import HostAnswers, answer_key
from chipbench.errors import UserError

REPO = Path(__file__).resolve().parent.parent
RESOURCES = REPO / "resources"
SCHEMA = REPO / "schemas" / "config.schema.yaml"
MD5_PATTERN = "^[0-9a-f]{32}$"
#: Where the workflow keeps the downloaded dataset archive (rules/data.smk).
DATASET_ARCHIVE = "results/data/cifar-10-python.tar.gz"


#: PyYAML's safe loader in C where the wheel has libyaml: the schema and presets are read on
#: every parse of the Snakefile, and the pure-Python loader takes ~0.2 s for them.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: Path) -> dict:
    with open(path) as handle:
        return yaml.load(handle, Loader=SAFE_LOADER) or {}


def merged(preset: dict, override: dict | None) -> dict:
    """Preset keys, overridden key by key (one level deep for `settings` and `placement`)."""
    result = copy.deepcopy(preset)
    for key, value in (override or {}).items():
        if key in ("settings", "placement") and isinstance(value, dict):
            result.setdefault(key, {}).update(value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def one_of(names) -> str:
    return ", ".join(sorted(names))


def coerce_cli_strings(value, schema: dict):
    """Numbers and booleans typed on the command line, converted where the schema wants them.

    Snakemake parses nested `--config` values with YAML's BaseLoader, so
    `--config select='{batch_sizes: [4]}'` arrives as ["4"]. Only strings at keys the schema
    types as integer, number or boolean are converted, so an all-digit md5 stays a string.
    An all-digit md5 that YAML read as a number (dataset.md5 in a config file) gets its
    digits back.
    """
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return {
            key: coerce_cli_strings(
                item, properties.get(key) or (extra if isinstance(extra, dict) else {})
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [coerce_cli_strings(item, schema.get("items", {})) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and schema.get("pattern") == MD5_PATTERN:
        return md5_digits(value)
    if isinstance(value, str):
        types = schema.get("type", [])
        types = [types] if isinstance(types, str) else types
        for kind, convert in (("integer", int), ("number", float)):
            if kind in types:
                try:
                    return convert(value)
                except ValueError:
                    pass
        if "boolean" in types and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if value == "null" and "null" in types:
            return None
    return value


def md5_digits(number: int) -> str:
    """The 32 digits of an md5 that YAML 1.1 read as an integer: decimal when it has no
    leading zero, octal when it does ("0" followed by digits 0-7)."""
    decimal = str(number)
    if len(decimal) == 32:
        return decimal
    octal = format(number, "o")
    return octal.zfill(32) if 0 <= number and len(octal) < 32 else decimal


def key_description(schema: dict, path) -> str:
    """Description of the config key at `path`: the deepest one the schema documents."""
    description = schema.get("description", "")
    node = schema
    for part in path:
        if isinstance(part, int):
            node = node.get("items", {})
        else:
            node = node.get("properties", {}).get(part) or node.get("additionalProperties") or {}
        if not isinstance(node, dict):
            break
        description = node.get("description", description)
    return description


def schema_error_line(error: Exception) -> str:
    """One line out of a failed `snakemake.utils.validate`: where, what, and the key's doc."""
    cause = error.__cause__ or error.__context__
    if not hasattr(cause, "absolute_path"):
        return str(error).splitlines()[0]
    path = list(cause.absolute_path)
    where = ".".join(map(str, path)) or "(top level)"
    doc = key_description(load_yaml(SCHEMA), path).strip().rstrip(".")
    hint = f" ({doc})" if doc else ""
    return f"config {where}: {cause.message}{hint}; fix config.yaml or your --config/--configfile"


@dataclass
class Plan:
    """The resolved matrix: models × chips × precisions × batch sizes."""

    config: dict
    models: dict[str, dict]
    chips: dict[str, dict]
    availability: dict[str, Availability] = field(default_factory=dict)
    timing: dict[str, Availability] = field(default_factory=dict)
    #: chip -> precision -> whether it runs here (checked for available chips only).
    precision_availability: dict[str, dict[str, Availability]] = field(default_factory=dict)

    @property
    def unavailable(self) -> dict[str, str]:
        """Chips that cannot run here at all, with the reason."""
        return {c: a.reason for c, a in self.availability.items() if not a.ok}

    @property
    def unavailable_precisions(self) -> dict[str, dict[str, str]]:
        """Precisions an available chip cannot run here (e.g. bf16 without native bfloat16):
        chip -> precision -> reason."""
        found = {
            chip: {p: a.reason for p, a in checks.items() if not a.ok}
            for chip, checks in self.precision_availability.items()
        }
        return {chip: reasons for chip, reasons in found.items() if reasons}

    def runs_here(self, chip: str, precision: str) -> bool:
        checks = self.precision_availability.get(chip, {})
        return self.availability[chip].ok and (precision not in checks or checks[precision].ok)

    def why_not_here(self, chip: str, precision: str | None = None) -> str | None:
        """Why `chip` (at `precision`) cannot run on this host; None when it can."""
        if not self.availability[chip].ok:
            return f"chip {chip} is not available on this host: {self.availability[chip].reason}"
        check = self.precision_availability.get(chip, {}).get(precision)
        if check is not None and not check.ok:
            return f"chip {chip} cannot run {precision} on this host: {check.reason}"
        return None

    @property
    def untimed(self) -> dict[str, str]:
        """Chips that cannot be timed here (unavailable, or compiled and scored without the
        device), with the reason."""
        reasons = dict(self.unavailable)
        for chip, timing in self.timing.items():
            if chip not in reasons and not timing.ok:
                reasons[chip] = f"throughput needs the device: {timing.reason}"
        return reasons

    def impossible_target(self, target: str, workdir: Path) -> str | None:
        """Why the target path names a result of a cell this host cannot run (chip or
        precision); None when it can, or when the path is no cell's result."""
        path = Path(target)
        if path.is_absolute():
            if not path.is_relative_to(workdir):
                return None
            path = path.relative_to(workdir)
        parts = path.parts
        if parts[:1] != ("results",):
            return None
        cell = parts[2:5] if parts[1:2] == ("compiled",) else parts[1:4]
        if len(cell) < 2 or cell[0] not in self.models or cell[1] not in self.chips:
            return None
        return self.why_not_here(cell[1], cell[2] if len(cell) > 2 else None)

    def chips_of(self, model: str) -> list[str]:
        """The model's chips: its own list, else every chip (for a bring-your-own ONNX model,
        every chip that runs an ONNX model alone)."""
        given = self.models[model].get("chips")
        if given:
            return list(given)
        if self.models[model].get("onnx"):
            return [c for c in self.chips if runs_onnx_alone(self.chips[c])]
        return list(self.chips)

    def batch_sizes(self, model: str, chip: str) -> list[int]:
        sizes = (
            self.models[model].get("batch_sizes")
            or self.chips[chip].get("batch_sizes")
            or self.config["batch_sizes"]
        )
        return sorted(sizes)

    def accuracy_batch_size(self, model: str, chip: str) -> int:
        return self.chips[chip].get("accuracy_batch_size") or max(self.batch_sizes(model, chip))

    def accuracy_images(self, chip: str) -> int | None:
        """Test images the chip's accuracy runs score (the first N); None = all of them."""
        images = self.chips[chip].get("accuracy_images")
        return images if images and images < self.config["dataset"]["test_images"] else None

    def precisions(self, chip: str) -> list[str]:
        return list(self.chips[chip]["precisions"])

    def accuracy_cells(self, selected: bool = True) -> list[tuple[str, str, str]]:
        """(model, chip, precision) of every accuracy result to compute."""
        return [
            (m, c, p)
            for m in self.models
            for c in self.chips_of(m)
            for p in self.precisions(c)
            if self.runs_here(c, p) and (not selected or self._selected(m, c, p))
        ]

    def compile_cells(self, selected: bool = True) -> list[tuple[str, str, str, int]]:
        """(model, chip, precision, batch size) of every artefact to compile, timed or not."""
        return [
            (m, c, p, b)
            for m, c, p in self.accuracy_cells(selected)
            for b in self.batch_sizes(m, c)
            if not selected or self._selected(m, c, p, b)
        ]

    def perf_cells(self, selected: bool = True) -> list[tuple[str, str, str, int]]:
        """(model, chip, precision, batch size) of every throughput result to compute."""
        return [cell for cell in self.compile_cells(selected) if self.timing[cell[1]].ok]

    def gate_reference(self, model: str) -> tuple[str, str] | None:
        """(chip, precision) of `model`'s accuracy gate reference, when it runs the model here:
        config gate.reference_chip/_precision, or gate.reference_for_onnx for a bring-your-own
        ONNX model (PyTorch eager cannot rebuild it)."""
        gate = self.config["gate"]
        if self.models[model].get("onnx"):
            chip, precision = gate["reference_for_onnx"]["chip"], gate["reference_for_onnx"]["precision"]
        else:
            chip, precision = gate["reference_chip"], gate["reference_precision"]
        if (chip in self.chips_of(model) and precision in self.precisions(chip)
                and self.runs_here(chip, precision)):
            return chip, precision
        return None

    def gate_cells(self, selected: bool = True) -> list[tuple[str, str, str]]:
        """Accuracy cells checked against their model's reference."""
        return [
            (m, c, p)
            for m, c, p in self.accuracy_cells(selected)
            if self.gate_reference(m) is not None
        ]

    def _selected(self, model, chip, precision, batch=None) -> bool:
        select = self.config.get("select") or {}
        return (
            model in (select.get("models") or [model])
            and chip in (select.get("chips") or [chip])
            and precision in (select.get("precisions") or [precision])
            and (batch is None or batch in (select.get("batch_sizes") or [batch]))
        )


def runs_onnx_alone(chip: dict) -> bool:
    """Whether the chip's backend compiles from the ONNX file alone (PyTorch eager rebuilds
    the PyTorch model instead, so it cannot run a bring-your-own ONNX model)."""
    return not backends.get(chip["backend"]).model_keys


def resolve(config: dict, base_dir: Path, check_availability: bool = True,
            on_cluster: bool = False) -> Plan:
    """Build the plan from a schema-validated config; raise UserError on what is inconsistent.

    `base_dir` is the directory relative paths in the config are read from (the working
    directory of the Snakemake run). `on_cluster`: jobs run elsewhere, so a chip with a
    placement is not probed on this host; its own machine answers when its jobs run.
    """
    model_presets = load_yaml(RESOURCES / "models.yaml")
    chip_presets = load_yaml(RESOURCES / "chips.yaml")
    published = load_yaml(RESOURCES / "published.yaml")
    test_images = config["dataset"]["test_images"]

    chips = {}
    for name, override in config["chips"].items():
        if name not in chip_presets:
            raise UserError(
                f"unknown chip {name!r} in config.chips: use one of {one_of(chip_presets)} "
                "or add a preset to resources/chips.yaml"
            )
        chip = merged(chip_presets[name], override)
        backend = backends.get(chip["backend"])
        unsupported = [p for p in chip["precisions"] if p not in backend.precisions]
        if unsupported:
            raise UserError(
                f"chip {name!r} cannot run precision {', '.join(unsupported)}: "
                f"its backend {backend.name} supports {one_of(backend.precisions)}; "
                f"fix chips.{name}.precisions"
            )
        chips[name] = chip

    models = {}
    for name, override in config["models"].items():
        model = merged(model_presets.get(name, {}), override)
        if model.get("onnx"):
            model["preprocess"] = model.get("preprocess", "normalize")
            missing = [k for k in ("mean", "std", "metric") if k not in model]
            if model["preprocess"] == "normalize" and missing:
                raise UserError(
                    f"model {name!r} brings its own ONNX but gives no {', '.join(missing)}: "
                    f"add them under models.{name} in your config"
                )
            _require_file(base_dir, model["onnx"], f"models.{name}.onnx", "ONNX model")
        elif name not in model_presets:
            raise UserError(
                f"unknown model {name!r}: use one of {one_of(model_presets)}, or give "
                f"models.{name}.onnx (with mean, std and metric) to bring your own ONNX"
            )
        elif model.get("checkpoint"):
            _require_file(
                base_dir, model["checkpoint"], f"models.{name}.checkpoint", "checkpoint"
            )
        model.setdefault("title", name)
        for chip in model.get("chips") or []:
            if chip not in chips:
                raise UserError(
                    f"models.{name}.chips names {chip!r}, which is not in config.chips: "
                    f"use one of {one_of(chips)}"
                )
            if model.get("onnx") and not runs_onnx_alone(chips[chip]):
                raise UserError(
                    f"models.{name}.chips names {chip!r}, whose backend {chips[chip]['backend']} "
                    f"needs the PyTorch model, which a bring-your-own ONNX model lacks: drop "
                    f"{chip} from models.{name}.chips"
                )
        models[name] = model

    plan = Plan(config=config, models=models, chips=chips)
    for model in models:
        for chip in plan.chips_of(model):
            too_big = [b for b in plan.batch_sizes(model, chip) if b > test_images]
            too_big += [
                b for b in [plan.accuracy_batch_size(model, chip)] if b > test_images
            ]
            if too_big:
                raise UserError(
                    f"batch size {max(too_big)} for {model} on {chip} is larger than the "
                    f"dataset ({test_images} test images): use batch sizes ≤ {test_images}"
                )
    for name, model in models.items():
        if model.get("onnx"):
            from chipbench import imported  # imports torch: only for bring-your-own models

            imported.check(
                Path(base_dir) / model["onnx"], model["metric"],
                {b for c in plan.chips_of(name)
                 for b in [*plan.batch_sizes(name, c), plan.accuracy_batch_size(name, c)]},
                f"models.{name}.onnx", model["onnx"],
            )
    pairs = config["metrics"]["pair_top1"]["pairs_per_batch"]
    if any(m["metric"] == "pair_top1" for m in models.values()) and pairs > test_images:
        raise UserError(
            f"metrics.pair_top1.pairs_per_batch is {pairs} but the dataset has only "
            f"{test_images} test images: use pairs_per_batch ≤ {test_images}"
        )
    for model in (m for m, entry in models.items() if entry["metric"] == "pair_top1"):
        for chip in plan.chips_of(model):
            if (plan.accuracy_images(chip) or pairs) < pairs:
                raise UserError(
                    f"chips.{chip}.accuracy_images is {plan.accuracy_images(chip)}, fewer than "
                    f"metrics.pair_top1.pairs_per_batch ({pairs}) that {model} scores in one "
                    f"batch: use accuracy_images ≥ {pairs}"
                )
    known_ratio_chips = set(chip_presets) | {
        chip for entry in published.values() for chip in entry.get("chips", {})
    }
    for pair in config["tables"]["ratios"]:
        for chip in pair:
            if chip not in known_ratio_chips:
                raise UserError(
                    f"tables.ratios names unknown chip {chip!r}: use one of "
                    f"{one_of(known_ratio_chips)}"
                )
    _check_select(plan)
    _check_dataset_source(config["dataset"]["url"], base_dir)
    check_host(plan, probed=[
        name for name, chip in chips.items()
        if check_availability and not (on_cluster and chip.get("placement"))
    ])
    _check_selection_runs_here(plan)
    return plan


def _check_select(plan: Plan) -> None:
    """Every value `select` names exists in the matrix (otherwise the run would compute
    nothing and say nothing)."""
    select = plan.config.get("select") or {}
    matrix = {
        "models": (plan.models, "config.models"),
        "chips": (plan.chips, "config.chips"),
        "precisions": ({p for c in plan.chips for p in plan.precisions(c)},
                       "the precisions of config.chips"),
        "batch_sizes": ({b for m in plan.models for c in plan.chips_of(m)
                         for b in plan.batch_sizes(m, c)}, "the matrix's batch sizes"),
    }
    for key, (known, where) in matrix.items():
        unknown = [x for x in select.get(key) or [] if x not in known]
        if unknown:
            raise UserError(
                f"select.{key} names {', '.join(map(str, unknown))}, not in {where}: "
                f"use one of {', '.join(map(str, sorted(known)))}"
            )


def _check_dataset_source(url: str, base_dir: Path) -> None:
    """A local dataset source must exist before anything runs (until it has been copied)."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    local = scheme in ("", "file") or len(scheme) == 1  # one letter: a Windows drive
    if not local or (Path(base_dir) / DATASET_ARCHIVE).is_file():
        return
    path = urllib.request.url2pathname(urllib.parse.urlsplit(url).path) if scheme == "file" \
        else url
    if not (Path(base_dir) / path).is_file():
        raise UserError(
            f"dataset archive {path} (config dataset.url) does not exist: set dataset.url to "
            "an existing file, a file:// URL or an http(s) URL"
        )


def check_host(plan: Plan, probed: list[str]) -> None:
    """Fill the plan's availability from this host's cached answers, asking the backends
    only what the cache (chipbench.capabilities) does not know yet. Chips not in `probed`
    (no checks wanted, or placed on another machine of a cluster) count as available."""
    for name in set(plan.chips) - set(probed):
        plan.availability[name] = plan.timing[name] = Availability(True)
        plan.precision_availability[name] = {
            p: Availability(True) for p in plan.chips[name]["precisions"]
        }
    if not probed:
        return
    answers = HostAnswers()

    def ask(kind, name, chip, check, precision=None) -> Availability:
        def asked():
            availability = check()
            return availability.ok, availability.reason

        ok, reason = answers.ask(answer_key(kind, name, precision), chip, asked)
        return Availability(ok, reason)

    for name in probed:
        chip = plan.chips[name]
        backend = backends.get(chip["backend"])
        plan.availability[name] = ask("chip", name, chip, lambda: backend.availability(chip))
        plan.timing[name] = ask("timing", name, chip, lambda: backend.timing_availability(chip))
        if plan.availability[name].ok:
            plan.precision_availability[name] = {
                p: ask("precision", name, chip,
                       lambda p=p: backend.precision_availability(chip, p), p)
                for p in chip["precisions"]
            }
    answers.save()


def _check_selection_runs_here(plan: Plan) -> None:
    """`select` naming a chip, or a precision, that cannot run on this host is an explicit
    request for impossible cells: one line, instead of a run that silently does nothing."""
    select = plan.config.get("select") or {}
    for chip in select.get("chips") or []:
        if not plan.availability[chip].ok:
            raise UserError(f"select.chips names {chip}, but {plan.why_not_here(chip)}; drop it "
                            "from select.chips")
    chosen_chips = list(select.get("chips") or plan.chips)
    for precision in select.get("precisions") or []:
        having = [c for c in chosen_chips if precision in plan.precisions(c)
                  and plan.availability[c].ok]
        if having and not any(plan.runs_here(c, precision) for c in having):
            raise UserError(f"select.precisions names {precision}, but "
                            f"{plan.why_not_here(having[0], precision)}; drop it from "
                            "select.precisions")


def _require_file(base_dir: Path, path: str, key: str, what: str) -> None:
    if not (Path(base_dir) / path).is_file():
        fix = "fix the path, or set it to null for seeded random weights" if what == "checkpoint" \
            else "fix the path in your config"
        raise UserError(f"{what} {path} (config {key}) does not exist: {fix}")
