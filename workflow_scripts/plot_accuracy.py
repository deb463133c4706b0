"""Accuracy per chip and precision, the report's figures beside, the accuracy gate drawn."""

from chipbench import plots, tables
from chipbench.config import RESOURCES
from chipbench.scripting import run_script


def main(smk):
    records, notes = tables.merge_records(
        tables.read_records(smk.params.records, smk.input.imported), tables.accuracy_key
    )
    tables.attach_gates(records, tables.read_records(smk.params.gates, smk.input.imported_gates))
    plots.write_figure(
        "accuracy", smk.params.model["title"], records,
        tables.load_published(RESOURCES / "published.yaml").get(smk.wildcards.model) or {},
        {c: entry["label"] for c, entry in smk.params.chip_entries.items()},
        smk.output.png, smk.output.caption, notes,
    )


run_script(snakemake, main)
