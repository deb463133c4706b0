"""One figure of one model (plot_fps, plot_latency, plot_accuracy), the report's figures beside."""

from chipbench.report import plots, published, records
from chipbench.scripting import run_script


def main(smk):
    kind = smk.rule.removeprefix("plot_")
    loaded = records.load(smk.input.records, "accuracy" if kind == "accuracy" else "perf",
                          gates=smk.input.get("gates", ()))
    context = smk.params.context
    plots.write_figure(
        kind, context["title"], loaded.records,
        published.load_published(smk.input.published).get(smk.wildcards.model) or {},
        context["chip_labels"], smk.output.png, smk.output.caption, loaded.notes,
    )


run_script(snakemake, main)
