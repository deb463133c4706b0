"""Linear probe of a SimCLR encoder: logistic regression on frozen features, top-1 on the test set."""

import sys
from pathlib import Path

from chipbench import cifar, host, linear_probe, models, provenance, train, training_loop
from chipbench.scripting import read_json, run_script, write_json


def main(smk):
    threads = training_loop.setup_threads(smk.threads)
    device = train.resolve_device(smk.params.device)
    settings = dict(smk.params.settings)
    given = smk.input.checkpoint  # a path, or an empty list for seeded random weights
    checkpoint = Path(given if isinstance(given, str) else given[0]) if len(given) else None
    data = train.load_training_set([Path(p) for p in smk.input.batches], smk.params.seed)
    data = data.take(settings.get("images"), "train.linear_probe.images")
    test_images, test_labels = cifar.load_batch(smk.input.test)
    record = linear_probe.run_probe(
        smk.params.model, checkpoint, data.images, data.labels, test_images, test_labels,
        settings, seed=smk.params.seed, device=device, log=sys.stderr,
    )
    records = [read_json(path) for path in smk.input.records]
    if records:
        weights = train.trained_weights_info(checkpoint, records)
    else:
        weights = models.weights_info(checkpoint, smk.params.seed)
    record.update(model=smk.wildcards.model, weights=weights, threads=threads,
                  data=dict(data.info, test_images=int(len(test_labels))), host=host.describe(),
                  provenance=provenance.collect(config=smk.config, threads=threads))
    write_json(smk.output[0], record)


run_script(snakemake, main)
