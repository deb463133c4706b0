"""Accuracy table of one model: rows chips, columns precisions, the report's figures beside."""

from chipbench import tables
from chipbench.config import RESOURCES
from chipbench.scripting import run_script


def main(smk):
    model = smk.params.model
    chips = smk.params.chips
    frame, notes = tables.accuracy_table(
        smk.wildcards.model,
        tables.read_records(smk.params.records),
        chips,
        sorted({p for c in chips for p in smk.params.chip_entries[c]["precisions"]}),
        smk.params.unavailable,
        tables.load_published(RESOURCES / "published.yaml"),
        {c: entry["label"] for c, entry in smk.params.chip_entries.items()},
    )
    tables.write_table(frame, smk.output.md, smk.output.csv, f"{model['title']} accuracy", notes)


run_script(snakemake, main)
