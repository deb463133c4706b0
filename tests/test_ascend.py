"""Ascend 310/310P backend: exact tool command lines, parsers of the tools' files, and the
compile → run path through stand-ins for atc and msit (tests/fixtures/ascend/)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper

from chipbench import devices
from chipbench.backends.ascend import BACKEND, backend
from chipbench.backends.ascend.amct import amct_plan, quantize_int8
from chipbench.backends.ascend.commands import ais_bench_command, amct_cli_command, atc_command
from chipbench.backends.ascend.outputs import check_input_dir
from chipbench.errors import UserError
from chipbench.tools import run_logged, write_input_files

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "ascend"
CHIPS = yaml.safe_load((REPO / "resources" / "chips.yaml").read_text())
BATCH_SIZES = (1, 4, 8, 16, 32, 64)
V2 = {"fp16": "fp16", "fp32": "origin", "int8": "fp16"}
LEGACY = {"fp16": "force_fp16", "fp32": "must_keep_origin_dtype", "int8": "force_fp16"}
# The honest "not on this host" answers are checked where the toolchains are absent (CI).
no_cann = pytest.mark.skipif(backend.find_atc() is not None, reason="the CANN toolkit is installed here")


# ---------------------------------------------------------------------------- helpers


def install(bin_dir: Path, name: str, script: Path) -> Path:
    """Put `name` on a test PATH: a wrapper running `script` with this interpreter."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    tool = bin_dir / name
    tool.write_text(f'#!/bin/sh\nFAKE_TOOL="$0" exec "{sys.executable}" "{script}" "$@"\n')
    tool.chmod(0o755)
    return tool


def install_npu_smi(bin_dir: Path, table: Path, exit_code: int = 0) -> Path:
    script = bin_dir / "npu_smi.py"
    bin_dir.mkdir(parents=True, exist_ok=True)
    script.write_text(
        "import sys\n"
        "assert sys.argv[1:] == ['info'], sys.argv\n"
        f"sys.stdout.write(open({str(table)!r}).read())\n"
        f"sys.exit({exit_code})\n"
    )
    return install(bin_dir, "npu-smi", script)


@pytest.fixture
def tool_path(tmp_path, monkeypatch):
    """An empty PATH of our own (no real CANN tool can interfere) and no CANN variables."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    for variable in ("ASCEND_TOOLKIT_HOME", "ASCEND_HOME_PATH"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(devices, "NPU_SMI_FALLBACKS", ())
    monkeypatch.setattr(backend, "ais_bench_importable", lambda: False)
    return bin_dir


def chip(name: str, **settings) -> dict:
    entry = json.loads(json.dumps(CHIPS[name]))
    entry["settings"].update(settings)
    return entry


def tiny_onnx(path: Path, batch="batch") -> Path:
    """input (batch, 3, 32, 32) -> output (batch, 3): the mean of each channel."""
    node = helper.make_node("ReduceMean", ["input"], ["output"], axes=[2, 3], keepdims=0)
    graph = helper.make_graph(
        [node], "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, 32, 32])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 32, 32)).astype(np.float32)


def fake_outputs(x: np.ndarray) -> np.ndarray:
    """What fake_msit.py computes for each image."""
    return np.stack([x.sum(axis=(1, 2, 3)), *(x[:, c].mean(axis=(1, 2)) for c in range(3))], axis=1)


# ---------------------------------------------------------------------------- presets


def test_presets_name_the_real_soc_versions_and_devices():
    assert CHIPS["ascend310"]["soc_version"] == "Ascend310"
    assert CHIPS["ascend310p"]["soc_version"] == "Ascend310P3"
    for name in ("ascend310", "ascend310p"):
        assert CHIPS[name]["backend"] == "ascend"
        assert CHIPS[name]["device"] == "npu0" and CHIPS[name]["settings"]["device_id"] == 0
        assert set(CHIPS[name]["precisions"]) <= set(BACKEND.precisions)
    assert (CHIPS["ascend310"]["label"], CHIPS["ascend310p"]["label"]) == ("310", "310P")


@no_cann
def test_presets_resolve_in_a_plan_and_are_reported_unavailable_here():
    from chipbench.config import resolve

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["chips"] = {"cpu": None, "ascend310": None, "ascend310p": None, "t4": None, "t4_ort": None}
    config["models"] = {"simclr": {"checkpoint": None}}
    plan = resolve(config, REPO)
    assert plan.availability["cpu"].ok
    unavailable = plan.unavailable
    assert {"ascend310", "ascend310p"} <= set(unavailable)
    assert unavailable["ascend310p"].startswith("atc not found")
    assert all(reason and "\n" not in reason for reason in unavailable.values())
    scheduled = {cell[1] for cell in plan.perf_cells()}
    assert "cpu" in scheduled and not scheduled & set(unavailable)


# ---------------------------------------------------------------------------- ATC


@pytest.mark.parametrize("batch", BATCH_SIZES)
@pytest.mark.parametrize("precision", ["fp16", "fp32", "int8"])
@pytest.mark.parametrize("name,soc", [("ascend310", "Ascend310"), ("ascend310p", "Ascend310P3")])
def test_atc_command_exact(name, soc, precision, batch):
    model = "/r/models/simclr/model.onnx" if precision != "int8" else "/r/amct/model_deploy_model.onnx"
    stem = f"/r/compiled/simclr/{name}/{precision}/bs{batch}/model_bs{batch}"
    expected = [
        "atc", "--framework=5", f"--model={model}", f"--output={stem}", "--input_format=NCHW",
        f"--input_shape=input:{batch},3,32,32", f"--soc_version={soc}", "--log=info",
        f"--precision_mode_v2={V2[precision]}",
    ]
    assert atc_command(model, stem, batch, CHIPS[name]["soc_version"], precision) == expected
    legacy = atc_command(model, stem, batch, soc, precision, precision_flag="precision_mode")
    assert legacy == expected[:-1] + [f"--precision_mode={LEGACY[precision]}"]
    flags = [a for a in legacy + expected if a.startswith("--precision_mode")]
    assert all(("_v2=" in a) != (a in legacy) for a in flags)  # one flag per command, never both


def test_int8_never_compiles_with_origin():
    for flag in ("precision_mode_v2", "precision_mode"):
        command = atc_command("d.onnx", "o", 8, "Ascend310P3", "int8", precision_flag=flag)
        assert not any("origin" in a for a in command)


def test_atc_command_rejects_unknown_flag_precision_and_batch():
    with pytest.raises(UserError, match="precision_mode_v2"):
        atc_command("m.onnx", "o", 1, "Ascend310", "fp16", precision_flag="both")
    with pytest.raises(UserError, match="bf16"):
        atc_command("m.onnx", "o", 1, "Ascend310", "bf16")
    with pytest.raises(UserError, match="batch size 0"):
        atc_command("m.onnx", "o", 0, "Ascend310", "fp16")


def test_atc_command_other_input_name_and_shape():
    command = atc_command("m.onnx", "o", 2, "Ascend310", "fp16", input_name="images", input_chw=(1, 28, 28))
    assert "--input_shape=images:2,1,28,28" in command


# ---------------------------------------------------------------------------- ais_bench / msit


def test_ais_bench_command_exact():
    assert ais_bench_command(
        "/c/model_bs8.om", "/d/bin_inputs", "/t/out", 8, "NPY", loop=100, warmup=20, device=0,
        output_dirname="bench",
    ) == [
        "python3", "-m", "ais_bench", "--model", "/c/model_bs8.om", "--input", "/d/bin_inputs",
        "--output", "/t/out", "--output_dirname", "bench", "--outfmt", "NPY", "--batchsize", "8",
        "--loop", "100", "--warmup_count", "20", "--device", "0",
    ]
    assert ais_bench_command("m.om", "in", "out", 1, "txt", device=None) == [
        "python3", "-m", "ais_bench", "--model", "m.om", "--input", "in", "--output", "out",
        "--outfmt", "TXT", "--batchsize", "1",
    ]
    assert ais_bench_command("m.om", "in", "out", 4, python="/venv/bin/python")[0] == "/venv/bin/python"


def test_msit_command_exact():
    assert ais_bench_command(
        "/c/model_bs8.om", "/d/bin_inputs", "/t/out", 8, "NPY", loop=100, warmup=20, device=1,
        output_dirname="bench", tool="msit",
    ) == [
        "msit", "benchmark", "--om-model", "/c/model_bs8.om", "--input", "/d/bin_inputs",
        "--output", "/t/out", "--output-dirname", "bench", "--outfmt", "NPY", "--batch-size", "8",
        "--loop", "100", "--warmup-count", "20", "--device", "1",
    ]


def test_benchmark_command_rejects_unknown_tool_and_format():
    with pytest.raises(UserError, match="ais_bench or msit"):
        ais_bench_command("m.om", "i", "o", 1, tool="benchmark")
    with pytest.raises(UserError, match="NPY, TXT, BIN"):
        ais_bench_command("m.om", "i", "o", 1, "CSV")


# ---------------------------------------------------------------------------- availability


@no_cann
def test_availability_here_names_atc_first():
    result = BACKEND.availability(CHIPS["ascend310p"])
    assert result.ok is False
    assert result.reason == (
        "atc not found (install the CANN toolkit and source "
        "/usr/local/Ascend/ascend-toolkit/set_env.sh)"
    )


def test_availability_progresses_as_tools_appear(tool_path, tmp_path):
    backend = BACKEND
    assert backend.availability(CHIPS["ascend310p"]).reason.startswith("atc not found")
    install(tool_path, "atc", FIXTURES / "fake_atc.py")
    install_npu_smi(tool_path, FIXTURES / "npu_smi_info_310p3.txt")
    reason = backend.availability(CHIPS["ascend310p"]).reason
    assert reason.startswith(f"ais_bench is not importable by {sys.executable} and msit is not on PATH")
    assert backend.availability(chip("ascend310p", tool="msit")).reason.startswith("msit is not on PATH")
    install(tool_path, "msit", FIXTURES / "fake_msit.py")
    assert backend.availability(CHIPS["ascend310p"]).ok
    assert backend.availability(chip("ascend310p", device_id=1)).ok
    assert backend.availability(chip("ascend310p", device_id=2)).reason == (
        "npu-smi info lists 310P3 on device 0, 310P3 on device 1, none on device 2 (settings.device_id)"
    )
    assert backend.availability(CHIPS["ascend310"]).reason == (
        "npu-smi info lists no 310 chip for soc_version Ascend310 "
        "(found 310P3 on device 0, 310P3 on device 1)"
    )
    (tool_path / "npu-smi").unlink()
    assert backend.availability(CHIPS["ascend310p"]).reason.startswith("npu-smi not found (install the Ascend NPU driver")


def test_availability_310_card_and_failing_npu_smi(tool_path, tmp_path):
    install(tool_path, "atc", FIXTURES / "fake_atc.py")
    install(tool_path, "msit", FIXTURES / "fake_msit.py")
    install_npu_smi(tool_path, FIXTURES / "npu_smi_info_310.txt")
    assert BACKEND.availability(chip("ascend310", device_id=3)).ok
    assert not BACKEND.availability(CHIPS["ascend310p"]).ok
    broken = tmp_path / "broken.txt"
    broken.write_text("dcmi model initialized failed, because the device is used. ret is -8020\n")
    install_npu_smi(tool_path, broken, exit_code=1)
    assert BACKEND.availability(CHIPS["ascend310"]).reason == (
        "npu-smi info failed with exit code 1: dcmi model initialized failed, because the device is used. ret is -8020"
    )


def test_atc_found_under_toolkit_home(tool_path, tmp_path, monkeypatch):
    home = tmp_path / "ascend-toolkit" / "latest"
    install(home / "bin", "atc", FIXTURES / "fake_atc.py")
    assert backend.find_atc() is None
    monkeypatch.setenv("ASCEND_HOME_PATH", str(home))
    assert backend.find_atc() == str(home / "bin" / "atc")


def test_compile_with_unavailable_chip_is_one_line_user_error(tool_path, tmp_path):
    with pytest.raises(UserError) as error:
        BACKEND.compile(tiny_onnx(tmp_path / "m.onnx"), tmp_path / "out", "fp16", 8, CHIPS["ascend310p"], None)
    assert str(error.value).startswith("atc not found") and "\n" not in str(error.value)


# ---------------------------------------------------------------------------- AMCT


class FakeAmct(types.ModuleType):
    """amct_onnx's API surface as the AMCT guide documents it, recording each call."""

    def __init__(self):
        super().__init__("amct_onnx")
        import onnxruntime as ort

        self.calls = []
        self.AMCT_SO = ort.SessionOptions()

    def create_quant_config(self, **kwargs):
        self.calls.append(("create_quant_config", kwargs))
        Path(kwargs["config_file"]).write_text("{}")

    def quantize_model(self, **kwargs):
        self.calls.append(("quantize_model", kwargs))
        Path(kwargs["modified_onnx_file"]).write_bytes(Path(kwargs["model_file"]).read_bytes())
        Path(kwargs["record_file"]).write_text("")

    def save_model(self, **kwargs):
        self.calls.append(("save_model", kwargs))
        model = Path(kwargs["modified_onnx_file"]).read_bytes()
        for suffix in ("_deploy_model.onnx", "_fake_quant_model.onnx"):
            Path(kwargs["save_path"] + suffix).write_bytes(model)


def test_amct_plan_steps_exact(tmp_path):
    plan = amct_plan("/m/model.onnx", "/d/calibration_inputs.npy", tmp_path / "amct", 500, 50)
    work = str(tmp_path / "amct")
    assert plan["batch_num"] == 10 and plan["calibration_images_used"] == 500
    assert plan["steps"] == [
        ("create_quant_config", {"config_file": f"{work}/config.json", "model_file": "/m/model.onnx",
                                 "skip_layers": [], "batch_num": 10, "activation_offset": True}),
        ("quantize_model", {"config_file": f"{work}/config.json", "model_file": "/m/model.onnx",
                            "modified_onnx_file": f"{work}/modified_model.onnx",
                            "record_file": f"{work}/record.txt"}),
        ("calibrate", {"model": f"{work}/modified_model.onnx", "data": "/d/calibration_inputs.npy",
                       "batch_num": 10, "batch_size": 50}),
        ("save_model", {"modified_onnx_file": f"{work}/modified_model.onnx",
                        "record_file": f"{work}/record.txt", "save_path": f"{work}/model"}),
    ]
    assert plan["deploy_onnx"] == f"{work}/model_deploy_model.onnx"
    assert plan["fake_quant_onnx"] == f"{work}/model_fake_quant_model.onnx"
    assert amct_plan("m", "c", tmp_path, 130, 64)["batch_num"] == 2
    with pytest.raises(UserError, match="fewer than one AMCT calibration batch"):
        amct_plan("m", "c", tmp_path, 16, 50)


def test_amct_cli_command_exact():
    assert amct_cli_command("/m/model.onnx", "/o/model", "/d/calib_bin", "input", 50, 10) == [
        "amct_onnx", "calibration", "--model=/m/model.onnx", "--save_path=/o/model",
        "--input_shape=input:50,3,32,32", "--data_dir=/d/calib_bin", "--data_types=float32",
        "--batch_num=10",
    ]


def test_quantize_int8_runs_the_amct_steps_with_onnxruntime_calibration(tmp_path, monkeypatch):
    import onnxruntime as ort

    fake = FakeAmct()
    monkeypatch.setitem(sys.modules, "amct_onnx", fake)
    runs = []

    class CountingSession(ort.InferenceSession):
        def run(self, output_names, feed, *args):
            runs.append(feed["input"].shape)
            return super().run(output_names, feed, *args)

    monkeypatch.setattr(ort, "InferenceSession", CountingSession)
    model = tiny_onnx(tmp_path / "model.onnx")
    np.save(tmp_path / "calibration.npy", images(130))
    result = quantize_int8(model, tmp_path / "calibration.npy", tmp_path / "amct", calibration_batch_size=64)
    assert [name for name, _ in fake.calls] == ["create_quant_config", "quantize_model", "save_model"]
    assert runs == [(64, 3, 32, 32)] * 2  # exactly batch_num forward passes of full batches
    assert Path(result["deploy_onnx"]).name == "model_deploy_model.onnx"
    assert Path(result["fake_quant_onnx"]).is_file() and result["batch_num"] == 2


def test_quantize_int8_finds_differently_named_amct_outputs(tmp_path, monkeypatch):
    fake = FakeAmct()

    def save_model(**kwargs):
        for suffix in ("_deploy.onnx", "_fake_quant.onnx"):
            Path(kwargs["save_path"] + suffix).write_bytes(b"onnx")

    fake.save_model = save_model
    monkeypatch.setitem(sys.modules, "amct_onnx", fake)
    np.save(tmp_path / "calibration.npy", images(50))
    result = quantize_int8(tiny_onnx(tmp_path / "m.onnx"), tmp_path / "calibration.npy", tmp_path / "amct")
    assert Path(result["deploy_onnx"]).name == "model_deploy.onnx"
    assert Path(result["fake_quant_onnx"]).name == "model_fake_quant.onnx"


def test_quantize_int8_without_amct_names_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "amct_onnx", None)
    with pytest.raises(UserError, match=r"amct_onnx does not import .*pip install the amct_onnx wheel"):
        quantize_int8(tiny_onnx(tmp_path / "m.onnx"), None, tmp_path / "amct")


# ---------------------------------------------------------------------------- compile and run


@pytest.fixture
def ascend_host(tool_path, tmp_path, monkeypatch):
    """Fake atc, msit and npu-smi (310P3 table) on PATH; atc's argv recorded."""
    install(tool_path, "atc", FIXTURES / "fake_atc.py")
    install(tool_path, "msit", FIXTURES / "fake_msit.py")
    install_npu_smi(tool_path, FIXTURES / "npu_smi_info_310p3.txt")
    monkeypatch.setenv("FAKE_ATC_ARGV", str(tmp_path / "atc_argv.jsonl"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def atc_calls(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "atc_argv.jsonl").read_text().splitlines()]


def test_compile_runs_exact_atc_command(ascend_host, capfd):
    model = tiny_onnx(ascend_host / "model.onnx")
    out = ascend_host / "compiled" / "bs8"
    manifest = BACKEND.compile(model, out, "fp16", 8, CHIPS["ascend310p"], None)
    call = atc_calls(ascend_host)[-1]
    expected = [
        "--framework=5", f"--model={model}", f"--output={out}/model_bs8", "--input_format=NCHW",
        "--input_shape=input:8,3,32,32", "--soc_version=Ascend310P3", "--log=info",
        "--precision_mode_v2=fp16",
    ]
    assert call["args"] == expected and call["argv0"] == str(ascend_host / "bin" / "atc")
    assert call["cwd"] == str(out)  # fusion_result.json and kernel_meta/ stay with the artefact
    assert (out / "fusion_result.json").is_file() and not (ascend_host / "fusion_result.json").exists()
    assert manifest["model"] == "model_bs8.om" and (out / "model_bs8.om").is_file()
    assert manifest["atc_command"] == [str(ascend_host / "bin" / "atc"), *expected]
    assert manifest["precision_flag"] == "--precision_mode_v2=fp16"
    logged = capfd.readouterr().err
    assert f"+ {ascend_host}/bin/atc --framework=5 --model={model}" in logged
    assert "ATC run success" in logged


def test_compile_legacy_flag_and_fp32(ascend_host):
    model = tiny_onnx(ascend_host / "model.onnx")
    entry = chip("ascend310p", atc_precision_flag="precision_mode")
    BACKEND.compile(model, ascend_host / "c", "fp32", 1, entry, None)
    assert atc_calls(ascend_host)[-1]["args"][-1] == "--precision_mode=must_keep_origin_dtype"


def test_compile_int8_quantizes_with_amct_then_compiles_deploy_model_fp16(ascend_host, monkeypatch):
    fake = FakeAmct()
    monkeypatch.setitem(sys.modules, "amct_onnx", fake)
    model = tiny_onnx(ascend_host / "model.onnx")
    np.save(ascend_host / "calibration.npy", images(100))
    out = ascend_host / "int8" / "bs4"
    manifest = BACKEND.compile(model, out, "int8", 4, CHIPS["ascend310p"], ascend_host / "calibration.npy")
    args = atc_calls(ascend_host)[-1]["args"]
    assert f"--model={out}/amct/model_deploy_model.onnx" in args
    assert args[-1] == "--precision_mode_v2=fp16"
    assert manifest["amct"]["deploy_onnx"] == "amct/model_deploy_model.onnx"
    assert manifest["amct"]["fake_quant_onnx"] == "amct/model_fake_quant_model.onnx"
    assert manifest["amct"]["batch_num"] == 2


def test_failing_atc_is_a_one_line_user_error(ascend_host):
    (ascend_host / "broken.onnx").write_bytes(b"not onnx")
    with pytest.raises(Exception):
        BACKEND.compile(ascend_host / "broken.onnx", ascend_host / "c", "fp16", 1, CHIPS["ascend310p"], None)
    model = tiny_onnx(ascend_host / "model.onnx")
    with pytest.raises(UserError, match="^atc failed with exit code 1: its messages"):
        run_logged(["atc", "--framework=5", f"--model={model}"], what="atc")


def compiled_runner(root: Path, batch: int, **settings):
    model = tiny_onnx(root / "model.onnx")
    out = root / f"compiled_bs{batch}"
    entry = chip("ascend310p", tool="msit", **settings)
    manifest = BACKEND.compile(model, out, "fp16", batch, entry, None)
    manifest["batch_size"] = batch  # compile_model.py adds it
    return BACKEND.load(out, manifest, entry, threads=1)


@pytest.mark.parametrize("batch", [1, 4])
def test_run_all_through_msit_keeps_every_output_in_order(ascend_host, batch):
    runner = compiled_runner(ascend_host, batch)
    x = images(10)
    np.testing.assert_allclose(runner.run_all(x, batch), fake_outputs(x), rtol=1e-5, atol=1e-5)
    assert runner.settings()["tool"] == "msit" and runner.settings()["soc_version"] == "Ascend310P3"


@pytest.mark.parametrize("fmt", ["TXT", "BIN"])
def test_run_all_other_output_formats(ascend_host, fmt):
    runner = compiled_runner(ascend_host, 4, outfmt=fmt)
    x = images(6)
    np.testing.assert_allclose(runner.run_all(x, 4), fake_outputs(x), rtol=1e-5, atol=1e-5)


def test_run_all_reads_the_workflows_bin_folder_and_checks_it(ascend_host):
    runner = compiled_runner(ascend_host, 4)
    x = images(9)
    write_input_files(x, ascend_host / "input_files")
    np.testing.assert_allclose(runner.run_all(x, 4, input_dir=ascend_host / "input_files"),
                               fake_outputs(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(UserError, match="00000.bin does not hold image 0"):
        runner.run_all(images(9, seed=5), 4, input_dir=ascend_host / "input_files")
    with pytest.raises(UserError, match="holds 9 input files for 8 images"):
        runner.run_all(x[:8], 4, input_dir=ascend_host / "input_files")
    with pytest.raises(UserError, match="compiled for batch size 4, not 8"):
        runner.run_all(x, 8)


def test_benchmark_uses_loop_and_warmup_and_reports_copies_apart(ascend_host, capfd):
    runner = compiled_runner(ascend_host, 4)
    protocol = {"warmup_iterations": 3, "min_iterations": 7, "min_seconds": 0.0, "max_iterations": 100}
    latencies = runner.benchmark(images(4), protocol)
    assert len(latencies) == 7
    assert latencies.tolist() == pytest.approx([0.2, 0.21, 0.22, 0.2, 0.21, 0.22, 0.2])
    assert runner.benchmark_extra["h2d_ms"] == pytest.approx(0.05)
    assert runner.benchmark_extra["d2h_ms"] == pytest.approx(0.01)
    logged = capfd.readouterr().err
    assert "--loop 7 --warmup-count 3 --device 0" in logged and "--batch-size 4" in logged


def test_benchmark_reruns_for_min_seconds_within_max_iterations(ascend_host):
    runner = compiled_runner(ascend_host, 1)
    protocol = {"warmup_iterations": 0, "min_iterations": 5, "min_seconds": 0.01, "max_iterations": 40}
    assert len(runner.benchmark(images(1), protocol)) == 40  # 10 ms needs ~50 loops; capped at 40
    protocol["max_iterations"] = 1000
    latencies = runner.benchmark(images(1), protocol)
    assert latencies.sum() >= 10.0 and len(latencies) < 1000


def test_run_needs_ais_bench_python_api(ascend_host, monkeypatch):
    runner = compiled_runner(ascend_host, 1)
    monkeypatch.setitem(sys.modules, "ais_bench", None)
    with pytest.raises(UserError, match="ais_bench's Python API does not import"):
        runner.run(images(1))


def test_version_without_cann_says_unknown(tool_path):
    assert BACKEND.version().startswith("CANN unknown")


# ---------------------------------------------------------------------------- workflow rule


def test_write_input_files_rule(tmp_path):
    from tests.conftest import make_workdir, snakemake

    workdir = make_workdir(tmp_path / "run", n_test=10, n_train=8)
    result = snakemake(workdir, "results/data/simclrv2/input_files", cores=1)
    assert result.returncode == 0, result.stderr[-3000:]
    inputs = np.load(workdir / "results" / "data" / "simclrv2" / "test_inputs.npy")
    files = sorted((workdir / "results" / "data" / "simclrv2" / "input_files").glob("*.bin"))
    assert [f.name for f in files] == [f"{i:05d}.bin" for i in range(10)]
    # Snakemake's .snakemake_timestamp in the folder is not an input file for ais_bench
    assert check_input_dir(files[0].parent, inputs) == [f"{i:05d}" for i in range(10)]
