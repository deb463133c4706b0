"""The small interface every chip's backend implements: availability, compile, load, run.

A backend module (or package) exposes `BACKEND`, an instance of a `Backend` subclass. The
workflow never imports a runtime directly; it asks `chipbench.backends.get(name)`, so a chip
whose runtime is not installed costs nothing until it is used.

Besides the four calls, a backend declares what the workflow must arrange for it, and the
rules ask it through one helper each (rules/common.smk), never by naming a backend:
`artefact_name` (the folder of a compiled artefact for a batch size), `reads_input_files`
(the accuracy run reads the test set as one file per image) and `model_keys` (what compile
reads of the model's config entry). A `Runner` carries what a result record says of it
(`result_source`, `timer`).
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
    #: Who holds the clock in `benchmark` (recorded in every perf record's provenance).
    timer: str = "chipbench.timing.measure: time.perf_counter around each call"

    @abstractmethod
    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch (float32 NCHW) and return the model output for it."""

    def run_all(self, inputs: np.ndarray, batch_size: int, input_dir: Path | None = None) -> np.ndarray:
        """Outputs for every input, in order, whatever the batch size.

        `input_dir` holds the same inputs as one file each (`chipbench.tools.write_input_files`),
        given to runners whose backend `reads_input_files`; others ignore it.

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

        Backends whose vendor tool does its own timing (ais_bench, bmrt_test) override this,
        and say so in `timer`.
        """
        return timing.measure(lambda: self.run(batch), **protocol)


class Backend(ABC):
    """One runtime. `chip` arguments are the resolved chip entries of the config."""

    name: str
    #: Precisions this backend can compile.
    precisions: tuple[str, ...] = ("fp32",)
    #: True when a compiled artefact serves one batch size only (static shapes: ATC,
    #: TensorRT, TPU-MLIR); False when one artefact runs every batch size (ONNX Runtime), so
    #: it is compiled once. Read through `compiled_batch_size` and `artefact_name`.
    static_batch: bool = False
    #: True when the accuracy run reads the test set as one raw float32 file per image
    #: (its vendor tool reads files): the workflow writes them once per model and passes
    #: the folder to `Runner.run_all(..., input_dir=...)`.
    reads_input_files: bool = False
    #: Keys of the model's config entry that `compile` reads (`model=` keyword): the PyTorch
    #: reference rebuilds the network from them; the others compile the ONNX alone.
    model_keys: tuple[str, ...] = ()
    #: True when compiling starts with a step that is the same for every precision (TPU-MLIR's
    #: model_transform, ONNX -> its top-level MLIR): the workflow runs `transform` once per
    #: artefact folder in a job of its own and gives its folder to every precision's compile
    #: (`transformed=` keyword), which otherwise runs the step itself.
    transforms_model: bool = False

    def compiled_batch_size(self, batch_size: int) -> int | None:
        """The batch size the artefact that runs `batch_size` is compiled for; None when one
        artefact runs every batch size."""
        return int(batch_size) if self.static_batch else None

    def artefact_name(self, batch_size: int) -> str:
        """Folder name of the compiled artefact that runs `batch_size`: ``bs<N>`` for a
        static-shape artefact, ``dynamic`` for one that runs them all."""
        compiled = self.compiled_batch_size(batch_size)
        return "dynamic" if compiled is None else f"bs{compiled}"

    @abstractmethod
    def availability(self, chip: dict) -> Availability:
        """Check toolchain and device without side effects."""

    def precision_availability(self, chip: dict, precision: str) -> Availability:
        """Whether `precision` can run here on an available chip. Backends whose precisions
        depend on the hardware (bf16 on a CPU) override; the plan caches the answer."""
        return Availability(True)

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
        model: dict | None = None,
    ) -> dict:
        """Turn the ONNX model into this chip's artefact(s) inside `out_dir`.

        `batch_size` is `compiled_batch_size` of the batch sizes it serves; `model` holds the
        `model_keys` of the model's config entry. A backend that `transforms_model` also
        takes `transformed=`: the folder of its `transform` step, or None to run it here.
        Returns what `load` needs later; the caller writes it to `compiled.json`.
        """

    def transform(self, onnx_path: Path, out_dir: Path, batch_size: int | None, chip: dict,
                  calibration: Path) -> dict:
        """The precision-independent first step of `compile`, into `out_dir`; returns its
        manifest. Only backends that declare `transforms_model` have one."""
        raise NotImplementedError(f"backend {self.name} has no transform step")

    @abstractmethod
    def load(self, compiled_dir: Path, manifest: dict, chip: dict, threads: int) -> Runner:
        """Load a compiled artefact for inference."""

    def open(self, compiled_dir: Path, chip: dict, threads: int) -> Runner:
        manifest = json.loads((Path(compiled_dir) / COMPILED_MANIFEST).read_text())
        return self.load(Path(compiled_dir), manifest, chip, threads)
