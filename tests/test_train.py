"""Training inside the workflow (chipbench.train, chipbench.linear_probe, rules/train.smk).

Real architectures on tiny data (tens of images, batches of 8-16, 1-2 epochs), so the whole
file stays within a couple of minutes on a busy 2-core machine.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from chipbench import augment, cifar, linear_probe, models, train, training_loop
from chipbench.errors import UserError
from tests.cifar_fixtures import write_tiny_archive
from tests.conftest import REPO, md5_of

CPU = torch.device("cpu")
THREADS = 2
MEAN = [0.4914, 0.4822, 0.4465]
STD = [0.2023, 0.1994, 0.2010]
SIMCLR = {"compile": False, "images": 32, "epochs": 1, "batch_size": 16, "learning_rate": 3e-4,
          "weight_decay": 1e-4, "temperature": 0.07}
PRETRAIN = {"images": 8, "epochs": 1, "batch_size": 4, "learning_rate": 1e-3,
            "weight_decay": 1e-6, "temperature": 0.5}
LINEAR = {"images": 32, "epochs": 3, "batch_size": 16, "learning_rate": 1e-3, "weight_decay": 0.0}


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module", autouse=True)
def two_threads():
    before = torch.get_num_threads()
    training_loop.setup_threads(THREADS)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def batches(tmp_path_factory) -> Path:
    """Extracted test_batch and data_batch_1 (64 images) of a tiny archive."""
    root = tmp_path_factory.mktemp("cifar")
    archive = root / "cifar-10-python.tar.gz"
    write_tiny_archive(archive, n_test=32, n_train=64, seed=1)
    cifar.extract(archive, root / "batches")
    return root / "batches"


@pytest.fixture(scope="module")
def data(batches) -> train.TrainingSet:
    return train.load_training_set([batches / "data_batch_1"], seed=0)


@pytest.fixture(scope="module")
def simclr_trained(data, tmp_path_factory):
    """Trained as the workflow's default does (eager, channels_last, dense small maps)."""
    out = tmp_path_factory.mktemp("simclr") / "trained.pth"
    return out, train.train_simclr(data, SIMCLR, out, seed=0, device=CPU, threads=THREADS)


@pytest.fixture(scope="module")
def simclrv2_pretrained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("v2") / "pretrained.pth"
    result = train.pretrain_simclrv2(data, PRETRAIN, out, mean=MEAN, std=STD, seed=0,
                                     device=CPU, threads=THREADS)
    return out, result


# ------------------------------------------------------------------------------ NT-Xent


def reference_nt_xent(z: torch.Tensor, temperature: float) -> float:
    """sthalles' formulation, written out: [positive, negatives...] logits, label 0."""
    rows = len(z)
    unit = F.normalize(z.double(), dim=1)
    sim = unit @ unit.T
    total = 0.0
    for i in range(rows):
        partner = (i + rows // 2) % rows
        negatives = [sim[i, j] for j in range(rows) if j not in (i, partner)]
        logits = torch.stack([sim[i, partner], *negatives]) / temperature
        total += float(-torch.log_softmax(logits, 0)[0])
    return total / rows


def test_nt_xent_of_identical_rows_is_log_of_2n_minus_1():
    assert train.nt_xent_loss(torch.ones(8, 5), 0.5).item() == pytest.approx(math.log(7), rel=1e-6)


def test_nt_xent_of_aligned_orthogonal_pairs_is_far_below_uniform():
    # Four images, both views identical, images orthogonal: positive cosine 1, negatives 0, so
    # loss = log(1 + (2N - 2) exp(-1/T)).
    z = torch.eye(6)[:4]
    pairs = torch.cat([z, z])
    assert train.nt_xent_loss(pairs, 0.5).item() == pytest.approx(
        math.log(1 + 6 * math.exp(-1 / 0.5)), rel=1e-6)
    assert train.nt_xent_loss(pairs, 0.07).item() < 1e-5 < math.log(7)
    # Views swapped between images: every positive is a negative's worst case.
    assert train.nt_xent_loss(torch.cat([z, z.roll(1, 0)]), 0.07).item() > math.log(7)


def test_nt_xent_matches_the_written_out_formulation():
    z = torch.randn(12, 7, generator=torch.Generator().manual_seed(3))
    for temperature in (0.07, 0.5):
        assert train.nt_xent_loss(z, temperature).item() == pytest.approx(
            reference_nt_xent(z, temperature), rel=1e-5)


# ------------------------------------------------------------------------------ data


def test_training_set_is_a_seeded_permutation_of_every_batch(batches, tmp_path):
    shutil.copy(batches / "data_batch_1", tmp_path / "data_batch_1")
    shutil.copy(batches / "data_batch_1", tmp_path / "data_batch_2")
    both = train.load_training_set([tmp_path / "data_batch_1", tmp_path / "data_batch_2"], seed=0)
    assert both.info["available"] == 128
    assert both.info["batches"] == {"data_batch_1": 64, "data_batch_2": 64}
    again = train.load_training_set([tmp_path / "data_batch_1", tmp_path / "data_batch_2"], seed=0)
    assert np.array_equal(both.images, again.images)
    subset = both.take(10, "x")
    assert np.array_equal(subset.images, both.images[:10]) and subset.info["images"] == 10
    with pytest.raises(UserError, match=r"train.simclr.images is 500 .* only 128 images"):
        both.take(500, "train.simclr.images")


def test_simclrv2_views_are_seeded_per_image_and_normalised(data):
    whole = augment.simclrv2_views(data.images[:6], 5, MEAN, STD)
    tail = augment.simclrv2_views(data.images[3:6], 5, MEAN, STD, start_index=3)
    assert whole.shape == (12, 3, 32, 32) and whole.dtype == np.float32
    assert np.array_equal(whole[6:], tail)
    assert not np.array_equal(whole[0], whole[1])
    low = (0 - np.array(MEAN)) / np.array(STD)
    assert np.all(whole.min(axis=(0, 2, 3)) >= low - 1e-5)


def test_device_auto_is_cpu_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert train.resolve_device("auto") == CPU
    with pytest.raises(UserError, match="no CUDA device"):
        train.resolve_device("cuda")


# ------------------------------------------------------------------------------ SimCLR


def test_simclr_checkpoint_has_the_published_layout_and_reruns_byte_identically(
        simclr_trained, data, tmp_path):
    path, first = simclr_trained
    second = train.train_simclr(data, SIMCLR, tmp_path / "b.pth", seed=0, device=CPU, threads=THREADS)
    assert first.sha256 == second.sha256 == sha256(path) == sha256(tmp_path / "b.pth")
    assert path.read_bytes() == (tmp_path / "b.pth").read_bytes()
    assert not training_loop.resume_path(path).exists()  # removed once finished

    saved = torch.load(path, map_location="cpu", weights_only=True)
    assert set(saved) == {"epoch", "arch", "state_dict", "optimizer"}
    assert saved["epoch"] == 1 and saved["arch"] == "resnet18"
    assert all(key.startswith("backbone.") for key in saved["state_dict"])
    # trained in channels_last, saved in the default layout any reader expects
    assert all(value.is_contiguous() for value in saved["state_dict"].values())
    assert {"state", "param_groups"} <= set(saved["optimizer"])

    model = models.build("simclr", path, seed=123)  # loads through load_checkpoint
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved["state_dict"][key]), key
    untrained = models.build("simclr", None, seed=123).state_dict()
    assert not torch.equal(untrained["backbone.fc.2.weight"], saved["state_dict"]["backbone.fc.2.weight"])

    record = first.record
    assert record["recipe"] == "simclr" and record["steps_per_epoch"] == 2
    assert record["settings"]["compile"] is False and record["small_map_convolutions"] == "dense"
    assert record["data"]["images"] == 32 and record["checkpoint"]["sha256"] == first.sha256
    assert math.isfinite(record["history"][0]["loss"])


class Killed(Exception):
    pass


def test_killed_simclr_training_resumes_to_the_same_bytes(data, tmp_path):
    settings = dict(SIMCLR, epochs=2)
    straight = train.train_simclr(data, settings, tmp_path / "straight.pth", seed=0, device=CPU,
                                  threads=THREADS)

    def kill_after_first_epoch(epoch):
        if epoch == 1:
            raise Killed

    out = tmp_path / "resumed.pth"
    with pytest.raises(Killed):
        train.train_simclr(data, settings, out, seed=0, device=CPU, threads=THREADS,
                           on_epoch_end=kill_after_first_epoch)
    assert training_loop.resume_path(out).is_file() and not out.exists()
    epochs_run = []
    resumed = train.train_simclr(data, settings, out, seed=0, device=CPU, threads=THREADS,
                                 on_epoch_end=epochs_run.append)
    assert epochs_run == [2]  # only the second epoch ran again
    assert resumed.sha256 == straight.sha256 == sha256(out)
    assert [h["loss"] for h in resumed.record["history"]] == [
        h["loss"] for h in straight.record["history"]]
    assert not training_loop.resume_path(out).exists()


def test_a_resume_file_for_other_settings_is_not_used(tmp_path):
    features = np.random.default_rng(0).standard_normal((40, 6)).astype(np.float32)
    labels = np.arange(40) % 10
    settings = {"epochs": 2, "batch_size": 8, "learning_rate": 1e-2, "weight_decay": 0.0}
    resume = tmp_path / "head.resume.pt"
    ran = []
    linear_probe.fit_linear(features, labels, dict(settings, epochs=1), seed=0, device=CPU,
                            resume=resume, on_epoch_end=ran.append)
    linear_probe.fit_linear(features, labels, settings, seed=0, device=CPU, resume=resume,
                            on_epoch_end=ran.append)
    assert ran == [1, 1, 2]  # the 1-epoch run's state was not taken for the 2-epoch run
    resume.write_bytes(b"cut short by a kill")
    head, history = linear_probe.fit_linear(features, labels, settings, seed=0, device=CPU,
                                            resume=resume)
    assert len(history) == 2


def test_pytorch_reference_runs_the_weights_trained_here(simclr_trained, tmp_path):
    """compile_model for cpu_pytorch on what export_onnx leaves after training: model.onnx and
    weights.json of source 'trained' naming results/models/<model>/trained.pth."""
    from chipbench import export
    from chipbench.backends import get

    path, result = simclr_trained
    folder = tmp_path / "models" / "simclr"
    checkpoint = folder / "trained.pth"
    folder.mkdir(parents=True)
    shutil.copy(path, checkpoint)
    export.export_onnx(models.build("simclr", checkpoint, 0), folder / "model.onnx", 17)
    weights = train.trained_weights_info(checkpoint, [result.record])
    (folder / "weights.json").write_text(json.dumps(weights))

    backend = get("pytorch")
    chip = {"settings": {"threads": THREADS}}
    manifest = backend.compile(folder / "model.onnx", tmp_path / "out", "fp32", None, chip, None,
                               model={"arch": "simclr", "checkpoint": None})
    assert manifest["weights"]["source"] == "trained" and manifest["weights"]["sha256"] == sha256(path)
    assert manifest["onnx_check"]["max_rel_error"] < 1e-4
    runner = backend.load(tmp_path / "out", manifest, chip, THREADS)
    image = np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)
    with torch.inference_mode():
        expected = models.build("simclr", path, 0)(torch.from_numpy(image)).numpy()
    np.testing.assert_array_equal(runner.run(image), expected)

    checkpoint.write_bytes(checkpoint.read_bytes() + b"retrained")
    with pytest.raises(UserError, match=r"^checkpoint .*trained.pth changed since model.onnx "
                                        r"was exported .*: rerun export_onnx$"):
        backend.compile(folder / "model.onnx", tmp_path / "again", "fp32", None, chip, None,
                        model={"arch": "simclr", "checkpoint": None})
    checkpoint.unlink()
    with pytest.raises(UserError, match=r"^trained checkpoint .*trained.pth is missing: run the "
                                        r"workflow again to retrain it$"):
        backend.compile(folder / "model.onnx", tmp_path / "again", "fp32", None, chip, None,
                        model={"arch": "simclr", "checkpoint": None})


# ------------------------------------------------------------------------------ SimCLRv2


def test_simclrv2_stage1_layout_and_byte_identical_rerun(simclrv2_pretrained, data, tmp_path):
    path, result = simclrv2_pretrained
    again = train.pretrain_simclrv2(data, PRETRAIN, tmp_path / "again.pth", mean=MEAN, std=STD,
                                    seed=0, device=CPU, threads=THREADS)
    assert again.sha256 == result.sha256 == sha256(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert {k.split(".")[0] for k in state} == {"f", "g"}
    assert tuple(state["g.0.weight"].shape) == (512, 2048) and "g.0.bias" not in state
    assert tuple(state["g.1.running_mean"].shape) == (512,)
    assert tuple(state["g.3.weight"].shape) == (128, 512) and "g.3.bias" in state
    assert result.record["stage"] == "pretrain" and result.record["steps_per_epoch"] == 2
    # Stage-1 weights are not a stage-2 model: the loader says so.
    with pytest.raises(UserError, match="stage-1"):
        models.build("simclrv2", path, seed=0)


def test_simclrv2_stage2_loads_and_reruns_byte_identically(data, simclrv2_pretrained, tmp_path):
    pretrained, stage1 = simclrv2_pretrained
    first = train.train_simclrv2_linear(data, LINEAR, pretrained, tmp_path / "a.pth", mean=MEAN,
                                        std=STD, seed=0, device=CPU, threads=THREADS)
    second = train.train_simclrv2_linear(data, LINEAR, pretrained, tmp_path / "b.pth", mean=MEAN,
                                         std=STD, seed=0, device=CPU, threads=THREADS)
    assert first.sha256 == second.sha256 == sha256(tmp_path / "b.pth")
    state = torch.load(tmp_path / "a.pth", map_location="cpu", weights_only=True)
    assert {k.split(".")[0] for k in state} == {"f", "fc"}
    encoder = torch.load(pretrained, map_location="cpu", weights_only=True)
    assert all(torch.equal(state[k], v) for k, v in encoder.items() if k.startswith("f."))
    model = models.build("simclrv2", tmp_path / "a.pth", seed=5)
    assert torch.equal(model.fc.weight, state["fc.weight"])

    info = train.trained_weights_info(tmp_path / "a.pth", [stage1.record, first.record])
    assert info["source"] == "trained" and info["sha256"] == first.sha256
    assert info["stages"] == [{"stage": "pretrain", "epochs": 1, "images": 8},
                              {"stage": "linear", "epochs": 3, "images": 32}]
    assert info["label"] == (
        "trained here: SimCLRv2 (leftthomas) recipe, pretrain 1 epoch on 8 images, linear 3 "
        f"epochs on 32 images, seed 0, checkpoint sha256 {first.sha256[:8]}")


# ------------------------------------------------------------------------------ linear probe


def test_linear_probe_separates_separable_features():
    rng = np.random.default_rng(0)
    centres = 5.0 * rng.standard_normal((10, 16))
    labels = np.arange(600) % 10
    features = (centres[labels] + 0.3 * rng.standard_normal((600, 16))).astype(np.float32)
    settings = {"epochs": 30, "batch_size": 64, "learning_rate": 1e-2, "weight_decay": 0.0}
    head, history = linear_probe.fit_linear(features[:500], labels[:500], settings, seed=0, device=CPU)
    assert linear_probe.accuracy(head, features[500:], labels[500:], CPU) == 100.0
    assert history[-1]["loss"] < history[0]["loss"]
    again, _ = linear_probe.fit_linear(features[:500], labels[:500], settings, seed=0, device=CPU)
    assert torch.equal(head.weight, again.weight)


def test_probe_of_a_given_checkpoint(data, batches, tmp_path):
    # A checkpoint from elsewhere (here: seeded random weights saved in sthalles' layout).
    source = models.build("simclr", None, seed=7)
    checkpoint = tmp_path / "given.pth.tar"
    torch.save({"epoch": 0, "arch": "resnet18", "state_dict": source.state_dict(),
                "optimizer": {}}, checkpoint)
    test_images, test_labels = cifar.load_batch(batches / "test_batch")
    settings = {"epochs": 5, "batch_size": 16, "learning_rate": 3e-4, "weight_decay": 8e-4}
    record = linear_probe.run_probe({"arch": "simclr"}, checkpoint, data.images, data.labels,
                                    test_images, test_labels, settings, seed=0, device=CPU)
    assert record["feature_dim"] == 512
    assert record["n_train_images"] == 64 and record["n_test_images"] == 32
    assert 0.0 <= record["accuracy"] <= 100.0 and len(record["history"]) == 5
    assert json.loads(json.dumps(record)) == record  # plain JSON types


# ------------------------------------------------------------------------------ rules


SNAKEFILE = """\
configfile: "{repo}/config.yaml"
include: "{repo}/rules/common.smk"
include: "{repo}/rules/data.smk"
include: "{repo}/rules/train.smk"
rule all_train:
    input:
        [trained_checkpoint(m) for m in TRAINED_MODELS],
        linear_probe_results(),
    default_target: True
"""


def run_rules(workdir: Path, *args: str, configs=()) -> subprocess.CompletedProcess:
    """Snakemake on a Snakefile that includes only common, data and train rules."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "snakemake", "-s", str(workdir / "Snakefile"),
               "--directory", str(workdir), "--cores", str(THREADS), *args,
               "--configfile", str(workdir / "tiny.yaml"), *map(str, configs)]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)


@pytest.fixture(scope="module")
def rules_workdir(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("rules")
    (workdir / "Snakefile").write_text(SNAKEFILE.format(repo=REPO))
    archive = workdir / "data" / "cifar-10-python.tar.gz"
    write_tiny_archive(archive, n_test=32, n_train=64, seed=1)
    (workdir / "tiny.yaml").write_text(yaml.safe_dump({
        "dataset": {"url": str(archive), "md5": md5_of(archive), "test_images": 32,
                    "train_batches": 1,
                    "calibration_images": 16},
        "batch_sizes": [1, 4],
        "metrics": {"pair_top1": {"pairs_per_batch": 8, "temperature": 0.07}},
        "train": {
            "simclr": SIMCLR,
            "simclrv2": {"pretrain": PRETRAIN, "linear": LINEAR},
            "linear_probe": {"images": 64, "epochs": 3, "batch_size": 16},
        },
    }))
    return workdir


def test_rules_plan_both_trainings_and_the_probe(rules_workdir):
    result = run_rules(rules_workdir, "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    for rule in ("train_simclr", "pretrain_simclrv2", "train_simclrv2_linear", "evaluate_linear_probe"):
        assert rule in result.stdout + result.stderr
    given = rules_workdir / "given.yaml"
    checkpoint = rules_workdir / "given.pth"
    checkpoint.write_bytes(b"")
    given.write_text(yaml.safe_dump({"models": {"simclr": {"checkpoint": str(checkpoint)}},
                                     "train": {"simclrv2": {"enabled": False}}}))
    result = run_rules(rules_workdir, "-n", configs=[given])
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    assert "evaluate_linear_probe" in out
    assert "train_simclr" not in out and "simclrv2" not in out


def test_compile_setting_reaches_the_model_preparation(data, tmp_path, monkeypatch):
    """train.simclr.compile true trains through torch.compile (compiling itself is PyTorch's
    and takes a minute, so the spy prepares eagerly after recording the flag)."""
    calls = []

    def spy(model, device, compile_model):
        calls.append(compile_model)
        return training_loop.prepare_model(model, device, False)

    monkeypatch.setattr(train, "prepare_model", spy)
    settings = {**SIMCLR, "compile": True, "images": 16}
    result = train.train_simclr(data, settings, tmp_path / "c.pth", seed=0, device=CPU, threads=THREADS)
    assert calls == [True] and result.record["settings"]["compile"] is True


def test_prepare_model_compiles_the_model_it_prepares():
    model = models.ResNetSimCLR()
    compiled = training_loop.prepare_model(model, CPU, True)
    assert isinstance(compiled, torch._dynamo.eval_frame.OptimizedModule)
    assert compiled._orig_mod is model  # same parameters: the optimizer and state_dict stay valid
    assert model.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert training_loop.prepare_model(models.ResNetSimCLR(), CPU, False).__class__ is models.ResNetSimCLR


def test_rules_train_simclr_and_probe_it(rules_workdir, simclr_trained):
    result = run_rules(rules_workdir, "results/simclr/linear_probe.json")
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = rules_workdir / "results" / "models" / "simclr" / "trained.pth"
    # The job (another process) trained exactly what the library trains for the same settings.
    _, expected = simclr_trained
    assert sha256(checkpoint) == expected.sha256
    probe = json.loads((rules_workdir / "results" / "simclr" / "linear_probe.json").read_text())
    assert probe["weights"]["source"] == "trained"
    assert probe["weights"]["sha256"] == expected.sha256
    assert probe["n_train_images"] == 64 and probe["n_test_images"] == 32
    log = (rules_workdir / "logs" / "train_simclr" / "simclr.log").read_text()
    assert "SimCLR: epoch 1/1 mean loss" in log and "step" in log  # tqdm bar in the job log
