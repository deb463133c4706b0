# Config validation, the benchmark matrix, target lists and wildcard constraints.
import glob
import os
import sys
from pathlib import Path

# The logic lives in the chipbench package beside this workflow: importable here and, through
# PYTHONPATH, in every job's script, whatever environment (venv or conda) runs it.
sys.path.insert(0, workflow.basedir)
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        filter(None, [workflow.basedir, os.getenv("PYTHONPATH")])
    )
)

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from chipbench import backends, failures
from chipbench.config import (
    DATASET_ARCHIVE,
    SCHEMA,
    coerce_cli_strings,
    load_yaml,
    resolve,
    schema_error_line,
)
from chipbench.errors import UserError


def load_plan():
    """Validate the config and resolve the matrix; bad config stops here with one line.

    What this host can run comes from its capability cache (chipbench/capabilities.py), so a
    parse imports no runtime (torch, onnxruntime, openvino) unless a toolchain changed.
    """
    try:
        config.update(coerce_cli_strings(config, load_yaml(SCHEMA)))
        validate(config, str(SCHEMA))
        # The Snakefile is read before Snakemake picks an executor, so the cluster profile says
        # it: --local-cores only applies when jobs run elsewhere. There a placed chip is probed
        # on its own machine when its jobs run, not here.
        on_cluster = workflow.resource_settings.local_cores is not None
        return resolve(config, Path.cwd(), on_cluster=on_cluster)
    except WorkflowError as error:
        message = schema_error_line(error)
    except UserError as error:
        message = str(error)
    sys.exit(f"error: {message}")


PLAN = load_plan()

# Timing jobs on one device never overlap: one unit of a device_<name> resource per device,
# registered here so that no --resources on the command line can raise it.
DEVICES = sorted({chip["device"] for chip in PLAN.chips.values()})
for device in DEVICES:
    workflow.register_resource(f"device_{device}", 1)


def alternatives(names):
    """Regex matching exactly these names (and nothing when there are none)."""
    return "|".join(sorted(names)) or "(?!)"


EXPORTED_MODELS = [m for m, entry in PLAN.models.items() if not entry.get("onnx")]
IMPORTED_MODELS = [m for m, entry in PLAN.models.items() if entry.get("onnx")]
PRECISIONS = sorted({p for c in PLAN.chips for p in PLAN.precisions(c)})


wildcard_constraints:
    model=alternatives(PLAN.models),
    chip=alternatives(PLAN.chips),
    precision=alternatives(PRECISIONS),
    batch=r"[1-9]\d*",
    shape=r"bs[1-9]\d*|dynamic",


# Under a cluster executor (profiles/slurm) these run on the submit host: seconds of work
# each, not worth a queue slot, and a download compute nodes may have no network for.
localrules:
    download_cifar10,
    tabulate_accuracy,
    tabulate_fps,
    tabulate_estimates,
    tabulate_reproduction,
    render_table,
    plot_fps,
    plot_latency,
    plot_accuracy,


def model_entry(wildcards):
    return PLAN.models[wildcards.model]


def metric_settings(wildcards):
    """The settings of the model's own metric only: another metric's change reruns nothing."""
    metric = PLAN.models[wildcards.model]["metric"]
    return {metric: config["metrics"][metric]} if metric in config["metrics"] else {}


# Keys of a model's or chip's entry that name it in tables, choose its cells or say where it
# runs: no result depends on them, so the jobs that compute get the entries without them (as
# params, which rerun a job when they change): a new title, another batch size or moving a
# chip to another partition reruns no finished result.
UNCOMPUTED_MODEL_KEYS = ("title", "chips", "batch_sizes")
UNCOMPUTED_CHIP_KEYS = ("label", "precisions", "batch_sizes", "placement")


def model_recipe(wildcards):
    entry = PLAN.models[wildcards.model]
    return {k: v for k, v in entry.items() if k not in UNCOMPUTED_MODEL_KEYS}


def chip_recipe(wildcards):
    entry = PLAN.chips[wildcards.chip]
    return {k: v for k, v in entry.items() if k not in UNCOMPUTED_CHIP_KEYS}


def chip_backend(chip):
    """The backend of `chip`: the rules ask it what a job needs, never by its name."""
    return backends.get(PLAN.chips[chip]["backend"])


def compiled_dir(model, chip, precision, batch):
    """Folder of the compiled artefact that runs batch size `batch` (the backend names it)."""
    artefact = chip_backend(chip).artefact_name(batch)
    return f"results/compiled/{model}/{chip}/{precision}/{artefact}"


def compiled_batch_size(wildcards):
    """The batch size the compile job builds for (None: one artefact runs every batch size),
    looked up among the plan's batch sizes of this model and chip."""
    model, chip = wildcards.model, wildcards.chip
    backend = chip_backend(chip)
    for batch in PLAN.batch_sizes(model, chip) + [
        PLAN.accuracy_batch_size(model, chip)
    ]:
        if backend.artefact_name(batch) == wildcards.shape:
            return backend.compiled_batch_size(batch)
    raise WorkflowError(
        f"{wildcards.shape} is no artefact of {model} on {chip}: use a configured batch size"
    )


def compile_model_keys(wildcards):
    """What the chip's backend reads of the model entry (its `model_keys`), so that editing
    another key of the entry recompiles nothing."""
    entry = PLAN.models[wildcards.model]
    return {key: entry.get(key) for key in chip_backend(wildcards.chip).model_keys}


def input_files(wildcards):
    """The test set as one file per image, for chips whose backend reads input files."""
    if chip_backend(wildcards.chip).reads_input_files:
        return f"results/data/{wildcards.model}/input_files"
    return []


def device_resources():
    """Resource requests per device: 1 unit of the chip's own device, 0 of the others."""
    return {
        f"device_{device}": (
            lambda wildcards, device=device: int(
                PLAN.chips[wildcards.chip]["device"] == device
            )
        )
        for device in DEVICES
    }


def placement_resources(device=True, timing=False):
    """SLURM resources of a chip's jobs from its placement (resources/chips.yaml, config
    chips.<name>.placement; docs/cluster.md); the local executor ignores them.

    Partition and constraint send every job of the chip to its machines. With `device`, the
    job also holds the chip's gres. A `timing` job needs its device to itself beyond this
    run: SLURM, not Snakemake's device_* resources, keeps other runs' and users' jobs away,
    through the gres, or the whole node (--exclusive) for a chip timed on the host CPU or
    placed without a gres.
    """

    def key(name):
        return lambda wildcards: (
            PLAN.chips[wildcards.chip].get("placement") or {}
        ).get(name)

    def exclusive(wildcards):
        chip = PLAN.chips[wildcards.chip]
        on_host = chip["device"] == "host" or not (chip.get("placement") or {}).get(
            "gres"
        )
        return "--exclusive" if on_host else None

    resources = {"slurm_partition": key("partition"), "constraint": key("constraint")}
    if device:
        resources["gres"] = key("gres")
    if timing:
        resources["slurm_extra"] = exclusive
    return resources


def device_threads(wildcards):
    """A job on the host CPU takes every core: nothing else may run beside its timing."""
    return workflow.cores if PLAN.chips[wildcards.chip]["device"] == "host" else 1


def accuracy_path(model, chip, precision):
    return f"results/{model}/{chip}/{precision}/accuracy.json"


def perf_path(model, chip, precision, batch):
    return f"results/{model}/{chip}/{precision}/bs{batch}/perf.json"


def gate_path(model, chip, precision):
    return f"results/{model}/{chip}/{precision}/gate.json"


def gate_results(model=None, selected=True):
    return [
        gate_path(m, c, p)
        for m, c, p in PLAN.gate_cells(selected)
        if model in (None, m)
    ]


def reference_input(kind):
    """Input function: the model's gate reference's `kind` file (accuracy.json or outputs.npy)."""

    def path(wildcards):
        chip, precision = PLAN.gate_reference(wildcards.model)
        return f"results/{wildcards.model}/{chip}/{precision}/{kind}"

    return path


def refuse_impossible_targets():
    """Before any job runs: a target naming a cell this host cannot run (a chip, or a
    precision such as bf16 without native bfloat16) stops the run with one line."""
    for target in workflow.dag_settings.targets:
        reason = PLAN.impossible_target(target, Path.cwd())
        if reason:
            sys.exit(f"error: {reason}")


def report_gate_failures():
    """After a run, list every result that fails the accuracy gate (the run itself succeeds)."""
    below = []
    for path in gate_results(selected=False):
        record = failures.read_record(path)
        if (
            record is not None
            and not failures.is_failed(record)
            and not record["gate"]["passed"]
        ):
            gate = record["gate"]
            below.append(
                f"{path}: {gate['accuracy']:.2f} < {gate['required_accuracy']:.2f}"
            )
    if below:
        print(
            f"accuracy gate: {len(below)} result(s) below "
            f"{100 * config['gate']['min_relative_accuracy']:g} % of the reference:",
            *below,
            sep="\n  ",
            file=sys.stderr,
        )


def report_failed_cells():
    """After a run, list the matrix results of this run that are failed records, and make
    them older than anything (mtime 0) so the next run computes them again. Returns their
    number."""
    outputs = compiled_results() + accuracy_results() + perf_results() + gate_results()
    failed = failures.failed_outputs(outputs)
    for output, _ in failed:
        failures.mark_stale(output)
    if failed:
        print(
            f"{len(failed)} of {len(outputs)} matrix results failed (the tables show them "
            "as failed; the next run computes them again):",
            *(
                f"{output}: {record['reason']} (log {record['log']})"
                for output, record in failed
            ),
            sep="\n  ",
            file=sys.stderr,
        )
    return len(failed)


def accuracy_results(model=None, selected=True):
    return [
        accuracy_path(m, c, p)
        for m, c, p in PLAN.accuracy_cells(selected)
        if model in (None, m)
    ]


def perf_results(model=None, selected=True):
    return [
        perf_path(m, c, p, b)
        for m, c, p, b in PLAN.perf_cells(selected)
        if model in (None, m)
    ]


def compiled_results(model=None, selected=True):
    """Every compiled artefact folder (an untimed chip's compiler estimates live there)."""
    return sorted(
        {
            compiled_dir(m, c, p, b)
            for m, c, p, b in PLAN.compile_cells(selected)
            if model in (None, m)
        }
    )


def table_files():
    """Every file the report rules write: the tables (Markdown, CSV, HTML view), the figures
    and their provenance captions (all shown by `snakemake --report results/report.html`).
    """
    models = sorted({m for m, _, _ in PLAN.accuracy_cells()})
    return [
        f"results/tables/{m}_{kind}.{ext}"
        for m in models
        for kind in ("accuracy", "gate", "latency", "fps", "estimates", "reproduction")
        for ext in ("md", "csv", "provenance.json", "html")
    ] + [
        f"results/plots/{m}_{kind}.{ext}"
        for m in models
        for kind in ("fps", "latency", "accuracy")
        for ext in ("png", "rst")
    ]


def checkpoint_input(wildcards):
    """The configured checkpoint, the one trained here (rules/train.smk), or none (random weights)."""
    path = weights_checkpoint(wildcards.model)
    return [path] if path else []


def model_source_input(wildcards):
    """What a backend that rebuilds the PyTorch model reads beside the ONNX: the export's
    weights record and the checkpoint it names (none for seeded random weights)."""
    if not chip_backend(wildcards.chip).model_keys:
        return []
    return [
        f"results/models/{wildcards.model}/weights.json",
        *checkpoint_input(wildcards),
    ]


def transformed_input(wildcards):
    """The transform step's folder, for chips whose backend `transforms_model`
    (rules/compile.smk)."""
    if chip_backend(wildcards.chip).transforms_model:
        return "results/compiled/{model}/{chip}/transformed/{shape}".format(**wildcards)
    return []


def calibration_input(wildcards):
    if chip_backend(wildcards.chip).needs_calibration(wildcards.precision):
        return f"results/data/{wildcards.model}/calibration_inputs.npy"
    return []


# Report helpers (rules/report.smk): imported results, report() wrappers, table views.
IMPORTED_PATTERNS = {
    "accuracy": "*/*/accuracy.json",
    "gate": "*/*/gate.json",
    "perf": "*/*/bs*/perf.json",
}


def imported_results(kind):
    """Input function: result files of `kind` that other hosts made, copied under
    results/imported/<label>/<model>/<chip>/<precision>/... (docs/DESIGN.md, "Other hosts").
    """

    def paths(wildcards):
        return sorted(
            glob.glob(f"results/imported/*/{wildcards.model}/{IMPORTED_PATTERNS[kind]}")
        )

    return paths


PUBLISHED = f"{workflow.basedir}/resources/published.yaml"
RESULT_FILES = {
    "accuracy": accuracy_results,
    "gate": gate_results,
    "perf": perf_results,
    "compiled": compiled_results,
}


def table_inputs(kind):
    """Input function: the `kind` files of a model's tables. Cells this run selects are named
    as their rules write them; other cells of the matrix found on disk are named by absolute
    path, so Snakemake reads them as they are and a targeted run never schedules their jobs.
    """

    def paths(wildcards):
        selected = RESULT_FILES[kind](wildcards.model)
        kept = [
            os.path.abspath(path)
            for path in RESULT_FILES[kind](wildcards.model, selected=False)
            if path not in selected and os.path.exists(path)
        ]
        imported = (
            imported_results(kind)(wildcards) if kind in IMPORTED_PATTERNS else []
        )
        return selected + kept + imported

    return paths


def table_context(timed):
    """Params: the matrix one model's tables show (chipbench.report.context.TableContext);
    `timed` tables treat untimed chips as unavailable and carry the throughput display settings.
    """

    def context(wildcards):
        chips = PLAN.chips_of(wildcards.model)
        settings = {
            "model": wildcards.model,
            "title": PLAN.models[wildcards.model]["title"],
            "chips": chips,
            "precisions": {c: PLAN.precisions(c) for c in chips},
            "chip_labels": {c: entry["label"] for c, entry in PLAN.chips.items()},
            "batch_sizes": sorted(
                {b for c in chips for b in PLAN.batch_sizes(wildcards.model, c)}
            ),
            "unavailable": PLAN.untimed if timed else PLAN.unavailable,
            "unavailable_precisions": PLAN.unavailable_precisions,
        }
        if timed:
            settings.update(
                ratios=config["tables"]["ratios"],
                noise_threshold=config["tables"]["noise_threshold"],
            )
        return settings

    return context


def model_title(wildcards):
    return PLAN.models[wildcards.model]["title"]


def reported(path, category, caption, **labels):
    """`path` marked for the report with report/<caption>.rst: one subcategory per model."""
    return report(
        path,
        caption=f"../report/{caption}.rst",
        category=category,
        subcategory=model_title,
        labels=lambda wildcards: {"model": model_title(wildcards), **labels},
    )


#: Every table a model gets: results/tables/{model}_{table}.{md,csv}, and an .html view of
#: each for the report (rule render_table).
TABLES = ("reproduction", "accuracy", "gate", "latency", "fps", "estimates")


def table_category(wildcards):
    return "Reproduction check" if wildcards.table == "reproduction" else "Tables"


def table_output(kind, ext, category="Tables"):
    form = {
        "md": "Markdown (table and notes)",
        "csv": "CSV",
        "provenance.json": "provenance (settings and full provenance)",
    }[ext]
    return reported(
        f"results/tables/{{model}}_{kind}.{ext}",
        category,
        "tables/download",
        table=kind,
        format=form,
    )


# Training helpers (rules/train.smk): which models train here, their checkpoints.
def train_settings(model):
    """The recipe settings of a built-in model (config train.<arch>)."""
    return config["train"][PLAN.models[model]["arch"]]


def trains(model):
    """Whether the workflow trains `model`: built in, no checkpoint, train.<arch>.enabled."""
    entry = PLAN.models[model]
    return (
        not entry.get("onnx")
        and not entry.get("checkpoint")
        and entry.get("arch") in config["train"]
        and bool(config["train"][entry["arch"]]["enabled"])
    )


TRAINED_MODELS = [m for m in EXPORTED_MODELS if trains(m)]
PROBED_MODELS = [m for m in EXPORTED_MODELS if PLAN.models[m].get("arch") == "simclr"]


def trained_models(arch):
    return [m for m in TRAINED_MODELS if PLAN.models[m]["arch"] == arch]


def trained_checkpoint(model):
    return f"results/models/{model}/trained.pth"


def weights_checkpoint(model):
    """The checkpoint a built-in model's weights come from: the configured one, the one trained
    here, or None (seeded random weights)."""
    given = PLAN.models[model].get("checkpoint")
    if given:
        return given
    return trained_checkpoint(model) if model in TRAINED_MODELS else None


def training_records(model):
    """Training records (first stage first) of a model trained here; [] otherwise."""
    if model not in TRAINED_MODELS:
        return []
    stages = (
        ["pretrained", "trained"]
        if PLAN.models[model]["arch"] == "simclrv2"
        else ["trained"]
    )
    return [f"results/models/{model}/{stage}.json" for stage in stages]


def training_batches(wildcards=None):
    """Every CIFAR-10 training batch the extract rule provides (data_batch_1 .. data_batch_5)."""
    return sorted(
        (
            str(path)
            for path in rules.extract_cifar10.output
            if Path(path).name.startswith("data_batch_")
        ),
        key=lambda path: int(path.rsplit("_", 1)[1]),
    )


def linear_probe_results():
    """results/{model}/linear_probe.json of every SimCLR-architecture model (after `select`)."""
    chosen = (config.get("select") or {}).get("models") or PROBED_MODELS
    return [f"results/{m}/linear_probe.json" for m in PROBED_MODELS if m in chosen]


def train_threads(wildcards):
    """All cores unless train.threads says otherwise (the checkpoint depends on the thread count)."""
    return config["train"].get("threads") or workflow.cores


def print_estimate():
    """Before a run: jobs and estimated minutes per stage (chipbench.estimate)."""
    from chipbench import estimate

    print(
        estimate.format_estimate(estimate.estimate(PLAN, TRAINED_MODELS)),
        file=sys.stderr,
    )
