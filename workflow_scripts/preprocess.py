"""Model input from a CIFAR-10 batch file, preprocessed the way the model expects."""

import time

import numpy as np

from chipbench import augment, cifar, preprocess
from chipbench.scripting import run_script, write_json


def main(smk):
    images, labels = cifar.load_batch(smk.input[0])
    limit = smk.params.get("limit")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    model = smk.params.model
    started = time.perf_counter()
    if model["preprocess"] == "simclr_views":
        inputs = augment.simclr_views(images, smk.params.seed, progress=True)
    else:
        inputs = preprocess.normalize(images, model["mean"], model["std"])
    elapsed_ms = 1000 * (time.perf_counter() - started)
    np.save(smk.output.inputs, inputs)
    np.save(smk.output.labels, labels)
    if "timing" in smk.output.keys():
        write_json(smk.output.timing, {"n_inputs": len(inputs), "total_ms": elapsed_ms,
                                       "per_input_ms": elapsed_ms / len(inputs)})


run_script(snakemake, main)
