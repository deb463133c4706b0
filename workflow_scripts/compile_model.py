"""Compile the ONNX model for one chip, precision and batch size (or all batch sizes)."""

from pathlib import Path

from chipbench import backends, provenance
from chipbench.backends.base import COMPILED_MANIFEST
from chipbench.scripting import run_script, write_json


def main(smk):
    chip = smk.params.chip
    backend = backends.available(smk.wildcards.chip, chip)
    batch_size = smk.params.batch_size
    out_dir = Path(smk.output[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    calibration = Path(smk.input.calibration) if smk.input.calibration else None
    # a backend that `transforms_model` compiles from its transform step's folder
    transformed = {"transformed": Path(smk.input.transformed)} if smk.input.transformed else {}
    manifest = backend.compile(
        Path(smk.input.onnx), out_dir, smk.wildcards.precision, batch_size, chip, calibration,
        model=smk.params.model, **transformed,
    )
    manifest.update(
        backend=backend.name, backend_version=backend.version(), batch_size=batch_size,
        status="ok", provenance=provenance.collect(config=smk.config, onnx=smk.input.onnx),
    )
    write_json(out_dir / COMPILED_MANIFEST, manifest)


run_script(snakemake, main, cell=True)
