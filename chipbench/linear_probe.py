"""Linear evaluation of a frozen encoder: the standard SimCLR evaluation protocol.

A linear classifier (multinomial logistic regression: ``nn.Linear`` + cross-entropy, trained
with Adam in seeded mini-batches, as sthalles' linear evaluation does) is fit on the frozen
encoder's features of the un-augmented training images and scored on the test set.

* SimCLR: the 512-d ResNet-18 features before the projection head (``backbone.avgpool``
  output), of images scaled to [0, 1] without mean/std - the same scaling as the inference
  input. sthalles' settings: Adam lr 3e-4, weight decay 8e-4, batch 256, 100 epochs; his
  100-epoch CIFAR-10 ResNet-18 reaches 69.82 % top-1 this way.
* SimCLRv2: the 2048-d ``flatten(f(x))`` features of normalised images (also how the stage-2
  head of :mod:`chipbench.train` is fit).

Features are computed once, in eval mode, without gradients; the classifier then trains on
them, which costs seconds where passing images through the encoder every epoch would cost
hours on a CPU.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from chipbench import metrics, models, preprocess
from chipbench.errors import UserError
from chipbench.training_loop import STAGES, derive_seed, run_epochs

__all__ = [
    "accuracy",
    "encoder",
    "extract_features",
    "fit_linear",
    "probe_inputs",
    "run_probe",
]

N_CLASSES = 10


def encoder(model: nn.Module, arch: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The feature function of a built model: the representation before its head."""
    if arch == "simclr":
        backbone = model.backbone

        def features(x: torch.Tensor) -> torch.Tensor:
            x = backbone.maxpool(backbone.relu(backbone.bn1(backbone.conv1(x))))
            x = backbone.layer4(backbone.layer3(backbone.layer2(backbone.layer1(x))))
            return torch.flatten(backbone.avgpool(x), 1)

        return features
    if arch == "simclrv2":
        return lambda x: torch.flatten(model.f(x), start_dim=1)
    raise UserError(f"no linear probe for architecture {arch!r}: use simclr or simclrv2")


def probe_inputs(images: np.ndarray, entry: dict) -> np.ndarray:
    """Un-augmented model input for a built-in model entry (``arch``, ``mean``, ``std``)."""
    if entry["arch"] == "simclr":
        return preprocess.to_unit_float(images)
    return preprocess.normalize(images, entry["mean"], entry["std"])


@torch.no_grad()
def extract_features(
    features: Callable[[torch.Tensor], torch.Tensor],
    inputs: np.ndarray,
    *,
    device: torch.device,
    batch_size: int = 256,
    desc: str = "features",
    log=None,
) -> np.ndarray:
    """``features`` of every row of ``inputs`` (float32 NCHW), in chunks: float32 (N, D)."""
    from tqdm import tqdm

    log = log if log is not None else sys.stderr
    interactive = hasattr(log, "isatty") and log.isatty()
    chunks = []
    with tqdm(total=len(inputs), desc=desc, unit="img", file=log, ascii=not interactive,
              mininterval=0.5 if interactive else 10.0) as bar:
        for start in range(0, len(inputs), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(inputs[start:start + batch_size])).to(device)
            chunks.append(features(x).float().cpu().numpy())
            bar.update(len(x))
    return np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)


def fit_linear(
    features: np.ndarray,
    labels: np.ndarray,
    settings: dict,
    *,
    seed: int,
    device: torch.device,
    init: nn.Linear | None = None,
    resume: Path | None = None,
    fingerprint: dict | None = None,
    desc: str = "linear",
    log=None,
    on_epoch_end=None,
) -> tuple[nn.Linear, list[dict]]:
    """Logistic regression on fixed features: Adam, seeded mini-batch order, constant lr.

    ``settings``: ``epochs``, ``batch_size``, ``learning_rate``, ``weight_decay``. ``init``
    gives the starting weights (copied); otherwise the layer is initialised under ``seed``.
    Every epoch sees every row once (the last batch may be smaller).
    """
    features = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    if features.ndim != 2 or len(features) != len(labels) or len(labels) == 0:
        raise UserError(
            f"linear classifier: {features.shape} features for {labels.shape} labels: "
            "give one feature row per labelled image"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = nn.Linear(features.shape[1], N_CLASSES)
    if init is not None:
        head.load_state_dict(init.state_dict())
    head.to(device)
    x_all = torch.from_numpy(features).to(device)
    y_all = torch.from_numpy(labels).to(device)
    batch = max(1, int(settings["batch_size"]))
    epochs = int(settings["epochs"])
    steps = -(-len(labels) // batch)
    optimizer = torch.optim.Adam(head.parameters(), lr=float(settings["learning_rate"]),
                                 weight_decay=float(settings["weight_decay"]))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    orders: dict[int, torch.Tensor] = {}

    def step(epoch: int, index: int) -> float:
        if epoch not in orders:
            orders.clear()
            order = np.random.default_rng(derive_seed(seed, 1, epoch)).permutation(len(labels))
            orders[epoch] = torch.from_numpy(order).to(device)
        chosen = orders[epoch][index * batch:(index + 1) * batch]
        loss = F.cross_entropy(head(x_all[chosen]), y_all[chosen])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    history = run_epochs(
        model=head, optimizer=optimizer, scheduler=scheduler, epochs=epochs, steps_per_epoch=steps,
        step=step, resume=resume,
        fingerprint=dict(fingerprint or {}, settings=settings, seed=seed),
        desc=desc, log=log, on_epoch_end=on_epoch_end,
    )
    return head.eval(), history


@torch.no_grad()
def accuracy(head: nn.Linear, features: np.ndarray, labels: np.ndarray, device: torch.device) -> float:
    """Top-1 (percent) of ``head`` on ``features``."""
    logits = head(torch.from_numpy(np.asarray(features, np.float32)).to(device)).cpu().numpy()
    return float(metrics.top1(logits, np.asarray(labels))["accuracy"])


def run_probe(
    entry: dict,
    checkpoint: Path | str | None,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    settings: dict,
    *,
    seed: int,
    device: torch.device,
    log=None,
) -> dict:
    """Build the model (checkpoint, or seeded random weights), probe it; the JSON record."""
    log = log if log is not None else sys.stderr
    arch = entry["arch"]
    started = time.perf_counter()
    model = models.build(arch, checkpoint, seed).to(device)
    features = encoder(model, arch)
    batch = int(settings.get("feature_batch_size", 256))
    train_x = extract_features(features, probe_inputs(train_images, entry), device=device,
                               batch_size=batch, desc="train features", log=log)
    test_x = extract_features(features, probe_inputs(test_images, entry), device=device,
                              batch_size=batch, desc="test features", log=log)
    feature_seconds = time.perf_counter() - started
    head, history = fit_linear(train_x, train_labels, settings,
                               seed=derive_seed(seed, STAGES["linear_probe"]), device=device,
                               desc="linear probe", log=log)
    test_top1 = accuracy(head, test_x, test_labels, device)
    return {
        "metric": "linear_probe_top1",
        "accuracy": test_top1,
        "train_accuracy": accuracy(head, train_x, train_labels, device),
        "chance": 100.0 / N_CLASSES,
        "feature_dim": int(train_x.shape[1]),
        "n_train_images": int(len(train_labels)),
        "n_test_images": int(len(test_labels)),
        "settings": dict(settings),
        "seed": int(seed),
        "protocol": (
            "logistic regression (Linear + cross-entropy, Adam, seeded mini-batches) on frozen "
            "encoder features of un-augmented images, eval mode"
        ),
        "history": history,
        "feature_seconds": feature_seconds,
        "seconds": time.perf_counter() - started,
        "device": str(device),
    }
