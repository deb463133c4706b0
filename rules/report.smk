# Result records -> accuracy and FPS tables shaped like the reports, the reproduction check,
# and the figures; every table and figure is marked for `snakemake --report results/report.html`
# with a caption in report/ (the figures' captions include their provenance).
# Inputs are this run's (possibly selected) results plus results copied from other hosts
# (results/imported/<label>/, the layout of results/); the tables are built from every result
# of the full matrix found on disk, so a targeted rerun never shrinks them.

rule render_table:
    input:
        md="results/tables/{model}_{table}.md",
        csv="results/tables/{model}_{table}.csv",
    output:
        reported("results/tables/{model}_{table}.html", table_category, "tables/view",
                 table="{table}", format="HTML (view)"),
    params:
        model=model_entry,
    wildcard_constraints:
        table=alternatives(TABLES),
    log:
        "logs/render_table/{model}_{table}.log",
    conda:
        "../envs/main.yaml"
    script:
        "../workflow_scripts/render_table.py"


rule tabulate_accuracy:
    input:
        lambda wc: accuracy_results(wc.model),
        lambda wc: gate_results(wc.model),
        imported=imported_results("accuracy"),
        imported_gates=imported_results("gate"),
    output:
        md=table_output("accuracy", "md"),
        csv=table_output("accuracy", "csv"),
        gate_md=table_output("gate", "md"),
        gate_csv=table_output("gate", "csv"),
        latency_md=table_output("latency", "md"),
        latency_csv=table_output("latency", "csv"),
    params:
        records=lambda wc: accuracy_results(wc.model, selected=False),
        gates=lambda wc: gate_results(wc.model, selected=False),
        model=model_entry,
        chips=lambda wc: PLAN.chips_of(wc.model),
        chip_entries=PLAN.chips,
        unavailable=PLAN.unavailable,
        unavailable_precisions=PLAN.unavailable_precisions,
    log:
        "logs/tabulate_accuracy/{model}.log",
    conda:
        "../envs/main.yaml"
    script:
        "../workflow_scripts/tabulate_accuracy.py"


rule tabulate_fps:
    input:
        lambda wc: perf_results(wc.model),
        imported=imported_results("perf"),
    output:
        md=table_output("fps", "md"),
        csv=table_output("fps", "csv"),
    params:
        records=lambda wc: perf_results(wc.model, selected=False),
        model=model_entry,
        chips=lambda wc: PLAN.chips_of(wc.model),
        chip_entries=PLAN.chips,
        unavailable=PLAN.untimed,
        unavailable_precisions=PLAN.unavailable_precisions,
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
        md=table_output("estimates", "md"),
        csv=table_output("estimates", "csv"),
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


rule tabulate_reproduction:
    input:
        lambda wc: accuracy_results(wc.model),
        lambda wc: perf_results(wc.model),
        lambda wc: compiled_results(wc.model),
        imported_accuracy=imported_results("accuracy"),
        imported_perf=imported_results("perf"),
    output:
        md=table_output("reproduction", "md", category="Reproduction check"),
        csv=table_output("reproduction", "csv", category="Reproduction check"),
    params:
        accuracy=lambda wc: accuracy_results(wc.model, selected=False),
        perf=lambda wc: perf_results(wc.model, selected=False),
        compiled=lambda wc: compiled_results(wc.model, selected=False),
        model=model_entry,
        matrix=lambda wc: {
            c: {
                "precisions": PLAN.precisions(c),
                "batch_sizes": PLAN.batch_sizes(wc.model, c),
                "accuracy_batch_size": PLAN.accuracy_batch_size(wc.model, c),
            }
            for c in PLAN.chips_of(wc.model)
        },
        chip_entries=PLAN.chips,
        unavailable=PLAN.unavailable,
        unavailable_precisions=PLAN.unavailable_precisions,
        untimed=PLAN.untimed,
    log:
        "logs/tabulate_reproduction/{model}.log",
    conda:
        "../envs/main.yaml"
    script:
        "../workflow_scripts/tabulate_reproduction.py"


rule plot_fps:
    input:
        lambda wc: perf_results(wc.model),
        imported=imported_results("perf"),
    output:
        png=reported("results/plots/{model}_fps.png", "Figures", "plots/fps",
                     figure="fps by batch size"),
        caption="results/plots/{model}_fps.rst",
    params:
        records=lambda wc: perf_results(wc.model, selected=False),
        model=model_entry,
        chip_entries=PLAN.chips,
    log:
        "logs/plot_fps/{model}.log",
    conda:
        "../envs/main.yaml"
    script:
        "../workflow_scripts/plot_fps.py"


rule plot_latency:
    input:
        lambda wc: perf_results(wc.model),
        imported=imported_results("perf"),
    output:
        png=reported("results/plots/{model}_latency.png", "Figures", "plots/latency",
                     figure="latency distributions"),
        caption="results/plots/{model}_latency.rst",
    params:
        records=lambda wc: perf_results(wc.model, selected=False),
        model=model_entry,
        chip_entries=PLAN.chips,
    log:
        "logs/plot_latency/{model}.log",
    conda:
        "../envs/main.yaml"
    script:
        "../workflow_scripts/plot_latency.py"


rule plot_accuracy:
    input:
        lambda wc: accuracy_results(wc.model),
        lambda wc: gate_results(wc.model),
        imported=imported_results("accuracy"),
        imported_gates=imported_results("gate"),
    output:
        png=reported("results/plots/{model}_accuracy.png", "Figures", "plots/accuracy",
                     figure="accuracy and gate"),
        caption="results/plots/{model}_accuracy.rst",
    params:
        records=lambda wc: accuracy_results(wc.model, selected=False),
        gates=lambda wc: gate_results(wc.model, selected=False),
        model=model_entry,
        chip_entries=PLAN.chips,
    log:
        "logs/plot_accuracy/{model}.log",
    conda:
        "../envs/main.yaml"
    script:
        "../workflow_scripts/plot_accuracy.py"
