"""Train SimCLR (sthalles recipe) from scratch; write the sthalles-layout checkpoint and a record."""

import sys
from pathlib import Path

from chipbench import host, train, training_loop
from chipbench.scripting import run_script, write_json


def main(smk):
    threads = training_loop.setup_threads(smk.threads)
    device = train.resolve_device(smk.params.device)
    data = train.load_training_set([Path(p) for p in smk.input.batches], smk.params.seed)
    result = train.train_simclr(
        data, dict(smk.params.settings), Path(smk.output.checkpoint),
        seed=smk.params.seed, device=device, threads=threads, log=sys.stderr,
    )
    result.record.update(model=smk.wildcards.model, host=host.describe())
    write_json(smk.output.record, result.record)


run_script(snakemake, main)
