"""The HTML view of one table (its CSV and the notes of its Markdown), for the report."""

from chipbench import tables
from chipbench.scripting import run_script


def main(smk):
    tables.write_html_view(smk.input.md, smk.input.csv, smk.output[0])


run_script(snakemake, main)
