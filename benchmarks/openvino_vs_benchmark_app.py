"""Throughput of the workflow's OpenVINO runner vs OpenVINO's own benchmark_app, in one run.

Same IR (the openvino backend's compiled model.xml), batch size, threads, precision hint, one
stream and one request; the two alternate in rounds so drift of the machine affects both
alike. Prints both throughputs (median over rounds) and the ratio ours / benchmark_app's.
Rounds in which other processes used more than --max-contention of the machine's CPU are
repeated (a shared 2-core host otherwise halves either side at random).
Our side is the workflow's timing protocol (chipbench.timing.measure: warm-up, then ≥ 100
iterations and ≥ --seconds), fps = 1000 · batch / mean latency; benchmark_app's is
frames / wall time of its loop (-api async with one request).

    .venv/bin/python benchmarks/openvino_vs_benchmark_app.py [--model simclr] [--batches 1 8 64]
        [--threads 2] [--precision fp32] [--rounds 3] [--seconds 3] [--calibration FILE.npy]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chipbench import augment, export, models, timing  # noqa: E402
from chipbench.backends import openvino  # noqa: E402


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of the whole machine (Linux /proc/stat), or (0, 0)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except OSError:
        return 0, 0
    return sum(values) - values[3] - values[4], sum(values)


def own_ticks() -> int:
    """Clock ticks of CPU time used by this process and its finished children."""
    import os

    times = os.times()
    return round((times.user + times.system + times.children_user + times.children_system)
                 * os.sysconf("SC_CLK_TCK"))


def others_share(call):
    """Run `call`; return (its result, share of the machine's CPU time other processes used)."""
    busy0, total0, own0 = *cpu_ticks(), own_ticks()
    result = call()
    busy1, total1, own1 = *cpu_ticks(), own_ticks()
    if total1 <= total0:
        return result, float("nan")
    return result, max(0, (busy1 - busy0) - (own1 - own0)) / (total1 - total0)


def run_benchmark_app(model_xml: Path, batch: int, threads: int, seconds: float,
                      precision: str) -> dict:
    command = openvino.openvino_benchmark_app_command(model_xml, batch, threads, seconds, precision)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"benchmark_app failed ({' '.join(command)}):\n{result.stdout}\n{result.stderr}")
    return openvino.parse_benchmark_app(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="simclr", choices=["simclr", "simclrv2"])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="fp32", choices=sorted(openvino.PRECISION_HINTS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--max-contention", type=float, default=0.05,
                        help="repeat a round in which other processes used more than this "
                             "share of the machine's CPU time (Linux; default 0.05)")
    parser.add_argument("--max-retries", type=int, default=10,
                        help="give up after rounds × this many attempts (then keep what ran)")
    parser.add_argument("--retry-wait", type=float, default=10.0, help="seconds between retries")
    parser.add_argument("--calibration", type=Path,
                        help="int8: calibration .npy (default: SimCLR views of seeded noise)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        onnx_path = scratch / "model.onnx"
        export.export_onnx(models.build(args.model, None, seed=0), onnx_path, 17)
        calibration = args.calibration
        if args.precision == "int8" and calibration is None:
            noise = np.random.default_rng(0).integers(0, 256, (64, 3, 32, 32), dtype=np.uint8)
            calibration = scratch / "calibration.npy"
            np.save(calibration, augment.simclr_views(noise, 0))
        compiled = scratch / "compiled"
        chip = {"settings": {"threads": args.threads}}
        manifest = openvino.BACKEND.compile(onnx_path, compiled, args.precision, None, chip,
                                            calibration)
        runner = openvino.BACKEND.load(compiled, manifest, chip, args.threads)
        model_xml = compiled / manifest["model"]
        protocol = {"warmup_iterations": 20, "min_iterations": 100,
                    "min_seconds": args.seconds, "max_iterations": 10**6}
        print(f"model {args.model} (random weights, seed 0), precision {args.precision}, "
              f"threads {args.threads}, {args.rounds} alternating rounds of ≥ {args.seconds} s")
        print("benchmark_app command (bs " + str(args.batches[0]) + "): " + " ".join(
            openvino.openvino_benchmark_app_command(model_xml, args.batches[0], args.threads,
                                                    args.seconds, args.precision)[1:]))
        rows = []
        for batch_size in args.batches:
            batch = np.random.default_rng(0).random((batch_size, 3, 32, 32), dtype=np.float32)
            ours, theirs, shares = [], [], []
            rounds = 0
            while len(ours) < args.rounds and rounds < args.rounds * args.max_retries:
                rounds += 1
                latencies, ours_share = others_share(lambda: runner.benchmark(batch, protocol))
                report, their_share = others_share(lambda: run_benchmark_app(
                    model_xml, batch_size, args.threads, args.seconds, args.precision))
                share = max(ours_share, their_share)
                if share > args.max_contention and rounds < args.rounds * args.max_retries:
                    print(f"  bs {batch_size}: other processes used {share:.0%} of the CPU "
                          "during this round: repeating it", flush=True)
                    time.sleep(args.retry_wait)
                    continue
                ours.append(timing.summarize(latencies, batch_size)["throughput_fps"])
                theirs.append(report["throughput_fps"])
                shares.append(share)
            if not ours:
                sys.exit(f"bs {batch_size}: the CPU was never free enough; rerun on a quiet host")
            o, t = float(np.median(ours)), float(np.median(theirs))
            rows.append((batch_size, o, t, o / t))
            ours_rounds = ", ".join(f"{x:.0f}" for x in ours)
            their_rounds = ", ".join(f"{x:.0f}" for x in theirs)
            print(f"bs {batch_size:3d}: ours {o:8.1f} fps (rounds {ours_rounds})"
                  f" | benchmark_app {t:8.1f} fps (rounds {their_rounds}) | ratio {o / t:.3f}"
                  f" | others' CPU share ≤ {max(shares):.0%}")
        properties = runner.settings()["properties"]
        print("properties in force (ours): " + ", ".join(f"{k}={v}" for k, v in properties.items()))


if __name__ == "__main__":
    main()
