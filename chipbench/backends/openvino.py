"""OpenVINO on the host CPU: FP32, BF16 and INT8 through OpenVINO's own Python API.

* fp32: ``INFERENCE_PRECISION_HINT=f32``. Without it OpenVINO runs float models in bf16 on
  CPUs with AMX (OpenVINO's documented default there), which would be a BF16 result labelled FP32.
* bf16: ``INFERENCE_PRECISION_HINT=bf16``, on CPUs whose ``OPTIMIZATION_CAPABILITIES`` list BF16
  (AVX512_BF16 or AMX; elsewhere the hint is emulated or ignored). The plan leaves bf16 out on
  other hosts (``precision_availability``), and compile refuses it there (UserError).
* int8: the calibrated QDQ model of :func:`chipbench.quantize.quantize_int8` (exactly what the
  onnxruntime backend runs), read by OpenVINO, which runs the quantised layers in INT8; the
  rest runs under the f32 hint.

Compile writes OpenVINO IR (``model.xml``/``model.bin``, FP32 weights kept as FP32:
``compress_to_fp16=False``) with a dynamic batch dimension. The runner reshapes it to the batch
of each call and compiles one static-shape model per batch size, on first use (inside the
untimed warm-up): the CPU plugin runs static shapes faster than a dynamic batch, and
``benchmark_app -b B`` does the same. Properties (threads, one stream, LATENCY hint, the
precision hint) are read back from the compiled model and recorded with the precision each
convolution and fully connected layer actually executes in.
"""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from chipbench.backends.base import Availability, Backend, Runner
from chipbench.capabilities import cpu_flags
from chipbench.errors import UserError

IR_FILE = "model.xml"
QDQ_FILE = "model_int8_qdq.onnx"
DEVICE = "CPU"
PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
#: Layers whose runtime precision shows what the arithmetic really runs in.
COMPUTE_LAYERS = ("Convolution", "FullyConnected", "MatMul", "Deconvolution")
#: Compiled-model properties recorded in settings (read back, not what we asked for).
RECORDED_PROPERTIES = (
    "INFERENCE_PRECISION_HINT", "INFERENCE_NUM_THREADS", "NUM_STREAMS", "PERFORMANCE_HINT",
    "OPTIMAL_NUMBER_OF_INFER_REQUESTS", "EXECUTION_MODE_HINT", "ENABLE_CPU_PINNING",
    "ENABLE_HYPER_THREADING", "SCHEDULING_CORE_TYPE", "CPU_DENORMALS_OPTIMIZATION",
    "EXECUTION_DEVICES",
)
#: CPU flags of native bfloat16 arithmetic (consulted only when OpenVINO cannot say).
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
INSTALL_HINT = "pip install openvino==2026.4.1 (envs/requirements.txt)"


def core():
    import openvino as ov

    return ov.Core()


def capabilities() -> list[str]:
    return list(core().get_property(DEVICE, "OPTIMIZATION_CAPABILITIES"))


def bf16_support() -> Availability:
    """Native bfloat16 as the runtime reports it; the CPU flags only if it cannot say."""
    try:
        caps = capabilities()
    except Exception as error:  # noqa: BLE001 - plugin and property errors vary
        if cpu_flags() & BF16_CPU_FLAGS:
            return Availability(True)
        return Availability(False, f"no native bfloat16: OpenVINO cannot report its "
                                   f"capabilities ({error}) and the CPU flags lack "
                                   f"{' and '.join(sorted(BF16_CPU_FLAGS))}")
    if "BF16" in caps:
        return Availability(True)
    return Availability(False, f"this CPU has no native bfloat16 (OpenVINO "
                               f"OPTIMIZATION_CAPABILITIES: {', '.join(caps)}; needs "
                               "AVX512_BF16 or AMX)")


def check_precision(precision: str) -> None:
    if precision not in PRECISION_HINTS:
        raise UserError(
            f"OpenVINO on the CPU runs fp32, bf16 or int8, not {precision!r}: fix "
            "chips.<name>.precisions"
        )
    if precision == "bf16":
        support = bf16_support()
        if not support.ok:
            raise UserError(f"{support.reason}: drop bf16 from the chip's precisions on this host")


def compile_properties(precision: str, threads: int) -> dict:
    """What we ask OpenVINO for: a latency set-up on `threads` cores, one stream, one request."""
    return {
        "INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision],
        "INFERENCE_NUM_THREADS": int(threads),
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
    }


def _plain(value):
    """A property value as JSON-friendly data (enums and ov.Type become their names)."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    name = getattr(value, "name", None)
    if isinstance(name, str):
        return name
    text = str(value)
    match = re.fullmatch(r"<Type: '(\w+)'>", text)
    return match.group(1) if match else text


def properties_in_force(compiled) -> dict:
    supported = compiled.get_property("SUPPORTED_PROPERTIES")
    result = {}
    for key in RECORDED_PROPERTIES:
        if key in supported:
            result[key] = _plain(compiled.get_property(key))
    return result


def runtime_precisions(compiled) -> dict:
    """{layer type: {runtime precision: count}} of the compute layers the CPU plugin runs."""
    counts: dict[str, Counter] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        layer = info["layerType"].astype(str) if "layerType" in info else op.get_type_name()
        if layer in COMPUTE_LAYERS:
            precision = info["runtimePrecision"].astype(str) if "runtimePrecision" in info else "?"
            counts.setdefault(layer, Counter())[precision] += 1
    return {layer: dict(c) for layer, c in sorted(counts.items())}


def check_runtime_precision(precision: str, layers: dict) -> None:
    """The precision we label the result with is the one the compute layers run in."""
    seen = Counter()
    for by_precision in layers.values():
        seen.update(by_precision)
    expected = {"fp32": {"f32"}, "bf16": {"bf16"}, "int8": {"u8", "i8"}}[precision]
    if not seen or not (set(seen) & expected):
        raise UserError(
            f"OpenVINO runs no compute layer in {precision} (runtime precisions {dict(seen)}): "
            "the result would be mislabelled; check the model and the OpenVINO version"
        )
    if precision == "fp32" and set(seen) - {"f32"}:
        raise UserError(
            f"OpenVINO runs layers of the FP32 model in {sorted(set(seen) - {'f32'})} despite "
            "INFERENCE_PRECISION_HINT=f32: the result would be mislabelled"
        )


class OpenVinoRunner(Runner):
    def __init__(self, model_path: Path, precision: str, threads: int, manifest: dict):
        check_precision(precision)
        self._core = core()
        self._model = self._core.read_model(str(model_path))
        self._input = self._model.inputs[0]
        dims = list(self._input.get_partial_shape())[1:]
        if not all(d.is_static for d in dims):
            raise UserError("the model's input must have static C, H, W (only the batch may vary)")
        self.image_shape = [d.get_length() for d in dims]
        self._precision = precision
        self._properties = compile_properties(precision, threads)
        self._compiled: dict[int, tuple] = {}
        self.last_compiled = None
        self._manifest = manifest

    def _for_batch(self, batch_size: int):
        entry = self._compiled.get(batch_size)
        if entry is None:
            model = self._model.clone()
            model.reshape({model.inputs[0]: [batch_size, *self.image_shape]})
            compiled = self._core.compile_model(model, DEVICE, self._properties)
            entry = (compiled, compiled.create_infer_request())
            self._compiled[batch_size] = entry
        self.last_compiled = entry[0]
        return entry[1]

    def run(self, batch: np.ndarray) -> np.ndarray:
        request = self._for_batch(len(batch))
        # share_inputs: no copy of a writable float32 array (a read-only one, e.g. memory-mapped,
        # is copied by OpenVINO); share_outputs + one explicit copy: the output is copied once.
        request.infer({0: batch}, share_inputs=True, share_outputs=True)
        return request.get_output_tensor(0).data.copy()

    def settings(self) -> dict:
        if self.last_compiled is None:  # nothing ran yet: compile for one image to read them
            self._for_batch(1)
        compiled = self.last_compiled
        return {
            "device": DEVICE,
            "precision": self._precision,
            "requested_properties": dict(self._properties),
            "properties": properties_in_force(compiled),
            "runtime_precisions": runtime_precisions(compiled),
            "batch_shape": "static: the IR is reshaped to the batch of the call and compiled "
                           "once per batch size, on its first (untimed warm-up) call",
            "api": "one InferRequest per batch size, synchronous infer(), input shared without "
                   "copy when writable (share_inputs), output copied once",
            **({"int8": self._manifest["quantization_summary"]}
               if self._manifest.get("quantization_summary") else {}),
        }


class OpenVinoBackend(Backend):
    name = "openvino"
    precisions = ("fp32", "bf16", "int8")
    static_batch = False

    def availability(self, chip: dict) -> Availability:
        try:
            import openvino  # noqa: F401
        except ImportError as error:
            return Availability(False, f"openvino is not importable ({error}): {INSTALL_HINT}")
        try:
            devices = core().available_devices
        except Exception as error:  # noqa: BLE001 - plugin loading errors vary
            return Availability(False, f"OpenVINO cannot list devices ({error})")
        if DEVICE not in devices:
            return Availability(False, f"OpenVINO sees no CPU device (devices: {devices})")
        return Availability(True)

    def precision_availability(self, chip: dict, precision: str) -> Availability:
        """bf16 needs native bfloat16 (AVX512_BF16 or AMX); fp32 and int8 run on any x86 CPU."""
        return bf16_support() if precision == "bf16" else Availability(True)

    def version(self) -> str:
        import openvino

        return openvino.__version__

    def compile(self, onnx_path, out_dir, precision, batch_size, chip, calibration, model=None):
        import openvino as ov

        check_precision(precision)
        onnx_path, out_dir = Path(onnx_path), Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        manifest = {"model": IR_FILE, "precision": precision,
                    "inference_precision_hint": PRECISION_HINTS[precision],
                    "ir": "converted with compress_to_fp16=False (FP32 weights stay FP32)"}
        source = onnx_path
        if precision == "int8":
            from chipbench.quantize import quantize_int8

            quantization = quantize_int8(onnx_path, out_dir / QDQ_FILE, calibration, chip)
            manifest["quantization"] = quantization
            manifest["quantized_onnx"] = QDQ_FILE
            manifest["quantization_summary"] = {
                **{k: quantization[k] for k in ("format", "weights", "activations",
                                                 "calibrate_method")},
                "calibration_images": quantization["calibration"]["images"],
            }
            source = out_dir / QDQ_FILE
        try:
            model = ov.convert_model(str(source))
            ov.save_model(model, str(out_dir / IR_FILE), compress_to_fp16=False)
        except Exception as error:  # noqa: BLE001 - conversion errors vary
            raise UserError(f"OpenVINO cannot convert {source.name}: "
                            f"{str(error).strip().splitlines()[0][:300]}") from error
        # Compile once here so a model OpenVINO refuses fails at compile time, and record
        # what the plugin makes of it.
        threads = int(((chip or {}).get("settings") or {}).get("threads") or os.cpu_count() or 1)
        runner = OpenVinoRunner(out_dir / IR_FILE, precision, threads, manifest)
        probe = runner.run(np.zeros((1, *runner.image_shape), dtype=np.float32))
        if not np.isfinite(probe).all():
            raise UserError(f"OpenVINO's {precision} model gives non-finite outputs on zeros")
        layers = runtime_precisions(runner.last_compiled)
        check_runtime_precision(precision, layers)
        manifest["runtime_precisions_at_compile"] = layers
        manifest["optimization_capabilities"] = capabilities()
        return manifest

    def load(self, compiled_dir, manifest, chip, threads):
        settings = (chip or {}).get("settings") or {}
        return OpenVinoRunner(Path(compiled_dir) / manifest["model"], manifest["precision"],
                              int(settings.get("threads") or threads), manifest)


BACKEND = OpenVinoBackend()


# --------------------------------------------------------------------------------------------
# benchmark_app, OpenVINO's own timing tool, for checking our numbers against it
# --------------------------------------------------------------------------------------------


def benchmark_app_executable() -> str:
    """benchmark_app of the running environment (the openvino wheel installs it)."""
    import sys

    beside = Path(sys.executable).parent / "benchmark_app"
    if beside.exists():
        return str(beside)
    found = shutil.which("benchmark_app")
    if not found:
        raise UserError(f"benchmark_app is not installed: {INSTALL_HINT}")
    return found


def openvino_benchmark_app_command(model_xml_or_onnx, batch: int, threads: int, seconds: float,
                                   precision: str) -> list[str]:
    """benchmark_app set up like our runner: CPU, no hint, one stream, one request, `threads`.

    ``-hint none -nstreams 1 -nthreads N -nireq 1`` match PERFORMANCE_HINT LATENCY with one
    stream and one InferRequest; ``-b`` reshapes to a static batch, as the runner does;
    ``-infer_precision`` is the precision hint (f32 for int8: the QDQ layers run INT8, the rest
    f32). With ``-api async`` and one request, throughput = frames / wall time of the loop.
    """
    if precision not in PRECISION_HINTS:
        raise UserError(f"benchmark_app comparison runs fp32, bf16 or int8, not {precision!r}")
    return [
        benchmark_app_executable(), "-m", str(model_xml_or_onnx), "-d", DEVICE,
        "-hint", "none", "-nstreams", "1", "-nthreads", str(int(threads)), "-nireq", "1",
        "-api", "async", "-b", str(int(batch)), "-t", str(int(round(seconds))),
        "-infer_precision", PRECISION_HINTS[precision],
    ]


_NUMBER = r"([0-9]+(?:\.[0-9]+)?)"
_TO_MS = {"ms": 1.0, "us": 1e-3, "µs": 1e-3, "s": 1e3}


def parse_benchmark_app(stdout: str) -> dict:
    """Throughput (FPS), latencies (ms), count and duration (ms) from benchmark_app's report.

    benchmark_app prints latencies in ms, or in us when they are below a millisecond.
    """
    result = {}
    for key, label in (("median_ms", "Median"), ("average_ms", "Average"), ("min_ms", "Min"),
                       ("max_ms", "Max"), ("duration_ms", "Duration")):
        matches = re.findall(rf"\b{label}:\s*{_NUMBER}\s*(ms|us|µs|s)\b", stdout)
        if matches:
            value, unit = matches[-1]
            result[key] = float(value) * _TO_MS[unit]
    throughput = re.findall(rf"Throughput:\s*{_NUMBER}\s*FPS", stdout)
    if not throughput:
        raise UserError("benchmark_app printed no 'Throughput: … FPS' line: see its output")
    result["throughput_fps"] = float(throughput[-1])
    count = re.findall(r"Count:\s*([0-9]+)\s*iterations", stdout)
    if count:
        result["count"] = int(count[-1])
    return result
