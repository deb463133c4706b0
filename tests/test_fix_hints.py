"""Every fix hint of a dataset error works: each test follows the hint and reaches a working run."""

from __future__ import annotations

import re

import pytest

from tests.cifar_fixtures import write_tiny_archive
from tests.conftest import files_under, md5_of, snakemake, write_config

pytestmark = pytest.mark.slow

EXTRACTED = "results/data/cifar-10-batches-py/test_batch"


def error_line(result) -> str:
    """The one error line (shown once more where the profile prints a failed job's log)."""
    errors = {line for line in result.stderr.splitlines() if line.startswith("error:")}
    assert result.returncode != 0 and len(errors) == 1, result.stderr[-3000:]
    return errors.pop()


def run(workdir, dataset: dict, *targets):
    return snakemake(workdir, *targets,
                     configs=[write_config(workdir / "fix.yaml", {"dataset": dataset})])


def test_wrong_md5_set_the_md5_it_names(workdir):
    good = workdir / "data" / "cifar-10-python.tar.gz"
    line = error_line(run(workdir, {"md5": "0" * 32}, EXTRACTED))
    assert "delete" not in line
    hint = re.search(r"if it is the archive you mean, set dataset.md5: ([0-9a-f]{32});", line)
    assert hint and hint[1] == md5_of(good), line
    assert run(workdir, {"md5": hint[1]}, EXTRACTED).returncode == 0
    assert (workdir / EXTRACTED).is_file()


def test_wrong_archive_point_the_url_at_a_copy_with_the_md5_it_names(workdir):
    good = workdir / "data" / "cifar-10-python.tar.gz"
    other = workdir / "data" / "other.tar.gz"
    write_tiny_archive(other, n_test=48, n_train=64, seed=2)
    line = error_line(run(workdir, {"url": str(other)}, EXTRACTED))
    hint = re.search(r"otherwise point dataset.url at a copy whose md5 is ([0-9a-f]{32})$", line)
    assert hint and hint[1] == md5_of(good), line
    assert run(workdir, {"url": str(good)}, EXTRACTED).returncode == 0


def test_truncated_source_point_the_url_at_a_complete_archive_and_its_md5(workdir):
    good = workdir / "data" / "cifar-10-python.tar.gz"
    truncated = workdir / "data" / "truncated.tar.gz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    line = error_line(run(workdir, {"url": str(truncated), "md5": md5_of(truncated)}, EXTRACTED))
    assert "rerun" not in line and "delete" not in line
    assert line.endswith("point dataset.url at a complete cifar-10-python.tar.gz and "
                         "dataset.md5 at its md5"), line
    assert run(workdir, {"url": str(good), "md5": md5_of(good)}, EXTRACTED).returncode == 0


def test_test_images_above_the_archive_stop_the_run_before_any_export(workdir):
    line = error_line(run(workdir, {"test_images": 50}))
    assert line.endswith("holds 48 test images but dataset.test_images is 50: set "
                         "dataset.test_images: 48"), line
    assert [f for f in files_under(workdir / "results") if not f.startswith("data/")] == []
    target = "results/models/simclr/model.onnx"
    assert run(workdir, {"test_images": 48}, target).returncode == 0
