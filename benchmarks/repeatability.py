"""Run-to-run spread of one throughput cell: reruns it N times as separate Snakemake jobs.

Each run forces the cell's measure_throughput job (`--forcerun`), so every figure comes
from a fresh process, as in a real rerun. Prints each run's headline fps and its trials'
spread, then the run-to-run spread ((max - min) / median of the headline fps) beside the
median within-run trial spread, with the CPU model and flags. The within-run spread is what
perf.json reports and the tables flag; when it is honest, the run-to-run spread is of the
same size.

    .venv/bin/python benchmarks/repeatability.py --workdir DIR [--configfile FILE ...]
        [--cell simclr/cpu/fp32/bs1] [--runs 5] [--cores 2]

DIR is a working directory the workflow runs in (the cell's inputs are built on the first
run if missing); its config must time the cell (e.g. the default config.yaml).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from chipbench import host  # noqa: E402


def spread(values: list[float]) -> float:
    return (max(values) - min(values)) / statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--configfile", nargs="*", default=[])
    parser.add_argument("--cell", default="simclr/cpu/fp32/bs1", help="model/chip/precision/bsN")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    target = f"results/{args.cell}/perf.json"
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
               "--directory", str(args.workdir), "--cores", str(args.cores), target,
               "--rerun-incomplete", "--forcerun", "measure_throughput"]  # after the target: it takes a list
    if args.configfile:
        command += ["--configfile", *args.configfile]
    print(f"CPU: {host.cpu_model()}; flags: {' '.join(host.cpu_flags()) or 'none of interest'}; "
          f"{args.cores} cores; cell {args.cell}; {args.runs} runs")
    headline, within = [], []
    for run in range(1, args.runs + 1):
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"run {run} failed:\n{result.stderr[-2000:]}")
        record = json.loads((args.workdir / target).read_text())
        trials = record["trials"]
        headline.append(record["throughput_fps"])
        within.append(trials["spread"])
        print(f"run {run}: {record['throughput_fps']:.1f} fps; trials "
              f"{', '.join(f'{x:.1f}' for x in trials['fps'])} (spread {trials['spread']:.1%}, "
              f"95 % interval {trials['ci95'][0]:.1f}-{trials['ci95'][1]:.1f})", flush=True)
    print(f"run-to-run spread of the headline fps: {spread(headline):.1%} over {args.runs} runs")
    print(f"within-run trial spread: median {statistics.median(within):.1%}, "
          f"max {max(within):.1%}")


if __name__ == "__main__":
    main()
