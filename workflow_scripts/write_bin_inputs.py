"""The test set as one raw float32 .bin file per image, the input folder ais_bench reads."""

from pathlib import Path

import numpy as np

from chipbench.backends.ascend import write_bin_inputs
from chipbench.scripting import run_script


def main(smk):
    inputs = np.load(smk.input[0], mmap_mode="r")
    write_bin_inputs(inputs, Path(smk.output[0]))


run_script(snakemake, main)
