"""The two PyTorch models of the reports, with torchvision's parameter names.

* ``simclr``  - :class:`ResNetSimCLR`: the sthalles/SimCLR model. torchvision ResNet-18 with
  the ImageNet stem (7x7 stride-2 conv + 3x3 stride-2 max-pool, applied to 32x32 images) whose
  ``fc`` is the projection head ``Sequential(Linear(512, 512), ReLU(), Linear(512, 128))``.
  Output: the 128-d projection (not normalised).
* ``simclrv2`` - :class:`SimCLRv2Classifier`: the stage-2 (linear evaluation) model of the
  BM1684X report. ResNet-50 with a CIFAR stem (3x3 stride-1 conv, no max-pool) as
  ``f = nn.Sequential(...)`` and ``fc = Linear(2048, 10)``. Output: 10 CIFAR-10 logits.

The ResNets are written here (torchvision is deliberately not a dependency) with exactly
torchvision's module names, so that state_dict keys such as ``layer2.0.downsample.1.running_mean``
match published checkpoints, and with torchvision's initialisation.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from chipbench.errors import UserError
from chipbench.provenance import file_sha256

__all__ = [
    "ARCHITECTURES",
    "CHECKPOINT_FORMATS",
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "ResNetSimCLR",
    "SimCLRv2Classifier",
    "build",
    "load_checkpoint",
    "resnet18",
    "resnet50",
    "weights_info",
]


# --------------------------------------------------------------------------------------------
# torchvision-compatible ResNet
# --------------------------------------------------------------------------------------------


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut (ResNet-18/34)."""

    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 - 3x3 - 1x1 bottleneck (ResNet-50/101/152), stride on the 3x3 conv ("ResNet v1.5")."""

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision's ``ResNet`` (ImageNet stem), same attribute names and initialisation."""

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: list[int],
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        # torchvision: Kaiming-normal (fan_out, relu) convs, BN weight 1 / bias 0,
        # Linear left at PyTorch's default initialisation.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        planes: int,
        blocks: int,
        stride: int = 1,
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def resnet18(num_classes: int = 1000) -> ResNet:
    """torchvision ``resnet18`` (random weights)."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)


def resnet50(num_classes: int = 1000) -> ResNet:
    """torchvision ``resnet50`` (v1.5, random weights)."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes=num_classes)


# --------------------------------------------------------------------------------------------
# The two report models
# --------------------------------------------------------------------------------------------


class ResNetSimCLR(nn.Module):
    """sthalles/SimCLR ``ResNetSimCLR(base_model='resnet18', out_dim=128)``.

    Keys: ``backbone.conv1.weight`` ... ``backbone.fc.0.weight``, ``backbone.fc.2.bias``.
    """

    def __init__(self, out_dim: int = 128) -> None:
        super().__init__()
        self.backbone = resnet18(num_classes=out_dim)
        dim_mlp = self.backbone.fc.in_features
        self.backbone.fc = nn.Sequential(nn.Linear(dim_mlp, dim_mlp), nn.ReLU(), self.backbone.fc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)


class SimCLRv2Classifier(nn.Module):
    """Stage-2 model of the BM1684X report: CIFAR-stem ResNet-50 encoder ``f`` + ``fc``.

    ``f`` holds resnet50's children minus ``maxpool`` and ``fc``, with ``conv1`` replaced by a
    3x3 stride-1 convolution, so ``f.0`` conv1, ``f.1`` bn1, ``f.2`` relu, ``f.3``-``f.6``
    layer1-layer4, ``f.7`` avgpool. The replacement conv1 is initialised like torchvision's
    other convolutions (Kaiming normal, fan_out).
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        base = resnet50()
        stem = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(stem.weight, mode="fan_out", nonlinearity="relu")
        children = []
        for name, module in base.named_children():
            if name in ("maxpool", "fc"):
                continue
            children.append(stem if name == "conv1" else module)
        self.f = nn.Sequential(*children)
        self.fc = nn.Linear(2048, num_classes, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.f(x), start_dim=1))


ARCHITECTURES: dict[str, Callable[[], nn.Module]] = {
    "simclr": ResNetSimCLR,
    "simclrv2": SimCLRv2Classifier,
}

CHECKPOINT_FORMATS: dict[str, str] = {
    "simclr": (
        "sthalles/SimCLR checkpoint: torch.save({'epoch', 'arch': 'resnet18', 'state_dict', "
        "'optimizer'}) with state_dict keys backbone.conv1.weight ... backbone.fc.0.*, "
        "backbone.fc.2.* (a bare state_dict and a DataParallel 'module.' prefix are accepted)"
    ),
    "simclrv2": (
        "SimCLRv2 stage-2 (linear evaluation) state_dict with encoder keys f.0.* (conv1), "
        "f.1.* (bn1), f.3.*-f.6.* (layer1-layer4) and head keys fc.weight, fc.bias; it may be "
        "wrapped as {'state_dict': ...} or {'model': ...} and carry a 'module.' prefix"
    ),
}

# The fix offered when a checkpoint does not fit (one clause, appended after ": ").
_FIX = {
    "simclr": (
        "pass a sthalles-format SimCLR ResNet-18 checkpoint or set models.simclr.checkpoint: null"
    ),
    "simclrv2": (
        "pass a stage-2 SimCLRv2 ResNet-50 checkpoint (keys f.* and fc.*) "
        "or set models.simclrv2.checkpoint: null"
    ),
}

# How many key names an error message lists before "(+N more)".
_KEYS_SHOWN = 2


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


def _first_line(exc: BaseException, limit: int = 160) -> str:
    """``Type: first sentence of the message`` on one line, at most about ``limit`` characters."""
    text = " ".join(str(exc).split())
    text = text.split(". ")[0]
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _torch_load(path: Path, arch: str) -> object:
    fix = _FIX[arch]
    if not path.exists():
        raise UserError(
            f"checkpoint {path} does not exist: fix the path or set models.{arch}.checkpoint: null"
        )
    if not path.is_file():
        raise UserError(
            f"checkpoint {path} is not a file: pass the checkpoint file itself or set "
            f"models.{arch}.checkpoint: null"
        )
    try:
        # weights_only=True: tensors, containers and primitives only - enough for a
        # state_dict plus an optimizer state_dict, and no arbitrary code runs while unpickling.
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only load failed" in str(exc).lower() or "weights_only" in str(exc):
            raise UserError(
                f"checkpoint {path} holds Python objects other than tensors, which are not "
                f"loaded for safety (torch.load weights_only=True): re-save it as "
                f"torch.save({{'state_dict': model.state_dict()}}, path) or set "
                f"models.{arch}.checkpoint: null"
            ) from None
        raise UserError(
            f"checkpoint {path} is not a PyTorch checkpoint ({_first_line(exc)}): {fix}"
        ) from None
    except Exception as exc:  # any other failure: the file is not something torch.save wrote
        raise UserError(
            f"checkpoint {path} is not a PyTorch checkpoint ({_first_line(exc)}): {fix}"
        ) from None


def _is_state_dict(obj: object) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) for k in obj)
        and any(isinstance(v, torch.Tensor) for v in obj.values())
    )


def _strip_module_prefix(state_dict: Mapping[str, object]) -> dict[str, object]:
    """Drop DataParallel's ``module.`` prefix when every key carries it."""
    keys = list(state_dict)
    if keys and all(k.startswith("module.") for k in keys):
        return {k[len("module."):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def _extract_state_dict(obj: object, arch: str, path: Path) -> dict[str, object]:
    fix = _FIX[arch]
    if isinstance(obj, Mapping):
        if arch == "simclr" and "arch" in obj and obj["arch"] != "resnet18":
            raise UserError(
                f"checkpoint {path} is a SimCLR {obj['arch']} checkpoint ('arch': "
                f"{obj['arch']!r}) but the simclr model is ResNet-18: {fix}"
            )
        wrappers = ("state_dict",) if arch == "simclr" else ("state_dict", "model")
        for key in wrappers:
            if key in obj and _is_state_dict(obj[key]):
                return _strip_module_prefix(obj[key])
        if _is_state_dict(obj):
            return _strip_module_prefix(obj)
        keys = ", ".join(repr(k) for k in list(obj)[:5])
        raise UserError(
            f"checkpoint {path} holds a dict without a state_dict (top-level keys {keys}): {fix}"
        )
    raise UserError(
        f"checkpoint {path} holds a {type(obj).__name__}, not a dict of tensors: {fix}"
    )


def _key_list(keys: list[str]) -> str:
    if not keys:
        return "none"
    shown = ", ".join(keys[:_KEYS_SHOWN])
    return f"{shown} (+{max(len(keys) - _KEYS_SHOWN, 0)} more)"


def load_checkpoint(model: nn.Module, arch: str, path: Path | str) -> None:
    """Load the checkpoint at ``path`` (format :data:`CHECKPOINT_FORMATS` [arch]) strictly.

    Raises :class:`UserError` - leaving ``model`` untouched - if the file is missing, is not a
    PyTorch file, is a SimCLRv2 stage-1 checkpoint, or its keys/shapes do not match ``model``.
    """
    if arch not in ARCHITECTURES:
        raise UserError(
            f"unknown model architecture {arch!r}: use one of {', '.join(ARCHITECTURES)}"
        )
    path = Path(path)
    fix = _FIX[arch]
    state_dict = _extract_state_dict(_torch_load(path, arch), arch, path)

    if arch == "simclrv2":
        has_g = any(k.startswith("g.") for k in state_dict)
        has_fc = any(k.startswith("fc.") for k in state_dict)
        if has_g and not has_fc:
            raise UserError(
                f"checkpoint {path} is a stage-1 (pre-training) SimCLRv2 checkpoint (projection "
                f"head g.*, no linear head fc.*): stage-2 (linear head) weights are needed - pass "
                f"the checkpoint saved after linear evaluation (keys f.* and fc.*) or set "
                f"models.simclrv2.checkpoint: null"
            )

    expected = model.state_dict()
    # Checkpoints written before PyTorch 0.4.1 lack BatchNorm's num_batches_tracked; the
    # BatchNorm loader fills it in, so its absence is not an error.
    missing = [
        k for k in expected
        if k not in state_dict and not k.endswith(".num_batches_tracked")
    ]
    unexpected = [k for k in state_dict if k not in expected]
    not_tensors = [
        k for k, v in state_dict.items() if k in expected and not isinstance(v, torch.Tensor)
    ]
    mismatched = [
        f"{k} {tuple(v.shape)} vs {tuple(expected[k].shape)}"
        for k, v in state_dict.items()
        if k in expected and isinstance(v, torch.Tensor) and v.shape != expected[k].shape
    ]
    if missing or unexpected or mismatched or not_tensors:
        message = (
            f"checkpoint {path} does not match {arch}: missing keys {_key_list(missing)}; "
            f"unexpected keys {_key_list(unexpected)}"
        )
        if mismatched:
            message += f"; shapes (checkpoint vs model) {_key_list(mismatched)}"
        if not_tensors:
            message += f"; not tensors {_key_list(not_tensors)}"
        raise UserError(f"{message}: {fix}")
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:  # pragma: no cover - the checks above should catch everything
        raise UserError(
            f"checkpoint {path} does not load into {arch} ({_first_line(exc)}): {fix}"
        ) from None


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def build(arch: str, checkpoint: Path | str | None, seed: int) -> nn.Module:
    """The ``arch`` model in eval mode, with the checkpoint's weights or seeded random ones.

    Random initialisation runs under ``torch.manual_seed(seed)`` in a forked RNG state, so the
    same seed gives an identical state_dict and the caller's global RNG is not disturbed.
    """
    if arch not in ARCHITECTURES:
        raise UserError(
            f"unknown model architecture {arch!r}: use one of {', '.join(ARCHITECTURES)}"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ARCHITECTURES[arch]()
    if checkpoint is not None:
        load_checkpoint(model, arch, Path(checkpoint))
    return model.eval()


def weights_info(checkpoint: Path | str | None, seed: int) -> dict:
    """Where a built model's weights came from (the ``weights`` key of every result record)."""
    if checkpoint is None:
        return {"source": "random", "seed": int(seed)}
    path = Path(checkpoint)
    if not path.is_file():
        raise UserError(
            f"checkpoint {path} does not exist: fix the path or set the model's checkpoint: null"
        )
    return {"source": "checkpoint", "path": str(path), "sha256": file_sha256(path)}
