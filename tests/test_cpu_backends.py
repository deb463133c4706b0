"""CPU backends beside ONNX Runtime FP32: ORT FP16/INT8, OpenVINO FP32/BF16/INT8, PyTorch eager.

Random-init SimCLR (ResNet-18, ImageNet stem: cheap on 32×32) on realistic inputs: SimCLR
views of seeded noise, in [0, 1] like the workflow's. Agreement with FP32 is measured on the
128-d embeddings. (A random-init SimCLRv2 is no use for top-1 agreement: it predicts the same
class for every input, and the input-dependent part of its logits is ~3 % of their size, so
INT8 top-1 agreement on it is a coin toss.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from chipbench import augment, export, models, quantize
from chipbench.backends import get
from chipbench.backends.base import COMPILED_MANIFEST
from chipbench.errors import UserError

openvino_backend = pytest.importorskip("chipbench.backends.openvino")
pytest.importorskip("openvino")
pytest.importorskip("onnxconverter_common")

THREADS = 2
CHIP = {"settings": {"threads": THREADS}}


def views(n_images: int, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(0, 256, (n_images, 3, 32, 32), dtype=np.uint8)
    return augment.simclr_views(noise, seed)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def centred_cosine(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Cosine after removing the reference's mean embedding: only the input-dependent part."""
    mean = reference.mean(0)
    return cosine(reference - mean, other - mean)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """results/models/simclr/ as the export rule leaves it: model.onnx + weights.json."""
    folder = tmp_path_factory.mktemp("models") / "simclr"
    export.export_onnx(models.build("simclr", None, 0), folder / "model.onnx", 17)
    (folder / "weights.json").write_text(json.dumps(models.weights_info(None, 0)))
    return folder / "model.onnx"


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    """A calibration set (64 views) and, beside it, a poisoned test set nobody may read."""
    folder = tmp_path_factory.mktemp("data")
    np.save(folder / "calibration_inputs.npy", views(32, seed=11))
    np.save(folder / "test_inputs.npy", np.full((8, 3, 32, 32), np.nan, dtype=np.float32))
    return folder / "calibration_inputs.npy"


@pytest.fixture(scope="module")
def inputs():
    return views(24, seed=5)  # 48 views, none of them seen in calibration


@pytest.fixture(scope="module")
def compiled(exported, calibration, tmp_path_factory):
    """compile(backend, precision) -> (runner, manifest), compiled once per module."""
    cache = {}

    def compile_(backend_name: str, precision: str):
        key = (backend_name, precision)
        if key not in cache:
            backend = get(backend_name)
            out = tmp_path_factory.mktemp(f"{backend_name}_{precision}")
            extra = {"model": {"arch": "simclr"}} if backend_name == "pytorch" else {}
            manifest = backend.compile(exported, out, precision, None, CHIP,
                                       calibration if precision == "int8" else None, **extra)
            (out / COMPILED_MANIFEST).write_text(json.dumps(manifest))
            cache[key] = (backend.open(out, CHIP, THREADS), manifest)
        return cache[key]

    return compile_


@pytest.fixture(scope="module")
def reference(compiled, inputs):
    runner, _ = compiled("onnxruntime", "fp32")
    return runner.run_all(inputs, 16)


# ------------------------------------------------------------------------ ONNX Runtime FP16


def test_ort_fp16_loads_runs_and_agrees_with_fp32(compiled, inputs, reference):
    runner, manifest = compiled("onnxruntime", "fp16")
    out = runner.run_all(inputs, 16)
    assert out.dtype == np.float32 and out.shape == reference.shape
    assert cosine(reference, out).min() > 0.999
    assert centred_cosine(reference, out).min() > 0.99
    assert manifest["io_dtype"] == "float16" and manifest["conversion"]["keep_io_types"] is False
    settings = runner.settings()
    assert settings["io_dtype"] == "float16"
    assert settings["fp16_note"].startswith("CPU execution provider:")
    execution = manifest["fp16_execution"]
    assert execution["nodes_on_float16"] + execution["nodes_on_float32"] > 0


# ------------------------------------------------------------------------ INT8 calibration


def test_calibration_reads_only_the_given_file(exported, calibration, tmp_path, monkeypatch):
    loaded, fed = [], []
    real_load, real_next = np.load, quantize.NpyCalibrationReader.get_next

    def spy_load(path, *args, **kwargs):
        name = path if isinstance(path, (str, os.PathLike)) else path.name  # file objects
        loaded.append(Path(name).resolve())
        return real_load(path, *args, **kwargs)

    def spy_next(self):
        batch = real_next(self)
        if batch is not None:
            fed.append(next(iter(batch.values())).copy())
        return batch

    monkeypatch.setattr(np, "load", spy_load)
    monkeypatch.setattr(quantize.NpyCalibrationReader, "get_next", spy_next)
    chip = {"settings": {"calibration_images": 10, "calibration_batch_size": 4}}
    manifest = get("onnxruntime").compile(exported, tmp_path, "int8", None, chip, calibration)

    assert set(loaded) == {calibration.resolve()}
    expected = real_load(calibration)[:10]
    np.testing.assert_array_equal(np.concatenate(fed), expected)
    record = manifest["quantization"]["calibration"]
    assert record["file"] == str(calibration)
    assert (record["images"], record["batches"], record["images_in_file"]) == (10, 3, 64)
    assert record["sha256"] == quantize.sha256_of(calibration)


def test_reader_feeds_file_in_order_and_checks_shape(calibration):
    data = np.load(calibration)
    reader = quantize.NpyCalibrationReader(calibration, "input", 24, image_shape=(3, 32, 32))
    batches = list(iter(reader.get_next, None))
    assert [len(b["input"]) for b in batches] == [24, 24, 16]
    np.testing.assert_array_equal(np.concatenate([b["input"] for b in batches]), data)
    with pytest.raises(UserError, match="calibration images are"):
        quantize.NpyCalibrationReader(calibration, "input", 4, image_shape=(3, 64, 64))
    with pytest.raises(UserError, match="does not exist"):
        quantize.NpyCalibrationReader(calibration.parent / "missing.npy", "input", 4)


@pytest.mark.parametrize("backend_name", ["onnxruntime", "openvino"])
def test_int8_without_calibration_is_a_user_error(backend_name, exported, tmp_path):
    with pytest.raises(UserError, match="calibration"):
        get(backend_name).compile(exported, tmp_path, "int8", None, CHIP, None)


def test_unknown_calibrate_method_is_a_user_error(exported, calibration, tmp_path):
    chip = {"settings": {"calibrate_method": "kl"}}
    with pytest.raises(UserError, match="calibrate_method"):
        get("onnxruntime").compile(exported, tmp_path, "int8", None, chip, calibration)


@pytest.mark.parametrize("backend_name", ["onnxruntime", "openvino"])
def test_int8_agrees_with_fp32(backend_name, compiled, inputs, reference):
    """Measured here: raw cosine ≥ 0.997, centred cosine ≈ 0.97 on average (min ≈ 0.85).

    The centred cosine is the meaningful one (the mean embedding dominates the raw cosine);
    an output unrelated to the input scores ≈ 0 on it.
    """
    runner, manifest = compiled(backend_name, "int8")
    out = runner.run_all(inputs, 16)
    assert cosine(reference, out).min() > 0.99
    centred = centred_cosine(reference, out)
    assert centred.mean() > 0.9 and centred.min() > 0.6
    assert manifest["quantization"]["activations"].startswith("uint8")
    assert manifest["quantization"]["format"] == "QDQ"


def test_ort_int8_runs_integer_kernels(compiled):
    _, manifest = compiled("onnxruntime", "int8")
    assert manifest["optimized_graph_ops"].get("QLinearConv", 0) > 0
    assert "Conv" not in manifest["optimized_graph_ops"]


def test_both_backends_run_the_same_quantized_model(compiled, inputs):
    ort_runner, ort_manifest = compiled("onnxruntime", "int8")
    ov_runner, ov_manifest = compiled("openvino", "int8")
    assert ort_manifest["quantization"] == ov_manifest["quantization"]
    assert cosine(ort_runner.run_all(inputs, 16), ov_runner.run_all(inputs, 16)).min() > 0.99
    layers = ov_runner.settings()["runtime_precisions"]
    assert set(layers["Convolution"]) <= {"u8", "i8"}


# ------------------------------------------------------------------------ OpenVINO


def test_openvino_fp32_matches_ort_and_records_f32(compiled, inputs, reference):
    runner, manifest = compiled("openvino", "fp32")
    out = runner.run_all(inputs, 16)
    assert np.abs(out - reference).max() / np.abs(reference).max() < 1e-4
    settings = runner.settings()
    assert settings["properties"]["INFERENCE_PRECISION_HINT"] == "float32"
    assert settings["properties"]["INFERENCE_NUM_THREADS"] == THREADS
    assert settings["properties"]["NUM_STREAMS"] == 1
    assert settings["properties"]["PERFORMANCE_HINT"] == "LATENCY"
    assert all(set(p) == {"f32"} for p in settings["runtime_precisions"].values())
    assert manifest["inference_precision_hint"] == "f32"


def test_openvino_settings_do_not_depend_on_the_batch_sizes_run(compiled, inputs):
    """Each perf job runs its own batch size: the tables name a runtime once per chip and
    precision only if its recorded settings are the same whatever batch ran."""
    runner, _ = compiled("openvino", "fp32")
    runner.run(inputs[:3])
    after_three = runner.settings()
    runner.run(inputs[:5])
    assert runner.settings() == after_three


def test_openvino_bf16_runs_where_native_else_refuses(compiled, inputs, reference):
    if "BF16" not in openvino_backend.capabilities():
        with pytest.raises(UserError, match="bfloat16"):
            compiled("openvino", "bf16")
        return
    runner, _ = compiled("openvino", "bf16")
    out = runner.run_all(inputs, 16)
    assert cosine(reference, out).min() > 0.999
    assert centred_cosine(reference, out).mean() > 0.98
    settings = runner.settings()
    assert settings["properties"]["INFERENCE_PRECISION_HINT"] == "bfloat16"
    assert "bf16" in settings["runtime_precisions"]["Convolution"]


def test_openvino_bf16_refused_without_capability(exported, tmp_path, monkeypatch):
    monkeypatch.setattr(openvino_backend, "capabilities", lambda: ["FP32", "INT8"])
    with pytest.raises(UserError, match="no native bfloat16"):
        openvino_backend.BACKEND.compile(exported, tmp_path, "bf16", None, CHIP, None)


def test_openvino_refuses_fp16_label():
    with pytest.raises(UserError, match="fp32, bf16 or int8"):
        openvino_backend.check_precision("fp16")


def test_benchmark_app_command_and_parser():
    command = openvino_backend.openvino_benchmark_app_command("m.xml", 8, 2, 5, "fp32")
    assert command[0].endswith("benchmark_app")
    text = " ".join(command[1:])
    for flag in ("-m m.xml", "-d CPU", "-hint none", "-nstreams 1", "-nthreads 2", "-b 8",
                 "-t 5", "-infer_precision f32"):
        assert flag in text
    assert "-infer_precision bf16" in " ".join(
        openvino_backend.openvino_benchmark_app_command("m.xml", 1, 2, 5, "bf16"))
    report = """[Step 11/11] Dumping statistics report
[ INFO ] Execution Devices:['CPU']
[ INFO ] Count:            423 iterations
[ INFO ] Duration:         3003.27 ms
[ INFO ] Latency:
[ INFO ]    Median:        5.48 ms
[ INFO ]    Average:       6.88 ms
[ INFO ]    Min:           812.50 us
[ INFO ]    Max:           29.33 ms
[ INFO ] Throughput:   1126.77 FPS
"""
    parsed = openvino_backend.parse_benchmark_app(report)
    assert parsed["throughput_fps"] == 1126.77 and parsed["count"] == 423
    assert parsed["median_ms"] == 5.48 and parsed["min_ms"] == pytest.approx(0.8125)
    with pytest.raises(UserError, match="Throughput"):
        openvino_backend.parse_benchmark_app("[ ERROR ] no model")


# ------------------------------------------------------------------------ PyTorch eager


def test_pytorch_equals_ort_fp32(compiled, inputs, reference):
    runner, manifest = compiled("pytorch", "fp32")
    out = runner.run_all(inputs, 16)
    assert np.abs(out - reference).max() / np.abs(reference).max() < 1e-4
    assert manifest["weights"] == {"source": "random", "seed": 0}
    assert manifest["onnx_check"]["max_rel_error"] < 1e-4
    settings = runner.settings()
    assert settings["intra_op_threads"] == THREADS and settings["grad"] == "torch.inference_mode()"


def test_pytorch_needs_the_model_entry(exported, tmp_path):
    with pytest.raises(UserError, match="architecture"):
        get("pytorch").compile(exported, tmp_path, "fp32", None, CHIP, None)


def test_pytorch_refuses_bring_your_own_onnx(exported, tmp_path):
    folder = tmp_path / "byo"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(exported.read_bytes())
    (folder / "weights.json").write_text(json.dumps({"source": "onnx", "path": "x", "sha256": "0"}))
    with pytest.raises(UserError, match="bring-your-own ONNX"):
        get("pytorch").compile(folder / "model.onnx", tmp_path / "out", "fp32", None, CHIP, None,
                               model={"onnx": "x.onnx"})


def test_pytorch_detects_a_changed_model(exported, tmp_path):
    """Weights that are not the exported ones (here: another seed) are refused."""
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(exported.read_bytes())
    (folder / "weights.json").write_text(json.dumps(models.weights_info(None, 1)))
    with pytest.raises(UserError, match="differs from"):
        get("pytorch").compile(folder / "model.onnx", tmp_path / "out", "fp32", None, CHIP, None,
                               model={"arch": "simclr"})


# ------------------------------------------------------------------------ every backend


@pytest.mark.parametrize("backend_name,precision", [
    ("onnxruntime", "fp32"), ("onnxruntime", "fp16"), ("onnxruntime", "int8"),
    ("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8"), ("pytorch", "fp32"),
])
def test_batch_size_does_not_change_outputs(backend_name, precision, compiled, inputs):
    if precision == "bf16" and "BF16" not in openvino_backend.capabilities():
        pytest.skip("no native bfloat16 on this CPU")
    runner, _ = compiled(backend_name, precision)
    some = inputs[:10]  # bs 8: one full batch and one padded batch of 2
    one, eight = runner.run_all(some, 1), runner.run_all(some, 8)
    np.testing.assert_array_equal(one.argmax(1), eight.argmax(1))
    np.testing.assert_allclose(one, eight, atol=1e-3 * np.abs(one).max())


@pytest.mark.parametrize("backend_name", ["onnxruntime", "openvino", "pytorch"])
def test_backends_declare_their_precisions(backend_name):
    backend = get(backend_name)
    assert set(backend.precisions) == {
        "onnxruntime": {"fp32", "fp16", "int8"},
        "openvino": {"fp32", "bf16", "int8"},
        "pytorch": {"fp32"},
    }[backend_name]
    assert backend.availability(CHIP).ok
    assert backend.version()


@pytest.mark.parametrize("backend_name,precision", [("onnxruntime", "bf16"),
                                                    ("pytorch", "int8")])
def test_unsupported_precision_is_a_user_error(backend_name, precision, exported, tmp_path):
    extra = {"model": {"arch": "simclr"}} if backend_name == "pytorch" else {}
    with pytest.raises(UserError):
        get(backend_name).compile(exported, tmp_path, precision, None, CHIP, None, **extra)


def test_openvino_precision_availability(monkeypatch):
    backend = openvino_backend.BACKEND
    assert backend.precision_availability(CHIP, "fp32").ok
    assert backend.precision_availability(CHIP, "int8").ok
    monkeypatch.setattr(openvino_backend, "capabilities", lambda: ["FP32", "INT8"])
    refused = backend.precision_availability(CHIP, "bf16")
    assert not refused.ok and "bfloat16" in refused.reason


@pytest.mark.parametrize("backend_name,precision", [
    ("onnxruntime", "fp16"), ("onnxruntime", "int8"), ("openvino", "fp32"), ("pytorch", "fp32"),
])
def test_read_only_inputs_run(backend_name, precision, compiled, inputs, tmp_path):
    """The infer rules hand over slices of a memory-mapped (read-only) test set."""
    np.save(tmp_path / "inputs.npy", inputs[:4])
    mapped = np.load(tmp_path / "inputs.npy", mmap_mode="r")
    runner, _ = compiled(backend_name, precision)
    batch = np.ascontiguousarray(mapped[:4])
    assert not batch.flags.writeable
    np.testing.assert_allclose(runner.run(batch), runner.run(inputs[:4].copy()), rtol=0, atol=0)
