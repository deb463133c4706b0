"""Accelerator discovery below the backends (chipbench.devices): nvidia-smi and npu-smi
output parsed from fixtures, and the probe of every tool on PATH with fake tools."""

from __future__ import annotations

import subprocess
from pathlib import Path

from chipbench import devices
from chipbench.devices import parse_npu_smi_info

FIXTURES = Path(__file__).resolve().parent / "fixtures"

NVIDIA_SMI = "Tesla T4, 15360 MiB, 535.104.05\nTesla T4, 15360 MiB, 535.104.05\n"


def test_parse_nvidia_smi():
    found = devices.parse_nvidia_smi(NVIDIA_SMI + "NVIDIA A100-SXM4-80GB, [N/A], 550.54.15\n\n")
    assert found[0] == {"vendor": "NVIDIA", "model": "Tesla T4", "memory_gib": 15.0,
                         "driver": "535.104.05"}
    assert found[2]["model"] == "NVIDIA A100-SXM4-80GB" and found[2]["memory_gib"] is None
    assert len(found) == 3


def test_parse_npu_smi_on_the_fixtures():
    chips = devices.parse_npu_smi((FIXTURES / "ascend" / "npu_smi_info_310p3.txt").read_text())
    assert chips == [
        {"vendor": "Huawei", "model": "Ascend 310P3", "memory_gib": 21.0, "driver": None},
        {"vendor": "Huawei", "model": "Ascend 310P3", "memory_gib": 21.0, "driver": None},
    ]
    chips = devices.parse_npu_smi((FIXTURES / "ascend" / "npu_smi_info_310.txt").read_text())
    assert len(chips) == 4  # the process table after the status table is no chip
    assert {c["model"] for c in chips} == {"Ascend 310"}
    assert {c["memory_gib"] for c in chips} == {8.0} and {c["driver"] for c in chips} == {"21.0.4"}


def fake_tools(outputs):
    """which/run stand-ins: `outputs` maps a tool to its stdout or to an exception."""

    def which(tool):
        return f"/usr/bin/{tool}" if tool in outputs else None

    def run(command, timeout):
        answer = outputs[command[0].rsplit("/", 1)[-1]]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    return which, run


def test_accelerators_from_every_tool_on_path():
    which, run = fake_tools({
        "nvidia-smi": NVIDIA_SMI,
        "npu-smi": (FIXTURES / "ascend" / "npu_smi_info_310p3.txt").read_text(),
    })
    found, errors = devices.accelerators(which=which, run=run)
    assert [d["model"] for d in found] == ["Tesla T4", "Tesla T4", "Ascend 310P3", "Ascend 310P3"]
    assert errors == []


def test_accelerator_tools_that_fail_or_hang_are_reported_not_fatal():
    which, run = fake_tools({
        "nvidia-smi": subprocess.TimeoutExpired("nvidia-smi", 5),
        "npu-smi": RuntimeError("exit code 9: dcmi module initialize failed"),
    })
    found, errors = devices.accelerators(which=which, run=run, timeout=5)
    assert found == []
    assert errors == ["nvidia-smi: no answer within 5 s",
                      "npu-smi: exit code 9: dcmi module initialize failed"]


def test_no_tools_no_accelerators():
    assert devices.accelerators(which=lambda tool: None) == ([], [])



def test_parse_npu_smi_info_310p3_table():
    chips = parse_npu_smi_info((FIXTURES / "ascend" / "npu_smi_info_310p3.txt").read_text())
    assert chips == [
        {"npu": 0, "name": "310P3", "health": "OK", "chip": 0, "device": 0, "bus_id": "0000:82:00.0"},
        {"npu": 1, "name": "310P3", "health": "OK", "chip": 0, "device": 1, "bus_id": "0000:89:00.0"},
    ]


def test_parse_npu_smi_info_310_card_ignores_process_table():
    chips = parse_npu_smi_info((FIXTURES / "ascend" / "npu_smi_info_310.txt").read_text())
    assert [(c["npu"], c["name"], c["chip"], c["device"]) for c in chips] == [
        (2, "310", 0, 0), (2, "310", 1, 1), (2, "310", 2, 2), (2, "310", 3, 3),
    ]
    assert chips[3]["health"] == "Warning"
