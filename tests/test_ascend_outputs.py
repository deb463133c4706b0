"""Reading what ais_bench / msit leave (chipbench.backends.ascend.outputs): the timing
summary, the output files in image order, and the order of the input files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from chipbench.backends.ascend.outputs import collect_outputs, input_stems, parse_summary
from chipbench.errors import UserError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ascend"


# ---------------------------------------------------------------------------- summary JSON


def test_parse_summary_ais_bench_bs1():
    record = parse_summary(FIXTURES / "bs1_summary.json")
    raw = json.loads((FIXTURES / "bs1_summary.json").read_text())
    values = np.asarray(raw["npu_compute_time_list"])
    assert record["batch_size"] == 1  # from --batchsize in args
    assert record["throughput_fps"] == pytest.approx(1000 / 0.238)
    assert round(record["throughput_fps"]) == 4202 and int(record["throughput_fps"]) == 4201
    assert record["throughput_fps"] == pytest.approx(raw["throughput"])
    lat = record["latency_ms"]
    assert lat["mean"] == pytest.approx(0.238)
    assert lat["median"] == pytest.approx(raw["NPU_compute_time"]["median"])
    assert lat["p99"] == pytest.approx(raw["NPU_compute_time"]["percentile(99%)"])
    assert lat["min"] == raw["NPU_compute_time"]["min"] and lat["max"] == raw["NPU_compute_time"]["max"]
    assert lat["p90"] == pytest.approx(np.percentile(values, 90))
    assert lat["std"] == pytest.approx(values.std())
    assert record["cv"] == pytest.approx(values.std() / 0.238)
    assert record["iterations"] == 100 and record["latencies_ms"] == raw["npu_compute_time_list"]
    assert record["duration_s"] == pytest.approx(values.sum() / 1000)
    assert record["h2d_ms"] == pytest.approx(0.021) and record["d2h_ms"] == pytest.approx(0.008)
    assert record["tool_summary"]["NPU_compute_time"]["p99"] == raw["NPU_compute_time"]["percentile(99%)"]


def test_parse_summary_msit_bs8_p99_key():
    record = parse_summary(FIXTURES / "bs8_summary.json")
    assert record["batch_size"] == 8  # from --batch-size in args
    assert record["throughput_fps"] == pytest.approx(8000 / 0.46)
    assert round(record["throughput_fps"]) == 17391  # the report's 310P bs8 figure
    assert record["iterations"] == 200
    raw = json.loads((FIXTURES / "bs8_summary.json").read_text())
    assert record["latency_ms"]["p99"] == pytest.approx(raw["NPU_compute_time"]["P99"])
    assert record["h2d_ms"] == pytest.approx(0.052)
    assert parse_summary(FIXTURES / "bs8_summary.json", batch_size=4)["throughput_fps"] == pytest.approx(4000 / 0.46)


def test_parse_summary_without_list_and_with_interval_pairs(tmp_path):
    raw = json.loads((FIXTURES / "bs1_summary.json").read_text())
    pairs = dict(raw, npu_compute_time_list=[[10.0, 10.25], [11.0, 11.23]])
    (tmp_path / "pairs_summary.json").write_text(json.dumps(pairs))
    record = parse_summary(tmp_path / "pairs_summary.json")
    assert record["latencies_ms"] == pytest.approx([0.25, 0.23])
    bare = {k: v for k, v in raw.items() if k != "npu_compute_time_list"}
    (tmp_path / "bare_summary.json").write_text(json.dumps(bare))
    record = parse_summary(tmp_path / "bare_summary.json")
    assert record["throughput_fps"] == pytest.approx(1000 / 0.238)
    assert record["latency_ms"]["p90"] is None and record["iterations"] == 100


def test_parse_summary_rejects_other_json(tmp_path):
    (tmp_path / "x_summary.json").write_text(json.dumps({"throughput": 1}))
    with pytest.raises(UserError, match="not an ais_bench summary"):
        parse_summary(tmp_path / "x_summary.json")


# ---------------------------------------------------------------------------- input/output files


def write_outputs_per_input(result: Path, outputs: np.ndarray, batch: int, fmt: str) -> None:
    """What ais_bench writes (per input file, padding skipped) for 00000.bin, 00001.bin, ..."""
    result.mkdir(parents=True)
    for i, row in enumerate(outputs):
        path = result / f"{i:05d}_0.{fmt}"
        if fmt == "npy":
            np.save(path, row[None])
        elif fmt == "txt":
            path.write_text(" ".join(repr(float(v)) for v in row) + " \n")
        else:
            row.astype(np.float32).tofile(path)


@pytest.mark.parametrize("fmt", ["npy", "txt", "bin"])
def test_collect_outputs_bs1(tmp_path, fmt):
    outputs = np.random.default_rng(1).standard_normal((5, 7)).astype(np.float32)
    write_outputs_per_input(tmp_path / "r", outputs, 1, fmt)
    collected = collect_outputs(tmp_path / "r", 5, 1, fmt.upper())
    np.testing.assert_allclose(collected, outputs, rtol=1e-6)
    assert collected.shape == (5, 7)


@pytest.mark.parametrize("fmt", ["npy", "txt", "bin"])
def test_collect_outputs_bs4_partial_last_batch(tmp_path, fmt):
    # 10 inputs at bs4: batches {0-3}, {4-7}, {8, 9 + 2 padding}; ais_bench writes 10 files.
    outputs = np.random.default_rng(2).standard_normal((10, 7)).astype(np.float32)
    write_outputs_per_input(tmp_path / "r", outputs, 4, fmt)
    np.testing.assert_allclose(collect_outputs(tmp_path / "r", 10, 4, fmt.upper()), outputs, rtol=1e-6)


def test_collect_outputs_bs4_whole_batch_files_named_after_first_input(tmp_path):
    # Older ais_infer: one file per batch, named after the batch's first input, padding rows kept.
    outputs = np.random.default_rng(3).standard_normal((10, 7)).astype(np.float32)
    result = tmp_path / "r"
    result.mkdir()
    for start in (0, 4, 8):
        batch = outputs[start:start + 4]
        batch = np.concatenate([batch, np.repeat(batch[:1], 4 - len(batch), axis=0)])
        np.save(result / f"{start:05d}_0.npy", batch)
        batch.tofile(result / f"{start:05d}_0.bin")
    np.testing.assert_array_equal(collect_outputs(result, 10, 4, "NPY"), outputs)
    np.testing.assert_array_equal(collect_outputs(result, 10, 4, "BIN"), outputs)


def test_collect_outputs_missing_file_is_named(tmp_path):
    outputs = np.zeros((6, 2), np.float32)
    write_outputs_per_input(tmp_path / "r", outputs, 4, "npy")
    (tmp_path / "r" / "00005_0.npy").unlink()
    with pytest.raises(UserError, match="00005_0.npy"):
        collect_outputs(tmp_path / "r", 6, 4, "NPY")


def test_collect_outputs_uses_the_given_input_names(tmp_path):
    result = tmp_path / "r"
    result.mkdir()
    stems = ["img_2", "img_10"]  # natural order: img_2 before img_10
    for value, stem in enumerate(stems):
        np.save(result / f"{stem}_0.npy", np.full((1, 3), value, np.float32))
    assert collect_outputs(result, 2, 2, "NPY", stems=stems)[:, 0].tolist() == [0, 1]
    (tmp_path / "in").mkdir()
    for name in ("img_10.bin", "img_2.bin", "img_1.bin"):
        (tmp_path / "in" / name).write_bytes(b"")
    assert input_stems(tmp_path / "in") == ["img_1", "img_2", "img_10"]
