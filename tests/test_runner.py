"""Running a model over a data set: every output kept, in order, whatever the batch size."""

from __future__ import annotations

import numpy as np
import pytest

from chipbench.backends import Runner
from chipbench.backends.onnxruntime import BACKEND as ORT
from chipbench.errors import UserError


class StaticShapeDouble(Runner):
    """A runner that, like a compiled static-shape artefact, accepts one batch size only."""

    def __init__(self, batch_size):
        self.batch_size = batch_size
        self.batches = []

    def run(self, batch):
        assert batch.shape[0] == self.batch_size
        self.batches.append(batch.copy())
        return batch.reshape(len(batch), -1).sum(axis=1, keepdims=True)


def test_every_input_of_every_batch_is_kept_in_order():
    inputs = np.arange(10 * 3 * 2 * 2, dtype=np.float32).reshape(10, 3, 2, 2)
    runner = StaticShapeDouble(4)
    outputs = runner.run_all(inputs, 4)
    assert outputs[:, 0].tolist() == inputs.reshape(10, -1).sum(axis=1).tolist()
    assert len(runner.batches) == 3
    # the last batch holds inputs 8, 9 and two copies of input 8 as padding
    np.testing.assert_array_equal(runner.batches[2][2], inputs[8])


def test_batch_size_must_be_positive():
    with pytest.raises(UserError, match="batch size 0 is not positive"):
        StaticShapeDouble(1).run_all(np.zeros((2, 1), np.float32), 0)


@pytest.fixture(scope="module")
def compiled_simclrv2(tmp_path_factory):
    from chipbench import export, models

    root = tmp_path_factory.mktemp("ort")
    model = models.build("simclrv2", None, seed=0)
    export.export_onnx(model, root / "model.onnx", 17)
    out = root / "compiled"
    out.mkdir()
    manifest = ORT.compile(root / "model.onnx", out, "fp32", None, {}, None)
    return out, manifest


def test_batch_size_does_not_change_predictions(compiled_simclrv2):
    out, manifest = compiled_simclrv2
    runner = ORT.load(out, manifest, {"settings": {"threads": 1}}, threads=1)
    inputs = np.random.default_rng(3).standard_normal((70, 3, 32, 32)).astype(np.float32)
    one = runner.run_all(inputs, 1)
    many = runner.run_all(inputs, 64)
    assert one.shape == many.shape == (70, 10)
    np.testing.assert_array_equal(one.argmax(1), many.argmax(1))
    np.testing.assert_allclose(one, many, rtol=1e-4, atol=1e-4)
    assert runner.settings()["intra_op_num_threads"] == 1


def test_backends_declare_artefact_names_input_files_and_model_keys():
    """What the rules ask a backend (rules/common.smk), never naming one."""
    from chipbench import backends

    declared = {
        name: (backend.artefact_name(8), backend.compiled_batch_size(8),
               backend.reads_input_files, backend.model_keys)
        for name in backends.names()
        for backend in [backends.get(name)]
    }
    assert declared == {
        "ascend": ("bs8", 8, True, ()),
        "onnxruntime": ("dynamic", None, False, ()),
        "onnxruntime_gpu": ("dynamic", None, False, ()),
        "openvino": ("dynamic", None, False, ()),
        "pytorch": ("dynamic", None, False, ("arch", "checkpoint", "onnx")),
        "tensorrt": ("bs8", 8, False, ()),
        "tpu_mlir": ("bs8", 8, False, ()),
    }


def test_runners_say_who_holds_the_clock():
    from chipbench.backends.ascend.runner import AscendRunner
    from chipbench.backends.tensorrt.runner import TensorRTRunner
    assert StaticShapeDouble(1).timer.startswith("chipbench.timing.measure: time.perf_counter")
    assert AscendRunner.timer.startswith("ais_bench/msit: NPU compute time")
    assert TensorRTRunner.timer.startswith("CUDA events around the TensorRT enqueue")
