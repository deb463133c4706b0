"""Throughput the workflow reports vs a bare InferenceSession.run loop, in one run.

Same model, batch size, threads and inputs; the two loops alternate in rounds so drift of
the machine affects both alike. Prints both throughputs and their ratio (target ≥ 0.97).
Optionally times a no-op `snakemake` rerun in a finished working directory (target ≤ 5 s).

    .venv/bin/python benchmarks/runner_overhead.py [--model simclr] [--batch 8] [--threads 2]
        [--rounds 5] [--seconds 3] [--workdir DIR_OF_A_FINISHED_RUN --configfile FILE ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chipbench import export, models, timing  # noqa: E402
from chipbench.backends.onnxruntime import BACKEND  # noqa: E402


def bare_loop(session, batch, seconds: float) -> float:
    """fps of the simplest loop one could write: session.run until `seconds` have passed."""
    feed = {"input": batch}
    latencies = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        session.run(None, feed)
        latencies.append(time.perf_counter() - start)
    return len(batch) / np.mean(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="simclr", choices=["simclr", "simclrv2"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--workdir", type=Path, help="a finished run to time a no-op rerun in")
    parser.add_argument("--configfile", nargs="*", default=[], help="config files of that run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        export.export_onnx(models.build(args.model, None, seed=0), scratch / "model.onnx", 17)
        compiled = scratch / "compiled"
        compiled.mkdir()
        manifest = BACKEND.compile(scratch / "model.onnx", compiled, "fp32", None, {}, None)
        runner = BACKEND.load(compiled, manifest, {"settings": {"threads": args.threads}},
                              args.threads)
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(compiled / "model.onnx"), options,
                                       providers=["CPUExecutionProvider"])
        batch = np.random.default_rng(0).random((args.batch, 3, 32, 32), dtype=np.float32)
        protocol = {"warmup_iterations": 20, "min_iterations": 100,
                    "min_seconds": args.seconds, "max_iterations": 10**6}
        bare_loop(session, batch, 1.0)  # warm-up of the bare session
        workflow_fps, bare_fps = [], []
        for _ in range(args.rounds):
            latencies = runner.benchmark(batch, protocol)
            workflow_fps.append(timing.summarize(latencies, args.batch)["throughput_fps"])
            bare_fps.append(bare_loop(session, batch, args.seconds))
    w, b = np.median(workflow_fps), np.median(bare_fps)
    print(f"model {args.model}, batch {args.batch}, threads {args.threads}, "
          f"{args.rounds} alternating rounds of ≥ {args.seconds} s")
    print(f"workflow runner: {w:.1f} fps (median; rounds {', '.join(f'{x:.0f}' for x in workflow_fps)})")
    print(f"bare session.run: {b:.1f} fps (median; rounds {', '.join(f'{x:.0f}' for x in bare_fps)})")
    print(f"ratio workflow/bare: {w / b:.3f} (target ≥ 0.97)")

    if args.workdir:
        command = [sys.executable, "-m", "snakemake", "-s",
                   str(Path(__file__).resolve().parent.parent / "Snakefile"),
                   "--directory", str(args.workdir), "--cores", "2"]
        if args.configfile:
            command += ["--configfile", *args.configfile]
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        nothing = "Nothing to be done" in result.stdout + result.stderr
        print(f"no-op snakemake rerun: {elapsed:.2f} s (target ≤ 5 s; nothing to be done: {nothing})")


if __name__ == "__main__":
    main()
