"""Run the compiled model over the test set (or the first `accuracy_images` of it) and score it."""

import time
from pathlib import Path

import numpy as np

from chipbench import backends, infer
from chipbench.scripting import read_json, run_script, write_json


def main(smk):
    chip = smk.params.chip
    backend = backends.get(chip["backend"])
    runner = backend.open(smk.input.compiled, chip, smk.threads)
    inputs = np.load(smk.input.inputs, mmap_mode="r")
    labels = np.load(smk.input.labels)
    images = smk.params.images or len(labels)
    inputs_per_image = len(inputs) // len(labels)  # 2 for SimCLR's two views per image
    inputs, labels = inputs[:images * inputs_per_image], labels[:images]
    input_files = smk.input.input_files if smk.params.images is None else None
    started = time.perf_counter()
    outputs = runner.run_all(inputs, smk.params.batch_size, input_files or None)
    inferred = time.perf_counter()
    metric = smk.params.model["metric"]
    scored = infer.score(
        metric, outputs, labels, smk.params.metrics.get(metric, {}),
        smk.params.seed,
    )
    scored_at = time.perf_counter()
    record = infer.base_record(
        smk.wildcards.model, smk.wildcards.chip, smk.wildcards.precision,
        read_json(smk.input.weights), backend, runner,
        config=smk.config, onnx=Path(smk.input.weights).with_name("model.onnx"),
        threads=smk.threads,
    )
    record.update(scored, batch_size=smk.params.batch_size, source=runner.result_source,
                  images_scored=int(images), subset=smk.params.images is not None)
    crosscheck = runner.crosscheck()
    if crosscheck is not None:
        record["crosscheck"] = crosscheck
    record["per_image_ms"] = {
        "preprocess": read_json(smk.input.preprocess)["per_input_ms"],
        "inference": 1000 * (inferred - started) / len(inputs),
        "postprocess": 1000 * (scored_at - inferred) / len(inputs),
    }
    np.save(smk.output.outputs, outputs)
    write_json(smk.output.record, record)


run_script(snakemake, main, cell=True)
