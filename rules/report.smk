# Result records -> accuracy and FPS tables shaped like the reports.
# Inputs are this run's (possibly selected) results; the tables are built from every result
# of the full matrix found on disk, so a targeted rerun never shrinks them.


rule tabulate_accuracy:
    input:
        lambda wc: accuracy_results(wc.model),
        lambda wc: gate_results(wc.model),
    output:
        md="results/tables/{model}_accuracy.md",
        csv="results/tables/{model}_accuracy.csv",
        gate_md="results/tables/{model}_gate.md",
        gate_csv="results/tables/{model}_gate.csv",
        latency_md="results/tables/{model}_latency.md",
        latency_csv="results/tables/{model}_latency.csv",
    params:
        records=lambda wc: accuracy_results(wc.model, selected=False),
        gates=lambda wc: gate_results(wc.model, selected=False),
        model=model_entry,
        chips=lambda wc: PLAN.chips_of(wc.model),
        chip_entries=PLAN.chips,
        unavailable=PLAN.unavailable,
    log:
        "logs/tabulate_accuracy/{model}.log",
    conda:
        "../envs/main.yaml"
    script:
        "../workflow_scripts/tabulate_accuracy.py"


rule tabulate_fps:
    input:
        lambda wc: perf_results(wc.model),
    output:
        md="results/tables/{model}_fps.md",
        csv="results/tables/{model}_fps.csv",
    params:
        records=lambda wc: perf_results(wc.model, selected=False),
        model=model_entry,
        chips=lambda wc: PLAN.chips_of(wc.model),
        chip_entries=PLAN.chips,
        unavailable=PLAN.untimed,
        batch_sizes=lambda wc: sorted(
            {b for c in PLAN.chips_of(wc.model) for b in PLAN.batch_sizes(wc.model, c)}
        ),
        ratios=config["tables"]["ratios"],
        cv_threshold=config["timing"]["cv_threshold"],
    log:
        "logs/tabulate_fps/{model}.log",
    conda:
        "../envs/main.yaml"
    script:
        "../workflow_scripts/tabulate_fps.py"


rule tabulate_estimates:
    input:
        lambda wc: compiled_results(wc.model),
    output:
        md="results/tables/{model}_estimates.md",
        csv="results/tables/{model}_estimates.csv",
    params:
        compiled=lambda wc: compiled_results(wc.model, selected=False),
        model=model_entry,
        chip_entries=PLAN.chips,
    log:
        "logs/tabulate_estimates/{model}.log",
    conda:
        "../envs/main.yaml"
    script:
        "../workflow_scripts/tabulate_estimates.py"
