"""SOPHGO BM1684X through TPU-MLIR: tool command lines, parsers of bmrt_test and the compiler
profile, the chip runner through a stand-in for sophon-sail, availability reasons, the
TPU-MLIR venv's set-up logic, and (slow) a tiny ONNX model through the real toolchain."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from chipbench import tpu_mlir_env
from chipbench.backends import get
from chipbench.backends.tpu_mlir import chip as tpu_chip
from chipbench.backends.tpu_mlir import simulator
from chipbench.backends.tpu_mlir import toolchain as tpu_toolchain
from chipbench.backends.tpu_mlir.backend import tool_threads, write_calibration_set
from chipbench.backends.tpu_mlir.chip import SailRunner, bmrt_test_command, parse_bmrt_test
from chipbench.backends.tpu_mlir.toolchain import (
    calibration_command,
    deploy_command,
    parse_compiler_profile,
    transform_command,
)
from chipbench.errors import UserError

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "bm1684x"
VENV = Path("/opt/tpu-venv")


@pytest.fixture
def venv(monkeypatch):
    monkeypatch.setenv(tpu_mlir_env.VENV_ENV_VAR, str(VENV))
    return VENV


# ---------------------------------------------------------------------------- command lines


def test_transform_command_is_exact(venv):
    assert transform_command(
        Path("/m/model.onnx"), "model.mlir", (4, 3, 32, 32), "test_input.npz",
        "model_top_outputs.npz",
    ) == [
        f"{VENV}/bin/model_transform.py",
        "--model_name", "model",
        "--model_def", "/m/model.onnx",
        "--input_shapes", "[[4,3,32,32]]",
        "--mlir", "model.mlir",
        "--test_input", "test_input.npz",
        "--test_result", "model_top_outputs.npz",
    ]


def test_transform_command_without_test_input(venv):
    command = transform_command("x.onnx", "x.mlir", (1, 3, 32, 32), model_name="x")
    assert "--test_input" not in command and command[-2:] == ["--mlir", "x.mlir"]


def test_calibration_command_is_exact(venv):
    assert calibration_command("model.mlir", "calibration_data", 100, "model_cali_table") == [
        f"{VENV}/bin/run_calibration.py", "model.mlir",
        "--dataset", "calibration_data",
        "--input_num", "100",
        "--chip", "bm1684x",
        "-o", "model_cali_table",
    ]


@pytest.mark.parametrize("precision, quantize", [("fp32", "F32"), ("fp16", "F16")])
def test_deploy_command_float(venv, precision, quantize):
    assert deploy_command("model.mlir", precision, "model.bmodel", None, "test_input.npz",
                          "model_top_outputs.npz") == [
        f"{VENV}/bin/model_deploy.py",
        "--mlir", "model.mlir",
        "--quantize", quantize,
        "--chip", "bm1684x",
        "--model", "model.bmodel",
        "--test_input", "test_input.npz",
        "--test_reference", "model_top_outputs.npz",
        "--debug",
    ]


def test_deploy_command_int8_with_options(venv):
    assert deploy_command("model.mlir", "int8", "model.bmodel", "model_cali_table",
                          "test_input.npz", "model_top_outputs.npz", tolerance="0.95,0.80",
                          skip_validation=True) == [
        f"{VENV}/bin/model_deploy.py",
        "--mlir", "model.mlir",
        "--quantize", "INT8",
        "--calibration_table", "model_cali_table",
        "--chip", "bm1684x",
        "--model", "model.bmodel",
        "--test_input", "test_input.npz",
        "--test_reference", "model_top_outputs.npz",
        "--tolerance", "0.95,0.80",
        "--skip_validation",
        "--debug",
    ]


def test_deploy_command_rejects_int8_without_table_and_unknown_precision(venv):
    with pytest.raises(UserError, match="calibration table"):
        deploy_command("model.mlir", "int8", "model.bmodel")
    with pytest.raises(UserError, match="bf16"):
        deploy_command("model.mlir", "bf16", "model.bmodel")


def test_bmrt_test_command(monkeypatch):
    monkeypatch.setattr(tpu_chip, "bmrt_test_path", lambda: "/opt/sophon/bin/bmrt_test")
    assert bmrt_test_command(Path("/c/model.bmodel"), 120, 1) == [
        "/opt/sophon/bin/bmrt_test", "--bmodel", "/c/model.bmodel", "--loopnum", "120",
        "--devid", "1",
    ]


def test_tool_command_names_the_console_scripts(venv):
    assert tpu_mlir_env.tool_command("model_runner.py", "--input", "a.npz") == [
        f"{VENV}/bin/model_runner.py", "--input", "a.npz",
    ]
    with pytest.raises(ValueError):
        tpu_mlir_env.tool_command("rm")


def test_tool_env_puts_the_venv_first(venv, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/main/venv/stuff")
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    env = tpu_mlir_env.tool_env(2)
    assert env["PATH"].split(os.pathsep)[0] == f"{VENV}/bin"
    assert env["OMP_NUM_THREADS"] == "2" and "PYTHONPATH" not in env
    assert "PYTHONDONTWRITEBYTECODE" not in env  # the tools' imports are cached in the venv


def test_tools_run_the_jobs_own_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as Snakemake exports it to a 1-thread job
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert tool_threads() == 1
    for outside_a_job in ("", "auto"):  # unset, or not a count: the cores this process may use
        monkeypatch.setenv("OMP_NUM_THREADS", outside_a_job)
        assert tool_threads() == 4


# ---------------------------------------------------------------------------- parsers


def test_parse_bmrt_test_fixture():
    parsed = parse_bmrt_test((FIXTURES / "bmrt_test_int8_bs1.txt").read_text())
    assert parsed["loops"] == 3
    assert parsed["calculate_ms"] == pytest.approx([1.627, 1.490, 1.483])
    assert parsed["load_input_ms"] == pytest.approx([0.412, 0.398, 0.401])
    assert parsed["get_output_ms"] == pytest.approx([0.021, 0.019, 0.018])
    assert parsed["npu_us"] == [1552, 1431, 1428]
    assert parsed["launch_total_us"] == [1624, 1487, 1480]
    assert parsed["calculate_mean_ms"] == pytest.approx((1.627 + 1.490 + 1.483) / 3)


def test_parse_bmrt_test_reference_line_and_garbage():
    line = "[BMRT][bmrt_test:1321] INFO:calculate  time(s): 0.006998\n"
    assert parse_bmrt_test(line)["calculate_ms"] == pytest.approx([6.998])
    with pytest.raises(ValueError, match="calculate"):
        parse_bmrt_test("bmrt_test: error while loading shared libraries")


def test_parse_compiler_profile_fixture():
    parsed = parse_compiler_profile((FIXTURES / "compiler_profile_0.txt").read_text())
    assert parsed == {"estimated_latency_ms": pytest.approx(0.003926), "subnets": 1,
                      "flops": 835072}


def test_parse_compiler_profile_sums_subnets_and_rejects_empty():
    text = "flops: 10, runtime: 1.25ms, x\n...\nflops: 5, runtime: 0.5 ms, y\n"
    assert parse_compiler_profile(text) == {"estimated_latency_ms": 1.75, "subnets": 2,
                                            "flops": 15}
    with pytest.raises(ValueError):
        parse_compiler_profile("TCYC : 3926\n")


# ---------------------------------------------------------------------------- the chip (double)


class FakeEngine:
    """Implements the documented sophon-sail Engine calls the runner uses."""

    def __init__(self, bmodel, dev_id, io_mode, batch=4, classes=10):
        assert io_mode == FakeSail.IOMode.SYSIO
        self.bmodel, self.dev_id, self.batch, self.classes = bmodel, dev_id, batch, classes
        self.calls = []

    def get_graph_names(self):
        return ["model"]

    def get_input_names(self, graph):
        assert graph == "model"
        return ["input"]

    def get_output_names(self, graph):
        return ["output_Gemm_f32"]

    def get_input_shape(self, graph, name):
        assert name == "input"
        return [self.batch, 3, 32, 32]

    def process(self, graph, inputs):
        (name, array), = inputs.items()
        assert graph == "model" and name == "input" and array.dtype == np.float32
        assert array.shape == (self.batch, 3, 32, 32)
        self.calls.append(array.copy())
        # deterministic "logits": the mean of each image, spread over the classes
        means = array.reshape(len(array), -1).mean(1)
        return {"output_Gemm_f32": means[:, None] * np.arange(self.classes, dtype=np.float32)}


class FakeSail:
    class IOMode:
        SYSI, SYSO, SYSIO, DEVIO = range(4)

    engines = []

    @classmethod
    def Engine(cls, bmodel, dev_id, io_mode):
        engine = FakeEngine(bmodel, dev_id, io_mode)
        cls.engines.append(engine)
        return engine


def test_sail_runner_runs_every_image_through_the_engine(tmp_path, monkeypatch):
    monkeypatch.setattr(tpu_chip, "bmrt_test_path", lambda: None)
    runner = SailRunner(tmp_path / "model.bmodel", dev_id=1, sail=FakeSail)
    engine = FakeSail.engines[-1]
    assert (engine.bmodel, engine.dev_id) == (str(tmp_path / "model.bmodel"), 1)
    assert runner.batch_size == 4
    inputs = np.random.default_rng(0).standard_normal((10, 3, 32, 32)).astype(np.float32)
    outputs = runner.run_all(inputs, 4)
    assert outputs.shape == (10, 10)
    expected = inputs.reshape(10, -1).mean(1)[:, None] * np.arange(10)
    np.testing.assert_allclose(outputs, expected, rtol=1e-5)
    assert len(engine.calls) == 3  # 4 + 4 + 2 padded to 4
    assert runner.settings()["timing"].startswith("sail.Engine.process")


def test_sail_runner_benchmark_uses_bmrt_test(tmp_path, monkeypatch):
    fake = tmp_path / "bmrt_test"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> "{tmp_path}/calls"\n'
        'loops=$4\n'
        'i=0\n'
        'while [ $i -lt $loops ]; do\n'
        '  echo "[BMRT][bmrt_test:1521] INFO:calculate  time(s): 0.00$((i + 1))000"\n'
        '  i=$((i + 1))\n'
        'done\n'
    )
    fake.chmod(0o755)
    monkeypatch.setattr(tpu_chip, "bmrt_test_path", lambda: str(fake))
    runner = SailRunner(tmp_path / "model.bmodel", dev_id=0, sail=FakeSail)
    latencies = runner.benchmark(np.zeros((4, 3, 32, 32), np.float32),
                                 {"warmup_iterations": 2, "min_iterations": 3,
                                  "min_seconds": 0.0, "max_iterations": 100})
    assert list(latencies) == pytest.approx([3.0, 4.0, 5.0])  # loops 3-5 of 5, in ms
    assert (tmp_path / "calls").read_text().split() == [
        "--bmodel", str(tmp_path / "model.bmodel"), "--loopnum", "5", "--devid", "0"]
    assert runner.settings()["timing"] == "bmrt_test calculate time"
    assert runner.benchmark_extra["tool"] == "bmrt_test" and runner.benchmark_extra["runs"] == 1


# ---------------------------------------------------------------------------- availability


def no_sail():
    raise ImportError("No module named 'sophon'")


def test_chip_status_reasons(monkeypatch):
    monkeypatch.setattr(tpu_chip, "import_sail", no_sail)
    reason = tpu_chip.chip_status(0).reason
    assert "sophon-sail is not importable" in reason and "SOPHON SDK" in reason

    monkeypatch.setattr(tpu_chip, "import_sail", lambda: FakeSail)
    monkeypatch.setattr(tpu_chip, "device_nodes", lambda devid=None: [])
    reason = tpu_chip.chip_status(0).reason
    assert "/dev/bm-sophon0" in reason and "/dev/bm-tpu0" in reason

    monkeypatch.setattr(tpu_chip, "device_nodes",
                        lambda devid=None: [] if devid == 1 else ["/dev/bm-sophon0"])
    assert "present: /dev/bm-sophon0" in tpu_chip.chip_status(1).reason
    assert tpu_chip.chip_status(0).ok


def test_availability_needs_python310_or_the_venv(monkeypatch, tmp_path):
    monkeypatch.setattr(tpu_chip, "import_sail", no_sail)
    monkeypatch.setenv(tpu_mlir_env.VENV_ENV_VAR, str(tmp_path / "absent"))
    monkeypatch.setattr(tpu_mlir_env, "find_python310", lambda: None)
    backend = get("tpu_mlir")
    chip = {"backend": "tpu_mlir", "settings": {}}
    availability = backend.availability(chip)
    assert not availability.ok and "Python 3.10" in availability.reason
    assert "\n" not in availability.reason

    monkeypatch.setattr(tpu_mlir_env, "find_python310", lambda: Path("/usr/bin/python3.10"))
    assert backend.availability(chip).ok  # simulator: compile + tpu.mlir runner
    timing = backend.timing_availability(chip)
    assert not timing.ok and "sophon-sail" in timing.reason

    chip_only = {"backend": "tpu_mlir", "settings": {"mode": "chip"}}
    assert "sophon-sail" in backend.availability(chip_only).reason
    assert "auto, chip or simulator" in backend.availability(
        {"settings": {"mode": "npu"}}).reason


def test_simulator_runner_refuses_to_time(tmp_path):
    runner = simulator.MlirRunner(tmp_path, {"batch_size": 1, "tpu_mlir": "x_tpu.mlir",
                                            "estimated_latency_ms": 1.2}, 2)
    with pytest.raises(UserError, match="1.2 ms"):
        runner.benchmark(np.zeros((1, 3, 32, 32), np.float32), {})
    with pytest.raises(UserError, match="batch size 1"):
        runner.run_all(np.zeros((4, 3, 32, 32), np.float32), 4)


def test_chip_preset():
    chips = yaml.safe_load((REPO / "resources" / "chips.yaml").read_text())
    preset = chips["bm1684x"]
    assert preset["backend"] == "tpu_mlir" and preset["label"] == "BM1684X"
    assert preset["precisions"] == ["fp32", "fp16", "int8"]
    assert preset["batch_sizes"] == [1, 4]
    assert preset["device"] == "host"
    assert set(preset["settings"]) <= set(tpu_toolchain.DEFAULT_SETTINGS)


# ---------------------------------------------------------------------------- venv logic


def test_find_python310_prefers_newest_pyenv_version(monkeypatch, tmp_path):
    for version in ("3.10.2", "3.10.13", "3.11.7"):
        binary = tmp_path / "versions" / version / "bin" / f"python{version[:4]}"
        binary.parent.mkdir(parents=True)
        binary.write_text(f"#!/bin/sh\necho {version[0]} {version[2:4]}\n")
        binary.chmod(0o755)
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    monkeypatch.setattr(tpu_mlir_env.shutil, "which", lambda name: None)
    assert tpu_mlir_env.find_python310() == tmp_path / "versions/3.10.13/bin/python3.10"


def test_require_python310_is_one_line(monkeypatch):
    monkeypatch.setattr(tpu_mlir_env, "find_python310", lambda: None)
    with pytest.raises(UserError) as error:
        tpu_mlir_env.require_python310()
    assert "\n" not in str(error.value) and "pyenv install 3.10" in str(error.value)


def test_ensure_venv_is_cached_by_the_requirements_hash(monkeypatch, tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    monkeypatch.setenv(tpu_mlir_env.VENV_ENV_VAR, str(venv))

    def forbidden(*args, **kwargs):
        raise AssertionError("nothing may run when the stamp matches")

    monkeypatch.setattr(tpu_mlir_env.subprocess, "run", forbidden)
    (venv / tpu_mlir_env.STAMP).write_text(json.dumps(
        {"requirements_sha256": tpu_mlir_env.requirements_hash()}))
    assert tpu_mlir_env.is_ready() and tpu_mlir_env.ensure_venv() == venv

    # Requirements changed: pip runs again in the existing venv, then the tool check.
    (venv / tpu_mlir_env.STAMP).write_text(json.dumps({"requirements_sha256": "old"}))
    assert not tpu_mlir_env.is_ready()
    commands = []

    class Done:
        returncode = 0

    def record(command, **kwargs):
        commands.append([str(c) for c in command])
        return Done()

    monkeypatch.setattr(tpu_mlir_env.subprocess, "run", record)
    monkeypatch.setattr(tpu_mlir_env, "find_python310", lambda: None)  # not needed to update
    assert tpu_mlir_env.ensure_venv(sys.stderr) == venv
    assert commands[0][-6:] == ["install", "--no-input", "--no-compile", "--no-deps", "-r",
                                str(tpu_mlir_env.REQUIREMENTS)]
    assert commands[1] == [str(venv / "bin" / "model_deploy.py"), "--help"]
    assert tpu_mlir_env.is_ready()

    # No venv and no Python 3.10: one clear line.
    monkeypatch.setenv(tpu_mlir_env.VENV_ENV_VAR, str(tmp_path / "other"))
    with pytest.raises(UserError, match="Python 3.10"):
        tpu_mlir_env.ensure_venv()


def test_fixes_move_glibc_aside_and_make_site_packages_writable(tmp_path):
    package = tmp_path / "site" / "tpu_mlir"
    third_party = package / "lib" / "third_party"
    tools = package / "python" / "tools"
    third_party.mkdir(parents=True)
    tools.mkdir(parents=True)
    for name in ("libc.so.6", "libm.so.6", "libpthread.so.0", "libstdc++.so.6"):
        (third_party / name).write_text(name)
    script = tools / "model_deploy.py"
    script.write_text("")
    script.chmod(0o444)
    assert tpu_mlir_env.move_shadowing_libs(package) == ["libc.so.6", "libm.so.6",
                                                         "libpthread.so.0"]
    assert sorted(p.name for p in third_party.iterdir() if p.is_file()) == ["libstdc++.so.6"]
    assert (third_party / tpu_mlir_env.MOVED_ASIDE / "libc.so.6").read_text() == "libc.so.6"
    assert tpu_mlir_env.move_shadowing_libs(package) == []  # idempotent
    tpu_mlir_env.make_writable(tmp_path / "site")
    mode = script.stat().st_mode
    assert mode & stat.S_IWUSR and mode & stat.S_IXUSR


def test_calibration_set_is_written_as_input_batches(tmp_path):
    data = np.arange(11 * 3 * 2 * 2, dtype=np.float32).reshape(11, 3, 2, 2)
    np.save(tmp_path / "calibration_inputs.npy", data)
    files = write_calibration_set(tmp_path / "calibration_inputs.npy", tmp_path / "cal", 4, 100)
    assert files == 2
    np.testing.assert_array_equal(np.load(tmp_path / "cal" / "00001.npy"), data[4:8])
    with pytest.raises(UserError, match="fewer than the batch size"):
        write_calibration_set(tmp_path / "calibration_inputs.npy", tmp_path / "c2", 16, 100)


# ---------------------------------------------------------------------------- real toolchain


def tiny_onnx(path: Path) -> None:
    """A 2-layer conv net (3x32x32 -> 10), exported with a dynamic batch."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 10),
    ).eval()
    torch.onnx.export(model, torch.zeros(1, 3, 32, 32), str(path), input_names=["input"],
                      output_names=["output"], opset_version=13, dynamo=False,
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})


@pytest.fixture(scope="module")
def toolchain():
    """The TPU-MLIR venv (created on first use: ~2 min, 3.6 GB), or a skip saying why not."""
    try:
        return tpu_mlir_env.ensure_venv()
    except UserError as error:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the TPU-MLIR toolchain test: {error}")
        pytest.skip(f"TPU-MLIR venv cannot be created here: {error}")


SIMULATED_CHIP = {"backend": "tpu_mlir", "device": "host",
                  "settings": {"mode": "simulator", "calibration_images": 8,
                               "crosscheck_images": 5}}


def folder_digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def transformed(toolchain, tmp_path_factory):
    """The tiny model, its calibration set, and one transform step at batch size 2 that
    fp16 and int8 compile from, as in the workflow (fp32 runs the step itself)."""
    folder = tmp_path_factory.mktemp("tpu_mlir")
    onnx_path = folder / "tiny.onnx"
    tiny_onnx(onnx_path)
    calibration = folder / "calibration_inputs.npy"
    np.save(calibration, np.random.default_rng(0).standard_normal((16, 3, 32, 32)).astype(np.float32))
    step = folder / "transformed"
    manifest = get("tpu_mlir").transform(onnx_path, step, 2, SIMULATED_CHIP, calibration)
    assert manifest["input_shape"] == [2, 3, 32, 32] and "model_transform" in manifest["command"]
    (step / "compiled.json").write_text(json.dumps(manifest))
    return onnx_path, calibration, step


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_tiny_model_through_tpu_mlir(transformed, tmp_path, precision):
    import onnxruntime as ort

    onnx_path, calibration, step = transformed
    before = folder_digest(step)
    inputs = np.random.default_rng(1).standard_normal((7, 3, 32, 32)).astype(np.float32)

    backend = get("tpu_mlir")
    chip = SIMULATED_CHIP
    out_dir = tmp_path / "compiled"
    shared = {} if precision == "fp32" else {"transformed": step}
    manifest = backend.compile(onnx_path, out_dir, precision, 2, chip,
                               calibration if precision == "int8" else None, **shared)
    manifest["batch_size"] = 2
    (out_dir / "compiled.json").write_text(json.dumps(manifest))
    assert (out_dir / manifest["bmodel"]).is_file()
    assert (out_dir / manifest["tpu_mlir"]).is_file()
    assert manifest["tpu_mlir"] == {"fp32": "model_bm1684x_f32_tpu.mlir",
                                    "fp16": "model_bm1684x_f16_tpu.mlir",
                                    "int8": "model_bm1684x_int8_sym_tpu.mlir"}[precision]
    assert manifest["estimated_latency_ms"] > 0
    assert "model_transform" in manifest["commands"]["transform"]
    # model_deploy checked the bmodel on the cmodel, except in F16 (the preset skips it)
    assert manifest["bmodel_validated_on_cmodel"] == (precision != "fp16")
    assert ("--skip_validation" in manifest["commands"]["deploy"]) == (precision == "fp16")
    if precision == "int8":
        assert manifest["calibration"]["files"] == 4
    # the shared step's folder is read, never written: every precision compiles from it
    assert folder_digest(step) == before

    runner = backend.open(out_dir, chip, 2)
    try:
        outputs = runner.run_all(inputs, 2)
        check = runner.crosscheck()
    finally:
        runner.close()
    assert outputs.shape == (7, 10)
    assert check["n_images"] == 5 and check["passed"], check
    if precision == "int8":
        assert check["exact"], check  # tpu.mlir reproduces the cmodel bit for bit

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    reference = session.run(None, {"input": inputs})[0]
    error = np.abs(outputs - reference).max() / np.abs(reference).max()
    assert error < {"fp32": 1e-4, "fp16": 1e-2, "int8": 0.1}[precision], error
