"""The Ascend backend: availability on this host, ATC compilation (AMCT first for INT8), and
loading the .om into an `AscendRunner`.

Nothing here imports a CANN module at import time: a host without the toolchain loses
nothing, and `availability` names the first missing piece.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from chipbench import devices
from chipbench.backends.ascend.amct import quantize_int8
from chipbench.backends.ascend.commands import PRECISIONS, SETUP_HINT, atc_command, check_precision
from chipbench.backends.ascend.runner import AscendRunner
from chipbench.backends.base import Availability, Backend
from chipbench.errors import UserError
from chipbench.tools import onnx_input, run_logged

DRIVER_HINT = "install the Ascend NPU driver and firmware (npu-smi ships with the driver)"
SUBPROCESS_TIMEOUT_S = 15


def find_atc() -> str | None:
    """``atc`` on PATH, else under $ASCEND_TOOLKIT_HOME or $ASCEND_HOME_PATH."""
    found = shutil.which("atc")
    if found:
        return found
    for variable in ("ASCEND_TOOLKIT_HOME", "ASCEND_HOME_PATH"):
        home = os.environ.get(variable)
        if not home:
            continue
        for relative in ("bin/atc", "atc/bin/atc", "compiler/bin/atc"):
            candidate = Path(home) / relative
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return None


def ais_bench_importable() -> bool:
    try:
        return importlib.util.find_spec("ais_bench") is not None
    except (ImportError, ValueError):
        return False


def benchmark_tool(chip: dict) -> str | None:
    """The tool to run: the chip's ``settings.tool`` (ais_bench | msit | auto) if present."""
    wanted = (chip.get("settings") or {}).get("tool") or "auto"
    has_ais = ais_bench_importable()
    has_msit = shutil.which("msit") is not None
    if wanted == "ais_bench":
        return "ais_bench" if has_ais else None
    if wanted == "msit":
        return "msit" if has_msit else None
    return "ais_bench" if has_ais else "msit" if has_msit else None


def soc_chip_name(soc_version: str) -> str:
    """npu-smi's chip name for a soc_version: ``Ascend310P3`` → ``310P3``."""
    return soc_version[len("Ascend"):] if soc_version.startswith("Ascend") else soc_version


def _describe(chips: list[dict]) -> str:
    return ", ".join(f"{c['name']} on device {c['device']}" for c in chips) or "no chip"


def cann_version() -> str | None:
    """Best effort: ``version=`` of the toolkit's ``ascend_toolkit_install.info``.

    (Where CANN records its version differs between releases; not verified on every one.)
    """
    homes = [os.environ.get(v) for v in ("ASCEND_TOOLKIT_HOME", "ASCEND_HOME_PATH")]
    homes.append("/usr/local/Ascend/ascend-toolkit/latest")
    for home in filter(None, homes):
        for info in [Path(home) / "ascend_toolkit_install.info", *Path(home).glob("*/ascend_toolkit_install.info")]:
            try:
                for line in info.read_text().splitlines():
                    if line.startswith("version="):
                        return line.split("=", 1)[1].strip()
            except OSError:
                continue
    return None


class AscendBackend(Backend):
    name = "ascend"
    precisions = PRECISIONS
    static_batch = True
    reads_input_files = True  # ais_bench reads a folder of per-image files

    def availability(self, chip: dict) -> Availability:
        soc = chip.get("soc_version")
        if not soc:
            return Availability(False, "the chip entry has no soc_version (e.g. Ascend310P3)")
        if find_atc() is None:
            return Availability(False, f"atc not found ({SETUP_HINT})")
        if benchmark_tool(chip) is None:
            wanted = (chip.get("settings") or {}).get("tool") or "auto"
            what = {
                "ais_bench": f"ais_bench is not importable by {sys.executable}",
                "msit": "msit is not on PATH",
            }.get(wanted, f"ais_bench is not importable by {sys.executable} and msit is not on PATH")
            return Availability(
                False,
                f"{what} (pip install the aclruntime and ais_bench wheels into this environment, "
                "or install msit with its benchmark component)",
            )
        npu_smi = devices.find_npu_smi()
        if npu_smi is None:
            return Availability(False, f"npu-smi not found ({DRIVER_HINT})")
        try:
            result = subprocess.run(
                [npu_smi, "info"], capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            return Availability(False, f"npu-smi info did not answer within {SUBPROCESS_TIMEOUT_S} s")
        except OSError as error:
            return Availability(False, f"npu-smi info could not run ({error})")
        if result.returncode != 0:
            message = (result.stderr or result.stdout).strip().splitlines()
            detail = f": {message[0]}" if message else ""
            return Availability(False, f"npu-smi info failed with exit code {result.returncode}{detail}")
        chips = devices.parse_npu_smi_info(result.stdout)
        wanted_name = soc_chip_name(soc)
        matching = [c for c in chips if c["name"] == wanted_name]
        if not matching:
            return Availability(
                False, f"npu-smi info lists no {wanted_name} chip for soc_version {soc} "
                f"(found {_describe(chips)})"
            )
        device_id = (chip.get("settings") or {}).get("device_id")
        if device_id is not None and not any(c["device"] == int(device_id) for c in matching):
            return Availability(
                False, f"npu-smi info lists {_describe(matching)}, none on device {device_id} "
                "(settings.device_id)"
            )
        return Availability(True)

    def version(self) -> str:
        from importlib import metadata

        parts = [f"CANN {cann_version() or 'unknown'}"]
        for package in ("ais_bench", "msit"):
            try:
                parts.append(f"{package} {metadata.version(package)}")
            except metadata.PackageNotFoundError:
                continue
        return "; ".join(parts)

    def compile(self, onnx_path, out_dir, precision, batch_size, chip, calibration, model=None):
        check_precision(precision)
        if not batch_size:
            raise UserError("ATC compiles one batch size per .om: the compile rule gave none")
        atc = find_atc()
        if atc is None:
            raise UserError(f"atc not found ({SETUP_HINT})")
        settings = chip.get("settings") or {}
        out = Path(out_dir).resolve()
        out.mkdir(parents=True, exist_ok=True)
        onnx_path = Path(onnx_path).resolve()
        input_name, chw, static = onnx_input(onnx_path, "ATC", batch_size)
        manifest = {"precision": precision, "soc_version": chip["soc_version"], "input_name": input_name}
        source = onnx_path
        if precision == "int8":
            amct = quantize_int8(
                onnx_path, calibration, out / "amct",
                calibration_batch_size=int(settings.get("amct_batch_size") or 50),
                input_name=input_name, static_batch=static,
            )
            source = Path(amct["deploy_onnx"])
            manifest["amct"] = {k: (Path(v).relative_to(out).as_posix() if k.endswith("onnx") else v)
                                for k, v in amct.items()}
        flag = settings.get("atc_precision_flag") or "precision_mode_v2"
        stem = out / f"model_bs{int(batch_size)}"
        command = atc_command(source, stem, batch_size, chip["soc_version"], precision,
                              input_name=input_name, precision_flag=flag, input_chw=chw)
        command[0] = atc
        # ATC leaves fusion_result.json and kernel_meta/ in its working directory: keep them
        # with the artefact rather than in the workflow's directory.
        run_logged(command, cwd=out, what="atc", hint=SETUP_HINT)
        om = stem.with_suffix(".om")
        if not om.is_file():
            raise UserError(f"atc exited 0 but wrote no {om}: see the ATC messages in the job log")
        manifest.update(model=om.name, atc_command=command, precision_flag=command[-1])
        return manifest

    def load(self, compiled_dir, manifest, chip, threads):
        settings = chip.get("settings") or {}
        tool = benchmark_tool(chip)
        if tool is None:
            raise UserError("neither ais_bench nor msit is available: see the chip's availability")
        return AscendRunner(
            Path(compiled_dir) / manifest["model"],
            batch_size=int(manifest["batch_size"]),
            device_id=int(settings.get("device_id") or 0),
            tool=tool,
            outfmt=str(settings.get("outfmt") or "NPY").upper(),
            info={k: manifest.get(k) for k in ("soc_version", "precision", "precision_flag")},
        )


BACKEND = AscendBackend()

