"""Compare one accuracy result with the reference run: agreement of outputs, pass or fail."""

import numpy as np

from chipbench import gate, provenance
from chipbench.scripting import read_json, run_script, write_json


def main(smk):
    record = read_json(smk.input.record)
    reference = read_json(smk.input.reference_record)
    verdict = gate.verdict(
        record["accuracy"], reference["accuracy"], smk.params.gate["min_relative_accuracy"]
    )
    verdict.update(reference_chip=reference["chip"], reference_precision=reference["precision"])
    agreement = gate.agreement(
        np.load(smk.input.reference_outputs), np.load(smk.input.outputs), record["metric"]
    )
    write_json(smk.output[0], {
        "model": record["model"], "chip": record["chip"], "precision": record["precision"],
        "gate": verdict, "agreement": agreement, "status": "ok",
        # The gate's own config (min_relative_accuracy) changes this record only.
        "provenance": provenance.collect(config=smk.config),
    })


run_script(snakemake, main, cell=True)
