"""Shared helpers: a tiny CIFAR-format archive and a way to run the real workflow on it."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from chipbench import cifar

REPO = Path(__file__).resolve().parent.parent
TEST_CONFIG = REPO / ".test" / "config.yaml"


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def make_workdir(root: Path, n_test: int = 48, n_train: int = 64) -> Path:
    """A Snakemake working directory with a tiny archive and a dataset config pointing at it."""
    root.mkdir(parents=True, exist_ok=True)
    archive = root / "data" / "cifar-10-python.tar.gz"
    archive.parent.mkdir(parents=True, exist_ok=True)
    cifar.write_tiny_archive(archive, n_test=n_test, n_train=n_train, seed=1)
    write_config(root / "dataset.yaml", {
        "dataset": {"url": archive.as_uri(), "md5": md5_of(archive), "test_images": n_test}
    })
    return root


def write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def snakemake(workdir: Path, *args: str, configs=(), cores: int = 2) -> subprocess.CompletedProcess:
    """Run the real workflow on the CI config plus `workdir/dataset.yaml` and `configs`."""
    configfiles = [str(TEST_CONFIG), str(workdir / "dataset.yaml"), *map(str, configs)]
    command = [
        sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
        "--directory", str(workdir), "--cores", str(cores), *args,
        "--configfile", *configfiles,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=1800)


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


@pytest.fixture
def workdir(tmp_path):
    return make_workdir(tmp_path / "run")
