"""Accuracy table of one model: rows chips, columns precisions, the report's figures beside."""

from chipbench import tables
from chipbench.config import RESOURCES
from chipbench.scripting import run_script


def main(smk):
    model = smk.params.model
    chips = smk.params.chips
    labels = {c: entry["label"] for c, entry in smk.params.chip_entries.items()}
    published = tables.load_published(RESOURCES / "published.yaml")
    records, merge_notes = tables.merge_records(
        tables.read_records(smk.params.records, smk.input.imported), tables.accuracy_key
    )
    gates = tables.read_records(smk.params.gates, smk.input.imported_gates)
    tables.attach_gates(records, gates)  # each record gets its own source's gate
    frame, notes = tables.accuracy_table(
        smk.wildcards.model,
        records,
        chips,
        [p for p in tables.PRECISION_ORDER
         if any(p in smk.params.chip_entries[c]["precisions"] for c in chips)],
        smk.params.unavailable,
        published,
        labels,
    )
    tables.write_table(frame, smk.output.md, smk.output.csv, f"{model['title']} accuracy",
                       notes + merge_notes)
    frame, notes = tables.latency_table(smk.wildcards.model, records, published, labels)
    tables.write_table(
        frame, smk.output.latency_md, smk.output.latency_csv,
        f"{model['title']} per-image time (ms)", notes + merge_notes,
    )
    frame, notes = tables.gate_table(records, labels)
    if not gates:
        notes.append("no accuracy gate: the reference chip (config gate.reference_chip) did not run")
    tables.write_table(
        frame, smk.output.gate_md, smk.output.gate_csv, f"{model['title']} accuracy gate",
        notes + merge_notes,
    )


run_script(snakemake, main)
