"""Latency distribution of every timed iteration per batch size, per chip and precision."""

from chipbench import plots, tables
from chipbench.config import RESOURCES
from chipbench.scripting import run_script


def main(smk):
    records, notes = tables.merge_records(
        tables.read_records(smk.params.records, smk.input.imported), tables.perf_key
    )
    plots.write_figure(
        "latency", smk.params.model["title"], records,
        tables.load_published(RESOURCES / "published.yaml").get(smk.wildcards.model) or {},
        {c: entry["label"] for c, entry in smk.params.chip_entries.items()},
        smk.output.png, smk.output.caption, notes,
    )


run_script(snakemake, main)
