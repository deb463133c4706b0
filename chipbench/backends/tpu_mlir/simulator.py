"""Without the chip: the quantized *_tpu.mlir on the host CPU through pymlir, the model loaded
once in long-lived processes (`chipbench/tpu_mlir_driver.py`, one per core, each running a
contiguous shard of the inputs). For INT8 it reproduces the bit-accurate cmodel simulator
exactly, at ~1/50 of its cost; `crosscheck` runs the .bmodel on the cmodel (tpu-mlir's
model_runner) for a seeded subset and compares."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from chipbench import tpu_mlir_env
from chipbench.backends.base import Runner
from chipbench.backends.tpu_mlir.toolchain import settings_of
from chipbench.errors import UserError

DRIVER = Path(__file__).resolve().parents[2] / "tpu_mlir_driver.py"

#: Largest |tpu.mlir - cmodel| accepted by crosscheck, relative to max |cmodel output| (and
#: absolute below 1): INT8 runs the same integer arithmetic, so it must be exact.
CROSSCHECK_TOLERANCE = {"int8": 0.0, "fp16": 1e-3, "fp32": 1e-5}


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

