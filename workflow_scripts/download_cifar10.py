"""Fetch the CIFAR-10 archive; keep it only if its md5 matches and it reads to the end."""

import tempfile
from pathlib import Path

from chipbench import cifar
from chipbench.errors import UserError
from chipbench.scripting import run_script


def main(smk):
    archive = Path(smk.output[0])
    cifar.fetch(smk.params.url, archive)
    try:
        cifar.verify_md5(archive, smk.params.md5, source=smk.params.url)
        # A truncated archive can carry the md5 the user gave for it: read it through now,
        # so the error names the source and no unusable archive stays in results/. Fetching
        # the same source again would not help: the fix is another source.
        with tempfile.TemporaryDirectory() as scratch:
            try:
                cifar.extract(archive, Path(scratch))
            except cifar.CorruptArchive as error:
                raise UserError(
                    f"dataset source {smk.params.url} is not a complete CIFAR-10 python "
                    f"archive (it {error.detail}); point dataset.url at a complete "
                    "cifar-10-python.tar.gz and dataset.md5 at its md5"
                ) from None
    except Exception:
        archive.unlink()
        raise


run_script(snakemake, main)
