"""Extract test_batch and data_batch_1, and check the test set has the configured size."""

from pathlib import Path

from chipbench import cifar
from chipbench.errors import UserError
from chipbench.scripting import run_script


def main(smk):
    out_dir = Path(smk.output.test).parent
    cifar.extract(Path(smk.input[0]), out_dir, members=[Path(p).name for p in smk.output])
    images, _ = cifar.load_batch(smk.output.test)
    if len(images) != smk.params.test_images:
        raise UserError(
            f"{smk.input[0]} holds {len(images)} test images but dataset.test_images is "
            f"{smk.params.test_images}: set dataset.test_images: {len(images)}"
        )


run_script(snakemake, main)
