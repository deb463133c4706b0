"""Accuracy, accuracy-gate and per-image-time tables of one model, the report's figures beside."""

from dataclasses import replace
from pathlib import Path

from chipbench.report import accuracy, context, published, records, render
from chipbench.scripting import run_script


def main(smk):
    loaded = records.load(smk.input.records, "accuracy", gates=smk.input.gates)
    ctx = context.TableContext(
        **smk.params.context,
        published=published.load_published(smk.input.published).get(smk.wildcards.model) or {},
    )

    def write(prefix, name, build):
        md, csv, provenance = (getattr(smk.output, prefix + kind) for kind in ("md", "csv", "provenance"))
        table = build(replace(ctx, details_file=Path(provenance).name))
        render.write_table(table, f"{ctx.title} {name}", md, csv, provenance, loaded.notes)

    write("", "accuracy", lambda c: accuracy.accuracy_table(c, loaded.records, loaded.failed))
    write("gate_", "accuracy gate", lambda c: accuracy.gate_table(c, loaded.records, loaded.failed))
    write("latency_", "per-image time (ms)", lambda c: accuracy.latency_table(c, loaded.records))


run_script(snakemake, main)
