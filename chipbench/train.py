"""Training the two report models inside the workflow, reproducibly (used when no checkpoint is given).

Recipes (the two reports and the public code behind them):

* ``simclr`` - sthalles/SimCLR: :class:`chipbench.models.ResNetSimCLR` (ResNet-18, ImageNet stem,
  projection 512-512-128) trained with the NT-Xent (InfoNCE) loss at temperature 0.07 on two
  SimCLR views of every training image (:func:`chipbench.augment.simclr_views`, [0, 1], no
  mean/std: exactly the inference input), batch 256 images (512 views in one forward pass),
  Adam lr 3e-4, weight decay 1e-4, cosine schedule. Saved in sthalles' layout
  ``{'epoch', 'arch': 'resnet18', 'state_dict' (backbone.*), 'optimizer'}``.
* ``simclrv2`` - the BM1684X report's model (leftthomas/SimCLR layout). Stage 1: encoder ``f``
  (CIFAR-stem ResNet-50) + projection ``g`` = Linear(2048, 512, no bias)-BN1d-ReLU-Linear(512, 128)
  trained with NT-Xent at temperature 0.5 on two views per image (random resized crop, flip,
  colour jitter 0.4/0.4/0.4/0.1 with p 0.8, grayscale p 0.2, no blur, then the model's mean/std),
  each view batch through the network separately, Adam lr 1e-3, weight decay 1e-6. Saved as the
  stage-1 state_dict (``f.*``, ``g.*``). Stage 2: ``fc`` = Linear(2048, 10) fit with labels on
  the frozen encoder's features of the un-augmented training images (eval mode), Adam lr 1e-3;
  saved as the stage-2 state_dict (``f.*``, ``fc.*``) that :func:`chipbench.models.load_checkpoint`
  reads.

Reproducibility: every random choice derives from ``(seed, stage, epoch)`` -
the training subset (a seeded permutation of all training images; smaller subsets are prefixes
of larger ones), the order of every epoch, the views of every step and the initial weights - so
the same config and the same thread count give a byte-identical checkpoint on a CPU
(:func:`save_checkpoint` writes ``torch.save`` through a buffer, so the file name does not end
up inside the file). After every epoch the model, optimizer, scheduler, epoch and RNG states go
to ``<output>.resume.pt``; a killed run started again with the same settings continues after
its last finished epoch and ends with the same bytes as an uninterrupted run.

Differences from the original trainers, on purpose: the schedule is a per-step cosine decay
from the initial learning rate to 0 over the whole run (sthalles steps a CosineAnnealingLR whose
period is one epoch's step count once per epoch after 10 warm-up epochs; leftthomas uses no
schedule); views are drawn with numpy (:mod:`chipbench.augment`), not torchvision; the stage-2
head is fit on precomputed features of un-augmented images (leftthomas fits it on
crop+flip+jitter views with the encoder's BatchNorm in training mode) and on raw, not
L2-normalised, features, because :class:`chipbench.models.SimCLRv2Classifier` - the model the
workflow exports - applies ``fc`` to the raw features.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from chipbench import augment, cifar, linear_probe, models, preprocess
from chipbench.errors import UserError
from chipbench.provenance import file_sha256
from chipbench.training_loop import (
    STAGES,
    as_channels_last,
    derive_seed,
    prepare_model,
    resume_path,
    run_epochs,
    save_checkpoint,
    to_cpu,
)

__all__ = [
    "SimCLRv2Pretrain",
    "TrainingSet",
    "load_training_set",
    "nt_xent_loss",
    "pretrain_simclrv2",
    "resolve_device",
    "train_simclr",
    "train_simclrv2_linear",
    "trained_weights_info",
]

# ------------------------------------------------------------------------------ seeds, device


def resolve_device(name: str) -> torch.device:
    """``auto`` -> ``cuda`` when ``torch.cuda.is_available()``, else ``cpu``; or the named device."""
    name = str(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(
                f"train.device is {name} but PyTorch sees no CUDA device here: set train.device: "
                "auto or cpu, or install a CUDA build of PyTorch"
            )
        # Deterministic cuBLAS/cuDNN (bit-identity on a GPU is best effort, never tested here).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    elif name != "cpu":
        raise UserError(f"train.device is {name!r}: use auto, cpu, cuda or cuda:N")
    return torch.device(name)


@torch.no_grad()
def _init_under_seed(build: Callable[[], nn.Module], seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


# ------------------------------------------------------------------------------ data


@dataclass
class TrainingSet:
    """Training images (uint8 N×3×32×32, in the seeded subset order), labels and provenance."""

    images: np.ndarray
    labels: np.ndarray
    info: dict = field(default_factory=dict)

    def take(self, n: int | None, what: str) -> TrainingSet:
        """The first ``n`` images (the subset order is already random); ``None`` = all."""
        if n is None:
            return self
        if n > len(self.images):
            raise UserError(
                f"{what} is {n} but the training batches hold only {len(self.images)} images: "
                f"set {what} ≤ {len(self.images)} (or null for all of them)"
            )
        info = dict(self.info, images=int(n))
        return TrainingSet(self.images[:n], self.labels[:n], info)


def load_training_set(batch_files: Sequence[Path | str], seed: int) -> TrainingSet:
    """Every image of the given CIFAR-10 training batches, in a seeded random order.

    The batches (``data_batch_1`` .. ``data_batch_5``, however many the workflow extracted) are
    concatenated in the order given, then permuted with ``derive_seed(seed, STAGES['subset'])``.
    A subset of ``n`` images is the first ``n`` of this order, so subsets are nested and
    spread over all batches.
    """
    if not batch_files:
        raise UserError(
            "no CIFAR-10 training batches to train on: extract data_batch_1 (rules/data.smk)"
        )
    images, labels, counts = [], [], {}
    for path in batch_files:
        batch_images, batch_labels = cifar.load_batch(Path(path))
        images.append(batch_images)
        labels.append(batch_labels)
        counts[Path(path).name] = int(len(batch_images))
    images = np.concatenate(images)
    labels = np.concatenate(labels)
    order = np.random.default_rng(derive_seed(seed, STAGES["subset"])).permutation(len(images))
    images = np.ascontiguousarray(images[order])
    labels = np.ascontiguousarray(labels[order])
    info = {"batches": counts, "available": int(len(images)), "images": int(len(images))}
    return TrainingSet(images, labels, info)


def images_sha256(images: np.ndarray, labels: np.ndarray | None = None) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes())
    if labels is not None:
        digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()


# ------------------------------------------------------------------------------ loss


def nt_xent_loss(embeddings: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent (InfoNCE) loss of SimCLR, mean over all 2B rows.

    ``embeddings``: (2B, D), rows ``0..B-1`` the first views and ``B..2B-1`` the second views
    of the same B images (row ``i`` and ``i + B`` are a positive pair). Every row is
    L2-normalised; its logits are the cosine similarities with the 2B - 1 other rows divided by
    ``temperature``, and the loss is the cross-entropy of picking its partner. This is the loss
    of both sthalles' ``info_nce_loss`` and leftthomas' ``train``. All rows equal gives
    ``log(2B - 1)``; it approaches 0 as positives align and negatives separate.
    """
    if embeddings.ndim != 2 or embeddings.shape[0] < 4 or embeddings.shape[0] % 2:
        raise ValueError(f"embeddings must be (2B, D) with B ≥ 2, got {tuple(embeddings.shape)}")
    rows = embeddings.shape[0]
    unit = F.normalize(embeddings.float(), dim=1)
    logits = unit @ unit.T / float(temperature)
    self_mask = torch.eye(rows, dtype=torch.bool, device=logits.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    targets = (torch.arange(rows, device=logits.device) + rows // 2) % rows
    return F.cross_entropy(logits, targets)


def _cosine(optimizer: torch.optim.Optimizer, total_steps: int):
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps), eta_min=0.0)


def _steps_per_epoch(n_images: int, batch_size: int, what: str) -> int:
    if batch_size < 2:
        raise UserError(f"{what}.batch_size is {batch_size}: contrastive training needs ≥ 2")
    if n_images < batch_size:
        raise UserError(
            f"{what} trains on {n_images} images but its batch_size is {batch_size}: "
            f"use batch_size ≤ {n_images} or more images"
        )
    return n_images // batch_size  # the last partial batch is dropped, as both sources do


def _step_views(data: TrainingSet, batch: int, seed: int, stage: int,
                views: Callable[[np.ndarray, int, int], object]) -> Callable[[int, int], object]:
    """``step_views(epoch, index)``: ``views(images, view_seed, start_index)`` of step
    ``index``'s images in the epoch's seeded order, each image's views drawn from its own
    generator."""
    orders: dict[int, np.ndarray] = {}

    def step_views(epoch: int, index: int):
        if epoch not in orders:
            orders.clear()
            orders[epoch] = np.random.default_rng(
                derive_seed(seed, stage, 1, epoch)).permutation(len(data.images))
        chosen = orders[epoch][index * batch:(index + 1) * batch]
        return views(data.images[chosen], derive_seed(seed, stage, 2, epoch), index * batch)

    return step_views


def _environment(device: torch.device, threads: int) -> dict:
    """What the arithmetic depends on beside the settings: part of the resume fingerprint."""
    return {"device": str(device), "threads": int(threads), "torch": torch.__version__,
            "small_map_convolutions": "dense"}


@dataclass
class Result:
    """What a training stage leaves: the checkpoint's sha256 and a JSON-ready record."""

    sha256: str
    record: dict


# ------------------------------------------------------------------------------ SimCLR


def train_simclr(
    data: TrainingSet,
    settings: dict,
    output: Path | str,
    *,
    seed: int,
    device: torch.device,
    threads: int,
    log=None,
    on_epoch_end=None,
) -> Result:
    """The sthalles recipe; writes the sthalles-layout checkpoint to ``output``.

    ``settings["compile"]`` (default false): train through ``torch.compile``."""
    output = Path(output)
    data = data.take(settings.get("images"), "train.simclr.images")
    batch = int(settings["batch_size"])
    epochs = int(settings["epochs"])
    steps = _steps_per_epoch(len(data.images), batch, "train.simclr")
    temperature = float(settings["temperature"])
    model = _init_under_seed(models.ResNetSimCLR, derive_seed(seed, STAGES["simclr"], 0))
    forward = prepare_model(model, device, bool(settings.get("compile")))
    optimizer = torch.optim.Adam(model.parameters(), lr=float(settings["learning_rate"]),
                                 weight_decay=float(settings["weight_decay"]))
    scheduler = _cosine(optimizer, epochs * steps)

    def views(images: np.ndarray, view_seed: int, start_index: int) -> torch.Tensor:
        pairs = augment.simclr_views(images, view_seed, start_index=start_index)
        # sthalles' layout: all first views, then all second views, in one forward pass.
        return as_channels_last(torch.from_numpy(np.concatenate([pairs[0::2], pairs[1::2]])))

    step_views = _step_views(data, batch, seed, STAGES["simclr"], views)

    def step(epoch: int, index: int) -> float:
        loss = nt_xent_loss(forward(step_views(epoch, index).to(device)), temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    fingerprint = {"recipe": "simclr", "settings": settings, "seed": seed,
                   "data": images_sha256(data.images), **_environment(device, threads)}
    started = time.perf_counter()
    history = run_epochs(model=model, optimizer=optimizer, scheduler=scheduler, epochs=epochs,
                         steps_per_epoch=steps, step=step, resume=resume_path(output),
                         fingerprint=fingerprint, desc="SimCLR", log=log,
                         on_epoch_end=on_epoch_end)
    sha = save_checkpoint({
        "epoch": epochs,
        "arch": "resnet18",
        "state_dict": to_cpu(model.state_dict()),
        "optimizer": to_cpu(optimizer.state_dict()),
    }, output)
    resume_path(output).unlink(missing_ok=True)
    record = {
        "recipe": "simclr",
        "stage": "contrastive",
        "layout": models.CHECKPOINT_FORMATS["simclr"],
        "settings": dict(settings),
        "seed": int(seed),
        "data": dict(data.info, sha256=images_sha256(data.images)),
        "steps_per_epoch": steps,
        "history": history,
        "seconds": time.perf_counter() - started,
        "checkpoint": {"path": str(output), "sha256": sha},
        **_environment(device, threads),
    }
    return Result(sha, record)


# ------------------------------------------------------------------------------ SimCLRv2


class SimCLRv2Pretrain(nn.Module):
    """Stage-1 SimCLRv2 model: encoder ``f`` (as :class:`models.SimCLRv2Classifier`) + projection ``g``.

    ``g`` = Linear(2048, 512, bias=False) - BatchNorm1d(512) - ReLU - Linear(512, 128); the
    state_dict keys are ``f.*`` and ``g.0.weight``, ``g.1.*``, ``g.3.weight``, ``g.3.bias``.
    """

    def __init__(self, feature_dim: int = 128) -> None:
        super().__init__()
        self.f = models.SimCLRv2Classifier().f
        self.g = nn.Sequential(
            nn.Linear(2048, 512, bias=False), nn.BatchNorm1d(512), nn.ReLU(inplace=True),
            nn.Linear(512, feature_dim, bias=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.g(torch.flatten(self.f(x), start_dim=1))


def pretrain_simclrv2(
    data: TrainingSet,
    settings: dict,
    output: Path | str,
    *,
    mean,
    std,
    seed: int,
    device: torch.device,
    threads: int,
    log=None,
    on_epoch_end=None,
) -> Result:
    """SimCLRv2 stage 1 (contrastive pre-training of f + g); writes the f.*/g.* state_dict."""
    output = Path(output)
    data = data.take(settings.get("images"), "train.simclrv2.pretrain.images")
    batch = int(settings["batch_size"])
    epochs = int(settings["epochs"])
    steps = _steps_per_epoch(len(data.images), batch, "train.simclrv2.pretrain")
    temperature = float(settings["temperature"])
    stage = STAGES["simclrv2_pretrain"]
    model = _init_under_seed(SimCLRv2Pretrain, derive_seed(seed, stage, 0))
    forward = prepare_model(model, device, bool(settings.get("compile")))
    optimizer = torch.optim.Adam(model.parameters(), lr=float(settings["learning_rate"]),
                                 weight_decay=float(settings["weight_decay"]))
    scheduler = _cosine(optimizer, epochs * steps)

    def views(images: np.ndarray, view_seed: int, start_index: int) -> tuple[torch.Tensor, ...]:
        pairs = augment.simclrv2_views(images, view_seed, mean, std, start_index=start_index)
        return tuple(as_channels_last(torch.from_numpy(pairs[k::2])) for k in range(2))

    step_views = _step_views(data, batch, seed, stage, views)

    def step(epoch: int, index: int) -> float:
        # leftthomas: each view batch through the network on its own (BatchNorm per view batch).
        z1, z2 = (forward(x.to(device)) for x in step_views(epoch, index))
        loss = nt_xent_loss(torch.cat([z1, z2]), temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    fingerprint = {"recipe": "simclrv2_pretrain", "settings": settings, "seed": seed,
                   "mean": list(mean), "std": list(std), "data": images_sha256(data.images),
                   **_environment(device, threads)}
    started = time.perf_counter()
    history = run_epochs(model=model, optimizer=optimizer, scheduler=scheduler, epochs=epochs,
                         steps_per_epoch=steps, step=step, resume=resume_path(output),
                         fingerprint=fingerprint, desc="SimCLRv2 stage 1", log=log,
                         on_epoch_end=on_epoch_end)
    sha = save_checkpoint(to_cpu(model.state_dict()), output)
    resume_path(output).unlink(missing_ok=True)
    record = {
        "recipe": "simclrv2",
        "stage": "pretrain",
        "layout": "SimCLRv2 stage-1 state_dict: encoder f.* and projection g.*",
        "settings": dict(settings),
        "seed": int(seed),
        "data": dict(data.info, sha256=images_sha256(data.images)),
        "steps_per_epoch": steps,
        "history": history,
        "seconds": time.perf_counter() - started,
        "checkpoint": {"path": str(output), "sha256": sha},
        **_environment(device, threads),
    }
    return Result(sha, record)


def load_pretrained_encoder(path: Path | str) -> dict[str, torch.Tensor]:
    """The ``f.*`` tensors of a stage-1 checkpoint written by :func:`pretrain_simclrv2`."""
    path = Path(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    expected = SimCLRv2Pretrain().state_dict()
    if not isinstance(state, dict) or set(state) != set(expected):
        raise UserError(
            f"{path} is not a SimCLRv2 stage-1 checkpoint (keys f.* and g.*): delete it and rerun "
            "so stage 1 trains again"
        )
    return {k: v for k, v in state.items() if k.startswith("f.")}


def train_simclrv2_linear(
    data: TrainingSet,
    settings: dict,
    pretrained: Path | str,
    output: Path | str,
    *,
    mean,
    std,
    seed: int,
    device: torch.device,
    threads: int,
    log=None,
    on_epoch_end=None,
) -> Result:
    """SimCLRv2 stage 2: Linear(2048, 10) on the frozen stage-1 encoder; writes f.* + fc.*."""
    output = Path(output)
    log = log if log is not None else sys.stderr
    data = data.take(settings.get("images"), "train.simclrv2.linear.images")
    stage = STAGES["simclrv2_linear"]
    model = _init_under_seed(models.SimCLRv2Classifier, derive_seed(seed, stage, 0))
    encoder = load_pretrained_encoder(pretrained)
    model.load_state_dict({**model.state_dict(), **encoder}, strict=True)
    model.to(device).eval()
    started = time.perf_counter()
    inputs = preprocess.normalize(data.images, mean, std)
    features = linear_probe.extract_features(
        lambda x: torch.flatten(model.f(x), start_dim=1), inputs, device=device,
        batch_size=int(settings.get("feature_batch_size", 256)), desc="SimCLRv2 features", log=log)
    feature_seconds = time.perf_counter() - started
    fingerprint = {"recipe": "simclrv2_linear", "settings": settings, "seed": seed,
                   "mean": list(mean), "std": list(std), "encoder": hashlib.sha256(
                       Path(pretrained).read_bytes()).hexdigest(),
                   "data": images_sha256(data.images, data.labels), **_environment(device, threads)}
    head, history = linear_probe.fit_linear(
        features, data.labels, settings, seed=derive_seed(seed, stage, 1), device=device,
        init=model.fc, resume=resume_path(output), fingerprint=fingerprint,
        desc="SimCLRv2 stage 2", log=log, on_epoch_end=on_epoch_end)
    model.fc.load_state_dict(head.state_dict())
    train_top1 = linear_probe.accuracy(head, features, data.labels, device)
    sha = save_checkpoint(to_cpu(model.state_dict()), output)
    resume_path(output).unlink(missing_ok=True)
    record = {
        "recipe": "simclrv2",
        "stage": "linear",
        "layout": models.CHECKPOINT_FORMATS["simclrv2"],
        "settings": dict(settings),
        "seed": int(seed),
        "data": dict(data.info, sha256=images_sha256(data.images, data.labels)),
        "encoder": {"path": str(pretrained), "sha256": fingerprint["encoder"]},
        "history": history,
        "train_top1": train_top1,
        "feature_seconds": feature_seconds,
        "seconds": time.perf_counter() - started,
        "checkpoint": {"path": str(output), "sha256": sha},
        **_environment(device, threads),
    }
    return Result(sha, record)


# ------------------------------------------------------------------------------ provenance


def trained_weights_info(checkpoint: Path | str, records: Sequence[dict]) -> dict:
    """The ``weights`` entry of result records for a checkpoint trained by the workflow.

    ``records``: the training records of every stage, first to last (``trained.json``, and for
    SimCLRv2 the stage-1 ``pretrained.json`` before it). ``label`` is what the tables print.
    """
    path = Path(checkpoint)
    sha = file_sha256(path)
    stages = [
        {"stage": r["stage"], "epochs": int(r["settings"]["epochs"]),
         "images": int(r["data"]["images"])}
        for r in records
    ]
    recipe = records[-1]["recipe"]
    seed = int(records[-1]["seed"])
    title = {"simclr": "SimCLR (sthalles)", "simclrv2": "SimCLRv2 (leftthomas)"}.get(recipe, recipe)
    parts = ", ".join(
        f"{s['stage']} {s['epochs']} epoch{'s' if s['epochs'] != 1 else ''} on {s['images']} images"
        for s in stages
    )
    return {
        "source": "trained",
        "recipe": recipe,
        "stages": stages,
        "seed": seed,
        "device": records[-1]["device"],
        "threads": records[-1]["threads"],
        "path": str(path),
        "sha256": sha,
        "label": f"trained here: {title} recipe, {parts}, seed {seed}, checkpoint sha256 {sha[:8]}",
    }
