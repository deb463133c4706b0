"""What the backends share to drive vendor tools: a logged subprocess, the ONNX model's input,
the test set as one file per image, and a model file placed in an artefact folder.

Imported by backends and workflow scripts; imports no backend.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from chipbench.errors import UserError

#: Suffix of the per-image input files (raw little-endian float32, NCHW).
INPUT_FILE_SUFFIX = ".bin"


def run_logged(command: list, cwd=None, what: str | None = None, env: dict | None = None,
               hint: str = "check that the tool is installed and on PATH") -> float:
    """Run `command` with its line logged verbatim and its output sent to stderr (the job
    log); return the seconds it took. A tool that cannot start or exits non-zero is a
    one-line UserError (`hint` says how to install a missing tool)."""
    command = [str(c) for c in command]
    what = what or Path(command[0]).name
    where = f"  # in {cwd}" if cwd else ""
    print("+ " + shlex.join(command) + where, file=sys.stderr, flush=True)
    started = time.perf_counter()
    try:
        try:
            fileno = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):
            fileno = None
        if fileno is not None:
            result = subprocess.run(command, cwd=cwd, env=env, stdout=fileno,
                                    stderr=subprocess.STDOUT)
        else:  # stderr is no file (e.g. captured by a test): relay the output
            result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
            sys.stderr.write(result.stdout + result.stderr)
    except FileNotFoundError as error:
        raise UserError(f"{what} could not start ({error}): {hint}") from None
    if result.returncode != 0:
        raise UserError(
            f"{what} failed with exit code {result.returncode}: its messages and the full "
            "command are in the job log"
        )
    return round(time.perf_counter() - started, 2)


def onnx_input(path, tool: str, batch_size: int | None = None
               ) -> tuple[str, tuple[int, int, int], int | None]:
    """(name, (C, H, W), fixed batch size or None) of the model's first graph input.

    `tool` names who needs fixed C, H, W (in the error). With `batch_size`, a model whose
    batch dimension is fixed to another size is refused: static-shape compilers build
    exactly the batch size asked for.
    """
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if not inputs:
        raise UserError(f"{path} has no graph input: export the model with an image input")
    first = inputs[0]
    dims = first.type.tensor_type.shape.dim
    values = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    if len(values) != 4 or not all(values[1:]):
        raise UserError(
            f"{path}: input {first.name} has shape {values}; {tool} needs N×C×H×W with fixed "
            "C, H, W: export the model with a fixed image size"
        )
    fixed = values[0] or None
    if batch_size is not None and fixed is not None and fixed != int(batch_size):
        raise UserError(
            f"{path} has a fixed batch size {fixed}; {tool} cannot compile it for batch size "
            f"{batch_size}: export the model with a symbolic batch dimension"
        )
    return first.name, tuple(values[1:]), fixed


def input_file_name(index: int, total: int) -> str:
    """Zero-padded stem, so the natural order of the names is the order of the images."""
    return f"{index:0{max(5, len(str(max(total - 1, 0))))}d}"


def write_input_files(inputs: np.ndarray, out_dir) -> list[Path]:
    """One raw little-endian float32 NCHW file ``{index:05d}.bin`` per image, in order.

    Tools that read a folder of input files (ais_bench) sort its files naturally and
    concatenate consecutive files into a batch; zero-padded names make that order the images'
    order. The folder must not hold other .bin/.npy files (such a tool would read them too).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = len(inputs)
    names = [input_file_name(i, n) + INPUT_FILE_SUFFIX for i in range(n)]
    wanted = set(names)
    foreign = sorted(
        p.name for p in out.iterdir()
        if p.suffix.lower() in (".bin", ".npy") and p.name not in wanted
    )
    if foreign:
        raise UserError(
            f"{out} already holds {len(foreign)} other input files (e.g. {foreign[0]}) that "
            "the tool would also read: use an empty folder"
        )
    paths = []
    for i, name in enumerate(names):
        path = out / name
        np.ascontiguousarray(inputs[i], dtype="<f4").tofile(path)
        paths.append(path)
    return paths


def link_or_copy(source: Path, dest: Path) -> None:
    """Hard-link when possible: compiled copies of a 100 MB model should not cost disk."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() or dest.is_symlink():
        dest.unlink()
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)
