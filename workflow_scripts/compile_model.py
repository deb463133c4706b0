"""Compile the ONNX model for one chip, precision and batch size (or all batch sizes)."""

from pathlib import Path

from chipbench import backends, provenance
from chipbench.backends.base import COMPILED_MANIFEST
from chipbench.errors import RunError
from chipbench.scripting import run_script, write_json


def main(smk):
    chip = smk.params.chip
    backend = backends.get(chip["backend"])
    availability = backend.availability(chip)
    if not availability.ok:
        raise RunError(
            f"chip {smk.wildcards.chip} is not available on this host: {availability.reason}"
        )
    batch_size = smk.params.batch_size
    out_dir = Path(smk.output[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    calibration = Path(smk.input.calibration) if smk.input.calibration else None
    manifest = backend.compile(
        Path(smk.input.onnx), out_dir, smk.wildcards.precision, batch_size, chip, calibration,
        model=smk.params.model,
    )
    manifest.update(
        backend=backend.name, backend_version=backend.version(), batch_size=batch_size,
        status="ok", provenance=provenance.collect(config=smk.config, onnx=smk.input.onnx),
    )
    write_json(out_dir / COMPILED_MANIFEST, manifest)


run_script(snakemake, main, cell=True)
