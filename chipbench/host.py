"""A description of the machine a result was measured on.

:func:`describe` is the short identity every result record carries as ``host`` (the tables
label cells with it). :func:`system_description` is the longer, MLPerf-style description
(REFERENCE.md §3: accelerator model, count, memory and driver, host CPU, memory, OS) kept in
every record's ``provenance.system``. Accelerators are found by asking the vendors' tools
that are on PATH (``nvidia-smi``, ``npu-smi``) with a short timeout; a missing tool or one
that fails or hangs costs nothing but a line in ``probe_errors``.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
import subprocess

#: Seconds an accelerator tool may take before it is given up on.
PROBE_TIMEOUT_S = 5.0

NVIDIA_SMI_QUERY = [
    "nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader",
]
NPU_SMI_INFO = ["npu-smi", "info"]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def describe() -> dict:
    return {
        "hostname": socket.gethostname(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def os_name() -> str:
    """``Debian GNU/Linux 12 (bookworm), Linux 6.1.0`` where /etc/os-release says so."""
    kernel = f"{platform.system()} {platform.release()}"
    try:
        pretty = platform.freedesktop_os_release().get("PRETTY_NAME")
    except (OSError, AttributeError):
        pretty = None
    return f"{pretty}, {kernel}" if pretty else kernel


# ------------------------------------------------------------------------------ accelerators


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


_NPU_SMI_VERSION = re.compile(r"npu-smi\s+\S+\s+Version:\s*(\S+)")
_NPU_MEMORY = re.compile(r"^\|\s*\d+\s+\d+\s*\|\s*(\S+)\s*\|.*?(\d+)\s*/\s*(\d+)")


def parse_npu_smi(text: str) -> list[dict]:
    """Chips of ``npu-smi info``: model ``Ascend <name>``, memory (the chip row's
    ``Memory-Usage(MB)`` total) and driver (the header's ``Version:``) where the table has them.
    """
    from chipbench.backends.ascend import parse_npu_smi_info  # the table layout lives there

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


def _same(values):
    values = {v for v in values if v is not None}
    return values.pop() if len(values) == 1 else (sorted(map(str, values)) or None)


def system_description(host: dict | None = None, probe=accelerators) -> dict:
    """The machine in MLPerf's system-description field names (plus the probed devices)."""
    host = host or describe()
    devices, errors = probe()
    description = {
        "system_name": host.get("hostname"),
        "number_of_nodes": 1,
        "host_processor_model_name": host.get("cpu"),
        "host_processor_core_count": host.get("cores"),
        "host_memory_capacity": (
            f"{host['memory_gib']} GiB" if host.get("memory_gib") is not None else None
        ),
        "operating_system": os_name(),
        "accelerators_per_node": len(devices),
        "accelerator_model_name": _same(d["model"] for d in devices),
        "accelerator_memory_capacity": _same(
            f"{d['memory_gib']} GiB" for d in devices if d.get("memory_gib") is not None
        ),
        "accelerator_driver_version": _same(d.get("driver") for d in devices),
        "accelerators": devices,
    }
    if errors:
        description["probe_errors"] = errors
    return description
