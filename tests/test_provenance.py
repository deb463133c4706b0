"""chipbench.provenance and the machine description of chipbench.host, with fake probes
(the probes themselves: tests/test_devices.py)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from chipbench import devices, host, infer, provenance
from chipbench.backends.base import Runner
from tests.test_devices import NVIDIA_SMI, fake_tools


# ------------------------------------------------------------------------------ git, config


class FakeGit:
    """Stands in for subprocess.run of git: answers per sub-command."""

    def __init__(self, head="0123456789abcdef0123456789abcdef01234567", status="", fail=None):
        self.head, self.status, self.fail = head, status, fail
        self.calls = []

    def __call__(self, command, **kwargs):
        self.calls.append(command)
        if self.fail:
            raise self.fail
        out = self.head + "\n" if command[3] == "rev-parse" else self.status
        return subprocess.CompletedProcess(command, 0, out, "")


def test_git_state_clean_and_dirty(tmp_path):
    clean = provenance.git_state(tmp_path, run=FakeGit())
    assert clean == {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False,
                     "repo": str(tmp_path)}
    dirty = provenance.git_state(tmp_path, run=FakeGit(status=" M chipbench/tables.py\n"))
    assert dirty["dirty"] is True
    git = FakeGit()
    provenance.git_state(tmp_path, run=git)
    assert git.calls == [["git", "-C", str(tmp_path), "rev-parse", "HEAD"],
                         ["git", "-C", str(tmp_path), "status", "--porcelain"]]


def test_git_state_without_git_or_repository(tmp_path):
    missing = provenance.git_state(tmp_path, run=FakeGit(fail=FileNotFoundError("git")))
    assert missing["commit"] is None and missing["error"] == "git is not installed"
    hung = provenance.git_state(tmp_path, run=FakeGit(fail=subprocess.TimeoutExpired("git", 10)))
    assert "did not answer" in hung["error"]
    if shutil.which("git"):  # a real directory that is no repository: git says so
        state = provenance.git_state(tmp_path)
        assert state["commit"] is None and state["error"]


def test_git_state_of_this_checkout():
    state = provenance.git_state()
    if state["commit"] is None:
        pytest.skip(f"the checkout is not a git repository here: {state['error']}")
    assert len(state["commit"]) == 40 and isinstance(state["dirty"], bool)


def test_config_hash_is_canonical_and_ignores_select():
    a = {"seed": 0, "dataset": {"md5": "x", "url": "u"}, "batch_sizes": [1, 4]}
    b = {"batch_sizes": [1, 4], "dataset": {"url": "u", "md5": "x"}, "seed": 0}
    assert provenance.config_sha256(a) == provenance.config_sha256(b)
    assert provenance.config_sha256(a) == provenance.config_sha256(dict(a, select={"models": ["m"]}))
    assert provenance.config_sha256(a) != provenance.config_sha256(dict(a, seed=1))
    assert len(provenance.config_sha256(a)) == 64


def test_file_sha256(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"abc")
    assert provenance.file_sha256(path) == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


def test_runtime_versions_read_metadata_only():
    versions = provenance.runtime_versions(["numpy", "surely-not-installed-package"])
    import numpy

    assert versions == {"numpy": numpy.__version__}


def test_thread_settings():
    settings = provenance.thread_settings(4, {"OMP_NUM_THREADS": "4"})
    assert settings["job_threads"] == 4 and settings["OMP_NUM_THREADS"] == "4"
    assert settings["MKL_NUM_THREADS"] is None and settings["usable_cores"] >= 1


class CoreRunner(Runner):
    def run(self, batch):
        return batch


class VendorRunner(CoreRunner):
    result_source = "a simulator on the host"
    timer = "the vendor tool's own timer"

    def benchmark(self, batch, protocol):
        return []


def test_timing_description_names_who_held_the_clock():
    protocol = {"warmup_iterations": 1, "min_iterations": 3, "min_seconds": 0.0, "max_iterations": None}
    core = provenance.timing_description(CoreRunner(), protocol)
    assert core["protocol"] == protocol and "chipbench.timing.measure" in core["timer"]
    assert "1000 × batch size" in core["fps"]
    vendor = provenance.timing_description(VendorRunner(), protocol)
    assert vendor["timer"] == "the vendor tool's own timer"
    accuracy = provenance.timing_description(CoreRunner(), None)
    assert accuracy["protocol"] is None and "whole run" in accuracy["timer"]


def test_collect_with_injected_machine_and_checkout(tmp_path):
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"onnx")
    config = {"seed": 3, "dataset": {"md5": "d41d8cd98f00b204e9800998ecf8427e"}}
    record = provenance.collect(
        config=config, onnx=onnx, threads=2, runner=VendorRunner(),
        protocol={"warmup_iterations": 0, "min_iterations": 1, "min_seconds": 0, "max_iterations": 1},
        system={"system_name": "box"}, workflow={"commit": "abc", "dirty": False},
    )
    assert record["workflow"] == {"commit": "abc", "dirty": False}
    assert record["config_sha256"] == provenance.config_sha256(config)
    assert record["seed"] == 3 and record["dataset_md5"] == config["dataset"]["md5"]
    assert record["onnx_sha256"] == provenance.file_sha256(onnx)
    assert record["threads"]["job_threads"] == 2
    assert record["system"] == {"system_name": "box"}
    assert record["result_source"] == "a simulator on the host"
    assert record["recorded_at"] > 0
    assert provenance.collect(onnx=tmp_path / "missing.onnx", system={}, workflow={})["onnx_sha256"] is None


def test_base_record_carries_provenance(tmp_path, monkeypatch):
    monkeypatch.setattr(devices, "accelerators", lambda: ([], []))

    class Backend:
        name = "fake"

        def version(self):
            return "1.0"

    record = infer.base_record("m", "cpu", "fp32", {"source": "random", "seed": 0}, Backend(),
                               CoreRunner(), config={"seed": 0}, threads=1)
    assert record["provenance"]["config_sha256"] == provenance.config_sha256({"seed": 0})
    assert record["provenance"]["system"]["accelerators_per_node"] == 0
    assert record["host"]["cores"] == record["provenance"]["system"]["host_processor_core_count"]


# -------------------------------------------------------------------------------- the machine


def test_system_description_in_mlperf_fields():
    which, run = fake_tools({"nvidia-smi": NVIDIA_SMI})
    described = host.system_description(
        {"hostname": "gpu1", "cpu": "Xeon", "cores": 16, "memory_gib": 62.8},
        probe=lambda: devices.accelerators(which=which, run=run),
    )
    assert described["system_name"] == "gpu1"
    assert described["host_processor_model_name"] == "Xeon"
    assert described["host_processor_core_count"] == 16
    assert described["host_memory_capacity"] == "62.8 GiB"
    assert described["accelerators_per_node"] == 2
    assert described["accelerator_model_name"] == "Tesla T4"
    assert described["accelerator_memory_capacity"] == "15.0 GiB"
    assert described["accelerator_driver_version"] == "535.104.05"
    assert described["operating_system"]
    assert "probe_errors" not in described
    text = provenance.system_text(described)
    assert text.startswith("gpu1: Xeon (16 cores), 62.8 GiB")
    assert text.endswith("2 × Tesla T4 15.0 GiB (driver 535.104.05)")


def test_system_description_of_mixed_accelerators_lists_each_model():
    described = host.system_description(
        {"hostname": "h"}, probe=lambda: ([{"model": "A", "memory_gib": 1.0, "driver": "1"},
                                           {"model": "B", "memory_gib": None, "driver": None}],
                                          ["npu-smi: boom"]))
    assert described["accelerator_model_name"] == ["A", "B"]
    assert described["accelerator_memory_capacity"] == "1.0 GiB"
    assert described["probe_errors"] == ["npu-smi: boom"]


# ------------------------------------------------------------------------------- summaries


def record(chip, commit="abc", dirty=False, config="c" * 64, **extra):
    return {"chip": chip, "precision": "fp32", "provenance": {
        "workflow": {"commit": commit, "dirty": dirty}, "config_sha256": config,
        "dataset_md5": "m" * 32, "onnx_sha256": "o" * 64, "runtimes": {"numpy": "2.0"},
        "system": {"system_name": "h", "host_processor_model_name": "CPU"}, **extra}}


def test_summary_lines_one_value():
    lines = provenance.summary_lines([record("a"), record("b")])
    assert "workflow: commit abc" in lines
    assert f"config sha256: {'c' * 12}" in lines
    assert "Python packages: numpy 2.0" in lines
    assert "system: h: CPU; no accelerator found" in lines


def test_summary_lines_name_the_cells_of_differing_values():
    lines = provenance.summary_lines([record("a"), record("b", commit="def", dirty=True), {"chip": "c"}])
    assert ("workflow (2 different): commit abc (a fp32); commit def + uncommitted changes "
            "(b fp32)") in lines
    assert "1 record(s) carry no provenance (made before it was recorded)" in lines
    simulated = provenance.summary_lines([record("a", result_source="tpu_mlir on the host")])
    assert "outputs not from the device: a fp32 (tpu_mlir on the host)" in simulated
