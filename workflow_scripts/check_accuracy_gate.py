"""Compare one accuracy result with the reference run: agreement of outputs, pass or fail."""

import numpy as np

from chipbench import gate, infer, provenance
from chipbench.scripting import read_json, run_script, write_json


def main(smk):
    record = read_json(smk.input.record)
    reference = read_json(smk.input.reference_record)
    reference_outputs = np.load(smk.input.reference_outputs)
    if record.get("subset"):  # scored on the first N images: so is the reference, here
        rows = len(reference_outputs) * record["images_scored"] // reference["n_images"]
        reference_outputs = reference_outputs[:rows]
        metric = record["metric"]
        reference = dict(reference, **infer.score(
            metric, reference_outputs, np.load(smk.input.labels)[:record["images_scored"]],
            smk.params.metrics.get(metric, {}), smk.params.seed))
    verdict = gate.verdict(
        record["accuracy"], reference["accuracy"], smk.params.gate["min_relative_accuracy"]
    )
    verdict.update(reference_chip=reference["chip"], reference_precision=reference["precision"])
    agreement = gate.agreement(reference_outputs, np.load(smk.input.outputs), record["metric"])
    write_json(smk.output[0], {
        "model": record["model"], "chip": record["chip"], "precision": record["precision"],
        "gate": verdict, "agreement": agreement, "images_scored": reference["n_images"],
        "status": "ok",
        # The gate's own config (min_relative_accuracy) changes this record only.
        "provenance": provenance.collect(config=smk.config),
    })


run_script(snakemake, main, cell=True)
