"""What this host can run: the cached answers, the bf16 check, and the plan built on them.

Every capability check is faked both ways (monkeypatched detector); the cache is faked the
way a user would, by editing its file.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from chipbench import capabilities
from chipbench import config as cfg
from chipbench.backends import Availability, get
from chipbench.errors import UserError
from tests.conftest import REPO
from tests.onnx_fixtures import tiny_model

openvino = pytest.importorskip("chipbench.backends.openvino")

NO_BF16 = "this CPU has no native bfloat16 (faked)"


@pytest.fixture(autouse=True)
def own_cache(own_capability_cache):
    """A cache folder per test, so a fake of one test never answers another."""
    return own_capability_cache


def base_config(**overrides) -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(copy.deepcopy(overrides))
    return config


def fake_bf16(monkeypatch, ok: bool) -> list:
    """OpenVINO's bf16 answer faked; returns the list of precisions it was asked about."""
    asked = []

    def answer(chip, precision):
        asked.append(precision)
        return Availability(True) if ok or precision != "bf16" else Availability(False, NO_BF16)

    monkeypatch.setattr(get("openvino"), "precision_availability", answer)
    return asked


# ---------------------------------------------------------------------------- the cache


def test_answers_are_asked_once_per_toolchain_and_chip_entry(own_cache):
    calls = []

    def check():
        calls.append(1)
        return False, "no device"

    first = capabilities.HostAnswers()
    assert first.ask("chip t4", {"backend": "tensorrt"}, check) == (False, "no device")
    first.save()
    assert first.path == own_cache / f"capabilities-{os.uname().nodename}.json"
    stored = json.loads(first.path.read_text())
    assert stored["answers"]["chip t4"]["ok"] is False

    again = capabilities.HostAnswers()
    assert again.ask("chip t4", {"backend": "tensorrt", "label": "other"}, check) == (
        False, "no device")
    assert len(calls) == 1  # a label says what to show, not whether it runs
    changed_entry = {"backend": "tensorrt", "settings": {"device_id": 1}}
    assert again.ask("chip t4", changed_entry, lambda: (True, "")) == (True, "")


def test_a_tool_appearing_or_changing_on_path_asks_again(own_cache, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    before = capabilities.HostAnswers()
    before.ask("chip t4", {}, lambda: (False, "no nvidia-smi"))
    before.save()
    assert capabilities.HostAnswers().answers  # same toolchain: answers kept

    tool = bin_dir / "nvidia-smi"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    appeared = capabilities.HostAnswers()
    assert appeared.fingerprint != before.fingerprint and appeared.answers == {}
    assert appeared.changed == ["tools"]
    appeared.ask("chip t4", {}, lambda: (True, ""))
    appeared.save()
    assert capabilities.HostAnswers().answers["chip t4"]["ok"] is True

    os.utime(tool, ns=(10**18, 10**18))  # a new driver version: same path, new mtime
    assert capabilities.HostAnswers().answers == {}


def test_an_edited_answer_is_the_answer(own_cache):
    answers = capabilities.HostAnswers()
    answers.ask("precision cpu_openvino bf16", {"backend": "openvino"}, lambda: (True, ""))
    answers.save()
    data = json.loads(answers.path.read_text())
    data["answers"]["precision cpu_openvino bf16"].update(ok=False, reason=NO_BF16)
    answers.path.write_text(json.dumps(data))
    assert capabilities.HostAnswers().ask(
        "precision cpu_openvino bf16", {"backend": "openvino"}, lambda: (True, "")
    ) == (False, NO_BF16)


def test_an_unwritable_cache_only_costs_speed(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(capabilities.CACHE_ENV_VAR, str(blocker / "sub"))
    answers = capabilities.HostAnswers()
    assert answers.ask("chip cpu", {}, lambda: (True, "")) == (True, "")
    answers.save()
    err = capsys.readouterr().err
    assert err.startswith(f"warning: capability cache {blocker}/sub/") and "not written" in err


# ------------------------------------------------------------------ OpenVINO's bf16 check


@pytest.mark.parametrize("caps,ok", [(["FP32", "BF16", "INT8"], True), (["FP32", "INT8", "BIN"], False)])
def test_bf16_is_what_openvino_reports(monkeypatch, caps, ok):
    monkeypatch.setattr(openvino, "capabilities", lambda: caps)
    monkeypatch.setattr(openvino, "cpu_flags", lambda: pytest.fail("runtime answered"))
    answer = get("openvino").precision_availability({}, "bf16")
    assert answer.ok is ok
    if not ok:
        assert answer.reason == ("this CPU has no native bfloat16 (OpenVINO "
                                 "OPTIMIZATION_CAPABILITIES: FP32, INT8, BIN; needs AVX512_BF16 or AMX)")
        with pytest.raises(UserError, match=r"^this CPU has no native bfloat16 .*: drop bf16 "
                                            r"from the chip's precisions on this host$"):
            openvino.check_precision("bf16")
    assert get("openvino").precision_availability({}, "int8") == Availability(True)


@pytest.mark.parametrize("flags,ok", [({"avx2", "amx_bf16"}, True), ({"avx2", "avx512f"}, False)])
def test_bf16_falls_back_to_cpu_flags_when_openvino_cannot_say(monkeypatch, flags, ok):
    def broken():
        raise RuntimeError("property not supported")

    monkeypatch.setattr(openvino, "capabilities", broken)
    monkeypatch.setattr(openvino, "cpu_flags", lambda: flags)
    answer = openvino.bf16_support()
    assert answer.ok is ok
    if not ok:
        assert answer.reason == ("no native bfloat16: OpenVINO cannot report its capabilities "
                                 "(property not supported) and the CPU flags lack amx_bf16 and "
                                 "avx512_bf16")


def test_other_backends_run_every_precision_they_compile():
    for backend, precision in (("onnxruntime", "fp16"), ("onnxruntime", "int8"),
                               ("tpu_mlir", "int8"), ("pytorch", "fp32")):
        assert get(backend).precision_availability({}, precision) == Availability(True)


# ------------------------------------------------------------------------------- the plan


def test_without_bf16_its_cells_are_left_out_with_the_reason(tmp_path, monkeypatch):
    asked = fake_bf16(monkeypatch, ok=False)
    plan = cfg.resolve(base_config(), tmp_path)
    assert sorted(asked) == ["bf16", "fp32", "int8"]
    assert plan.unavailable_precisions == {"cpu_openvino": {"bf16": NO_BF16}}
    openvino_cells = [p for m, c, p in plan.accuracy_cells() if (m, c) == ("simclr", "cpu_openvino")]
    assert openvino_cells == ["fp32", "int8"]
    assert not [cell for cell in plan.perf_cells(selected=False) if cell[2] == "bf16"]
    assert plan.precisions("cpu_openvino") == ["fp32", "bf16", "int8"]  # still a table column
    reason = f"chip cpu_openvino cannot run bf16 on this host: {NO_BF16}"
    assert plan.impossible_target("results/simclr/cpu_openvino/bf16/bs8/perf.json", tmp_path) == reason
    assert plan.impossible_target(str(tmp_path / "results/compiled/simclr/cpu_openvino/bf16/dynamic"),
                                  tmp_path) == reason
    assert plan.impossible_target("results/simclr/cpu_openvino/int8/accuracy.json", tmp_path) is None
    assert plan.impossible_target("results/tables/simclr_fps.md", tmp_path) is None


def test_with_bf16_its_cells_are_scheduled(tmp_path, monkeypatch):
    fake_bf16(monkeypatch, ok=True)
    plan = cfg.resolve(base_config(), tmp_path)
    assert plan.unavailable_precisions == {}
    assert ("simclr", "cpu_openvino", "bf16") in plan.accuracy_cells()
    assert ("simclrv2", "cpu_openvino", "bf16", 64) in plan.perf_cells()
    assert plan.impossible_target("results/simclr/cpu_openvino/bf16/accuracy.json", tmp_path) is None


def test_the_answers_come_from_the_cache_on_the_next_parse(tmp_path, monkeypatch):
    fake_bf16(monkeypatch, ok=False)
    cfg.resolve(base_config(), tmp_path)
    asked_again = fake_bf16(monkeypatch, ok=True)  # a detector that would now say yes...
    plan = cfg.resolve(base_config(), tmp_path)
    assert asked_again == []  # ...is not asked: same toolchain, same answer
    assert plan.unavailable_precisions == {"cpu_openvino": {"bf16": NO_BF16}}


def test_selecting_what_cannot_run_here_fails_with_one_line(tmp_path, monkeypatch):
    fake_bf16(monkeypatch, ok=False)
    monkeypatch.setattr(get("tensorrt"), "availability", lambda chip: Availability(False, "no GPU"))
    with pytest.raises(UserError) as error:
        cfg.resolve(base_config(select={"precisions": ["bf16"]}), tmp_path)
    assert str(error.value) == (f"select.precisions names bf16, but chip cpu_openvino cannot run "
                                f"bf16 on this host: {NO_BF16}; drop it from select.precisions")
    with pytest.raises(UserError) as error:
        cfg.resolve(base_config(select={"chips": ["cpu", "t4"]}), tmp_path)
    assert str(error.value) == ("select.chips names t4, but chip t4 is not available on this "
                                "host: no GPU; drop it from select.chips")
    plan = cfg.resolve(base_config(select={"chips": ["cpu"], "precisions": ["int8"]}), tmp_path)
    assert {c for _, c, _ in plan.accuracy_cells()} == {"cpu"}


def test_selecting_bf16_runs_where_the_host_has_it(tmp_path, monkeypatch):
    fake_bf16(monkeypatch, ok=True)
    plan = cfg.resolve(base_config(select={"precisions": ["bf16"]}), tmp_path)
    assert {(c, p) for _, c, p in plan.accuracy_cells()} == {("cpu_openvino", "bf16")}


# ------------------------------------------------------------- bring-your-own ONNX models


def byo_config(tmp_path, **entry) -> dict:
    tiny_model(tmp_path / "m.onnx")
    model = {"onnx": "m.onnx", "mean": [0.5] * 3, "std": [0.25] * 3, "metric": "top1", **entry}
    return base_config(models={"resnet20": model, "simclr": {"checkpoint": None}})


def test_bring_your_own_onnx_runs_on_every_onnx_chip_and_is_gated_on_ort_fp32(tmp_path):
    plan = cfg.resolve(byo_config(tmp_path), tmp_path, check_availability=False)
    assert plan.chips_of("resnet20") == [c for c in plan.chips if c != "cpu_pytorch"]
    assert "cpu_pytorch" in plan.chips_of("simclr")
    assert plan.gate_reference("resnet20") == ("cpu", "fp32")
    assert plan.gate_reference("simclr") == ("cpu_pytorch", "fp32")
    gated = {(c, p) for m, c, p in plan.gate_cells() if m == "resnet20"}
    assert ("bm1684x", "int8") in gated and ("cpu", "fp16") in gated
    assert not [cell for cell in plan.compile_cells() if cell[:2] == ("resnet20", "cpu_pytorch")]


def test_gate_reference_of_onnx_models_is_configurable(tmp_path, monkeypatch):
    config = byo_config(tmp_path)
    config["gate"]["reference_for_onnx"] = {"chip": "cpu_openvino", "precision": "fp32"}
    plan = cfg.resolve(config, tmp_path, check_availability=False)
    assert plan.gate_reference("resnet20") == ("cpu_openvino", "fp32")
    # a reference that cannot run here: no gate for that model, the others keep theirs
    monkeypatch.setattr(get("openvino"), "availability", lambda chip: Availability(False, "gone"))
    plan = cfg.resolve(config, tmp_path)
    assert plan.gate_reference("resnet20") is None
    assert {m for m, _, _ in plan.gate_cells()} == {"simclr"}


def test_bring_your_own_onnx_on_pytorch_eager_fails_with_one_line(tmp_path):
    with pytest.raises(UserError) as error:
        cfg.resolve(byo_config(tmp_path, chips=["cpu", "cpu_pytorch"]), tmp_path)
    assert str(error.value) == (
        "models.resnet20.chips names 'cpu_pytorch', whose backend pytorch needs the PyTorch "
        "model, which a bring-your-own ONNX model lacks: drop cpu_pytorch from "
        "models.resnet20.chips")


def test_the_readme_example_resolves_on_the_default_config(tmp_path):
    from tests.test_default_path import readme_byo_model

    name, entry = readme_byo_model()
    (tmp_path / entry["onnx"]).parent.mkdir(parents=True)
    tiny_model(tmp_path / entry["onnx"])
    config = base_config()
    config["models"][name] = entry
    plan = cfg.resolve(config, tmp_path, check_availability=False)
    assert "cpu_pytorch" not in plan.chips_of(name) and "cpu" in plan.chips_of(name)
    assert plan.gate_reference(name) == ("cpu", "fp32")


# ------------------------------------------------------------------- parse without runtimes


@pytest.mark.slow
def test_a_cached_parse_imports_no_runtime(tmp_path, own_cache):
    """`snakemake -n` on the default matrix: the first parse asks the runtimes; the next
    parses even where torch, onnxruntime and openvino cannot be imported."""
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-n",
               "--directory", str(tmp_path / "run"), "--cores", "2", "--quiet", "all"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    poisoned = tmp_path / "poisoned"
    for name in ("torch", "onnxruntime", "openvino"):
        (poisoned / name).mkdir(parents=True)
        (poisoned / name / "__init__.py").write_text(f"raise ImportError('{name} imported at parse time')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(poisoned), str(REPO)])}
    second = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert second.returncode == 0, second.stderr[-2000:]
    stored = json.loads(next(own_cache.glob("capabilities-*.json")).read_text())
    assert stored["answers"]["chip cpu_pytorch"]["ok"] is True
