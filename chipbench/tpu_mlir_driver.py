"""Long-lived inference process inside the TPU-MLIR venv (Python 3.10; numpy + tpu_mlir only).

Run by `chipbench.backends.tpu_mlir` with the venv's Python and the compile folder as working
directory (the .mlir files name their weight files relative to it):

    python tpu_mlir_driver.py serve --model X_tpu.mlir   # quantized TPU dialect on the CPU
    python tpu_mlir_driver.py serve --model X.bmodel     # bmodel on the cmodel simulator

It loads the model once, then answers one JSON request per line on stdin, one JSON reply per
line on its protocol stream (the original stdout; the native libraries' own prints are sent to
stderr so they cannot corrupt the protocol):

    {"cmd": "run", "input": "in.npy", "output": "out.npy", "batch_size": 4}
        -> {"ok": true, "n": N, "seconds": S, "cpu_seconds": C}
    {"cmd": "info"} -> {"ok": true, "inputs": {...}, "outputs": [...]}
    {"cmd": "quit"} -> (exits)

`run` reads N inputs (float32 NCHW), runs them in batches of `batch_size` (the last one padded
with copies of its first input; the padding's outputs are dropped) and writes the first output
of the model, N rows, as .npy. This file must not import chipbench: it runs in the other venv.
"""

from __future__ import annotations

import os
import sys

# This file's folder (chipbench/) holds modules named like common ones (config, models, ...):
# keep it off the import path of the tools.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

ENV_MARK = "CHIPBENCH_TPU_MLIR_DRIVER_ENV"


def _ensure_tool_environment() -> None:
    """Import tpu_mlir (which sets PATH, LD_LIBRARY_PATH, PYTHONPATH, TPUC_ROOT), then re-exec.

    The dynamic loader reads LD_LIBRARY_PATH at process start only, so the settings take effect
    in a fresh image of this same process, as tpu_mlir's own console scripts do with a child.
    """
    if os.environ.get(ENV_MARK) == "1":
        return
    import tpu_mlir  # noqa: F401  (side effect: environment)

    os.environ[ENV_MARK] = "1"
    os.execv(sys.executable, [sys.executable, os.path.abspath(__file__), *sys.argv[1:]])


def _progress(message: str) -> None:
    print(f"[tpu_mlir_driver] {message}", file=sys.stderr, flush=True)


class MlirModel:
    """A TPU-dialect .mlir (e.g. *_tpu.mlir) run by pymlir on the host CPU."""

    def __init__(self, path: str):
        import pymlir

        pymlir.set_mem_mode("value_mem")
        self.module = pymlir.module()
        self.module.load(path)
        if hasattr(self.module, "set_progress_silent"):
            self.module.set_progress_silent(True)
        self.input_names = list(self.module.input_names)
        self.output_names = list(self.module.output_names)
        if len(self.input_names) != 1:
            raise RuntimeError(f"{path} has {len(self.input_names)} inputs; one is supported")

    def run(self, batch):
        import numpy as np

        self.module.set_tensor(self.input_names[0], batch, list(batch.shape))
        self.module.invoke(True)  # fixed_to_float: INT8 outputs come back dequantized
        return np.array(self.module.get_tensor(self.output_names[0]), dtype=np.float32)


class BmodelModel:
    """A .bmodel on the bit-accurate cmodel simulator, through tpu-mlir's model_runner."""

    def __init__(self, path: str):
        from tpu_mlir.python.tools import model_runner

        self.path = path
        self.runner = model_runner
        self.input_names = ["input"]
        self.output_names = []

    def run(self, batch):
        import numpy as np

        outputs = self.runner.model_inference({"input": batch}, self.path, dump_all=False)
        self.output_names = list(outputs)
        return np.array(outputs[self.output_names[0]], dtype=np.float32)


def run_batches(model, inputs, batch_size: int):
    import numpy as np

    n = len(inputs)
    results = []
    started = time.time()
    last = started
    for start in range(0, n, batch_size):
        batch = np.ascontiguousarray(inputs[start : start + batch_size], dtype=np.float32)
        real = len(batch)
        if real < batch_size:
            batch = np.concatenate([batch, np.repeat(batch[:1], batch_size - real, axis=0)])
        output = model.run(batch)
        if output.shape[0] != batch_size:
            output = output.reshape(batch_size, -1)
        results.append(output[:real].reshape(real, *output.shape[1:]))
        now = time.time()
        if now - last >= 10:
            done = start + real
            _progress(f"{done}/{n} inputs, {done / (now - started):.1f}/s")
            last = now
    return np.concatenate(results) if results else np.zeros((0,), np.float32)


def serve(model_path: str, protocol) -> int:
    import numpy as np

    loaded = time.time()
    model = BmodelModel(model_path) if model_path.endswith(".bmodel") else MlirModel(model_path)
    _progress(f"loaded {model_path} in {time.time() - loaded:.2f} s")

    def reply(data: dict) -> None:
        protocol.write(json.dumps(data) + "\n")
        protocol.flush()

    reply({"ok": True, "ready": True})
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            request = json.loads(line)
            command = request.get("cmd")
            if command == "quit":
                return 0
            if command == "info":
                reply({"ok": True, "inputs": model.input_names, "outputs": model.output_names})
            elif command == "run":
                inputs = np.load(request["input"], mmap_mode="r")
                started, cpu = time.time(), time.process_time()
                outputs = run_batches(model, inputs, int(request["batch_size"]))
                seconds, cpu = time.time() - started, time.process_time() - cpu
                np.save(request["output"], outputs)
                reply({"ok": True, "n": int(len(inputs)), "seconds": seconds, "cpu_seconds": cpu})
            else:
                reply({"ok": False, "error": f"unknown command {command!r}"})
        except Exception as error:  # report, keep serving
            traceback.print_exc(file=sys.stderr)
            reply({"ok": False, "error": f"{type(error).__name__}: {error}"})
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve_parser = sub.add_parser("serve", help="load a model, answer JSON requests on stdin")
    serve_parser.add_argument("--model", required=True, help="*_tpu.mlir or .bmodel")
    args = parser.parse_args(argv)
    _ensure_tool_environment()
    # Keep the protocol on a private copy of stdout; everything printed to fd 1 from now on
    # (native libraries included) goes to stderr, i.e. the job's log.
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return serve(args.model, protocol)


if __name__ == "__main__":
    sys.exit(main())
