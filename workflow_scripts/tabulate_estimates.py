"""Compiler latency estimates of the compiled artefacts, beside the report's figures."""

from pathlib import Path

from chipbench import tables
from chipbench.backends.base import COMPILED_MANIFEST
from chipbench.config import RESOURCES
from chipbench.scripting import read_json, run_script


def main(smk):
    manifests = []
    for folder in map(Path, smk.params.compiled):
        if (folder / COMPILED_MANIFEST).is_file():
            chip, precision = folder.parts[-3], folder.parts[-2]
            manifests.append({"chip": chip, "precision": precision,
                              **read_json(folder / COMPILED_MANIFEST)})
    frame, notes = tables.estimates_table(
        smk.wildcards.model, manifests, tables.load_published(RESOURCES / "published.yaml"),
        {c: entry["label"] for c, entry in smk.params.chip_entries.items()},
    )
    if not manifests:
        notes.append("no compiled artefact of this model carries a compiler estimate")
    tables.write_table(frame, smk.output.md, smk.output.csv,
                       f"{smk.params.model['title']} compiler latency estimates", notes)


run_script(snakemake, main)
