"""Every figure the report publishes beside ours: difference and the known reason."""

from pathlib import Path

from chipbench import reproduction, tables
from chipbench.backends.base import COMPILED_MANIFEST
from chipbench.config import RESOURCES
from chipbench.scripting import read_json, run_script


def main(smk):
    accuracy, accuracy_notes = tables.merge_records(
        tables.read_records(smk.params.accuracy, smk.input.imported_accuracy), tables.accuracy_key
    )
    perf, perf_notes = tables.merge_records(
        tables.read_records(smk.params.perf, smk.input.imported_perf), tables.perf_key
    )
    estimates = {}
    for folder in map(Path, smk.params.compiled):
        if (folder / COMPILED_MANIFEST).is_file():
            manifest = read_json(folder / COMPILED_MANIFEST)
            if manifest.get("batch_size") is not None:
                estimates[(folder.parts[-3], folder.parts[-2], int(manifest["batch_size"]))] = manifest
    frame, notes = reproduction.reproduction_table(
        smk.wildcards.model, accuracy, perf,
        tables.load_published(RESOURCES / "published.yaml"),
        smk.params.matrix, smk.params.unavailable, smk.params.untimed,
        {c: entry["label"] for c, entry in smk.params.chip_entries.items()},
        estimates,
    )
    tables.write_table(
        frame, smk.output.md, smk.output.csv,
        f"{smk.params.model['title']}: reproduction of the report's figures",
        notes + accuracy_notes + perf_notes,
    )


run_script(snakemake, main)
