"""Bad input: one line that names the problem and the fix, non-zero exit, nothing in results/."""

from __future__ import annotations

import gzip
import re

import pytest
import torch

from tests.conftest import files_under, snakemake, write_config

CONFIG_ERRORS = {
    "unknown model": (
        {"models": {"resnet99": {}}},
        "error: unknown model 'resnet99': use one of simclr, simclrv2, or give "
        "models.resnet99.onnx (with mean, std and metric) to bring your own ONNX",
    ),
    "unknown chip": (
        {"chips": {"npu9": {}}},
        "error: unknown chip 'npu9' in config.chips: use one of ",
    ),
    "unknown precision": (
        {"chips": {"cpu": {"precisions": ["fp8"]}}},
        "error: config chips.cpu.precisions.0: 'fp8' is not one of ['fp32', 'fp16', 'bf16', "
        "'int8'] (Precisions to compile and run on this chip); fix config.yaml or your "
        "--config/--configfile",
    ),
    "batch size zero": (
        {"batch_sizes": [0, 4]},
        "error: config batch_sizes.0: 0 is less than the minimum of 1",
    ),
    "batch size larger than the dataset": (
        {"batch_sizes": [1, 64]},
        "error: batch size 64 for simclr on cpu is larger than the dataset (48 test images): "
        "use batch sizes ≤ 48",
    ),
    "missing checkpoint": (
        {"models": {"simclr": {"checkpoint": "nowhere/simclr.pth"}}},
        "error: checkpoint nowhere/simclr.pth (config models.simclr.checkpoint) does not "
        "exist: fix the path, or set it to null for seeded random weights",
    ),
    "select precision outside the matrix": (
        {"select": {"precisions": ["int4"]}},
        "error: select.precisions names int4, not in the precisions of config.chips: use one "
        "of bf16, fp16, fp32, int8",
    ),
    "select batch size outside the matrix": (
        {"select": {"batch_sizes": [3]}},
        "error: select.batch_sizes names 3, not in the matrix's batch sizes: use one of 1, 4",
    ),
    "missing local dataset": (
        {"dataset": {"url": "nowhere/cifar-10-python.tar.gz"}},
        "error: dataset archive nowhere/cifar-10-python.tar.gz (config dataset.url) does not "
        "exist: set dataset.url to an existing file, a file:// URL or an http(s) URL",
    ),
}


@pytest.mark.parametrize("case", sorted(CONFIG_ERRORS))
def test_config_error_is_one_line_before_anything_runs(workdir, case):
    override, message = CONFIG_ERRORS[case]
    result = snakemake(workdir, configs=[write_config(workdir / "bad.yaml", override)])
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr
    assert not (workdir / "results").exists()


def test_md5_mismatch(workdir):
    write_config(workdir / "bad.yaml", {"dataset": {"md5": "0" * 32}})
    result = snakemake(workdir, configs=[workdir / "bad.yaml"])
    assert result.returncode != 0
    assert re.search(
        r"^error: dataset archive \S+ has md5 [0-9a-f]{32} but config says 0{32}: ",
        result.stderr, re.M,
    ), result.stderr
    assert not [f for f in files_under(workdir / "results") if f.startswith("data/")]


def test_truncated_archive(workdir):
    archive = workdir / "data" / "cifar-10-python.tar.gz"
    truncated = workdir / "data" / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    import hashlib
    write_config(workdir / "bad.yaml", {"dataset": {
        "url": str(truncated), "md5": hashlib.md5(truncated.read_bytes()).hexdigest()}})
    result = snakemake(workdir, configs=[workdir / "bad.yaml"])
    assert result.returncode != 0
    assert re.search(
        r"^error: dataset source \S+truncated\.tar\.gz is not a complete CIFAR-10 python "
        r"archive \(.*is truncated or corrupt.*\); point dataset.url at a complete",
        result.stderr, re.M), result.stderr
    assert not [f for f in files_under(workdir / "results") if f.startswith("data/")]


def test_checkpoint_with_wrong_keys_names_them(workdir):
    state = {"backbone.conv1.weight": torch.zeros(64, 3, 7, 7), "head.weight": torch.zeros(1)}
    torch.save({"epoch": 1, "arch": "resnet18", "state_dict": state, "optimizer": {}},
               workdir / "wrong.pth")
    write_config(workdir / "bad.yaml", {"models": {"simclr": {"checkpoint": "wrong.pth"}}})
    result = snakemake(workdir, "results/models/simclr/model.onnx",
                       configs=[workdir / "bad.yaml"])
    assert result.returncode != 0
    line = next(l for l in result.stderr.splitlines() if l.startswith("error:"))
    assert "missing keys backbone.bn1.weight" in line or "missing keys" in line
    assert "unexpected keys head.weight" in line
    # Only the dataset (extracted before any export, so its checks come first) is left.
    assert [f for f in files_under(workdir / "results") if not f.startswith("data/")] == []


@pytest.mark.parametrize("md5", ["12345678901234567890123456789012",
                                 "01234567012345670123456701234567"])
def test_an_all_digit_md5_is_read_as_written(workdir, md5):
    # Unquoted in YAML: read as a decimal, or (leading zero, digits 0-7) an octal number.
    (workdir / "md5.yaml").write_text(f"dataset:\n  md5: {md5}\n")
    result = snakemake(workdir, "results/data/cifar-10-python.tar.gz",
                       configs=[workdir / "md5.yaml"])
    assert result.returncode != 0
    errors = {line for line in result.stderr.splitlines() if line.startswith("error:")}
    assert len(errors) == 1 and f" but config says {md5}: " in errors.pop(), result.stderr
