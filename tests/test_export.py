"""chipbench.export: PyTorch -> ONNX with a symbolic batch, and the ONNX Runtime check."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from torch import nn

from chipbench import export, models, onnx_io
from chipbench.errors import UserError
from tests.conftest import perturb_batchnorm


def _inputs(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 3, 32, 32), dtype=np.float32)


@pytest.fixture(
    scope="module", params=[("simclr", 128), ("simclrv2", 10)], ids=["simclr", "simclrv2"]
)
def exported(request, tmp_path_factory):
    """(arch, n_outputs, model, onnx path, folder) - one export per architecture per test run."""
    arch, n_out = request.param
    model = perturb_batchnorm(models.build(arch, None, seed=0), seed=1)
    folder = tmp_path_factory.mktemp(f"export_{arch}")
    path = folder / "model.onnx"
    export.export_onnx(model, path, opset=17)
    return arch, n_out, model, path, folder


def test_export_writes_one_checked_self_contained_file(exported):
    _, _, _, path, folder = exported
    assert path.is_file()
    # nothing else: no .onnx.data external weights, no leftover temp file
    assert sorted(p.name for p in folder.iterdir()) == ["model.onnx"]
    proto = onnx.load(str(path), load_external_data=False)
    onnx.checker.check_model(proto)
    assert proto.graph.initializer
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    assert all(not t.external_data for t in proto.graph.initializer)


def test_export_has_symbolic_batch_dimension_and_names(exported):
    _, n_out, _, path, _ = exported
    proto = onnx.load(str(path), load_external_data=False)
    initializers = {t.name for t in proto.graph.initializer}
    inputs = [v for v in proto.graph.input if v.name not in initializers]
    assert [v.name for v in inputs] == ["input"]
    assert [v.name for v in proto.graph.output] == ["output"]
    in_dims = inputs[0].type.tensor_type.shape.dim
    out_dims = proto.graph.output[0].type.tensor_type.shape.dim
    assert in_dims[0].dim_param == "batch" and not in_dims[0].HasField("dim_value")
    assert out_dims[0].dim_param == "batch" and not out_dims[0].HasField("dim_value")
    assert [d.dim_value for d in in_dims[1:]] == [3, 32, 32]
    assert out_dims[1].dim_value == n_out


def test_onnx_io_summary(exported):
    _, n_out, _, path, _ = exported
    summary = onnx_io.onnx_io_summary(path)
    assert summary["inputs"] == [
        {"name": "input", "shape": ["batch", 3, 32, 32], "dtype": "float32"}
    ]
    assert summary["outputs"] == [{"name": "output", "shape": ["batch", n_out], "dtype": "float32"}]
    assert summary["opset"] == 17
    assert summary["producer"].startswith("pytorch")
    assert isinstance(summary["ir_version"], int)


@pytest.mark.parametrize("batch", [1, 5])
def test_compare_with_torch_at_several_batch_sizes(exported, batch):
    _, n_out, model, path, _ = exported
    report = export.compare_with_torch(model, path, _inputs(batch, seed=batch))
    assert report["max_rel_error"] < 1e-4
    scale = report["max_abs_torch_output"]
    assert report["max_abs_error"] == pytest.approx(report["max_rel_error"] * scale, rel=1e-9)
    assert report["n_inputs"] == batch
    assert report["output_shape"] == [batch, n_out]
    assert "max |torch output|" in report["rel_error_definition"]
    assert report["onnxruntime_version"] == onnxruntime.__version__
    assert report["torch_version"] == torch.__version__


def test_onnx_runtime_runs_odd_batch_directly(exported):
    """Dynamic batch: ONNX Runtime accepts a batch size the export never saw."""
    _, n_out, model, path, _ = exported
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = _inputs(3, seed=9)
    (out,) = session.run(["output"], {"input": x})
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    assert out.shape == (3, n_out)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


def test_compare_detects_a_different_model(exported):
    arch, _, _, path, _ = exported
    other = models.build(arch, None, seed=12345)
    report = export.compare_with_torch(other, path, _inputs(2))
    assert report["max_rel_error"] > 1e-2


def test_compare_keeps_training_mode_and_rejects_bad_inputs(exported):
    _, _, model, path, _ = exported
    with pytest.raises(ValueError, match="NCHW"):
        export.compare_with_torch(model, path, np.zeros((3, 32, 32), dtype=np.float32))
    # float64 inputs are converted to the model's float32
    report = export.compare_with_torch(model, path, _inputs(1).astype(np.float64))
    assert report["max_rel_error"] < 1e-4
    assert not model.training


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def test_export_opset_is_honoured_and_training_mode_restored(tmp_path):
    model = _Tiny().train()
    path = tmp_path / "nested" / "dir" / "tiny.onnx"
    export.export_onnx(model, path, opset=11)  # the original report's opset
    assert model.training  # restored after exporting in eval mode
    assert onnx_io.onnx_io_summary(path)["opset"] == 11
    model.eval()
    report = export.compare_with_torch(model, path, _inputs(4))
    assert report["max_rel_error"] < 1e-4  # BatchNorm was exported with running stats (eval)


class _Broken(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


def test_failed_export_leaves_existing_file_and_no_temp(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"previous content")
    with pytest.raises(RuntimeError, match="boom"):
        export.export_onnx(_Broken(), path)
    assert path.read_bytes() == b"previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_export_overwrites_existing_file(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"stale")
    export.export_onnx(_Tiny().eval(), path)
    assert onnx_io.onnx_io_summary(path)["inputs"][0]["name"] == "input"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_onnx_io_summary_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        onnx_io.onnx_io_summary(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\x01 definitely not protobuf \xff\xfe")
    with pytest.raises(UserError) as err:
        onnx_io.onnx_io_summary(bad)
    assert str(err.value).startswith(f"{bad} is not an ONNX model")
    assert "\n" not in str(err.value)
