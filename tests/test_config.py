"""Config checks that need the presets or the file system, and --config string coercion."""

from __future__ import annotations

import copy

import pytest
import yaml

from chipbench import config as cfg
from chipbench.errors import UserError
from tests.test_byo_onnx import tiny_model

SCHEMA = cfg.load_yaml(cfg.SCHEMA)


def base_config(**overrides) -> dict:
    config = yaml.safe_load((cfg.REPO / "config.yaml").read_text())
    config.update(copy.deepcopy(overrides))
    return config


def test_cli_strings_become_numbers_only_where_the_schema_types_them():
    typed = cfg.coerce_cli_strings(
        {"batch_sizes": ["1", "4"], "select": {"batch_sizes": ["4"], "models": ["simclr"]},
         "dataset": {"md5": "1" * 32, "test_images": "48"}, "timing": {"min_seconds": "0.5"},
         "models": {"simclr": {"checkpoint": "null"}}},
        SCHEMA,
    )
    assert typed["batch_sizes"] == [1, 4]
    assert typed["select"] == {"batch_sizes": [4], "models": ["simclr"]}
    assert typed["dataset"] == {"md5": "1" * 32, "test_images": 48}
    assert typed["timing"]["min_seconds"] == 0.5
    assert typed["models"]["simclr"]["checkpoint"] is None


def test_key_description_is_the_deepest_documented_key():
    assert cfg.key_description(SCHEMA, ["chips", "cpu", "precisions", 0]) == (
        "Precisions to compile and run on this chip."
    )
    assert cfg.key_description(SCHEMA, ["batch_sizes", 2]).startswith("Batch sizes to time")


def test_default_matrix_runs_on_cpu_and_lists_the_reports_chips(tmp_path):
    plan = cfg.resolve(base_config(), tmp_path)
    cpu_cells = [cell for cell in plan.accuracy_cells() if cell[1] == "cpu"]
    assert cpu_cells == [(m, "cpu", p) for m in ("simclr", "simclrv2")
                         for p in ("fp32", "fp16", "int8")]
    assert ("simclrv2", "cpu_pytorch", "fp32") in plan.accuracy_cells()
    assert plan.gate_reference("simclr") == ("cpu_pytorch", "fp32")
    assert [b for m, c, p, b in plan.perf_cells() if (m, c, p) == ("simclr", "cpu", "fp32")] == [
        1, 4, 8, 16, 32, 64]
    assert plan.accuracy_batch_size("simclr", "cpu") == 64
    # no Ascend toolkit nor GPU here: listed, not scheduled, and untimed with the reason
    assert {"ascend310", "ascend310p", "t4"} <= set(plan.unavailable)
    assert not [cell for cell in plan.compile_cells() if cell[1] in plan.unavailable]
    assert set(plan.unavailable) <= set(plan.untimed)


def test_selection_narrows_what_runs_not_the_matrix(tmp_path):
    config = base_config(select={"batch_sizes": [4], "chips": ["cpu"], "precisions": ["fp32"]})
    plan = cfg.resolve(config, tmp_path)
    assert plan.perf_cells() == [("simclr", "cpu", "fp32", 4), ("simclrv2", "cpu", "fp32", 4)]
    everything = plan.perf_cells(selected=False)
    assert len(everything) > 12 and ("simclr", "cpu_openvino", "int8", 64) in everything


def test_bring_your_own_onnx_needs_its_preprocessing(tmp_path):
    tiny_model(tmp_path / "m.onnx")
    config = base_config(models={"resnet20": {"onnx": "m.onnx", "metric": "top1"}})
    with pytest.raises(UserError, match=r"^model 'resnet20' brings its own ONNX but gives no "
                                        r"mean, std: add them under models.resnet20"):
        cfg.resolve(config, tmp_path)
    config["models"]["resnet20"].update(mean=[0.5] * 3, std=[0.25] * 3)
    plan = cfg.resolve(config, tmp_path)
    assert plan.models["resnet20"]["preprocess"] == "normalize"


def test_precision_the_backend_cannot_run(tmp_path):
    config = base_config(chips={"cpu": {"precisions": ["bf16"]}})
    with pytest.raises(UserError, match=r"^chip .cpu. cannot run precision bf16: its backend "
                                        r"onnxruntime supports "):
        cfg.resolve(config, tmp_path)


def test_unknown_selection(tmp_path):
    with pytest.raises(UserError, match=r"^select.chips names t5, not in config.chips"):
        cfg.resolve(base_config(select={"chips": ["t5"]}), tmp_path)


@pytest.mark.parametrize("written, digits", [
    ("12345678901234567890123456789012", "12345678901234567890123456789012"),
    ("01234567012345670123456701234567", "01234567012345670123456701234567"),  # octal to YAML
    ("00000000000000000000000000000000", "00000000000000000000000000000000"),
])
def test_an_unquoted_all_digit_md5_gets_its_digits_back(written, digits):
    read = yaml.safe_load(f"dataset: {{md5: {written}}}")
    assert isinstance(read["dataset"]["md5"], int)
    schema = cfg.load_yaml(cfg.SCHEMA)
    assert cfg.coerce_cli_strings(read, schema)["dataset"]["md5"] == digits


def test_accuracy_on_a_subset_of_the_test_images(tmp_path):
    config = base_config(chips={"cpu": {"accuracy_images": 300}, "cpu_pytorch": {}},
                         models={"simclr": {"chips": ["cpu", "cpu_pytorch"]}})
    plan = cfg.resolve(config, tmp_path)
    assert plan.accuracy_images("cpu") == 300
    assert plan.accuracy_images("cpu_pytorch") is None  # no key: every test image
    config["chips"]["cpu"]["accuracy_images"] = config["dataset"]["test_images"]
    assert cfg.resolve(config, tmp_path).accuracy_images("cpu") is None  # all is not a subset
    config["chips"]["cpu"]["accuracy_images"] = 100  # SimCLR scores 128 pairs per batch
    with pytest.raises(UserError, match=r"^chips.cpu.accuracy_images is 100, fewer than "
                                        r"metrics.pair_top1.pairs_per_batch \(128\) that simclr"):
        cfg.resolve(config, tmp_path)
