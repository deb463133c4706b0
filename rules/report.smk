# Result records -> accuracy and FPS tables shaped like the reports, the reproduction check,
# and the figures; every table and figure is marked for `snakemake --report results/report.html`
# with a caption in report/ (the figures' captions include their provenance).
# Every file a job reads is an input: resources/published.yaml, this run's records, the records
# of the full matrix already on disk (so a targeted rerun never shrinks a table) and results
# copied from other hosts (results/imported/<label>/, the layout of results/).


rule render_table:
    input:
        csv="results/tables/{model}_{table}.csv",
        provenance="results/tables/{model}_{table}.provenance.json",
    output:
        reported(
            "results/tables/{model}_{table}.html",
            table_category,
            "tables/view",
            table="{table}",
            format="HTML (view)",
        ),
    log:
        "logs/render_table/{model}_{table}.log",
    wildcard_constraints:
        table=alternatives(TABLES),
    conda:
        "../envs/main.yaml"
    params:
        model=model_entry,
    script:
        "../workflow_scripts/render_table.py"


rule tabulate_accuracy:
    input:
        published=PUBLISHED,
        records=table_inputs("accuracy"),
        gates=table_inputs("gate"),
    output:
        md=table_output("accuracy", "md"),
        csv=table_output("accuracy", "csv"),
        provenance=table_output("accuracy", "provenance.json"),
        gate_md=table_output("gate", "md"),
        gate_csv=table_output("gate", "csv"),
        gate_provenance=table_output("gate", "provenance.json"),
        latency_md=table_output("latency", "md"),
        latency_csv=table_output("latency", "csv"),
        latency_provenance=table_output("latency", "provenance.json"),
    log:
        "logs/tabulate_accuracy/{model}.log",
    conda:
        "../envs/main.yaml"
    params:
        context=table_context(timed=False),
    script:
        "../workflow_scripts/tabulate_accuracy.py"


rule tabulate_fps:
    input:
        published=PUBLISHED,
        records=table_inputs("perf"),
    output:
        md=table_output("fps", "md"),
        csv=table_output("fps", "csv"),
        provenance=table_output("fps", "provenance.json"),
    log:
        "logs/tabulate_fps/{model}.log",
    conda:
        "../envs/main.yaml"
    params:
        context=table_context(timed=True),
    script:
        "../workflow_scripts/tabulate_fps.py"


rule tabulate_estimates:
    input:
        published=PUBLISHED,
        compiled=table_inputs("compiled"),
    output:
        md=table_output("estimates", "md"),
        csv=table_output("estimates", "csv"),
        provenance=table_output("estimates", "provenance.json"),
    log:
        "logs/tabulate_estimates/{model}.log",
    conda:
        "../envs/main.yaml"
    params:
        context=table_context(timed=False),
    script:
        "../workflow_scripts/tabulate_estimates.py"


rule tabulate_reproduction:
    input:
        published=PUBLISHED,
        accuracy=table_inputs("accuracy"),
        perf=table_inputs("perf"),
        compiled=table_inputs("compiled"),
    output:
        md=table_output("reproduction", "md", category="Reproduction check"),
        csv=table_output("reproduction", "csv", category="Reproduction check"),
        provenance=table_output(
            "reproduction", "provenance.json", category="Reproduction check"
        ),
    log:
        "logs/tabulate_reproduction/{model}.log",
    conda:
        "../envs/main.yaml"
    params:
        context=table_context(timed=False),
        matrix=lambda wc: {
            c: {
                "precisions": PLAN.precisions(c),
                "batch_sizes": PLAN.batch_sizes(wc.model, c),
                "accuracy_batch_size": PLAN.accuracy_batch_size(wc.model, c),
            }
            for c in PLAN.chips_of(wc.model)
        },
        untimed=PLAN.untimed,
    script:
        "../workflow_scripts/tabulate_reproduction.py"


rule plot_fps:
    input:
        published=PUBLISHED,
        records=table_inputs("perf"),
    output:
        png=reported(
            "results/plots/{model}_fps.png",
            "Figures",
            "plots/fps",
            figure="fps by batch size",
        ),
        caption="results/plots/{model}_fps.rst",
    log:
        "logs/plot_fps/{model}.log",
    conda:
        "../envs/main.yaml"
    params:
        context=table_context(timed=False),
    script:
        "../workflow_scripts/plot_figure.py"


rule plot_latency:
    input:
        published=PUBLISHED,
        records=table_inputs("perf"),
    output:
        png=reported(
            "results/plots/{model}_latency.png",
            "Figures",
            "plots/latency",
            figure="latency distributions",
        ),
        caption="results/plots/{model}_latency.rst",
    log:
        "logs/plot_latency/{model}.log",
    conda:
        "../envs/main.yaml"
    params:
        context=table_context(timed=False),
    script:
        "../workflow_scripts/plot_figure.py"


rule plot_accuracy:
    input:
        published=PUBLISHED,
        records=table_inputs("accuracy"),
        gates=table_inputs("gate"),
    output:
        png=reported(
            "results/plots/{model}_accuracy.png",
            "Figures",
            "plots/accuracy",
            figure="accuracy and gate",
        ),
        caption="results/plots/{model}_accuracy.rst",
    log:
        "logs/plot_accuracy/{model}.log",
    conda:
        "../envs/main.yaml"
    params:
        context=table_context(timed=False),
    script:
        "../workflow_scripts/plot_figure.py"
