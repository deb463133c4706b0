"""Shared helpers: a tiny CIFAR-format archive and a way to run the real workflow on it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from filelock import FileLock
from torch import nn

from chipbench import capabilities
from tests.cifar_fixtures import write_tiny_archive

REPO = Path(__file__).resolve().parent.parent
TEST_CONFIG = REPO / ".test" / "config.yaml"


#: Test files whose fixtures run the workflow end to end or build the TPU-MLIR venv, longest
#: first (minutes each on 2 cores). pytest-xdist hands out whole files in collection order
#: (pyproject.toml: --dist loadfile --no-loadscope-reorder); starting these first keeps one
#: long file from running alone at the end while the other worker idles.
LONGEST_FIRST = ("test_default_path.py", "test_slurm.py", "test_tpu_mlir.py", "test_workflow.py",
                 "test_report.py", "test_train.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the rest keep pytest's order


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def make_workdir(root: Path, n_test: int = 48, n_train: int = 64) -> Path:
    """A Snakemake working directory with a tiny archive and a dataset config pointing at it."""
    root.mkdir(parents=True, exist_ok=True)
    archive = root / "data" / "cifar-10-python.tar.gz"
    archive.parent.mkdir(parents=True, exist_ok=True)
    write_tiny_archive(archive, n_test=n_test, n_train=n_train, seed=1)
    write_config(root / "dataset.yaml", {
        "dataset": {"url": archive.as_uri(), "md5": md5_of(archive), "test_images": n_test}
    })
    return root


def write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def snakemake_command(workdir: Path, *args: str, configs=(), cores: int | None = 2,
                      ci_config: bool = True) -> list[str]:
    """The command running the real workflow on the CI config (or, with ci_config=False, on
    config.yaml alone) plus `workdir/dataset.yaml` and `configs`; cores None leaves them to
    the executor, as a cluster profile does."""
    configfiles = [*([str(TEST_CONFIG)] if ci_config else []), str(workdir / "dataset.yaml"),
                   *map(str, configs)]
    return [
        sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
        "--directory", str(workdir), *(["--cores", str(cores)] if cores else []), *args,
        "--configfile", *configfiles,
    ]


def snakemake(workdir: Path, *args: str, env: dict | None = None, timeout: float = 1800,
              **options) -> subprocess.CompletedProcess:
    """Run `snakemake_command(workdir, *args, **options)`; `env` adds environment variables."""
    return subprocess.run(snakemake_command(workdir, *args, **options), capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory, worker_id) -> Path:
    """The CI config's whole workflow, run once for the session and never changed afterwards.

    Built once even when pytest-xdist runs test files in several processes: the first one
    to take the lock runs it in their common temporary folder, the others wait and reuse it.
    Tests that rerun anything do so in a `copy_run` of it.
    """
    # xdist workers' folders share this session's parent; without xdist the parent would be
    # shared with every other pytest session of the user, so the session's own folder is used
    base = tmp_path_factory.getbasetemp()
    shared = base if worker_id == "master" else base.parent
    workdir = shared / "finished_run"
    with FileLock(str(shared / "finished_run.lock")):
        if not (workdir / "finished").is_file():
            shutil.rmtree(workdir, ignore_errors=True)
            make_workdir(workdir)
            result = snakemake(workdir)
            assert result.returncode == 0, result.stderr[-3000:]
            (workdir / "stderr.txt").write_text(result.stderr)
            (workdir / "finished").touch()
    return workdir


def copy_run(run: Path, destination: Path) -> Path:
    """A copy of a finished run (modification times kept, so nothing in it is out of date)."""
    shutil.copytree(run, destination, symlinks=True, copy_function=shutil.copy2)
    return destination


@pytest.fixture(scope="session", autouse=True)
def capability_cache(tmp_path_factory):
    """Every test's capability answers (chipbench.capabilities) live in a folder of the test
    session, never in the user's cache; a test that fakes an answer uses its own folder."""
    folder = tmp_path_factory.mktemp("capabilities")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(capabilities.CACHE_ENV_VAR, str(folder))
        yield folder


@pytest.fixture
def own_capability_cache(tmp_path, monkeypatch) -> Path:
    """A capability cache folder of the test's own, for a test that fakes an answer: the
    session's may already hold this host's real answers (from another test in the same
    process), which would hide the fake."""
    monkeypatch.setenv(capabilities.CACHE_ENV_VAR, str(tmp_path / "cache"))
    return tmp_path / "cache"


def fake_answer(cache_dir: Path, key: str, ok: bool, reason: str = "") -> None:
    """Fake one capability the way a user would: edit the answer in this host's cache file
    (written by an earlier parse of the same config, e.g. `snakemake -n`)."""
    path = Path(cache_dir) / capabilities.cache_path().name
    data = json.loads(path.read_text())
    data["answers"][key].update(ok=ok, reason=reason)
    path.write_text(json.dumps(data))


def table_row(text: str, first_cell: str) -> list[str]:
    """The cells of a markdown table's row that starts with `first_cell`."""
    row = next(line for line in text.splitlines() if line.startswith(f"| {first_cell} "))
    return [c.strip() for c in row.strip("|").split("|")]


def table_column(text: str, header: str) -> int:
    """The index of a markdown table's column (its header row is the text's third line)."""
    headers = [c.strip() for c in text.splitlines()[2].strip("|").split("|")]
    return headers.index(header)


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


@pytest.fixture
def workdir(tmp_path):
    return make_workdir(tmp_path / "run")


def perturb_batchnorm(model: nn.Module, seed: int) -> nn.Module:
    """Non-trivial BatchNorm parameters and statistics, so loading and BN folding matter."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(1 + 0.1 * torch.randn(n, generator=gen))
                m.bias.copy_(0.1 * torch.randn(n, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
                m.running_var.copy_(1 + 0.2 * torch.rand(n, generator=gen))
                m.num_batches_tracked.fill_(1234)
    return model.eval()
