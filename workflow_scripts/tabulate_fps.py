"""FPS table of one model in the SimCLR report's shape, the report's figures beside ours."""

from pathlib import Path

from chipbench.report import context, published, records, render, throughput
from chipbench.scripting import run_script


def main(smk):
    loaded = records.load(smk.input.records, "perf")
    ctx = context.TableContext(
        **smk.params.context,
        published=published.load_published(smk.input.published).get(smk.wildcards.model) or {},
        details_file=Path(smk.output.provenance).name,
    )
    table = throughput.fps_table(ctx, loaded.records, loaded.failed)
    render.write_table(table, f"{ctx.title} throughput (fps)", smk.output.md, smk.output.csv,
                       smk.output.provenance, loaded.notes)


run_script(snakemake, main)
