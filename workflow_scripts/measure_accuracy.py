"""Run the compiled model over the whole test set and score it."""

import numpy as np

from chipbench import backends, infer
from chipbench.scripting import read_json, run_script, write_json


def main(smk):
    chip = smk.params.chip
    backend = backends.get(chip["backend"])
    runner = backend.open(smk.input.compiled, chip, smk.threads)
    inputs = np.load(smk.input.inputs, mmap_mode="r")
    outputs = runner.run_all(inputs, smk.params.batch_size)
    model = smk.params.model
    metric = model["metric"]
    scored = infer.score(
        metric, outputs, np.load(smk.input.labels), smk.params.metrics.get(metric, {}),
        smk.params.seed,
    )
    record = infer.base_record(
        smk.wildcards.model, smk.wildcards.chip, smk.wildcards.precision,
        read_json(smk.input.weights), backend, runner,
    )
    record.update(scored, batch_size=smk.params.batch_size)
    np.save(smk.output.outputs, outputs)
    write_json(smk.output.record, record)


run_script(snakemake, main)
