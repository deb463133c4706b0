"""Compiler latency estimates of the compiled artefacts, beside the report's figures."""

from pathlib import Path

from chipbench.report import context, published, records, render, throughput
from chipbench.scripting import run_script


def main(smk):
    ctx = context.TableContext(
        **smk.params.context,
        published=published.load_published(smk.input.published).get(smk.wildcards.model) or {},
        details_file=Path(smk.output.provenance).name,
    )
    table = throughput.estimates_table(ctx, records.compiled_manifests(smk.input.compiled))
    render.write_table(table, f"{ctx.title} compiler latency estimates", smk.output.md,
                       smk.output.csv, smk.output.provenance)


run_script(snakemake, main)
