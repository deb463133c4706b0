"""How long Snakemake takes when there is nothing to do: the floor, a dry run, a no-op rerun.

Prints medians over --repeats runs, with the CPU's model and flags:

* ``snakemake --version``: the interpreter and Snakemake's own imports, the floor of any run;
* ``snakemake -n`` on the default matrix (config.yaml alone) in an empty folder, with this
  host's capability answers cached (target < 5 s), and once with an empty cache (the first
  parse on a host, or after a toolchain changed, asks every runtime);
* a no-op rerun (everything up to date) of a finished run with one table as target
  (target ≤ 3 s). The run is config.yaml scaled down by .test/scale_down.yaml on a tiny
  archive (every default chip and precision, the same DAG shape); --prepare builds it in
  --workdir first (tens of minutes on 2 cores: training, every compile, the BM1684X ones
  included). --configfile times the no-op of another finished run instead, such as the
  checkout after `make run`.

    .venv/bin/python benchmarks/noop_time.py --workdir DIR [--prepare] [--repeats 5]
        [--target results/tables/simclr_fps.md] [--configfile config.yaml my_dataset.yaml]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from chipbench import capabilities, host  # noqa: E402
from tests.cifar_fixtures import write_tiny_archive  # noqa: E402

SCALE_DOWN = REPO / ".test" / "scale_down.yaml"
#: Flags that decide which CPU precisions run fast (or at all) here.
FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16",
                     "amx_bf16", "amx_int8")


def snakemake(*args: str, env: dict | None = None) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds, stdout + stderr) of one Snakemake invocation. CPU time
    (user + system of the process and its children) barely moves on a loaded machine."""
    command = [sys.executable, "-m", "snakemake", *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True,
                            env={**os.environ, **(env or {})})
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"error: {' '.join(command)} failed:\n{result.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu, result.stdout + result.stderr


def run_args(workdir: Path, configfiles: list[Path] | None = None) -> list[str]:
    """Snakemake's arguments for the run in ``workdir``: by default the scaled-down one.
    --configfile takes every word after it, so targets go before these."""
    configfiles = configfiles or [workdir / "dataset.yaml", SCALE_DOWN]
    return ["-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2",
            "--configfile", *map(str, configfiles)]


def prepare(workdir: Path) -> None:
    """A tiny archive, its dataset config, and the scaled-down default run, to the end."""
    archive = workdir / "data" / "cifar-10-python.tar.gz"
    archive.parent.mkdir(parents=True, exist_ok=True)
    write_tiny_archive(archive, n_test=48, n_train=64, seed=1)
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    (workdir / "dataset.yaml").write_text(yaml.safe_dump(
        {"dataset": {"url": archive.as_uri(), "md5": md5, "test_images": 48}}))
    elapsed, _, _ = snakemake(*run_args(workdir))
    print(f"prepared the scaled-down default run in {workdir} in {elapsed / 60:.1f} min")


def timed(repeats: int, *args: str, expect: str | None = None, env=None) -> list[tuple]:
    """(wall, CPU) seconds of `repeats` invocations."""
    times = []
    for _ in range(repeats):
        elapsed, cpu, output = snakemake(*args, env=env)
        if expect and expect not in output:
            sys.exit(f"error: expected {expect!r} from snakemake {' '.join(args)}:\n{output[-2000:]}")
        times.append((elapsed, cpu))
    return times


def show(label: str, times: list, target: str = "") -> None:
    wall = statistics.median(t[0] for t in times)
    cpu = statistics.median(t[1] for t in times)
    runs = ", ".join(f"{t[0]:.2f}" for t in times)
    print(f"{label}: {wall:.2f} s wall, {cpu:.2f} s CPU (medians of {len(times)}; wall {runs})"
          + (f"; target {target}" if target else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True,
                        help="folder of the finished scaled-down default run (see --prepare)")
    parser.add_argument("--configfile", type=Path, nargs="+",
                        help="time the no-op of another finished run in --workdir, e.g. a full "
                             "`make run` (the checkout) with config.yaml and your dataset config")
    parser.add_argument("--prepare", action="store_true", help="build that run first")
    parser.add_argument("--target", default="results/tables/simclr_fps.md")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    if args.prepare:
        prepare(args.workdir)
    elif not args.configfile and not (args.workdir / "dataset.yaml").is_file():
        sys.exit(f"error: {args.workdir} holds no scaled-down default run: add --prepare")

    flags = capabilities.cpu_flags()
    print(f"CPU: {host.cpu_model()}, {os.cpu_count()} cores; flags: "
          + ", ".join(f for f in FLAGS_OF_INTEREST if f in flags) + "; without: "
          + ", ".join(f for f in FLAGS_OF_INTEREST if f not in flags))
    show("snakemake --version", timed(args.repeats, "--version"))
    with tempfile.TemporaryDirectory() as empty:
        dry_run = ["-s", str(REPO / "Snakefile"), "--directory", empty, "--cores", "2", "-n",
                   "--quiet", "all"]
        with tempfile.TemporaryDirectory() as cold_cache:
            show("snakemake -n, default matrix, empty capability cache",
                 timed(1, *dry_run, env={capabilities.CACHE_ENV_VAR: cold_cache}))
        snakemake(*dry_run)  # fills this host's cache if it is empty
        show("snakemake -n, default matrix, cached capabilities", timed(args.repeats, *dry_run),
             target="< 5 s")
    show(f"no-op rerun, target {args.target}",
         timed(args.repeats, args.target, *run_args(args.workdir, args.configfile),
               expect="Nothing to be done"), target="≤ 3 s")


if __name__ == "__main__":
    main()
