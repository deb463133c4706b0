"""FPS table of one model in the SimCLR report's shape, the report's figures beside ours."""

from chipbench import tables
from chipbench.config import RESOURCES
from chipbench.scripting import run_script


def main(smk):
    model = smk.params.model
    chips = smk.params.chips
    records, merge_notes = tables.merge_records(
        tables.read_records(smk.params.records, smk.input.imported), tables.perf_key
    )
    frame, notes = tables.fps_table(
        smk.wildcards.model,
        records,
        smk.params.batch_sizes,
        [(c, p) for c in chips for p in smk.params.chip_entries[c]["precisions"]],
        smk.params.unavailable,
        tables.load_published(RESOURCES / "published.yaml"),
        smk.params.ratios,
        {c: entry["label"] for c, entry in smk.params.chip_entries.items()},
        model["title"],
        smk.params.cv_threshold,
    )
    tables.write_table(frame, smk.output.md, smk.output.csv, f"{model['title']} throughput (fps)",
                       notes + merge_notes)


run_script(snakemake, main)
