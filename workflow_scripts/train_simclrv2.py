"""Train SimCLRv2 (leftthomas recipe): stage 1 (rule pretrain_simclrv2, contrastive f + g) or
stage 2 (rule train_simclrv2_linear, Linear(2048, 10) on the frozen encoder)."""

import sys
from pathlib import Path

from chipbench import host, train, training_loop
from chipbench.scripting import run_script, write_json


def main(smk):
    threads = training_loop.setup_threads(smk.threads)
    device = train.resolve_device(smk.params.device)
    entry = smk.params.model
    data = train.load_training_set([Path(p) for p in smk.input.batches], smk.params.seed)
    common = dict(mean=entry["mean"], std=entry["std"], seed=smk.params.seed, device=device,
                  threads=threads, log=sys.stderr)
    if smk.rule == "pretrain_simclrv2":
        result = train.pretrain_simclrv2(
            data, dict(smk.params.settings), Path(smk.output.checkpoint), **common)
    else:
        result = train.train_simclrv2_linear(
            data, dict(smk.params.settings), Path(smk.input.pretrained),
            Path(smk.output.checkpoint), **common)
    result.record.update(model=smk.wildcards.model, host=host.describe())
    write_json(smk.output.record, result.record)


run_script(snakemake, main)
