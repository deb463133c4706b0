"""Time the compiled model at one batch size: `timing.trials` runs of the core timing
protocol, `timing.trial_pause_seconds` apart (one vendor-tool call per trial where the tool
times)."""

import time
from pathlib import Path

import numpy as np

from chipbench import backends, infer, timing
from chipbench.scripting import read_json, run_script, write_json


def main(smk):
    chip = smk.params.chip
    backend = backends.get(chip["backend"])
    runner = backend.open(smk.input.compiled, chip, smk.threads)
    batch_size = int(smk.wildcards.batch)
    inputs = np.load(smk.input.inputs, mmap_mode="r")
    batch = np.ascontiguousarray(inputs[:batch_size])  # real test images
    protocol = {k: smk.params.timing[k] for k in
                ("warmup_iterations", "min_iterations", "min_seconds", "max_iterations")}
    started_at = time.time()
    trials = timing.run_trials(lambda: runner.benchmark(batch, protocol),
                               smk.params.timing["trials"], smk.params.timing["trial_pause_seconds"])
    finished_at = time.time()
    latencies = np.concatenate(trials)
    record = infer.base_record(
        smk.wildcards.model, smk.wildcards.chip, smk.wildcards.precision,
        read_json(smk.input.weights), backend, runner,
        config=smk.config, onnx=Path(smk.input.weights).with_name("model.onnx"),
        threads=smk.threads, protocol=protocol,
    )
    record.update(timing.summarize(latencies, batch_size))
    record.update(runner.benchmark_extra)  # the last trial's
    record.update(
        batch_size=batch_size,
        trials=timing.summarize_trials(trials, batch_size),
        latencies_ms=[round(float(x), 6) for x in latencies],  # trial after trial
        timing={**protocol, "trials": len(trials),
                "trial_pause_seconds": smk.params.timing["trial_pause_seconds"]},
        started_at=started_at,
        finished_at=finished_at,
    )
    write_json(smk.output[0], record)


run_script(snakemake, main, cell=True)
