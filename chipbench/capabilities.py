"""What this host can run: asked once, remembered per host until its toolchain changes.

Asking whether a chip, and each of its precisions, can run here means importing runtimes
(torch alone takes over a second) and calling vendor tools; the answers change only when a
toolchain or device appears, changes or goes. :class:`HostAnswers` keeps them in
``capabilities-<hostname>.json`` under ``$CHIPBENCH_CACHE_DIR`` (default ``~/.cache/chipbench``)
together with a fingerprint of what they depend on (:func:`toolchain_state`: installed
packages, the vendors' tools on PATH and their mtimes, their environment variables, device
nodes, the TPU-MLIR venv's stamp, the CPU, the detection code itself). A parse whose
fingerprint matches reads the answers instead of asking again; any change asks everything
again. Deleting the file does the same.

Each answer is ``{"ok": bool, "reason": str, "chip_entry": <digest of the chip's config>}``
under a key such as ``"precision cpu_openvino bf16"`` (:func:`answer_key`). Editing an answer
in the file is the supported way to fake a capability (the tests run the workflow on both
answers of the bf16 check that way); the digest keeps a changed chip entry from reusing it.

This module sits below the backends (they use :func:`cpu_flags`) and imports none of them.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from chipbench import tpu_mlir_env

CACHE_ENV_VAR = "CHIPBENCH_CACHE_DIR"
DEFAULT_CACHE_DIR = Path("~/.cache/chipbench")

#: Vendor tools whose presence or version decides what runs here (looked up on PATH).
TOOLS = ("atc", "npu-smi", "nvidia-smi", "trtexec", "bmrt_test", "bm-smi", "msit", "python3.10")
#: Environment variables the availability checks read, directly or through a runtime.
ENV_VARS = (
    "LD_LIBRARY_PATH", "ASCEND_TOOLKIT_HOME", "ASCEND_HOME_PATH", "CUDA_VISIBLE_DEVICES",
    "PYENV_ROOT", tpu_mlir_env.VENV_ENV_VAR,
)
#: Device nodes of the accelerators (Ascend NPU, NVIDIA GPU, SOPHON).
DEVICE_GLOBS = ("/dev/davinci*", "/dev/nvidia*", "/dev/bm-sophon*", "/dev/bm-tpu*")
#: Chip-entry keys that say what to run, not whether it can run (left out of the digest).
MATRIX_KEYS = ("label", "precisions", "batch_sizes", "accuracy_batch_size", "placement")

PACKAGE = Path(__file__).resolve().parent


def cache_path() -> Path:
    base = Path(os.environ.get(CACHE_ENV_VAR) or DEFAULT_CACHE_DIR).expanduser()
    return base / f"capabilities-{socket.gethostname()}.json"


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux lists them (``avx512_bf16``, ``amx_bf16``, ...)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _stamp(path: str | Path | None) -> list | None:
    """[path, mtime in ns] of an existing file or folder, None otherwise."""
    if not path:
        return None
    try:
        return [str(path), os.stat(path).st_mtime_ns]
    except OSError:
        return None


def toolchain_state() -> dict:
    """Everything the answers depend on, cheaply read (a few dozen stat calls)."""
    site_dirs = sorted({p for p in sys.path if p.endswith(("site-packages", "dist-packages"))})
    pyenv = Path(os.environ.get("PYENV_ROOT") or "~/.pyenv").expanduser()
    # the TPU-MLIR venv's stamp (written when it is ready) and the Python 3.10s it is built from
    watched = [tpu_mlir_env.venv_dir() / tpu_mlir_env.STAMP, pyenv / "versions"]
    code = sorted(PACKAGE.glob("backends/**/*.py")) + [
        PACKAGE / name for name in ("capabilities.py", "devices.py", "tools.py", "tpu_mlir_env.py")
    ]
    return {
        "python": sys.executable,
        # a package installed, upgraded or removed changes its site-packages folder's mtime
        "site_packages": [_stamp(p) for p in site_dirs],
        "tools": {tool: _stamp(shutil.which(tool)) for tool in TOOLS},
        "env": {name: os.environ.get(name) for name in ENV_VARS},
        "devices": sorted(path for pattern in DEVICE_GLOBS for path in glob.glob(pattern)),
        "watched": [_stamp(p) for p in watched],
        "cpu_flags": hashlib.sha256(" ".join(sorted(cpu_flags())).encode()).hexdigest()[:16],
        "code": [_stamp(p) for p in code],
    }


def fingerprint(state: dict) -> str:
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


def entry_digest(chip_entry: dict) -> str:
    """Digest of what in a chip's config can change whether it runs here."""
    relevant = {k: v for k, v in chip_entry.items() if k not in MATRIX_KEYS}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def answer_key(kind: str, chip: str, precision: str | None = None) -> str:
    """``"chip t4"``, ``"timing bm1684x"``, ``"precision cpu_openvino bf16"``."""
    return " ".join(filter(None, (kind, chip, precision)))


class HostAnswers:
    """The cached answers of this host; :meth:`ask` computes the missing ones, :meth:`save`
    writes them back when anything was added."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else cache_path()
        self.state = toolchain_state()
        self.fingerprint = fingerprint(self.state)
        self.answers: dict[str, dict] = {}
        #: What changed since the stored answers were given (shown when asking again).
        self.changed: list[str] = []
        self._changed = False
        try:
            stored = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        if not isinstance(stored, dict):
            return
        if stored.get("fingerprint") == self.fingerprint:
            self.answers = dict(stored.get("answers") or {})
        else:
            before = stored.get("toolchain") or {}
            self.changed = sorted(k for k in self.state if before.get(k) != self.state[k])

    def ask(self, key: str, chip_entry: dict, check: Callable[[], tuple[bool, str]]) -> tuple[bool, str]:
        """(ok, reason) for `key`: the stored answer when it was given for this chip entry,
        else `check()`, remembered."""
        digest = entry_digest(chip_entry)
        stored = self.answers.get(key)
        if stored and stored.get("chip_entry") == digest:
            return bool(stored["ok"]), str(stored.get("reason") or "")
        ok, reason = check()
        self.answers[key] = {"ok": bool(ok), "reason": reason, "chip_entry": digest}
        self._changed = True
        return bool(ok), reason

    def save(self) -> None:
        """Write the answers atomically; a cache that cannot be written only costs speed."""
        if not self._changed:
            return
        if self.changed:
            print(f"capabilities: {', '.join(self.changed)} changed since {self.path} was "
                  "written: asked this host again", file=sys.stderr)
        data = {"host": socket.gethostname(), "fingerprint": self.fingerprint,
                "toolchain": self.state, "answers": self.answers}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=self.path.parent, delete=False,
                                             suffix=".tmp") as tmp:
                json.dump(data, tmp, indent=2, sort_keys=True)
                tmp.write("\n")
            os.replace(tmp.name, self.path)
        except OSError as error:
            print(f"warning: capability cache {self.path} not written ({error})", file=sys.stderr)
        self._changed = False
