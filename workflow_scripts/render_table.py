"""The HTML view of one table (its CSV, notes and provenance details), for the report."""

from chipbench.report import render
from chipbench.scripting import run_script


def main(smk):
    render.write_html_view(smk.input.csv, smk.input.provenance, smk.output[0])


run_script(snakemake, main)
