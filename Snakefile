# Benchmark image-model inference across chips: CIFAR-10 -> preprocessing -> PyTorch ->
# ONNX -> compile per chip x precision x batch size -> accuracy and throughput -> tables.
# See README.md; the config keys are documented in schemas/config.schema.yaml.
from snakemake.utils import min_version

min_version("9.0")


# Defaults next to this file, so --directory elsewhere still merges --configfile over them.
configfile: f"{workflow.basedir}/config.yaml"


# Front page of `snakemake --report results/report.html` (captions of every table and figure
# are in report/ too).
report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/export.smk"
include: "rules/compile.smk"
include: "rules/infer.smk"
include: "rules/report.smk"


onstart:
    print_estimate()
    refuse_impossible_targets()


onsuccess:
    report_gate_failures()
    if report_failed_cells():
        sys.exit(
            "error: some cells of the matrix failed (listed above): fix their cause, "
            "then rerun to compute them again"
        )


onerror:
    report_failed_cells()


rule all:
    default_target: True
    input:
        accuracy_results(),
        perf_results(),
        compiled_results(),
        gate_results(),
        linear_probe_results(),
        table_files(),
