"""A description of the machine a result was measured on.

:func:`describe` is the short identity every result record carries as ``host`` (the tables
label cells with it). :func:`system_description` is the longer description in the field
names of MLPerf's system descriptions (accelerator model, count, memory and driver; host CPU,
memory, OS), kept in every record's ``provenance.system``. Accelerators come from
`chipbench.devices` (the vendors' tools on PATH, with a short timeout); a missing tool or one
that fails or hangs costs nothing but a line in ``probe_errors``.
"""

from __future__ import annotations

import os
import platform
import socket

from chipbench import devices as device_probes


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: CPU flags that decide how fast training and CPU inference run (benchmarks print them).
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")


def cpu_flags(cpuinfo: str | None = None) -> list[str]:
    """The `SPEED_FLAGS` this CPU has, from /proc/cpuinfo (or the given text of it)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as handle:
                cpuinfo = handle.read()
        except OSError:
            return []
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            present = set(line.split(":", 1)[1].split())
            return [flag for flag in SPEED_FLAGS if flag in present]
    return []


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


def _same(values):
    values = {v for v in values if v is not None}
    return values.pop() if len(values) == 1 else (sorted(map(str, values)) or None)


def system_description(host: dict | None = None, probe=None) -> dict:
    """The machine in MLPerf's system-description field names (plus the probed devices).

    ``probe() -> (devices, errors)`` defaults to `chipbench.devices.accelerators`."""
    host = host or describe()
    devices, errors = (probe or device_probes.accelerators)()
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
