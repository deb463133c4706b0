"""Logic of the chip benchmarking workflow; the Snakemake rules call into it."""
