"""The training loop shared by the trainers (chipbench.train) and the linear classifiers
(chipbench.linear_probe): derived seeds, deterministic checkpoints, per-epoch resume, and the
model preparation that makes CPU training fast.

Speed on a CPU (measured by benchmarks/train_step.py): the conv nets train in channels_last
memory format (oneDNN's native layout; the default NCHW makes it reorder around every
convolution), convolutions on maps smaller than their kernel run as one matrix multiply
(:mod:`chipbench.dense_conv`) and, with the recipe's ``compile`` setting, the model runs through
``torch.compile``. All of these change the order of floating-point operations, not the maths:
a run is still byte-identical for a given thread count and compile setting (part of the
settings the resume state is fingerprinted with).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import sys
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from chipbench.dense_conv import densify_small_convolutions
from chipbench.errors import UserError
from chipbench.files import publish

__all__ = [
    "STAGES",
    "as_channels_last",
    "derive_seed",
    "prepare_model",
    "resume_path",
    "run_epochs",
    "save_checkpoint",
    "setup_threads",
    "to_cpu",
]

#: Stage numbers mixed into every derived seed, so two stages never share a random stream.
STAGES = {"subset": 0, "simclr": 1, "simclrv2_pretrain": 2, "simclrv2_linear": 3, "linear_probe": 4}


def derive_seed(seed: int, *keys: int) -> int:
    """A 32-bit seed for the stream ``(seed, *keys)`` (numpy SeedSequence: well mixed, stable)."""
    state = np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(1, dtype=np.uint32)
    return int(state[0])


def setup_threads(threads: int) -> int:
    """Use exactly ``threads`` intra-op threads (results are reproducible per thread count)."""
    threads = max(1, int(threads))
    torch.set_num_threads(threads)
    return threads


def prepare_model(model: nn.Module, device: torch.device, compile_model: bool) -> nn.Module:
    """``model`` on ``device`` in channels_last with its small-map convolutions dense
    (:func:`~chipbench.dense_conv.densify_small_convolutions`), and the module to call for
    training steps: ``torch.compile(model)`` when ``compile_model`` (it shares the
    parameters, so the optimizer and state_dict of ``model`` stay valid), else ``model``."""
    densify_small_convolutions(model)
    model.to(device=device, memory_format=torch.channels_last)
    return torch.compile(model) if compile_model else model


def as_channels_last(x: torch.Tensor) -> torch.Tensor:
    """A batch of images in the memory format of :func:`prepare_model`'s models."""
    return x.contiguous(memory_format=torch.channels_last)


# ------------------------------------------------------------------------------ files


def save_checkpoint(obj: object, path: Path | str) -> str:
    """``torch.save(obj)`` to ``path`` atomically and deterministically; returns its sha256.

    Saving through a buffer keeps the archive's inner folder name fixed ("archive") instead of
    deriving it from the (temporary) file name, so equal tensors give equal bytes.
    """
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        publish(tmp, path)  # mkstemp makes 0600: publish gives the umask's permissions
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return hashlib.sha256(data).hexdigest()


def resume_path(output: Path | str) -> Path:
    """Where the per-epoch resume state of ``output`` lives: ``<output>.resume.pt``."""
    return Path(f"{output}.resume.pt")


def to_cpu(obj):
    """A contiguous CPU copy of nested tensors (a channels_last parameter is saved in the
    default layout, as any checkpoint reader expects); a state_dict stays an OrderedDict with
    its ``_metadata``."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", memory_format=torch.contiguous_format, copy=True)
    if isinstance(obj, OrderedDict):
        out = OrderedDict((k, to_cpu(v)) for k, v in obj.items())
        if hasattr(obj, "_metadata"):
            out._metadata = obj._metadata
        return out
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_cpu(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(to_cpu(v) for v in obj)
    return obj


def _fingerprint(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True, default=str)


def _load_resume(path: Path | None, fingerprint: str, log) -> dict | None:
    if path is None or not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a file cut short by a kill, or not ours: start over
        print(f"resume file {path} is unreadable ({type(exc).__name__}); starting from epoch 0",
              file=log)
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        print(f"resume file {path} was written for other settings or data; starting from epoch 0",
              file=log)
        return None
    return state


def _progress_bar(total: int, initial: int, desc: str, log):
    from tqdm import tqdm

    interactive = hasattr(log, "isatty") and log.isatty()
    return tqdm(total=total, initial=initial, desc=desc, unit="step", file=log,
                mininterval=0.5 if interactive else 10.0, dynamic_ncols=interactive,
                ascii=not interactive)


# ------------------------------------------------------------------------------ training loop


def run_epochs(
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    epochs: int,
    steps_per_epoch: int,
    step: Callable[[int, int], float],
    resume: Path | None,
    fingerprint: dict,
    desc: str,
    log=None,
    on_epoch_end: Callable[[int], None] | None = None,
) -> list[dict]:
    """Run ``epochs`` × ``steps_per_epoch`` calls of ``step(epoch, index) -> loss``.

    The scheduler is stepped after every step. After every epoch the full training state is
    saved to ``resume`` (when given); a later call with the same ``fingerprint`` continues
    after the last saved epoch. Returns one ``{"epoch", "loss", "seconds"}`` per epoch.
    """
    log = log if log is not None else sys.stderr
    key = _fingerprint(fingerprint)
    start, history = 0, []
    state = _load_resume(resume, key, log)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng_torch"])
        start, history = int(state["epoch"]), list(state["history"])
        print(f"resuming from {resume} after epoch {start}/{epochs}", file=log, flush=True)
    bar = _progress_bar(epochs * steps_per_epoch, start * steps_per_epoch, desc, log)
    try:
        for epoch in range(start, epochs):
            model.train()
            started = time.perf_counter()
            losses = []
            for index in range(steps_per_epoch):
                loss = float(step(epoch, index))
                scheduler.step()
                if not math.isfinite(loss):
                    raise UserError(
                        f"{desc}: the loss became {loss} at epoch {epoch + 1}, step {index + 1}: "
                        "lower the learning rate in the train settings"
                    )
                losses.append(loss)
                bar.set_postfix_str(f"epoch {epoch + 1}/{epochs} loss {loss:.4f}", refresh=False)
                bar.update(1)
            seconds = time.perf_counter() - started
            history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "seconds": seconds})
            print(f"\n{desc}: epoch {epoch + 1}/{epochs} mean loss {history[-1]['loss']:.4f} "
                  f"({seconds:.1f} s)", file=log, flush=True)
            if resume is not None:
                save_checkpoint({
                    "fingerprint": key,
                    "epoch": epoch + 1,
                    "model": to_cpu(model.state_dict()),
                    "optimizer": to_cpu(optimizer.state_dict()),
                    "scheduler": scheduler.state_dict(),
                    "rng_torch": torch.get_rng_state(),
                    "history": history,
                }, resume)
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1)
    finally:
        bar.close()
    return history
