"""The BM1684X itself: whether it is here (sophon-sail and a device node), and the bmodel run
on it through sophon-sail, timed by the SOPHON SDK's bmrt_test (its command line and the
parser of its output are here too)."""

from __future__ import annotations

import glob
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from chipbench.backends.base import Availability, Runner


def bmrt_test_path() -> str | None:
    found = shutil.which("bmrt_test")
    if found:
        return found
    for candidate in sorted(glob.glob("/opt/sophon/libsophon-*/bin/bmrt_test")):
        return candidate
    return None


def bmrt_test_command(bmodel, loopnum: int = 1, devid: int = 0) -> list[str]:
    """SOPHON SDK's bmrt_test: runs the bmodel on the chip and prints its timings."""
    return [
        bmrt_test_path() or "bmrt_test",
        "--bmodel", str(bmodel), "--loopnum", str(int(loopnum)), "--devid", str(int(devid)),
    ]


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
        if self.timing_tool == "bmrt_test":
            self.timer = "bmrt_test: calculate time of each loop, the tool's own timer"

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

