"""The small interface every chip's backend implements: availability, compile, load, run.

A backend module exposes `BACKEND`, an instance of a `Backend` subclass. The workflow never
imports a runtime directly; it asks `chipbench.backends.get(name)`, so a chip whose runtime is
not installed costs nothing until it is used.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chipbench import timing
from chipbench.errors import UserError

COMPILED_MANIFEST = "compiled.json"


@dataclass(frozen=True)
class Availability:
    """Whether a chip can run on this host, and if not, why (shown in the tables)."""

    ok: bool
    reason: str = ""


def progress(iterable, total: int, description: str):
    """tqdm progress bar (to stderr, i.e. the job's log) when tqdm is installed."""
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=description, mininterval=5.0)


class Runner(ABC):
    """A loaded model on its device."""

    #: Fixed batch size of a static-shape artefact; None when any batch size runs.
    batch_size: int | None = None
    #: What a vendor tool reports beside the latencies of the last `benchmark` (host-device
    #: copies, host latency, the tool's own summary); copied into perf.json.
    benchmark_extra: dict = {}
    #: What produced this runner's outputs, named in the accuracy tables: "device" when the
    #: chip itself ran them, otherwise e.g. a bit-accurate simulation on the host.
    result_source: str = "device"

    @abstractmethod
    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch (float32 NCHW) and return the model output for it."""

    def run_all(self, inputs: np.ndarray, batch_size: int, input_dir: Path | None = None) -> np.ndarray:
        """Outputs for every input, in order, whatever the batch size.

        `input_dir` holds the same inputs as one .bin file each, for backends whose tool
        reads files (`Backend.bin_inputs`); others ignore it.

        The last partial batch is padded with copies of its first input and the padding's
        outputs are dropped, so static-shape artefacts see full batches and every input's
        output is kept (the original batch-4 path kept one output per batch). Backends
        whose vendor tool reads input files (ais_bench) override this.
        """
        if batch_size < 1:
            raise UserError(f"batch size {batch_size} is not positive: use a batch size ≥ 1")
        n = len(inputs)
        outputs = []
        starts = range(0, n, batch_size)
        for start in progress(starts, len(starts), f"inference bs{batch_size}"):
            batch = inputs[start : start + batch_size]
            real = len(batch)
            if real < batch_size:
                padding = np.repeat(batch[:1], batch_size - real, axis=0)
                batch = np.concatenate([batch, padding])
            result = np.asarray(self.run(np.ascontiguousarray(batch)))
            if len(result) != batch_size:
                raise RuntimeError(
                    f"runtime returned {len(result)} outputs for a batch of {batch_size}"
                )
            outputs.append(result[:real])
        return np.concatenate(outputs)

    def settings(self) -> dict:
        """Runtime knobs in force, recorded in every result."""
        return {}

    def crosscheck(self) -> dict | None:
        """After `run_all`: a check of its outputs against a slower, more faithful path (e.g.
        the simulator of the real artefact), recorded beside the accuracy. None when none."""
        return None

    def benchmark(self, batch: np.ndarray, protocol: dict) -> np.ndarray:
        """Per-iteration latencies (ms) of running `batch` under the core timing protocol.

        Backends whose vendor tool does its own timing (ais_bench, bmrt_test) override this.
        """
        return timing.measure(lambda: self.run(batch), **protocol)


class Backend(ABC):
    """One runtime. `chip` arguments are the resolved chip entries of the config."""

    name: str
    #: Precisions this backend can compile.
    precisions: tuple[str, ...] = ("fp32",)
    #: True when a compiled artefact serves one batch size only (ATC, TPU-MLIR); False when
    #: one artefact runs every batch size (ONNX Runtime), so it is compiled once.
    static_batch: bool = False
    #: True when the accuracy run reads the inputs as one .bin file per image (ais_bench);
    #: the workflow then writes them once per model (rule write_bin_inputs).
    bin_inputs: bool = False
    #: True when `compile` also needs the model's config entry (`model=` keyword): the PyTorch
    #: reference rebuilds the network from its architecture and weights, not from the ONNX.
    needs_model: bool = False

    @abstractmethod
    def availability(self, chip: dict) -> Availability:
        """Check toolchain and device without side effects."""

    def timing_availability(self, chip: dict) -> Availability:
        """Whether throughput can be measured here. Backends that compile and score on the
        host but time only on the device (a simulator's speed is no chip figure) override."""
        return self.availability(chip)

    def needs_calibration(self, precision: str) -> bool:
        """Whether compiling at `precision` reads the calibration set (training images)."""
        return precision == "int8"

    @abstractmethod
    def version(self) -> str:
        """Version string of the runtime/toolchain."""

    @abstractmethod
    def compile(
        self,
        onnx_path: Path,
        out_dir: Path,
        precision: str,
        batch_size: int,
        chip: dict,
        calibration: Path | None,
    ) -> dict:
        """Turn the ONNX model into this chip's artefact(s) inside `out_dir`.

        Returns what `load` needs later; the caller writes it to `compiled.json`.
        """

    @abstractmethod
    def load(self, compiled_dir: Path, manifest: dict, chip: dict, threads: int) -> Runner:
        """Load a compiled artefact for inference."""

    def open(self, compiled_dir: Path, chip: dict, threads: int) -> Runner:
        manifest = json.loads((Path(compiled_dir) / COMPILED_MANIFEST).read_text())
        return self.load(Path(compiled_dir), manifest, chip, threads)
