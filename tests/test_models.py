"""chipbench.models: torchvision-named ResNets, the two report models, checkpoints, weights info."""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn

from chipbench import models, provenance
from chipbench.errors import UserError
from tests.conftest import perturb_batchnorm

# Keys exactly as published checkpoints spell them (docs/models.md).
SIMCLR_PUBLISHED_KEYS = {
    "backbone.conv1.weight": (64, 3, 7, 7),
    "backbone.bn1.weight": (64,),
    "backbone.bn1.running_mean": (64,),
    "backbone.bn1.num_batches_tracked": (),
    "backbone.layer1.0.conv1.weight": (64, 64, 3, 3),
    "backbone.layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "backbone.layer2.0.downsample.1.running_mean": (128,),
    "backbone.layer4.1.bn2.running_var": (512,),
    "backbone.fc.0.weight": (512, 512),
    "backbone.fc.0.bias": (512,),
    "backbone.fc.2.weight": (128, 512),
    "backbone.fc.2.bias": (128,),
}
SIMCLRV2_PUBLISHED_KEYS = {
    "f.0.weight": (64, 3, 3, 3),
    "f.1.weight": (64,),
    "f.1.running_mean": (64,),
    "f.1.num_batches_tracked": (),
    "f.3.0.conv1.weight": (64, 64, 1, 1),
    "f.3.0.downsample.0.weight": (256, 64, 1, 1),
    "f.3.0.downsample.1.running_var": (256,),
    "f.4.0.conv2.weight": (128, 128, 3, 3),
    "f.5.5.bn3.weight": (1024,),
    "f.6.2.conv3.weight": (2048, 512, 1, 1),
    "fc.weight": (10, 2048),
    "fc.bias": (10,),
}


def _source_model(arch: str, seed: int = 1) -> nn.Module:
    return perturb_batchnorm(models.build(arch, None, seed=seed), seed)


def _batch(n: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _record_shape(shapes: dict, name: str):
    def hook(module, inputs, output):
        shapes[name] = tuple(output.shape)  # returns None: the output is left alone

    return hook


def _outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


def _save_sthalles(model: nn.Module, path: Path, state_dict=None) -> Path:
    """Save like sthalles/SimCLR's save_checkpoint, with a real Adam optimizer state."""
    if state_dict is None:
        state_dict = OrderedDict((k, v.clone()) for k, v in model.state_dict().items())
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4, weight_decay=1e-4)
    # one step (zero gradients) gives the optimizer its per-parameter state to save
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    for p in model.parameters():
        p.grad = None
    torch.save(
        {
            "epoch": 100,
            "arch": "resnet18",
            "state_dict": state_dict,
            "optimizer": optimizer.state_dict(),
        },
        path,
    )
    return path


@pytest.fixture(scope="module")
def simclr_source() -> nn.Module:
    return _source_model("simclr")


@pytest.fixture(scope="module")
def simclrv2_source() -> nn.Module:
    return _source_model("simclrv2")


# --------------------------------------------------------------------------------------------
# torchvision-compatible ResNets
# --------------------------------------------------------------------------------------------


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_resnet18_parameter_count_and_keys_match_torchvision():
    net = models.resnet18(num_classes=1000)
    assert _n_params(net) == 11_689_512
    sd = net.state_dict()
    assert len(sd) == 122  # 62 parameters + 20 BatchNorms x 3 buffers
    assert sd["conv1.weight"].shape == (64, 3, 7, 7)
    assert sd["bn1.num_batches_tracked"].shape == ()
    assert sd["layer1.0.conv1.weight"].shape == (64, 64, 3, 3)
    assert "layer1.0.downsample.0.weight" not in sd
    assert sd["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert sd["layer2.0.downsample.1.running_mean"].shape == (128,)
    assert sd["layer4.1.bn2.running_var"].shape == (512,)
    assert sd["fc.weight"].shape == (1000, 512)
    assert "layer4.2.conv1.weight" not in sd


def test_resnet50_parameter_count_and_keys_match_torchvision():
    net = models.resnet50(num_classes=1000)
    assert _n_params(net) == 25_557_032
    sd = net.state_dict()
    assert len(sd) == 320  # 161 parameters + 53 BatchNorms x 3 buffers
    assert sd["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert sd["layer1.0.downsample.1.running_var"].shape == (256,)
    assert sd["layer3.5.bn3.weight"].shape == (1024,)
    assert "layer3.6.bn3.weight" not in sd
    assert sd["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1)
    assert sd["fc.weight"].shape == (1000, 2048)


def test_resnet_attributes_and_module_types():
    net = models.resnet50()
    for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
                 "avgpool", "fc"):
        assert hasattr(net, name)
    assert [n for n, _ in net.named_children()] == [
        "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"
    ]
    block = net.layer2[0]
    assert isinstance(block, models.Bottleneck)
    assert isinstance(block.downsample, nn.Sequential)
    assert isinstance(block.downsample[0], nn.Conv2d)
    assert isinstance(block.downsample[1], nn.BatchNorm2d)
    # torchvision ResNet v1.5: the stride sits on the 3x3 conv of the bottleneck
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)
    assert block.downsample[0].stride == (2, 2)
    assert isinstance(models.resnet18().layer3[0], models.BasicBlock)
    assert net.maxpool.kernel_size == 3 and net.maxpool.stride == 2 and net.maxpool.padding == 1
    assert net.conv1.kernel_size == (7, 7) and net.conv1.stride == (2, 2) and net.conv1.bias is None


def test_resnet_initialisation_like_torchvision():
    torch.manual_seed(0)
    net = models.resnet50()
    conv = net.layer4[0].conv2  # 512 -> 512, 3x3: fan_out = 512 * 9
    expected_std = math.sqrt(2.0 / (512 * 9))
    assert conv.weight.std().item() == pytest.approx(expected_std, rel=0.02)
    assert abs(conv.weight.mean().item()) < 0.05 * expected_std
    stem = net.conv1  # fan_out = 64 * 49
    assert stem.weight.std().item() == pytest.approx(math.sqrt(2.0 / (64 * 49)), rel=0.05)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
            assert torch.all(m.running_mean == 0) and torch.all(m.running_var == 1)
    # fc keeps PyTorch's default Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    bound = 1 / math.sqrt(2048)
    assert net.fc.weight.abs().max().item() <= bound
    assert net.fc.weight.abs().max().item() > 0.9 * bound


def test_resnet18_forward_shape():
    net = models.resnet18(num_classes=7).eval()
    assert _outputs(net, _batch(2)).shape == (2, 7)


# --------------------------------------------------------------------------------------------
# The report models
# --------------------------------------------------------------------------------------------


def test_simclr_published_keys_and_shapes():
    sd = models.ResNetSimCLR().state_dict()
    for key, shape in SIMCLR_PUBLISHED_KEYS.items():
        assert key in sd, key
        assert tuple(sd[key].shape) == shape, key
    assert all(k.startswith("backbone.") for k in sd)
    assert not any(k.startswith("backbone.fc.1.") for k in sd)  # ReLU has no weights
    # resnet18's 122 entries, with fc (2) replaced by fc.0 (2) + fc.2 (2)
    assert len(sd) == 124
    assert sorted(k for k in sd if ".fc." in k) == [
        "backbone.fc.0.bias", "backbone.fc.0.weight", "backbone.fc.2.bias", "backbone.fc.2.weight"
    ]


def test_simclr_structure_imagenet_stem_and_projection_head():
    model = models.ResNetSimCLR().eval()
    assert isinstance(model.backbone, models.ResNet)
    fc = model.backbone.fc
    assert isinstance(fc, nn.Sequential) and len(fc) == 3
    assert isinstance(fc[0], nn.Linear) and (fc[0].in_features, fc[0].out_features) == (512, 512)
    assert isinstance(fc[1], nn.ReLU)
    assert isinstance(fc[2], nn.Linear) and (fc[2].in_features, fc[2].out_features) == (512, 128)
    shapes = {}
    model.backbone.maxpool.register_forward_hook(_record_shape(shapes, "maxpool"))
    model.backbone.layer4.register_forward_hook(_record_shape(shapes, "layer4"))
    out = _outputs(model, _batch(4))
    assert out.shape == (4, 128)
    # ImageNet stem on 32x32: conv1 /2 -> 16, maxpool /2 -> 8, layer4 -> 1
    assert shapes["maxpool"] == (4, 64, 8, 8)
    assert shapes["layer4"] == (4, 512, 1, 1)


def test_simclr_output_is_not_normalised(simclr_source):
    out = _outputs(simclr_source, _batch(4))
    norms = out.norm(dim=1)
    assert not torch.allclose(norms, torch.ones_like(norms), atol=1e-3)


def test_simclrv2_published_keys_and_shapes():
    sd = models.SimCLRv2Classifier().state_dict()
    for key, shape in SIMCLRV2_PUBLISHED_KEYS.items():
        assert key in sd, key
        assert tuple(sd[key].shape) == shape, key
    assert "f.0.bias" not in sd
    assert not any(k.startswith(("f.2.", "f.7.", "f.8.", "g.")) for k in sd)
    assert {k.split(".")[0] for k in sd} == {"f", "fc"}
    assert {k.split(".")[1] for k in sd if k.startswith("f.")} == {"0", "1", "3", "4", "5", "6"}
    # resnet50's 320 entries, minus the 7x7 conv1 replaced by a 3x3 one (same key count)
    assert len(sd) == 320


def test_simclrv2_structure_cifar_stem():
    model = models.SimCLRv2Classifier().eval()
    f = model.f
    assert isinstance(f, nn.Sequential) and len(f) == 8
    assert isinstance(f[0], nn.Conv2d)
    assert f[0].kernel_size == (3, 3) and f[0].stride == (1, 1) and f[0].padding == (1, 1)
    assert f[0].out_channels == 64 and f[0].bias is None
    assert isinstance(f[1], nn.BatchNorm2d) and isinstance(f[2], nn.ReLU)
    assert all(isinstance(f[i], nn.Sequential) for i in (3, 4, 5, 6))
    assert isinstance(f[7], nn.AdaptiveAvgPool2d)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert isinstance(model.fc, nn.Linear)
    assert (model.fc.in_features, model.fc.out_features) == (2048, 10)
    shapes = {}
    f[6].register_forward_hook(_record_shape(shapes, "layer4"))
    out = _outputs(model, _batch(3))
    assert out.shape == (3, 10)
    assert shapes["layer4"] == (3, 2048, 4, 4)  # CIFAR stem: 32 -> 32 -> 32, 16, 8, 4


def test_simclrv2_forward_is_flatten_f_then_fc(simclrv2_source):
    x = _batch(2)
    with torch.no_grad():
        expected = simclrv2_source.fc(torch.flatten(simclrv2_source.f(x), 1))
    assert torch.equal(_outputs(simclrv2_source, x), expected)


def test_architectures_registry():
    assert set(models.ARCHITECTURES) == {"simclr", "simclrv2"}
    assert isinstance(models.ARCHITECTURES["simclr"](), models.ResNetSimCLR)
    assert isinstance(models.ARCHITECTURES["simclrv2"](), models.SimCLRv2Classifier)
    assert set(models.CHECKPOINT_FORMATS) == set(models.ARCHITECTURES)
    assert "state_dict" in models.CHECKPOINT_FORMATS["simclr"]
    assert "fc" in models.CHECKPOINT_FORMATS["simclrv2"]


# --------------------------------------------------------------------------------------------
# build
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("arch", "n_out"), [("simclr", 128), ("simclrv2", 10)])
def test_build_random_is_eval_and_has_expected_output(arch, n_out):
    model = models.build(arch, None, seed=0)
    assert not model.training
    assert not any(m.training for m in model.modules())
    assert _outputs(model, _batch(5)).shape == (5, n_out)


@pytest.mark.parametrize("arch", ["simclr", "simclrv2"])
def test_build_same_seed_gives_identical_state_dict(arch):
    a = models.build(arch, None, seed=7).state_dict()
    b = models.build(arch, None, seed=7).state_dict()
    c = models.build(arch, None, seed=8).state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    first_conv = "backbone.conv1.weight" if arch == "simclr" else "f.0.weight"
    assert not torch.equal(a[first_conv], c[first_conv])
    assert not torch.equal(a["fc.weight" if arch == "simclrv2" else "backbone.fc.2.weight"],
                           c["fc.weight" if arch == "simclrv2" else "backbone.fc.2.weight"])


def test_build_does_not_disturb_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    models.build("simclr", None, seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_build_unknown_arch_lists_known_ones():
    with pytest.raises(UserError) as err:
        models.build("resnet20", None, seed=0)
    message = str(err.value)
    assert "resnet20" in message and "simclr" in message and "simclrv2" in message
    assert "\n" not in message


# --------------------------------------------------------------------------------------------
# Checkpoints: SimCLR (sthalles format)
# --------------------------------------------------------------------------------------------


def test_load_sthalles_checkpoint_reproduces_source_outputs(tmp_path, simclr_source):
    path = _save_sthalles(_source_model("simclr"), tmp_path / "checkpoint_0100.pth.tar")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert set(ckpt) == {"epoch", "arch", "state_dict", "optimizer"}
    assert ckpt["optimizer"]["state"]  # a real per-parameter Adam state went in
    for key in SIMCLR_PUBLISHED_KEYS:
        assert key in ckpt["state_dict"]

    model = models.build("simclr", path, seed=99)
    assert not model.training
    x = _batch(4)
    assert torch.equal(_outputs(model, x), _outputs(simclr_source, x))
    loaded, source = model.state_dict(), simclr_source.state_dict()
    assert all(torch.equal(loaded[k], source[k]) for k in source)
    assert int(loaded["backbone.bn1.num_batches_tracked"]) == 1234


def test_load_bare_and_dataparallel_simclr_state_dicts(tmp_path, simclr_source):
    x = _batch(2)
    expected = _outputs(simclr_source, x)
    sd = simclr_source.state_dict()
    bare = tmp_path / "bare.pth"
    torch.save(sd, bare)
    assert torch.equal(_outputs(models.build("simclr", bare, seed=5), x), expected)

    wrapped = tmp_path / "dp.pth.tar"
    _save_sthalles(_source_model("simclr"), wrapped,
                   state_dict=OrderedDict((f"module.{k}", v) for k, v in sd.items()))
    assert torch.equal(_outputs(models.build("simclr", wrapped, seed=5), x), expected)


def test_load_checkpoint_accepts_str_path_and_fills_model_in_place(tmp_path, simclr_source):
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": simclr_source.state_dict()}, path)
    model = models.ResNetSimCLR().eval()
    models.load_checkpoint(model, "simclr", str(path))
    x = _batch(2)
    assert torch.equal(_outputs(model, x), _outputs(simclr_source, x))


def test_load_checkpoint_without_num_batches_tracked(tmp_path, simclr_source):
    # checkpoints from PyTorch < 0.4.1 have no num_batches_tracked buffers
    sd = {k: v for k, v in simclr_source.state_dict().items()
          if not k.endswith("num_batches_tracked")}
    path = tmp_path / "old.pth"
    torch.save({"state_dict": sd}, path)
    x = _batch(2)
    assert torch.equal(_outputs(models.build("simclr", path, seed=0), x),
                       _outputs(simclr_source, x))


def test_simclr_wrong_keys_exact_message(tmp_path, simclr_source):
    sd = OrderedDict(simclr_source.state_dict())
    for key in ("backbone.fc.0.weight", "backbone.fc.0.bias", "backbone.fc.2.weight",
                "backbone.fc.2.bias", "backbone.layer4.1.bn2.running_var"):
        del sd[key]
    sd["foo"] = torch.zeros(3)
    path = _save_sthalles(_source_model("simclr"), tmp_path / "x.pth", state_dict=sd)
    with pytest.raises(UserError) as err:
        models.build("simclr", path, seed=0)
    assert str(err.value) == (
        f"checkpoint {path} does not match simclr: missing keys "
        "backbone.layer4.1.bn2.running_var, backbone.fc.0.weight (+3 more); "
        "unexpected keys foo (+0 more): pass a sthalles-format SimCLR ResNet-18 checkpoint "
        "or set models.simclr.checkpoint: null"
    )


def test_simclr_unexpected_only_and_shape_mismatch_messages(tmp_path, simclr_source):
    sd = OrderedDict(simclr_source.state_dict())
    sd["backbone.fc.2.weight"] = torch.zeros(64, 512)
    sd["backbone.fc.2.bias"] = torch.zeros(64)
    sd["extra.a"] = torch.zeros(1)
    sd["extra.b"] = torch.zeros(1)
    sd["extra.c"] = torch.zeros(1)
    path = tmp_path / "y.pth"
    torch.save({"state_dict": sd}, path)
    with pytest.raises(UserError) as err:
        models.build("simclr", path, seed=0)
    assert str(err.value) == (
        f"checkpoint {path} does not match simclr: missing keys none; "
        "unexpected keys extra.a, extra.b (+1 more); shapes (checkpoint vs model) "
        "backbone.fc.2.weight (64, 512) vs (128, 512), backbone.fc.2.bias (64,) vs (128,) "
        "(+0 more): pass a sthalles-format SimCLR ResNet-18 checkpoint "
        "or set models.simclr.checkpoint: null"
    )


def test_simclr_torchvision_resnet18_without_backbone_prefix_is_rejected(tmp_path):
    path = tmp_path / "tv.pth"
    torch.save(models.resnet18().state_dict(), path)
    pattern = r"does not match simclr: missing keys backbone\.conv1\.weight"
    with pytest.raises(UserError, match=pattern):
        models.build("simclr", path, seed=0)


def test_simclr_resnet50_arch_is_rejected(tmp_path):
    path = tmp_path / "r50.pth.tar"
    sd = {"backbone.conv1.weight": torch.zeros(1)}
    torch.save({"epoch": 1, "arch": "resnet50", "state_dict": sd, "optimizer": {}}, path)
    with pytest.raises(UserError) as err:
        models.build("simclr", path, seed=0)
    assert str(err.value) == (
        f"checkpoint {path} is a SimCLR resnet50 checkpoint ('arch': 'resnet50') but the simclr "
        "model is ResNet-18: pass a sthalles-format SimCLR ResNet-18 checkpoint "
        "or set models.simclr.checkpoint: null"
    )


def test_failed_load_leaves_model_untouched(tmp_path, simclr_source):
    sd = OrderedDict(simclr_source.state_dict())
    del sd["backbone.fc.2.bias"]
    path = tmp_path / "partial.pth"
    torch.save(sd, path)
    model = models.build("simclr", None, seed=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(UserError):
        models.load_checkpoint(model, "simclr", path)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


# --------------------------------------------------------------------------------------------
# Checkpoints: SimCLRv2 (stage-2 state_dict)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["bare", "state_dict", "model", "module_prefix"])
def test_load_simclrv2_stage2_layouts(tmp_path, simclrv2_source, layout):
    sd = simclrv2_source.state_dict()
    for key in SIMCLRV2_PUBLISHED_KEYS:
        assert key in sd
    obj = {
        "bare": sd,
        "state_dict": {"state_dict": sd, "epoch": 100},
        "model": {"model": sd, "acc": 89.26},
        "module_prefix": OrderedDict((f"module.{k}", v) for k, v in sd.items()),
    }[layout]
    path = tmp_path / f"linear_{layout}.pth"
    torch.save(obj, path)
    model = models.build("simclrv2", path, seed=42)
    x = _batch(3)
    assert torch.equal(_outputs(model, x), _outputs(simclrv2_source, x))
    assert _outputs(model, x).shape == (3, 10)


def _stage1_state_dict(encoder: nn.Module) -> dict:
    """Stage-1 layout: f.* encoder + g = Linear(2048,512,no bias)-BN1d-ReLU-Linear(512,128)."""
    g = nn.Sequential(nn.Linear(2048, 512, bias=False), nn.BatchNorm1d(512), nn.ReLU(inplace=True),
                      nn.Linear(512, 128, bias=True))
    sd = OrderedDict((f"f.{k}", v) for k, v in encoder.f.state_dict().items())
    sd.update((f"g.{k}", v) for k, v in g.state_dict().items())
    return sd


def test_simclrv2_stage1_checkpoint_is_explained(tmp_path, simclrv2_source):
    sd = _stage1_state_dict(simclrv2_source)
    assert "g.0.weight" in sd and "g.1.running_mean" in sd and "g.3.bias" in sd
    path = tmp_path / "128_0.5_200_512_500_model.pth"
    torch.save(sd, path)
    with pytest.raises(UserError) as err:
        models.build("simclrv2", path, seed=0)
    message = str(err.value)
    assert message == (
        f"checkpoint {path} is a stage-1 (pre-training) SimCLRv2 checkpoint (projection head "
        "g.*, no linear head fc.*): stage-2 (linear head) weights are needed - pass the "
        "checkpoint saved after linear evaluation (keys f.* and fc.*) or set "
        "models.simclrv2.checkpoint: null"
    )


def test_simclrv2_wrong_keys_message(tmp_path, simclrv2_source):
    sd = OrderedDict(simclrv2_source.state_dict())
    del sd["fc.weight"]
    del sd["fc.bias"]
    path = tmp_path / "no_head.pth"
    torch.save(sd, path)
    with pytest.raises(UserError) as err:
        models.build("simclrv2", path, seed=0)
    assert str(err.value) == (
        f"checkpoint {path} does not match simclrv2: missing keys fc.weight, fc.bias (+0 more); "
        "unexpected keys none: pass a stage-2 SimCLRv2 ResNet-50 checkpoint (keys f.* and fc.*) "
        "or set models.simclrv2.checkpoint: null"
    )


def test_simclr_checkpoint_loaded_as_simclrv2_is_rejected(tmp_path, simclr_source):
    path = _save_sthalles(_source_model("simclr"), tmp_path / "simclr.pth.tar")
    with pytest.raises(UserError, match=r"does not match simclrv2: missing keys f\.0\.weight"):
        models.build("simclrv2", path, seed=0)


# --------------------------------------------------------------------------------------------
# Checkpoints: unusable files
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["simclr", "simclrv2"])
def test_missing_checkpoint_names_the_path(tmp_path, arch):
    path = tmp_path / "nowhere" / "ckpt.pth"
    with pytest.raises(UserError) as err:
        models.build(arch, path, seed=0)
    assert str(err.value) == (
        f"checkpoint {path} does not exist: fix the path or set models.{arch}.checkpoint: null"
    )


def test_checkpoint_directory_is_rejected(tmp_path):
    with pytest.raises(UserError, match="is not a file"):
        models.build("simclr", tmp_path, seed=0)


@pytest.mark.parametrize("content", [b"", b"this is not a checkpoint\n", b"PK\x03\x04garbage",
                                     b"\x80\x02}q\x00."[:-1]])
def test_not_a_torch_file(tmp_path, content):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(UserError) as err:
        models.build("simclr", path, seed=0)
    message = str(err.value)
    assert message.startswith(f"checkpoint {path} is not a PyTorch checkpoint (")
    assert message.endswith(
        "): pass a sthalles-format SimCLR ResNet-18 checkpoint "
        "or set models.simclr.checkpoint: null"
    )
    assert "\n" not in message


class _Custom:  # an arbitrary Python object in a pickle: refused by weights_only loading
    pass


def test_checkpoint_with_arbitrary_python_objects_is_refused(tmp_path, simclr_source):
    path = tmp_path / "objects.pth"
    torch.save({"state_dict": simclr_source.state_dict(), "args": _Custom()}, path)
    with pytest.raises(UserError) as err:
        models.build("simclr", path, seed=0)
    message = str(err.value)
    assert message.startswith(f"checkpoint {path} holds Python objects other than tensors")
    assert "\n" not in message


@pytest.mark.parametrize("obj", [[1, 2, 3], {"epoch": 3, "arch": "resnet18"}, torch.zeros(3)])
def test_checkpoint_without_state_dict(tmp_path, obj):
    path = tmp_path / "odd.pth"
    torch.save(obj, path)
    with pytest.raises(UserError) as err:
        models.build("simclr", path, seed=0)
    message = str(err.value)
    assert message.startswith(f"checkpoint {path} holds a ")
    assert message.endswith("or set models.simclr.checkpoint: null")
    assert "\n" not in message


# --------------------------------------------------------------------------------------------
# weights_info
# --------------------------------------------------------------------------------------------


def test_weights_info_random():
    info = models.weights_info(None, seed=3)
    assert info == {"source": "random", "seed": 3}


def test_weights_info_checkpoint(tmp_path):
    path = tmp_path / "checkpoint_0100.pth.tar"
    path.write_bytes(b"some checkpoint bytes")
    digest = hashlib.sha256(b"some checkpoint bytes").hexdigest()
    info = models.weights_info(path, seed=3)
    assert info == {"source": "checkpoint", "path": str(path), "sha256": digest}
    assert provenance.file_sha256(path) == digest


def test_weights_info_missing_checkpoint(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        models.weights_info(tmp_path / "missing.pth", seed=0)
