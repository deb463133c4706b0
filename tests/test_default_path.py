"""The default path end to end: config.yaml itself, scaled down, under both answers of the
bf16 check (faked through this host's capability cache, the way a user would fake it).

Only sizes change (.test/scale_down.yaml: tiny archive, one short training epoch per model on
few images, few test images, batch size 1, tiny timing); every default model, chip and
precision stays, plus the README's bring-your-own ONNX model as written there, pointed at a
tiny ONNX file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from chipbench import export, tpu_mlir_env
from chipbench.backends.openvino import bf16_support
from tests.conftest import (REPO, fake_answer, make_workdir, snakemake, table_column, table_row,
                            write_config)

pytestmark = pytest.mark.slow

NO_BF16 = "this CPU has no native bfloat16 (faked for the test)"
SCALE_DOWN = REPO / ".test" / "scale_down.yaml"


def readme_byo_model() -> tuple[str, dict]:
    """The bring-your-own model of the README's example, as written there."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"## Bring your own ONNX model.*?```yaml\n(.*?)```", text, re.S)[1]
    (name, entry), = yaml.safe_load(block)["models"].items()
    return name, entry


def tiny_classifier(path: Path) -> Path:
    """A 10-class conv net on N×3×32×32 (seeded), exported like the built-in models."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(8, 10)).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    export.export_onnx(net, path, 17)
    return path


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """The default config run to the end with bf16 faked unavailable."""
    workdir = make_workdir(tmp_path_factory.mktemp("default"), n_test=48, n_train=64)
    name, entry = readme_byo_model()
    tiny_classifier(workdir / entry["onnx"])
    byo = write_config(workdir / "byo.yaml", {"models": {name: entry}})
    env = {"CHIPBENCH_CACHE_DIR": str(workdir / "cache")}
    run = dict(configs=[byo, SCALE_DOWN], ci_config=False, env=env, timeout=3600)
    # The run needs the TPU-MLIR venv. Were it created after the answers are written (by the
    # run's first BM1684X compile, or another test's), that toolchain change would rightly
    # have this host asked again, and the faked answer below would be lost.
    tpu_mlir_env.ensure_venv()
    dry = snakemake(workdir, "-n", **run)  # asks this host, writes the answers
    assert dry.returncode == 0, dry.stderr[-3000:]
    fake_answer(workdir / "cache", "precision cpu_openvino bf16", ok=False, reason=NO_BF16)
    result = snakemake(workdir, **run)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, run, name


def test_default_run_fills_every_cell_this_host_can_run(default_run):
    workdir, _, byo = default_run
    results = workdir / "results"
    defaults = yaml.safe_load((REPO / "config.yaml").read_text())["models"]
    for model in ("simclr", "simclrv2", byo):
        chips = defaults[model]["chips"] if model in defaults else ["cpu", "cpu_openvino", "bm1684x"]
        for chip, precisions in (("cpu", ["fp32", "fp16", "int8"]),
                                 ("cpu_openvino", ["fp32", "int8"]),
                                 ("bm1684x", ["fp32", "fp16", "int8"])):
            for precision in precisions if chip in chips else []:
                assert (results / model / chip / precision / "accuracy.json").is_file()
                assert (results / model / chip / precision / "gate.json").is_file()
        assert not (results / model / "cpu_openvino" / "bf16").exists()
        assert not (results / "compiled" / model / "cpu_openvino" / "bf16").exists()
    # the built-in models were trained here and their PyTorch reference runs those weights
    for model in ("simclr", "simclrv2"):
        reference = json.loads((results / model / "cpu_pytorch" / "fp32" / "accuracy.json").read_text())
        assert reference["weights"]["source"] == "trained"
        assert (results / "models" / model / "trained.pth").is_file()
    # each ResNet-50 bmodel ran on the cmodel once: in the cross-check (none in FP16 here),
    # not also in model_deploy's validation (.test/scale_down.yaml)
    for precision, images in (("fp32", 1), ("fp16", 0), ("int8", 1)):
        cell = results / "simclrv2" / "bm1684x" / precision
        check = json.loads((cell / "accuracy.json").read_text()).get("crosscheck")
        assert (check["n_images"], check["passed"]) == (1, True) if images else check is None
        compiled = results / "compiled" / "simclrv2" / "bm1684x" / precision / "bs1"
        assert not json.loads((compiled / "compiled.json").read_text())["bmodel_validated_on_cmodel"]
    # the imported model has no PyTorch model: gated against ONNX Runtime FP32 on the CPU
    assert not (results / byo / "cpu_pytorch").exists()
    gate = json.loads((results / byo / "bm1684x" / "int8" / "gate.json").read_text())["gate"]
    assert (gate["reference_chip"], gate["reference_precision"]) == ("cpu", "fp32")


def test_cells_this_host_cannot_run_read_dash_with_the_reason(default_run):
    workdir, _, byo = default_run
    tables = workdir / "results" / "tables"
    for model, title in (("simclr", "SimCLR"), (byo, byo)):
        accuracy = (tables / f"{model}_accuracy.md").read_text()
        assert table_row(accuracy, "CPU (OpenVINO)")[table_column(accuracy, "bf16")] == "—"
        fps = (tables / f"{model}_fps.md").read_text()
        bf16 = table_column(fps, "CPU (OpenVINO) bf16 fps")
        assert table_row(fps, f"{title} bs1")[bf16] == "—"
        for table in ("accuracy", "fps"):  # the reason's head under the table, in full beside it
            assert "CPU (OpenVINO) bf16: this CPU has no native bfloat16" in (
                tables / f"{model}_{table}.md").read_text()
            details = json.loads((tables / f"{model}_{table}.provenance.json").read_text())["details"]
            assert f"— cannot run here: CPU (OpenVINO) bf16: {NO_BF16}" in details
    # chips missing here: "—" and the reason, as before
    assert re.search(r"310P(, [^:;]+)*: atc not found", (tables / "simclr_fps.md").read_text())
    gate = (tables / f"{byo}_gate.md").read_text()
    assert "| CPU (ONNX Runtime) " in gate and "no accuracy gate" not in gate


def test_explicit_requests_for_the_impossible_cell_fail_with_one_line(default_run):
    workdir, run, _ = default_run
    expected = f"error: chip cpu_openvino cannot run bf16 on this host: {NO_BF16}"
    target = snakemake(workdir, "results/simclr/cpu_openvino/bf16/accuracy.json", **run)
    assert target.returncode != 0
    assert [l for l in target.stderr.splitlines() if l.startswith("error")] == [expected]
    selected = snakemake(workdir, "--config", "select={precisions: [bf16]}", **run)
    assert selected.returncode != 0
    assert [l for l in selected.stderr.splitlines() if l.startswith("error")] == [
        f"error: select.precisions names bf16, but chip cpu_openvino cannot run bf16 on this "
        f"host: {NO_BF16}; drop it from select.precisions"]
    assert not (workdir / "results" / "compiled" / "simclr" / "cpu_openvino" / "bf16").exists()


def test_with_bf16_the_same_run_adds_exactly_the_bf16_cells(default_run):
    """The other answer: bf16 cells are scheduled, and nothing else reruns. They complete where
    OpenVINO really has native bfloat16; elsewhere its own check at compile time refuses."""
    workdir, run, byo = default_run
    fake_answer(workdir / "cache", "precision cpu_openvino bf16", ok=True)
    dry = snakemake(workdir, "-n", "--quiet", "rules", **run)
    assert dry.returncode == 0, dry.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", dry.stdout + dry.stderr, re.M))
    assert counts["compile_model"] == "3"  # bf16 of the three models, nothing else
    assert counts["measure_accuracy"] == counts["check_accuracy_gate"] == "3"
    result = snakemake(workdir, "--keep-going", **run)
    bf16 = workdir / "results" / "simclr" / "cpu_openvino" / "bf16"
    if bf16_support().ok:
        assert result.returncode == 0, result.stderr[-3000:]
        for model in ("simclr", "simclrv2", byo):
            assert (workdir / "results" / model / "cpu_openvino" / "bf16" / "gate.json").is_file()
        accuracy = (workdir / "results" / "tables" / "simclr_accuracy.md").read_text()
        assert table_row(accuracy, "CPU (OpenVINO)")[table_column(accuracy, "bf16")] != "—"
    else:
        assert result.returncode != 0
        assert "no native bfloat16" in result.stderr and not bf16.exists()
