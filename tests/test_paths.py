"""A checkout whose path has a space and non-ASCII characters runs the workflow with make."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.cifar_fixtures import write_tiny_archive
from tests.conftest import REPO, md5_of

pytestmark = pytest.mark.slow


def venv_without_install(checkout: Path) -> None:
    """`make setup`'s result without the network: a .venv in the checkout that uses the
    packages of the venv running this test, with its stamp newer than the requirements."""
    venv = checkout / ".venv"
    venv.mkdir()
    running = Path(sys.prefix)
    for name in ("bin", "lib"):
        (venv / name).symlink_to(running / name, target_is_directory=True)
    shutil.copyfile(running / "pyvenv.cfg", venv / "pyvenv.cfg")
    (venv / ".installed").touch()
    requirements = checkout / "envs" / "requirements.txt"
    os.utime(requirements, (0, 0))


def test_make_run_in_a_path_with_a_space_and_umlaut(tmp_path):
    checkout = tmp_path / "bench dir" / "ü" / "chipbench"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(checkout)], check=True)
    venv_without_install(checkout)
    archive = checkout / "data" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    write_tiny_archive(archive, n_test=48, n_train=64, seed=1)
    (checkout / "dataset.yaml").write_text(yaml.safe_dump({
        "dataset": {"url": "data/cifar-10-python.tar.gz", "md5": md5_of(archive),
                    "test_images": 48},
        "select": {"models": ["simclr"], "chips": ["cpu"]},
        "batch_sizes": [4],
    }))
    home = tmp_path / "home"
    env = dict(os.environ, HOME=str(home))
    # Up to date, so `make run` below never recreates the venv it borrows.
    assert subprocess.run(["make", "-q", ".venv/.installed"], cwd=checkout, env=env).returncode == 0
    target = "results/simclr/cpu/fp32/bs4/perf.json results/simclr/cpu/fp32/accuracy.json"
    result = subprocess.run(
        ["make", "run", "CORES=2", "PYTHON=false",
         f"ARGS=--configfile .test/config.yaml dataset.yaml -- {target}"],
        cwd=checkout, env=env, capture_output=True, text=True, timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    perf = yaml.safe_load((checkout / "results/simclr/cpu/fp32/bs4/perf.json").read_text())
    assert perf["batch_size"] == 4 and perf["status"] == "ok"
    links = list((home / ".cache" / "chipbench" / "venv-links").iterdir())
    assert [link.resolve() for link in links] == [(checkout / ".venv").resolve()]
