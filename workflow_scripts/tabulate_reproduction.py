"""Every figure the report publishes beside ours: difference and the known reason."""

from pathlib import Path

from chipbench.report import context, published, records, render, reproduction
from chipbench.scripting import run_script


def main(smk):
    accuracy = records.load(smk.input.accuracy, "accuracy")
    perf = records.load(smk.input.perf, "perf")
    estimates = {
        (m["chip"], m["precision"], int(m["batch_size"])): m
        for m in records.compiled_manifests(smk.input.compiled)
        if m.get("batch_size") is not None
    }
    ctx = context.TableContext(
        **smk.params.context,
        published=published.load_published(smk.input.published).get(smk.wildcards.model) or {},
        details_file=Path(smk.output.provenance).name,
    )
    table = reproduction.reproduction_table(
        ctx, smk.params.matrix, accuracy.records, perf.records,
        failed=accuracy.failed + perf.failed, untimed=smk.params.untimed, estimates=estimates,
    )
    render.write_table(table, f"{ctx.title}: reproduction of the report's figures", smk.output.md,
                       smk.output.csv, smk.output.provenance, accuracy.notes + perf.notes)


run_script(snakemake, main)
