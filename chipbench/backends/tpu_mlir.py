"""SOPHGO BM1684X through TPU-MLIR: compile on the host, run on the chip or without it.

Compile (REFERENCE.md §1b), in the compile rule's output folder, with the tools of the
TPU-MLIR venv (`chipbench.tpu_mlir_env`, Python 3.10):

    model_transform.py  ONNX -> top-dialect model.mlir (+ reference outputs of a test batch)
    run_calibration.py  INT8 only: calibration table from the calibration set
    model_deploy.py     model.mlir -> quantized model_bm1684x_<q>_tpu.mlir + model.bmodel;
                        --debug keeps the *_tpu.mlir and leaves compiler_profile_0.txt, whose
                        "runtime: X ms" is the compiler's cycle-model latency estimate

The platform option is `--chip bm1684x`: tpu-mlir 1.30.2 accepts `--chip` and its newer
alias `--processor` for model_deploy and run_calibration (releases before ~1.7 know only
`--chip`), so `--chip` works with every release this backend was written against.

Run:
- on a BM1684X (sophon-sail importable and a device node present): `sail.Engine` for outputs,
  `bmrt_test` ("calculate time") for timing;
- without the chip: the quantized `*_tpu.mlir` on the host CPU through pymlir, the model
  loaded once in long-lived processes (`chipbench/tpu_mlir_driver.py`, one per core, each
  running a contiguous shard of the inputs). For INT8 it reproduces the bit-accurate cmodel
  simulator exactly, at ~1/50 of its cost; `crosscheck()` runs the .bmodel on the cmodel
  (tpu-mlir's model_runner) for a seeded subset and compares. Without the chip nothing is
  timed: the compiler's estimate is recorded in compiled.json and no measured figure is
  ever made up (`timing_availability`).
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from chipbench import tpu_mlir_env
from chipbench.backends.base import Availability, Backend, Runner
from chipbench.errors import UserError

TARGET = "bm1684x"
MODULE_NAME = "model"
TOP_MLIR = f"{MODULE_NAME}.mlir"
TEST_INPUT = "test_input.npz"
TOP_OUTPUTS = f"{MODULE_NAME}_top_outputs.npz"
CALIBRATION_DIR = "calibration_data"
CALIBRATION_TABLE = f"{MODULE_NAME}_cali_table"
BMODEL = f"{MODULE_NAME}.bmodel"
PROFILE_NAMES = ("compiler_profile_0.txt", f"{BMODEL}.compiler_profile_0.txt")
DRIVER = Path(__file__).resolve().parent.parent / "tpu_mlir_driver.py"

QUANTIZE = {"fp32": "F32", "fp16": "F16", "int8": "INT8"}

#: Chip settings and their defaults (resources/chips.yaml may override each).
DEFAULT_SETTINGS = {
    "mode": "auto",  # auto: the chip when present, else the simulator; or "chip" / "simulator"
    "devid": 0,  # device id of the chip (sail.Engine, bmrt_test --devid)
    "calibration_images": 100,  # INT8 calibration images (run_calibration --input_num, × batch)
    "skip_bmodel_validation": ["fp16"],  # cmodel F16 is ~25 s/image: validate the tpu.mlir only
    # tpu.mlir vs the bmodel on the cmodel simulator, on this many seeded test images after an
    # accuracy run (0 = off); a number, or one per precision (cmodel F16 is slow).
    "crosscheck_images": {"fp32": 32, "fp16": 4, "int8": 32},
    "crosscheck_seed": 0,
    "keep_intermediates": False,  # keep every file model_deploy --debug leaves
    "workers": "auto",  # simulator processes (one OpenMP thread each); auto = the job's threads
}

#: Largest |tpu.mlir - cmodel| accepted by crosscheck, relative to max |cmodel output| (and
#: absolute below 1): INT8 runs the same integer arithmetic, so it must be exact.
CROSSCHECK_TOLERANCE = {"int8": 0.0, "fp16": 1e-3, "fp32": 1e-5}


def settings_of(chip: dict) -> dict:
    merged = dict(DEFAULT_SETTINGS)
    merged.update({k: v for k, v in (chip.get("settings") or {}).items() if v is not None})
    return merged


# --------------------------------------------------------------------------- command lines


def _shape_text(shape) -> str:
    return "[[" + ",".join(str(int(d)) for d in shape) + "]]"


def transform_command(
    onnx_path, mlir, input_shape, test_input=None, test_result=None, model_name=MODULE_NAME,
    venv: Path | None = None,
) -> list[str]:
    """model_transform.py: ONNX -> top mlir; with a test input, also its reference outputs."""
    command = tpu_mlir_env.tool_command(
        "model_transform",
        "--model_name", model_name,
        "--model_def", onnx_path,
        "--input_shapes", _shape_text(input_shape),
        "--mlir", mlir,
        venv=venv,
    )
    if test_input:
        command += ["--test_input", str(test_input), "--test_result", str(test_result)]
    return command


def calibration_command(mlir, dataset, input_num: int, table, venv: Path | None = None) -> list[str]:
    """run_calibration.py: INT8 calibration table from a folder of .npy input batches."""
    return tpu_mlir_env.tool_command(
        "run_calibration", mlir,
        "--dataset", dataset,
        "--input_num", int(input_num),
        "--chip", TARGET,
        "-o", table,
        venv=venv,
    )


def deploy_command(
    mlir, precision: str, bmodel, calibration_table=None, test_input=None, test_reference=None,
    tolerance: str | None = None, skip_validation: bool = False, venv: Path | None = None,
) -> list[str]:
    """model_deploy.py: top mlir -> *_tpu.mlir + .bmodel, keeping intermediates (--debug)."""
    if precision not in QUANTIZE:
        raise UserError(
            f"TPU-MLIR cannot compile precision {precision!r}: use one of {', '.join(QUANTIZE)}"
        )
    if precision == "int8" and not calibration_table:
        raise UserError("INT8 deployment needs a calibration table: give the calibration set")
    command = tpu_mlir_env.tool_command(
        "model_deploy",
        "--mlir", mlir,
        "--quantize", QUANTIZE[precision],
        venv=venv,
    )
    if calibration_table:
        command += ["--calibration_table", str(calibration_table)]
    command += ["--chip", TARGET, "--model", str(bmodel)]
    if test_input:
        command += ["--test_input", str(test_input), "--test_reference", str(test_reference)]
        if tolerance:
            command += ["--tolerance", tolerance]
        if skip_validation:
            command += ["--skip_validation"]
    command += ["--debug"]
    return command


def bmrt_test_command(bmodel, loopnum: int = 1, devid: int = 0) -> list[str]:
    """SOPHON SDK's bmrt_test: runs the bmodel on the chip and prints its timings."""
    return [
        bmrt_test_path() or "bmrt_test",
        "--bmodel", str(bmodel), "--loopnum", str(int(loopnum)), "--devid", str(int(devid)),
    ]


# --------------------------------------------------------------------------- parsers

_BMRT_TIMES = {
    "load_input": re.compile(r"load input time\(s\):\s*([0-9.eE+-]+)"),
    "calculate": re.compile(r"calculate\s+time\(s\):\s*([0-9.eE+-]+)"),
    "get_output": re.compile(r"get output time\(s\):\s*([0-9.eE+-]+)"),
}
_BMRT_LAUNCH = re.compile(r"launch total time is (\d+) us \(npu (\d+) us")


def parse_bmrt_test(text: str) -> dict:
    """Timings of a bmrt_test run, in ms, one entry per loop (--loopnum prints a block each).

    `calculate_ms` is the pure inference time (input already on the device, output not yet
    fetched): the figure of the report's tables. `npu_us` is the device's own share of the
    launch line ("launch total time is T us (npu N us, cpu C us)") when printed.
    """
    result = {}
    for key, pattern in _BMRT_TIMES.items():
        result[f"{key}_ms"] = [float(x) * 1000.0 for x in pattern.findall(text)]
    launches = _BMRT_LAUNCH.findall(text)
    result["launch_total_us"] = [int(total) for total, _ in launches]
    result["npu_us"] = [int(npu) for _, npu in launches]
    if not result["calculate_ms"]:
        raise ValueError("no 'calculate  time(s):' line in the bmrt_test output")
    result["loops"] = len(result["calculate_ms"])
    for key in ("load_input_ms", "calculate_ms", "get_output_ms"):
        values = result[key]
        result[key.replace("_ms", "_mean_ms")] = float(np.mean(values)) if values else None
    return result


_PROFILE_RUNTIME = re.compile(r"runtime:\s*([0-9.eE+-]+)\s*ms")
_PROFILE_FLOPS = re.compile(r"flops:\s*(\d+)")


def parse_compiler_profile(text: str) -> dict:
    """The compiler's latency estimate from compiler_profile_0.txt ("runtime: X ms").

    A model split into several subnets prints one summary per subnet; the estimate is their
    sum. Cycle-model figure for one batch, not a measurement.
    """
    runtimes = [float(x) for x in _PROFILE_RUNTIME.findall(text)]
    if not runtimes:
        raise ValueError("no 'runtime: X ms' line in the compiler profile")
    flops = [int(x) for x in _PROFILE_FLOPS.findall(text)]
    return {
        "estimated_latency_ms": sum(runtimes),
        "subnets": len(runtimes),
        "flops": sum(flops) if flops else None,
    }


def find_compiler_profile(folder: Path) -> Path | None:
    for name in PROFILE_NAMES:
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


# --------------------------------------------------------------------------- the chip


def bmrt_test_path() -> str | None:
    found = shutil.which("bmrt_test")
    if found:
        return found
    for candidate in sorted(glob.glob("/opt/sophon/libsophon-*/bin/bmrt_test")):
        return candidate
    return None


def device_nodes(devid: int | None = None) -> list[str]:
    """Device files of SOPHON chips: /dev/bm-sophonN (PCIe card), /dev/bm-tpuN (SoC mode).

    libbmlib's bm_dev_query opens exactly these two names.
    """
    pattern = "*" if devid is None else str(devid)
    return sorted(glob.glob(f"/dev/bm-sophon{pattern}") + glob.glob(f"/dev/bm-tpu{pattern}"))


def import_sail():
    import sophon.sail as sail  # SOPHON SDK's sophon-sail; not on the package index

    return sail


def chip_status(devid: int = 0) -> Availability:
    """Whether a BM1684X can run here, with the precise reason when not."""
    try:
        import_sail()
    except Exception as error:  # ImportError, or a broken native library
        return Availability(
            False,
            f"sophon-sail is not importable ({type(error).__name__}: {error}); it ships with "
            "the SOPHON SDK (libsophon + sophon-sail), not the package index",
        )
    nodes = device_nodes(devid)
    if not nodes:
        others = device_nodes()
        smi = shutil.which("bm-smi") or next(iter(glob.glob("/opt/sophon/libsophon-*/bin/bm-smi")), None)
        hint = f"; present: {', '.join(others)}" if others else (
            "; no SOPHON device node at all" + ("" if smi else " and no bm-smi (driver not installed?)")
        )
        return Availability(
            False, f"no device node /dev/bm-sophon{devid} or /dev/bm-tpu{devid}{hint}"
        )
    return Availability(True)


class SailRunner(Runner):
    """The bmodel on a real chip through sophon-sail (system-memory I/O)."""

    def __init__(self, bmodel: Path, dev_id: int = 0, sail=None):
        self.sail = sail or import_sail()
        self.bmodel = Path(bmodel)
        self.dev_id = int(dev_id)
        self.engine = self.sail.Engine(str(self.bmodel), self.dev_id, self.sail.IOMode.SYSIO)
        self.graph = self.engine.get_graph_names()[0]
        self.input_name = self.engine.get_input_names(self.graph)[0]
        self.output_name = self.engine.get_output_names(self.graph)[0]
        self.batch_size = int(self.engine.get_input_shape(self.graph, self.input_name)[0])
        self.timing_tool = "bmrt_test" if bmrt_test_path() else "sail.Engine.process"

    def run(self, batch: np.ndarray) -> np.ndarray:
        outputs = self.engine.process(
            self.graph, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)}
        )
        return np.asarray(outputs[self.output_name])

    def benchmark(self, batch: np.ndarray, protocol: dict) -> np.ndarray:
        """bmrt_test's per-loop "calculate time" (device compute, as in the report).

        Falls back to timing `sail.Engine.process` (host to device to host) when bmrt_test is
        not installed; `settings()["timing"]` says which.
        """
        if self.timing_tool != "bmrt_test":
            return super().benchmark(batch, protocol)
        warmup = int(protocol.get("warmup_iterations", 0))
        wanted = int(protocol.get("min_iterations", 1))
        ceiling = int(protocol.get("max_iterations", 100000))
        runs = [self._bmrt_run(warmup + wanted, warmup)]
        latencies = list(runs[0]["calculate_ms"])
        min_seconds = float(protocol.get("min_seconds", 0.0))
        while sum(latencies) / 1000.0 < min_seconds and len(latencies) < ceiling:
            mean_s = max(float(np.mean(latencies)) / 1000.0, 1e-6)
            more = math.ceil((min_seconds - sum(latencies) / 1000.0) / mean_s)
            more = max(1, min(more, ceiling - len(latencies)))
            runs.append(self._bmrt_run(more + 1, 1))  # first loop of each run warms up
            latencies += runs[-1]["calculate_ms"]
        self.benchmark_extra = {
            "tool": "bmrt_test",
            "runs": len(runs),
            "load_input_ms": [x for r in runs for x in r["load_input_ms"]],
            "get_output_ms": [x for r in runs for x in r["get_output_ms"]],
            "npu_us": [x for r in runs for x in r["npu_us"]],
        }
        return np.asarray(latencies[:ceiling], dtype=float)

    def _bmrt_run(self, loops: int, skip: int) -> dict:
        """bmrt_test with `loops` loops; the first `skip` loops (warm-up) are dropped."""
        command = bmrt_test_command(self.bmodel, loops, self.dev_id)
        result = subprocess.run(command, capture_output=True, text=True)
        text = result.stdout + result.stderr
        sys.stderr.write(text[-4000:])
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited {result.returncode}")
        parsed = parse_bmrt_test(text)
        return {key: parsed[key][skip:] for key in
                ("calculate_ms", "load_input_ms", "get_output_ms", "npu_us")}

    def settings(self) -> dict:
        return {
            "runtime": "sophon-sail", "dev_id": self.dev_id, "io_mode": "SYSIO",
            "timing": "bmrt_test calculate time" if self.timing_tool == "bmrt_test"
            else "sail.Engine.process wall time (includes host-device copies)",
        }


# --------------------------------------------------------------------------- without the chip


class DriverProcess:
    """One `tpu_mlir_driver.py serve` process in the TPU-MLIR venv, the model loaded once."""

    def __init__(self, model: Path, workdir: Path, threads: int | None, log=None):
        self.model = Path(model)
        self.log = tpu_mlir_env.log_stream(log or sys.stderr)
        command = tpu_mlir_env.python_command(DRIVER, "serve", "--model", self.model.name)
        self.process = subprocess.Popen(
            command, cwd=str(workdir), env=tpu_mlir_env.tool_env(threads),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
        )
        ready = self._reply()
        if not ready.get("ready"):
            raise RuntimeError(f"TPU-MLIR driver did not start for {self.model}: {ready}")

    def _reply(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            raise RuntimeError(
                f"TPU-MLIR driver for {self.model.name} exited ({code}): see the log above"
            )
        return json.loads(line)

    def submit(self, **data) -> None:
        self.process.stdin.write(json.dumps(data) + "\n")
        self.process.stdin.flush()

    def collect(self) -> dict:
        reply = self._reply()
        if not reply.get("ok"):
            raise RuntimeError(f"TPU-MLIR driver failed on {self.model.name}: {reply.get('error')}")
        return reply

    def request(self, **data) -> dict:
        self.submit(**data)
        return self.collect()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.submit(cmd="quit")
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


class DriverPool:
    """`workers` driver processes of one model, one OpenMP thread each.

    pymlir's interpreter and the cmodel gain little from OpenMP threads (measured: INT8
    ResNet-50 0.128 CPU-s/image with 1 thread, more with 2), so the cores are used by running
    contiguous shards of the inputs in parallel processes instead.
    """

    def __init__(self, model: Path, workdir: Path, workers: int):
        self.drivers: list[DriverProcess] = []
        try:
            for _ in range(max(1, int(workers))):
                self.drivers.append(DriverProcess(model, workdir, threads=1))
        except BaseException:
            self.close()
            raise

    def run(self, inputs: np.ndarray, batch_size: int) -> tuple[np.ndarray, dict]:
        """Outputs for all `inputs` (padding only in the very last batch) and run statistics."""
        n = len(inputs)
        batches = max(1, math.ceil(n / batch_size))
        per_shard = math.ceil(batches / len(self.drivers)) * batch_size
        shards = [(start, min(n, start + per_shard)) for start in range(0, n, per_shard)]
        started = time.time()
        with tempfile.TemporaryDirectory(prefix="chipbench-tpu-") as tmp:
            used = []
            for index, ((start, stop), driver) in enumerate(zip(shards, self.drivers)):
                source, dest = Path(tmp) / f"in{index}.npy", Path(tmp) / f"out{index}.npy"
                np.save(source, np.ascontiguousarray(inputs[start:stop], dtype=np.float32))
                driver.submit(cmd="run", input=str(source), output=str(dest),
                              batch_size=int(batch_size))
                used.append((driver, dest))
            replies = [driver.collect() for driver, _ in used]
            outputs = np.concatenate([np.load(dest) for _, dest in used])
        seconds = time.time() - started
        return outputs, {
            "seconds": seconds,
            "cpu_seconds": sum(float(r.get("cpu_seconds", 0.0)) for r in replies),
            "workers": len(used),
        }

    def close(self) -> None:
        for driver in self.drivers:
            driver.close()
        self.drivers = []


def _workers(setting, threads: int | None) -> int:
    if setting in (None, "auto"):
        return max(1, int(threads or 1))
    return max(1, int(setting))


class MlirRunner(Runner):
    """The quantized *_tpu.mlir on the host CPU (pymlir): every batch in long-lived processes."""

    result_source = "tpu_mlir: the quantized *_tpu.mlir run bit-accurately on the host CPU (no chip)"

    def __init__(self, compiled_dir: Path, manifest: dict, threads: int | None,
                 chip_settings: dict | None = None):
        self.compiled_dir = Path(compiled_dir)
        self.manifest = manifest
        self.threads = threads
        self.batch_size = int(manifest["batch_size"])
        self.chip_settings = settings_of({"settings": chip_settings or {}})
        self.workers = _workers(self.chip_settings.get("workers"), threads)
        self._pool: DriverPool | None = None
        self.last_run: dict | None = None
        self.crosscheck_result: dict | None = None
        self._pending_check: tuple[np.ndarray, np.ndarray] | None = None

    def pool(self, workers: int | None = None) -> DriverPool:
        if self._pool is None:
            tpu_mlir_env.ensure_venv()
            self._pool = DriverPool(self.compiled_dir / self.manifest["tpu_mlir"],
                                    self.compiled_dir, workers or self.workers)
        return self._pool

    def run(self, batch: np.ndarray) -> np.ndarray:
        outputs, _ = self.pool().run(batch, len(batch))
        return outputs

    def run_all(self, inputs: np.ndarray, batch_size: int, input_dir: Path | None = None
                ) -> np.ndarray:
        if batch_size != self.batch_size:
            raise UserError(
                f"the artefact in {self.compiled_dir} was compiled for batch size "
                f"{self.batch_size}, not {batch_size}: run it at batch size {self.batch_size}"
            )
        outputs, stats = self.pool().run(inputs, batch_size)
        n = max(1, len(inputs))
        self.last_run = {
            "images": len(inputs),
            "seconds": round(stats["seconds"], 2),
            "images_per_second": round(len(inputs) / stats["seconds"], 2)
            if stats["seconds"] > 0 else None,
            "cpu_seconds_per_image": round(stats["cpu_seconds"] / n, 4),
            "workers": stats["workers"],
        }
        self.close()  # free the cores for the cmodel
        self._pending_check = (inputs, outputs)
        return outputs

    def crosscheck(self) -> dict | None:
        """Cross-check the last run_all against the bmodel on the cmodel simulator
        (settings crosscheck_images), after the accuracy run so its timing excludes it."""
        if self._pending_check is None:
            return self.crosscheck_result
        inputs, outputs = self._pending_check
        self._pending_check = None
        count = crosscheck_count(self.chip_settings["crosscheck_images"],
                                 self.manifest.get("precision"))
        if count > 0:
            self.crosscheck_result = crosscheck(
                self.compiled_dir, self.manifest, inputs, count,
                seed=int(self.chip_settings["crosscheck_seed"]), workers=self.workers,
                mlir_outputs=outputs,
            )
        return self.crosscheck_result

    def benchmark(self, batch: np.ndarray, protocol: dict) -> np.ndarray:
        estimate = self.manifest.get("estimated_latency_ms")
        raise UserError(
            "BM1684X throughput needs the chip (no sophon-sail device here); the host-CPU "
            "simulation is not a chip figure. The compiler's estimate for this artefact is "
            f"{estimate} ms per batch (compiled.json): leave bm1684x out of the timed chips"
        )

    def settings(self) -> dict:
        result = {
            "runtime": "tpu-mlir pymlir on the host CPU (no chip)",
            "model": self.manifest.get("tpu_mlir"),
            "workers": self.workers,
            "omp_num_threads_per_worker": 1,
        }
        if self.last_run:
            result["last_run"] = self.last_run
        return result

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def crosscheck_count(setting, precision: str | None) -> int:
    if isinstance(setting, dict):
        return int(setting.get(precision) or 0)
    return int(setting or 0)


def crosscheck(compiled_dir: Path, manifest: dict, inputs: np.ndarray, count: int = 32,
               seed: int = 0, workers: int = 1,
               mlir_outputs: np.ndarray | None = None) -> dict:
    """Compare the *_tpu.mlir with the .bmodel on the cmodel simulator over a seeded subset.

    INT8 must match exactly; F16/F32 within CROSSCHECK_TOLERANCE (relative to the largest
    output magnitude, at least 1). `mlir_outputs`, when given, are the tpu.mlir outputs for
    all `inputs` (so only the cmodel runs). Returns a dict for the result record.
    """
    compiled_dir = Path(compiled_dir)
    precision = manifest["precision"]
    batch_size = int(manifest["batch_size"])
    count = max(1, min(int(count), len(inputs)))
    indices = np.sort(np.random.default_rng(seed).choice(len(inputs), count, replace=False))
    subset = np.ascontiguousarray(np.asarray(inputs)[indices], dtype=np.float32)
    if mlir_outputs is None:
        pool = DriverPool(compiled_dir / manifest["tpu_mlir"], compiled_dir, workers)
        try:
            reference, _ = pool.run(subset, batch_size)
        finally:
            pool.close()
    else:
        reference = np.asarray(mlir_outputs)[indices]
    pool = DriverPool(compiled_dir / manifest["bmodel"], compiled_dir,
                      min(workers, math.ceil(count / batch_size)))
    try:
        simulated, stats = pool.run(subset, batch_size)
    finally:
        pool.close()
    difference = np.abs(reference.astype(np.float64) - simulated.astype(np.float64))
    max_abs = float(difference.max()) if difference.size else 0.0
    scale = max(1.0, float(np.abs(simulated).max()) if simulated.size else 1.0)
    tolerance = CROSSCHECK_TOLERANCE.get(precision, 1e-3)
    argmax_agree = float(np.mean(reference.reshape(count, -1).argmax(1)
                                 == simulated.reshape(count, -1).argmax(1)))
    return {
        "n_images": count,
        "seed": seed,
        "reference": "bmodel on the cmodel simulator",
        "max_abs_diff": max_abs,
        "mean_abs_diff": float(difference.mean()) if difference.size else 0.0,
        "max_abs_output": float(np.abs(simulated).max()) if simulated.size else 0.0,
        "exact": bool(max_abs == 0.0),
        "tolerance": tolerance,
        "passed": bool(max_abs <= tolerance * scale),
        "argmax_agreement": argmax_agree,
        "cmodel_seconds": round(stats["seconds"], 2),
    }


# --------------------------------------------------------------------------- the backend


def _onnx_input(onnx_path: Path) -> tuple[str, tuple[int, int, int]]:
    """Name and (C, H, W) of the ONNX model's first graph input."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    first = next(i for i in model.graph.input if i.name not in initializers)
    dims = [d.dim_value if d.HasField("dim_value") else None for d in first.type.tensor_type.shape.dim]
    if len(dims) != 4 or not all(dims[1:]):
        raise UserError(
            f"{onnx_path} input {first.name!r} has shape {dims}: TPU-MLIR needs a static "
            "N×C×H×W image input (export with fixed C, H, W)"
        )
    return first.name, (int(dims[1]), int(dims[2]), int(dims[3]))


def _run_tool(command: list[str], cwd: Path, threads: int | None, what: str) -> float:
    log = tpu_mlir_env.log_stream(sys.stderr)
    print("+ (cd " + str(cwd) + " && " + " ".join(command) + ")", file=log, flush=True)
    started = time.time()
    result = subprocess.run(command, cwd=str(cwd), env=tpu_mlir_env.tool_env(threads),
                            stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise UserError(
            f"TPU-MLIR {what} failed (exit {result.returncode}): see the compile log for "
            f"{Path(command[0]).name}'s message"
        )
    return round(time.time() - started, 2)


def write_calibration_set(calibration: Path, folder: Path, batch_size: int, images: int) -> int:
    """The calibration images as run_calibration's dataset: one .npy batch (B,C,H,W) per file.

    They are the calibration set preprocessed exactly like the inference input (the workflow's
    preprocess rule), in order; returns the number of files.
    """
    data = np.load(calibration, mmap_mode="r")
    files = max(1, min(len(data), int(images)) // batch_size)
    if len(data) < batch_size:
        raise UserError(
            f"the calibration set {calibration} has {len(data)} images, fewer than the batch "
            f"size {batch_size}: raise dataset.calibration_images"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        batch = np.ascontiguousarray(data[index * batch_size:(index + 1) * batch_size],
                                     dtype=np.float32)
        np.save(folder / f"{index:05d}.npy", batch)
    return files


def _test_input(calibration: Path | None, batch_size: int, shape, seed: int = 0) -> np.ndarray:
    """Validation batch: real calibration images when given, else seeded normal noise."""
    if calibration is not None:
        data = np.load(calibration, mmap_mode="r")
        if len(data) >= batch_size:
            return np.ascontiguousarray(data[:batch_size], dtype=np.float32)
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch_size, *shape)).astype(np.float32)


def _prune(out_dir: Path, keep: set[str]) -> None:
    """Drop what model_deploy --debug leaves beside the artefacts (the *_tpu.mlir with its
    weights, the .bmodel, the profile, the calibration table and the small top model.mlir,
    whose weights go: it is kept to show the imported graph)."""
    patterns = ("*_tpu_opt.mlir", "*_final.mlir", "*_tpu_lowered_*_weight.npz",
                "*_tpu_addressed_*_weight.npz", "*_origin.mlir", "*_top_f32_all_origin_weight.npz",
                "*_opt.onnx", "*.layer_group_debugger.json", "final_opt.mlir",
                # the top mlir's weights (94 MB for ResNet-50) and every tensor of its
                # reference run: inputs of model_deploy only
                "*_top_f32_all_weight.npz", TOP_OUTPUTS)
    for pattern in patterns:
        for path in out_dir.glob(pattern):
            if path.name not in keep and path.is_file():
                path.unlink()
    shutil.rmtree(out_dir / CALIBRATION_DIR, ignore_errors=True)


class TpuMlirBackend(Backend):
    name = "tpu_mlir"
    precisions = ("fp32", "fp16", "int8")
    static_batch = True

    def availability(self, chip: dict) -> Availability:
        settings = settings_of(chip)
        mode = settings["mode"]
        if mode not in ("auto", "chip", "simulator"):
            return Availability(False, f"settings.mode is {mode!r}: use auto, chip or simulator")
        device = chip_status(int(settings["devid"]))
        toolchain = self.toolchain_status()
        if mode == "chip" and not device.ok:
            return device
        if not toolchain.ok:
            # Compilation always happens on the host, with TPU-MLIR.
            return toolchain
        return Availability(True)

    def toolchain_status(self) -> Availability:
        if tpu_mlir_env.is_ready() or tpu_mlir_env.venv_python().exists():
            return Availability(True)
        if tpu_mlir_env.find_python310() is not None:
            return Availability(True)
        return Availability(
            False,
            "TPU-MLIR needs Python 3.10 and none was found (pyenv versions 3.10.* or "
            "python3.10 on PATH); install one, e.g. `pyenv install 3.10`",
        )

    def needs_calibration(self, precision: str) -> bool:
        """Every precision: INT8 calibrates on it, F32/F16 validate the compile on real images."""
        return True

    def timing_availability(self, chip: dict) -> Availability:
        """Throughput is measured on the chip only (the simulator's speed says nothing of it)."""
        settings = settings_of(chip)
        if settings["mode"] == "simulator":
            return Availability(False, "settings.mode is simulator: no chip timing")
        return chip_status(int(settings["devid"]))

    def version(self) -> str:
        installed = tpu_mlir_env.installed_version()
        if installed:
            return installed
        for line in tpu_mlir_env.REQUIREMENTS.read_text().splitlines():
            if line.lower().startswith(("tpu-mlir==", "tpu_mlir==")):
                return line.split("==", 1)[1].strip() + " (not installed yet)"
        return "unknown"

    def compile(self, onnx_path, out_dir, precision, batch_size, chip, calibration):
        if precision not in QUANTIZE:
            raise UserError(
                f"TPU-MLIR cannot compile precision {precision!r}: use one of "
                f"{', '.join(QUANTIZE)} in chips.<name>.precisions"
            )
        if not batch_size:
            raise UserError("TPU-MLIR artefacts have a static batch size: compile per batch size")
        settings = settings_of(chip)
        out_dir = Path(out_dir).absolute()
        out_dir.mkdir(parents=True, exist_ok=True)
        onnx_path = Path(onnx_path).absolute()
        calibration = Path(calibration).absolute() if calibration else None
        if precision == "int8" and calibration is None:
            raise UserError(
                "INT8 on BM1684X needs the calibration set (calibration_inputs.npy): "
                "the compile rule must pass it for int8"
            )
        threads = max(1, len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else 2
        tpu_mlir_env.ensure_venv()
        input_name, shape = _onnx_input(onnx_path)
        np.savez(out_dir / TEST_INPUT, **{input_name: _test_input(calibration, batch_size, shape)})

        timings, commands = {}, {}
        command = transform_command(onnx_path, TOP_MLIR, (batch_size, *shape), TEST_INPUT,
                                    TOP_OUTPUTS)
        commands["transform"] = command
        timings["transform"] = _run_tool(command, out_dir, threads, "model_transform")

        table = None
        calibration_info = None
        if precision == "int8":
            files = write_calibration_set(calibration, out_dir / CALIBRATION_DIR, batch_size,
                                          int(settings["calibration_images"]))
            command = calibration_command(TOP_MLIR, CALIBRATION_DIR, files, CALIBRATION_TABLE)
            commands["calibration"] = command
            timings["calibration"] = _run_tool(command, out_dir, threads, "run_calibration")
            table = CALIBRATION_TABLE
            calibration_info = {"table": table, "files": files, "images": files * batch_size,
                                "source": str(calibration)}

        skip = precision in (settings.get("skip_bmodel_validation") or [])
        tolerance = (settings.get("tolerance") or {}).get(precision)
        for stale in PROFILE_NAMES:
            (out_dir / stale).unlink(missing_ok=True)
        command = deploy_command(TOP_MLIR, precision, BMODEL, table, TEST_INPUT, TOP_OUTPUTS,
                                 tolerance=tolerance, skip_validation=skip)
        commands["deploy"] = command
        timings["deploy"] = _run_tool(command, out_dir, threads, "model_deploy")

        tpu_mlir = sorted(out_dir.glob(f"{MODULE_NAME}_{TARGET}_*_tpu.mlir"))
        if len(tpu_mlir) != 1 or not (out_dir / BMODEL).is_file():
            raise UserError(
                f"model_deploy left no single *_tpu.mlir and {BMODEL} in {out_dir}: see the log"
            )
        tpu_mlir = tpu_mlir[0]
        weight_file = re.search(r'module\.weight_file = "([^"]+)"',
                                tpu_mlir.read_text(errors="replace")[:4000])
        profile = find_compiler_profile(out_dir)
        estimate = parse_compiler_profile(profile.read_text()) if profile else {}
        if not settings["keep_intermediates"]:
            keep = {tpu_mlir.name, BMODEL, weight_file.group(1) if weight_file else ""}
            _prune(out_dir, keep)
        return {
            "chip": TARGET,
            "precision": precision,
            "quantize": QUANTIZE[precision],
            "bmodel": BMODEL,
            "tpu_mlir": tpu_mlir.name,
            "tpu_mlir_weights": weight_file.group(1) if weight_file else None,
            "input_name": input_name,
            "input_shape": [batch_size, *shape],
            "estimated_latency_ms": estimate.get("estimated_latency_ms"),
            "estimate": {**estimate, "source": profile.name if profile else None,
                         "what": "compiler cycle-model estimate per batch, not a measurement"},
            "calibration": calibration_info,
            "bmodel_validated_on_cmodel": not skip,
            "timings_s": timings,
            "commands": {k: " ".join(map(str, v)) for k, v in commands.items()},
            "tpu_mlir_version": self.version(),
        }

    def load(self, compiled_dir, manifest, chip, threads):
        settings = settings_of(chip)
        mode = settings["mode"]
        device = chip_status(int(settings["devid"])) if mode != "simulator" else None
        if mode == "chip" and not device.ok:
            raise UserError(f"settings.mode is chip but the BM1684X is not usable: {device.reason}")
        if device is not None and device.ok:
            return SailRunner(Path(compiled_dir) / manifest["bmodel"], int(settings["devid"]))
        return MlirRunner(Path(compiled_dir), manifest, threads, chip.get("settings"))


BACKEND = TpuMlirBackend()
