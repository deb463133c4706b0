"""Compare one accuracy result with the reference run: agreement of outputs, pass or fail."""

import numpy as np

from chipbench import gate, infer, provenance
from chipbench.scripting import read_json, run_script, write_json


def main(smk):
    record = read_json(smk.input.record)
    reference = read_json(smk.input.reference_record)
    # each run scored the first N test images (accuracy_images): compare on the shorter's
    n_images = min(record["n_images"], reference["n_images"])
    labels = np.load(smk.input.labels)
    metrics, seed = smk.params.metrics, smk.params.seed
    record, outputs = infer.on_first_images(record, np.load(smk.input.outputs), n_images,
                                            labels, metrics, seed)
    reference, reference_outputs = infer.on_first_images(
        reference, np.load(smk.input.reference_outputs), n_images, labels, metrics, seed)
    verdict = gate.verdict(
        record["accuracy"], reference["accuracy"], smk.params.gate["min_relative_accuracy"]
    )
    verdict.update(reference_chip=reference["chip"], reference_precision=reference["precision"])
    agreement = gate.agreement(reference_outputs, outputs, record["metric"])
    write_json(smk.output[0], {
        "model": record["model"], "chip": record["chip"], "precision": record["precision"],
        "gate": verdict, "agreement": agreement, "images_scored": n_images,
        "status": "ok",
        # The gate's own config (min_relative_accuracy) changes this record only.
        "provenance": provenance.collect(config=smk.config),
    })


run_script(snakemake, main, cell=True)
