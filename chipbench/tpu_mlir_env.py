"""The TPU-MLIR toolchain's own virtual environment (Python 3.10), set up as code.

The `tpu-mlir` wheel runs on Python 3.10 only, so it cannot live in the workflow's main
environment. `ensure_venv()` creates a venv with a Python 3.10 interpreter at a cache location
outside results/ (default `~/.cache/chipbench/tpu-mlir-venv`, or `$CHIPBENCH_TPU_MLIR_VENV`),
installs `envs/tpu-mlir.txt` into it, applies the fixes the wheel needs on this kind of machine
(docs/bm1684x.md), and writes a stamp holding the requirements' hash: a second call with the
same requirements does nothing. `tool_command()` gives the argument list that runs one of the
TPU-MLIR tools (model_transform.py, run_calibration.py, model_deploy.py, model_runner.py)
inside that venv.

How the wheel exposes its tools: console scripts `<venv>/bin/model_transform.py` etc. (entry
points `tpu_mlir.entry:*`). Each imports `tpu_mlir`, whose `__init__` puts the package's bin/,
lib/ and python/ folders on PATH, LD_LIBRARY_PATH and PYTHONPATH (plus TPUC_ROOT) and then runs
`<venv python> tpu_mlir/python/tools/<tool>.py ARGS` as a child process, so the scripts work
without activating the venv.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

from chipbench.errors import UserError

REPO = Path(__file__).resolve().parent.parent
REQUIREMENTS = REPO / "envs" / "tpu-mlir.txt"
VENV_ENV_VAR = "CHIPBENCH_TPU_MLIR_VENV"
DEFAULT_VENV = Path("~/.cache/chipbench/tpu-mlir-venv")
STAMP = "chipbench-stamp.json"
PYTHON_VERSION = (3, 10)

#: Copies of glibc bundled in tpu_mlir/lib/third_party that shadow the system's through
#: LD_LIBRARY_PATH ("GLIBC_2.36 not found"); moved into this sub-folder, which is not searched.
SHADOWING_LIBS = ("libc.so.6", "libm.so.6", "libpthread.so.0")
MOVED_ASIDE = "moved-aside-by-chipbench"

#: The tools the backend runs (console scripts of the wheel).
TOOLS = ("model_transform", "run_calibration", "model_deploy", "model_runner")


def venv_dir() -> Path:
    """Where the venv lives: $CHIPBENCH_TPU_MLIR_VENV, else ~/.cache/chipbench/tpu-mlir-venv."""
    return Path(os.environ.get(VENV_ENV_VAR) or DEFAULT_VENV).expanduser().absolute()


def venv_python(venv: Path | None = None) -> Path:
    return (venv or venv_dir()) / "bin" / "python"


def requirements_hash(path: Path = REQUIREMENTS) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _version_key(path: Path) -> tuple:
    """Sort key of a pyenv version folder such as 3.10.13 (newest patch release last)."""
    return tuple(int(x) if x.isdigit() else -1 for x in re.split(r"[.\-]", path.name))


def _pyenv_root() -> Path | None:
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    pyenv = shutil.which("pyenv")
    if pyenv:
        try:
            out = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            out = None
        if out is not None and out.returncode == 0 and out.stdout.strip():
            return Path(out.stdout.strip())
    default = Path("~/.pyenv").expanduser()
    return default if default.is_dir() else None


def _is_python310(path: Path) -> bool:
    """True when `path` runs and is Python 3.10 (a pyenv shim may exist for a missing version)."""
    try:
        out = subprocess.run(
            [str(path), "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.split() == [str(x) for x in PYTHON_VERSION]


def python310_candidates() -> list[Path]:
    """Possible interpreters, best first: pyenv's newest 3.10.x, then python3.10 on PATH."""
    found = []
    root = _pyenv_root()
    if root:
        found += sorted(
            (p for p in (root / "versions").glob("3.10.*/bin/python3.10")),
            key=lambda p: _version_key(p.parent.parent),
            reverse=True,
        )
    on_path = shutil.which("python3.10")
    if on_path:
        found.append(Path(on_path))
    return found


def find_python310() -> Path | None:
    """A working Python 3.10 interpreter, or None."""
    for candidate in python310_candidates():
        if _is_python310(candidate):
            return candidate
    return None


def require_python310() -> Path:
    python = find_python310()
    if python is None:
        raise UserError(
            "TPU-MLIR needs Python 3.10 and none was found (looked in `pyenv root`/versions/"
            "3.10.*/bin and for python3.10 on PATH): install it, e.g. `pyenv install 3.10`"
        )
    return python


def read_stamp(venv: Path | None = None) -> dict | None:
    try:
        return json.loads(((venv or venv_dir()) / STAMP).read_text())
    except (OSError, ValueError):
        return None


def is_ready(venv: Path | None = None) -> bool:
    """The venv exists and was built from the current requirements (no side effects)."""
    venv = venv or venv_dir()
    stamp = read_stamp(venv)
    return (
        stamp is not None
        and stamp.get("requirements_sha256") == requirements_hash()
        and venv_python(venv).exists()
    )


@contextlib.contextmanager
def _locked(venv: Path):
    """One creator at a time (parallel Snakemake jobs may all call ensure_venv)."""
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def site_packages(venv: Path) -> Path:
    major, minor = PYTHON_VERSION
    return venv / "lib" / f"python{major}.{minor}" / "site-packages"


def package_dir(venv: Path | None = None) -> Path:
    """The installed tpu_mlir package folder (TPUC_ROOT)."""
    return site_packages(venv or venv_dir()) / "tpu_mlir"


def move_shadowing_libs(package: Path) -> list[str]:
    """Move the bundled glibc pieces out of lib/third_party; returns the ones moved now."""
    third_party = package / "lib" / "third_party"
    aside = third_party / MOVED_ASIDE
    moved = []
    for name in SHADOWING_LIBS:
        source = third_party / name
        if source.exists() or source.is_symlink():
            aside.mkdir(exist_ok=True)
            os.replace(source, aside / name)
            moved.append(name)
    return moved


def make_writable(root: Path) -> None:
    """u+w on every file and folder below `root`; the tools' scripts also get u+x.

    tpu_mlir writes beside its own files (and chmods its tools on first import), so
    site-packages must be writable by the user running the workflow.
    """
    tools = root / "tpu_mlir" / "python" / "tools"
    if not root.is_dir():
        return
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        wanted = mode | stat.S_IWUSR
        if path.parent == tools and path.suffix == ".py":
            wanted |= stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
        if wanted != mode:
            os.chmod(path, wanted)


def _run(command: list[str], log, env: dict | None = None) -> None:
    print("+ " + " ".join(command), file=log, flush=True)
    result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    if result.returncode != 0:
        raise UserError(
            f"creating the TPU-MLIR venv failed ({command[0]} ... exited "
            f"{result.returncode}): see the log above; fix it and rerun, or delete "
            f"{venv_dir()} to start over"
        )


def log_stream(log):
    """subprocess needs a real file descriptor; fall back to stderr's."""
    try:
        log.fileno()
        return log
    except (AttributeError, OSError, ValueError):
        return sys.__stderr__


def ensure_venv(log=None) -> Path:
    """Create or update the TPU-MLIR venv; return its folder. Cached by the requirements' hash.

    pip's output goes to `log` (default stderr, i.e. the job's log in a workflow script).
    """
    venv = venv_dir()
    if is_ready(venv):
        return venv
    log = log_stream(log or sys.stderr)
    with _locked(venv):
        if is_ready(venv):  # built by another process while we waited
            return venv
        started = time.time()
        if venv_python(venv).exists():  # update in place: its interpreter is 3.10 already
            python = venv_python(venv).resolve()
        else:
            python = require_python310()
            _run([str(python), "-m", "venv", str(venv)], log, tool_env(None, venv))
        (venv / STAMP).unlink(missing_ok=True)
        pip = [str(venv_python(venv)), "-m", "pip", "--disable-pip-version-check"]
        # --no-deps: the requirements list every package of the venv (envs/tpu-mlir.txt)
        install = ["install", "--no-input", "--no-compile", "--no-deps", "-r", str(REQUIREMENTS)]
        _run(pip + install, log, tool_env(None, venv))
        site = site_packages(venv)
        make_writable(site)
        moved = move_shadowing_libs(package_dir(venv))
        _check(venv, log)
        stamp = {
            "requirements": str(REQUIREMENTS),
            "requirements_sha256": requirements_hash(),
            "python": str(python),
            "created_at": time.time(),
            "seconds": round(time.time() - started, 1),
            "moved_aside": moved,
        }
        tmp = venv / f"{STAMP}.tmp"
        tmp.write_text(json.dumps(stamp, indent=2) + "\n")
        os.replace(tmp, venv / STAMP)
        print(f"TPU-MLIR venv ready at {venv} in {stamp['seconds']} s", file=log, flush=True)
    return venv


def _check(venv: Path, log) -> None:
    """The fixed venv really runs a tool (imports pymlir, i.e. the compiler's libraries)."""
    with open(os.devnull, "w") as devnull:
        _run(tool_command("model_deploy", "--help", venv=venv), devnull, tool_env(1, venv))
    print("model_deploy.py --help runs", file=log, flush=True)


def tool_script(tool: str, venv: Path | None = None) -> Path:
    name = tool[:-3] if tool.endswith(".py") else tool
    if name not in TOOLS:
        raise ValueError(f"unknown TPU-MLIR tool {tool!r}: one of {', '.join(TOOLS)}")
    return (venv or venv_dir()) / "bin" / f"{name}.py"


def tool_command(tool: str, *args, venv: Path | None = None) -> list[str]:
    """Argument list running TPU-MLIR's `tool` (e.g. "model_deploy.py") inside the venv."""
    return [str(tool_script(tool, venv)), *map(str, args)]


def python_command(script: Path, *args, venv: Path | None = None) -> list[str]:
    """Argument list running one of our own scripts with the venv's Python 3.10."""
    return [str(venv_python(venv)), str(script), *map(str, args)]


def tool_env(threads: int | None = None, venv: Path | None = None) -> dict:
    """Environment for the tools: the venv first on PATH, OpenMP threads bounded.

    The tools call each other by name (e.g. `npz_tool.py`, whose `#!/usr/bin/env python3`
    must find the venv's Python, not the system's), so the venv's bin/ leads PATH, as if
    activated. tpu_mlir would use 4 OpenMP threads by default.

    Python may cache bytecode in the venv, a folder of ours, even where the user's
    environment sets PYTHONDONTWRITEBYTECODE: pip installs it with --no-compile (135 s -> 60 s
    to create), and without the cache every tool run would compile all its imports again (a
    model_transform of a tiny model: 3.9 s, against 1.8 s).
    """
    venv = venv or venv_dir()
    env = dict(os.environ)
    # the main venv's PYTHONPATH and PYTHONHOME must not leak into 3.10; bytecode may be cached
    for key in ("PYTHONPATH", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE"):
        env.pop(key, None)
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", os.defpath)])
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def installed_version(venv: Path | None = None) -> str | None:
    """tpu-mlir's version from the venv's metadata, without running it."""
    for meta in site_packages(venv or venv_dir()).glob("tpu_mlir-*.dist-info/METADATA"):
        for line in meta.read_text(errors="replace").splitlines():
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip()
    return None


def main(argv: list[str] | None = None) -> int:
    """`python -m chipbench.tpu_mlir_env` creates the venv (used by CI and by hand)."""
    try:
        print(ensure_venv(sys.stderr))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
