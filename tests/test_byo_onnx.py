"""A bring-your-own ONNX is checked when the config is read: one line, before any job runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto

from chipbench import imported
from chipbench.errors import UserError
from tests.conftest import snakemake, write_config
from tests.onnx_fixtures import tiny_model


def check(path, metric="top1", batch_sizes=(1, 4)):
    imported.check(path, metric, set(batch_sizes), "models.mine.onnx")


def message(path, **kwargs) -> str:
    with pytest.raises(UserError) as error:
        check(path, **kwargs)
    return str(error.value)


def test_fitting_models_pass(tmp_path):
    check(tiny_model(tmp_path / "top1.onnx"))
    check(tiny_model(tmp_path / "pair.onnx", width=128), metric="pair_top1")
    check(tiny_model(tmp_path / "bs4.onnx", input_shape=(4, 3, 32, 32)), batch_sizes=[4])


def test_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    text = message(path)
    assert text.startswith(f"ONNX model {path} (config models.mine.onnx) does not parse as "
                           "ONNX (")
    assert text.endswith("): give the .onnx file an ONNX exporter wrote")
    assert "\n" not in text


def test_input_of_another_size(tmp_path):
    path = tiny_model(tmp_path / "big.onnx", input_shape=(1, 3, 64, 64))
    assert message(path) == (
        f"ONNX model {path} (config models.mine.onnx) takes a float32 1×3×64×64 input; the "
        "benchmark feeds float32 N×3×32×32 CIFAR-10 images: export it for that input")


def test_fixed_batch_other_than_the_matrix(tmp_path):
    path = tiny_model(tmp_path / "bs1.onnx", input_shape=(1, 3, 32, 32))
    assert message(path, batch_sizes=[1, 4, 8]) == (
        f"ONNX model {path} (config models.mine.onnx) has a fixed batch size 1 but the matrix "
        "runs it at batch size 4, 8: export it with a dynamic batch dimension, or set "
        "models.mine.batch_sizes: [1]")


def test_two_inputs_and_integer_input(tmp_path):
    two = tiny_model(tmp_path / "two.onnx", inputs=2)
    assert message(two) == (
        f"ONNX model {two} (config models.mine.onnx) has 2 inputs (x0, x1): export it with one "
        "input, the image batch N×3×32×32")
    ints = tiny_model(tmp_path / "int.onnx", dtype=TensorProto.DOUBLE)
    assert "takes a float64 N×3×32×32 input" in message(ints)


def test_output_that_does_not_fit_the_metric(tmp_path):
    path = tiny_model(tmp_path / "seven.onnx", width=7)
    assert message(path) == (
        f"ONNX model {path} (config models.mine.onnx) gives a N×7 output but metric top1 needs "
        "N×10 class logits: fix models.mine.metric or export the matching head")
    check(path, metric="pair_top1")  # a 7-vector is a fine embedding


@pytest.mark.slow
def test_workflow_refuses_a_corrupt_onnx_before_any_job(workdir):
    (workdir / "corrupt.onnx").write_bytes(b"\x08\x07not a protobuf" * 50)
    byo = write_config(workdir / "byo.yaml", {
        "models": {"mine": {"onnx": "corrupt.onnx", "mean": [0.5] * 3, "std": [0.25] * 3,
                            "metric": "top1", "chips": ["cpu"]}},
        "select": {"models": ["mine"]},
    })
    result = snakemake(workdir, configs=[byo])
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(
        "error: ONNX model corrupt.onnx (config models.mine.onnx) does not parse as ONNX ("
    ), result.stderr
    assert "see logs" not in result.stderr
    assert not (workdir / "results").exists()
