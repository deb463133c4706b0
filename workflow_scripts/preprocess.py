"""Model input from a CIFAR-10 batch file, preprocessed the way the model expects."""

import numpy as np

from chipbench import augment, cifar, preprocess
from chipbench.scripting import run_script


def main(smk):
    images, labels = cifar.load_batch(smk.input[0])
    limit = smk.params.get("limit")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    model = smk.params.model
    if model["preprocess"] == "simclr_views":
        inputs = augment.simclr_views(images, smk.params.seed, progress=True)
    else:
        inputs = preprocess.normalize(images, model["mean"], model["std"])
    np.save(smk.output.inputs, inputs)
    np.save(smk.output.labels, labels)


run_script(snakemake, main)
