"""The test set as one raw float32 file per image, for chips whose tool reads input files."""

from pathlib import Path

import numpy as np

from chipbench.scripting import run_script
from chipbench.tools import write_input_files


def main(smk):
    inputs = np.load(smk.input[0], mmap_mode="r")
    write_input_files(inputs, Path(smk.output[0]))


run_script(snakemake, main)
