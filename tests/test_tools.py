"""The helpers every backend shares to drive vendor tools (chipbench.tools)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from chipbench.errors import UserError
from chipbench.tools import input_file_name, onnx_input, run_logged, write_input_files
from tests.test_ascend import images, tiny_onnx


def test_onnx_input_name_shape_and_fixed_batch(tmp_path):
    assert onnx_input(tiny_onnx(tmp_path / "dynamic.onnx"), "ATC") == ("input", (3, 32, 32), None)
    fixed = tiny_onnx(tmp_path / "fixed.onnx", batch=4)
    assert onnx_input(fixed, "ATC", 4) == ("input", (3, 32, 32), 4)
    with pytest.raises(UserError) as error:
        onnx_input(fixed, "TensorRT", 8)
    assert str(error.value) == (
        f"{fixed} has a fixed batch size 4; TensorRT cannot compile it for batch size 8: "
        "export the model with a symbolic batch dimension"
    )


def test_run_logged_logs_the_command_and_fails_in_one_line(tmp_path, capfd):
    seconds = run_logged([sys.executable, "-c", "print('hello')"], cwd=tmp_path)
    logged = capfd.readouterr().err
    assert f"+ {sys.executable} -c 'print('\"'\"'hello'\"'\"')'  # in {tmp_path}" in logged
    assert "hello" in logged and seconds >= 0
    with pytest.raises(UserError, match="^tool failed with exit code 3: its messages"):
        run_logged([sys.executable, "-c", "raise SystemExit(3)"], what="tool")
    with pytest.raises(UserError, match=r"^absent could not start \(.*\): install it$"):
        run_logged([str(tmp_path / "absent")], hint="install it")


def test_write_input_files_raw_little_endian_one_file_per_image(tmp_path):
    x = images(3)
    paths = write_input_files(x, tmp_path / "bin")
    assert [p.name for p in paths] == ["00000.bin", "00001.bin", "00002.bin"]
    for i, path in enumerate(paths):
        assert path.stat().st_size == 3 * 32 * 32 * 4
        assert path.read_bytes() == x[i].astype("<f4").tobytes()
    np.testing.assert_array_equal(np.fromfile(paths[2], dtype="<f4").reshape(3, 32, 32), x[2])
    (tmp_path / "bin" / "stale.bin").write_bytes(b"\0" * 4)
    with pytest.raises(UserError, match="other input files"):
        write_input_files(x, tmp_path / "bin")
    assert input_file_name(123456, 200000) == "123456"
