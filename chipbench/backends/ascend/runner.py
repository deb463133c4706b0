"""A static-batch .om on one NPU, driven by ais_bench (or its successor ``msit benchmark``).

The tool runs over a folder of one raw float32 file per image, writes one output file per
input file, and a ``<output_dirname>_summary.json`` holding the NPU compute time of every
timed iteration.
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

import numpy as np

from chipbench.backends.ascend.commands import SETUP_HINT, ais_bench_command
from chipbench.backends.ascend.outputs import (
    check_input_dir,
    collect_outputs,
    find_summary,
    parse_summary,
)
from chipbench.backends.base import Runner
from chipbench.errors import UserError
from chipbench.tools import run_logged, write_input_files


class AscendRunner(Runner):
    """A static-batch .om on one NPU, driven by ais_bench / msit."""

    timer = "ais_bench/msit: NPU compute time of each loop, the tool's own timer"

    def __init__(self, om_path, batch_size: int, device_id: int = 0, tool: str = "ais_bench",
                 outfmt: str = "NPY", info: dict | None = None):
        self.om_path = Path(om_path)
        self.batch_size = int(batch_size)
        self.device_id = int(device_id)
        self.tool = tool
        self.outfmt = outfmt
        self.info = dict(info or {})
        self._session = None
        #: Extra perf-record fields of the last `benchmark` (host↔device copy times, the
        #: tool's own summary): measure_throughput merges them into perf.json.
        self.benchmark_extra: dict = {}

    def settings(self) -> dict:
        return {
            "tool": self.tool,
            "device_id": self.device_id,
            "outfmt": self.outfmt,
            "timed_quantity": "NPU compute time (ais_bench NPU_compute_time, warm-up excluded)",
            **{k: v for k, v in self.info.items() if v is not None},
        }

    def _command(self, input_dir, output_dir, dirname, loop=None, warmup=None) -> list[str]:
        return ais_bench_command(
            self.om_path, input_dir, output_dir, self.batch_size, self.outfmt, loop=loop,
            warmup=warmup, device=self.device_id, output_dirname=dirname, tool=self.tool,
            python=sys.executable,
        )

    def run(self, batch: np.ndarray) -> np.ndarray:
        """One batch through ais_bench's Python API (``InferSession.infer``)."""
        if self._session is None:
            try:
                from ais_bench.infer.interface import InferSession
            except ImportError as error:
                raise UserError(
                    f"ais_bench's Python API does not import ({error}): pip install the aclruntime "
                    "and ais_bench wheels into this environment"
                ) from None
            self._session = InferSession(self.device_id, str(self.om_path))
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if len(batch) != self.batch_size:
            raise UserError(f"{self.om_path.name} takes batches of {self.batch_size}, not {len(batch)}")
        return np.asarray(self._session.infer([batch], mode="static")[0])

    def run_all(self, inputs: np.ndarray, batch_size: int, input_dir=None) -> np.ndarray:
        """Outputs for every input, in order: ais_bench over a folder of per-image .bin files.

        `input_dir` is a folder written by `write_input_files` for these same inputs (the
        workflow writes it once per model); without it the files are written to a
        temporary folder first.
        """
        if int(batch_size) != self.batch_size:
            raise UserError(
                f"{self.om_path.name} was compiled for batch size {self.batch_size}, not "
                f"{batch_size}: compile the accuracy batch size"
            )
        n = len(inputs)
        with tempfile.TemporaryDirectory(prefix="chipbench-ais-") as tmp:
            tmp = Path(tmp)
            if input_dir is None:
                input_dir = tmp / "inputs"
                write_input_files(inputs, input_dir)
            stems = check_input_dir(input_dir, inputs)
            run_logged(self._command(input_dir, tmp / "out", "outputs"), what=self.tool, hint=SETUP_HINT)
            return collect_outputs(tmp / "out" / "outputs", n, self.batch_size, self.outfmt, stems=stems)

    def _bench_once(self, batch: np.ndarray, loop: int, warmup: int) -> dict:
        with tempfile.TemporaryDirectory(prefix="chipbench-ais-") as tmp:
            tmp = Path(tmp)
            write_input_files(batch, tmp / "inputs")
            run_logged(self._command(tmp / "inputs", tmp / "out", "bench", loop, warmup), what=self.tool, hint=SETUP_HINT)
            summary = parse_summary(find_summary(tmp / "out", "bench"), self.batch_size)
        if summary["iterations"] != loop:
            print(f"note: asked for --loop {loop}, the summary counts {summary['iterations']} "
                  "timed iterations", file=sys.stderr)
        return summary

    def benchmark(self, batch: np.ndarray, protocol: dict) -> np.ndarray:
        """NPU compute time (ms) of each timed iteration, measured by ais_bench.

        ``--warmup_count`` = warmup_iterations; ``--loop`` = min_iterations. When those
        iterations sum to less than min_seconds, the run is repeated once with enough loops
        for min_seconds (at the first run's mean), never more than max_iterations; the second
        run's figures are the result.
        """
        warmup = int(protocol.get("warmup_iterations", 0))
        minimum = max(1, int(protocol.get("min_iterations", 1)))
        cap = protocol.get("max_iterations")
        loop = min(minimum, int(cap)) if cap else minimum
        summary = self._bench_once(batch, loop, warmup)
        seconds = float(protocol.get("min_seconds", 0.0))
        timed = sum(summary["latencies_ms"]) / 1000.0 if summary["latencies_ms"] else 0.0
        mean = summary["latency_ms"]["mean"]
        if timed < seconds and mean > 0 and (not cap or loop < int(cap)):
            wanted = max(minimum, math.ceil(seconds * 1000.0 / mean * 1.05))
            loop = min(wanted, int(cap)) if cap else wanted
            summary = self._bench_once(batch, loop, warmup)
        self.benchmark_extra = {
            "h2d_ms": summary["h2d_ms"],
            "d2h_ms": summary["d2h_ms"],
            "tool_summary": summary["tool_summary"],
        }
        if not summary["latencies_ms"]:
            raise UserError("the ais_bench summary has no npu_compute_time_list: upgrade ais_bench")
        return np.asarray(summary["latencies_ms"], dtype=np.float64)

