"""Accelerators on this machine, found by asking the vendors' tools and CUDA libraries.

Beside `chipbench.host` and below the backends: `host` describes the machine with what
:func:`accelerators` finds (``nvidia-smi``, ``npu-smi``), and the backends check their device
with :func:`parse_npu_smi_info` and :func:`cuda_device_problem`. Every probe has a short
timeout; a missing tool costs nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

#: Seconds an accelerator tool may take before it is given up on.
PROBE_TIMEOUT_S = 5.0

NVIDIA_SMI_QUERY = [
    "nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader",
]
NPU_SMI_INFO = ["npu-smi", "info"]
#: Where the Ascend driver installs npu-smi when /usr/local/sbin is not on PATH.
NPU_SMI_FALLBACKS = ("/usr/local/sbin/npu-smi", "/usr/local/bin/npu-smi")


# ------------------------------------------------------------------------------ NVIDIA


def parse_nvidia_smi(text: str) -> list[dict]:
    """Rows of ``nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader``.

    ``Tesla T4, 15360 MiB, 535.104.05`` -> ``{"vendor": "NVIDIA", "model": "Tesla T4",
    "memory_gib": 15.0, "driver": "535.104.05"}``; a memory nvidia-smi cannot read
    (``[N/A]``) gives None.
    """
    devices = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) < 3 or not cells[0]:
            continue
        name, memory, driver = cells[0], cells[1], cells[2]
        found = re.match(r"([0-9.]+)\s*MiB", memory)
        devices.append({
            "vendor": "NVIDIA",
            "model": name,
            "memory_gib": round(float(found[1]) / 1024, 1) if found else None,
            "driver": driver or None,
        })
    return devices


def import_cudart():
    """cuda-python's runtime API module (ImportError when cuda-python is not installed)."""
    try:
        from cuda.bindings import runtime as cudart  # cuda-python ≥ 12.6 (only form in 13)
    except ImportError:
        from cuda import cudart  # older cuda-python
    return cudart


def cuda_device_count() -> tuple[int, str]:
    """(number of CUDA devices, how it was found). 0 when none is visible or nothing can tell.

    Tries torch.cuda, then cuda-python, then pycuda, then ``nvidia-smi -L``.
    """
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.device_count(), "torch.cuda"
    except Exception:  # noqa: BLE001
        pass
    try:
        cudart = import_cudart()
        err, count = cudart.cudaGetDeviceCount()
        if int(err) == 0:
            return int(count), "cuda-python cudaGetDeviceCount"
        return 0, f"cuda-python cudaGetDeviceCount error {int(err)}"
    except Exception:  # noqa: BLE001
        pass
    try:
        import pycuda.driver as drv

        drv.init()
        return drv.Device.count(), "pycuda"
    except Exception:  # noqa: BLE001
        pass
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=15)
            if out.returncode == 0:
                return sum(line.startswith("GPU ") for line in out.stdout.splitlines()), "nvidia-smi -L"
        except (OSError, subprocess.TimeoutExpired):
            pass
    return 0, "no CUDA device found by torch.cuda, cuda-python, pycuda or nvidia-smi"


def cuda_device_problem(device_id: int) -> str | None:
    """Why CUDA device `device_id` cannot be used here, or None when it is visible."""
    count, how = cuda_device_count()
    if count == 0:
        return f"no CUDA device visible ({how}): check the NVIDIA driver with nvidia-smi"
    if device_id >= count:
        return f"CUDA device {device_id} does not exist ({count} visible, {how})"
    return None


# ------------------------------------------------------------------------------ Huawei Ascend


def find_npu_smi() -> str | None:
    found = shutil.which("npu-smi")
    if found:
        return found
    for candidate in NPU_SMI_FALLBACKS:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


_BUS_ID = re.compile(r"^[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-9A-Fa-f]$")


def parse_npu_smi_info(text: str) -> list[dict]:
    """Chips listed by ``npu-smi info``: one dict per chip row of the status table.

    The table gives two rows per chip: ``| NPU  Name | Health | …`` then ``| Chip  Device |
    Bus-Id | …`` (a card with several chips repeats the second row). Returns
    ``{"npu", "name", "health", "chip", "device", "bus_id"}`` with ints where the table has
    them (``device`` is None when the table shows none). The process table that follows the
    status table is ignored (its second column is a process id, not a bus id).
    """
    chips = []
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) < 2:
            continue
        first = cells[0].split()
        if len(first) != 2 or not first[0].isdigit():
            continue
        second = cells[1].split()
        if second and _BUS_ID.match(second[0]):
            if current is None:
                continue
            chips.append({
                "npu": current["npu"],
                "name": current["name"],
                "health": current["health"],
                "chip": int(first[0]),
                "device": int(first[1]) if first[1].isdigit() else None,
                "bus_id": second[0],
            })
        elif second and second[0].isalpha():
            current = {"npu": int(first[0]), "name": first[1], "health": second[0]}
    return chips


_NPU_SMI_VERSION = re.compile(r"npu-smi\s+\S+\s+Version:\s*(\S+)")
_NPU_MEMORY = re.compile(r"^\|\s*\d+\s+\d+\s*\|\s*(\S+)\s*\|.*?(\d+)\s*/\s*(\d+)")


def parse_npu_smi(text: str) -> list[dict]:
    """Chips of ``npu-smi info`` as devices: model ``Ascend <name>``, memory (the chip row's
    ``Memory-Usage(MB)`` total) and driver (the header's ``Version:``) where the table has them.
    """
    version = _NPU_SMI_VERSION.search(text)
    memory_by_bus = {}
    for line in text.splitlines():
        found = _NPU_MEMORY.match(line.strip())
        if found:
            memory_by_bus[found[1]] = round(int(found[3]) / 1024, 1)
    return [
        {
            "vendor": "Huawei",
            "model": f"Ascend {chip['name']}",
            "memory_gib": memory_by_bus.get(chip["bus_id"]),
            "driver": version[1] if version else None,
        }
        for chip in parse_npu_smi_info(text)
    ]


# ------------------------------------------------------------------------------ every vendor

#: (tool name as looked up on PATH, command, parser)
PROBES = (
    ("nvidia-smi", NVIDIA_SMI_QUERY, parse_nvidia_smi),
    ("npu-smi", NPU_SMI_INFO, parse_npu_smi),
)


def _default_runner(command: list[str], timeout: float) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise RuntimeError(
            f"exit code {result.returncode}" + (f": {detail[-1]}" if detail else "")
        )
    return result.stdout


def accelerators(which=shutil.which, run=_default_runner, timeout: float = PROBE_TIMEOUT_S):
    """``(devices, errors)``: every accelerator the vendors' tools on PATH list, and one line
    per tool that is present but failed. ``which`` and ``run(command, timeout) -> stdout``
    are replaceable for tests."""
    devices, errors = [], []
    for tool, command, parse in PROBES:
        path = which(tool)
        if not path:
            continue
        try:
            devices += parse(run([path, *command[1:]], timeout))
        except subprocess.TimeoutExpired:
            errors.append(f"{tool}: no answer within {timeout:g} s")
        except (OSError, RuntimeError, ValueError) as error:
            errors.append(f"{tool}: {error}")
    return devices, errors
