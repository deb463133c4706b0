"""The step every precision of one artefact folder compiles from (backends that
`transforms_model`, e.g. TPU-MLIR's model_transform), run once for all of them."""

from pathlib import Path

from chipbench import backends, provenance
from chipbench.backends.base import COMPILED_MANIFEST
from chipbench.scripting import run_script, write_json


def main(smk):
    backend = backends.available(smk.wildcards.chip, smk.params.chip)
    out_dir = Path(smk.output[0])
    manifest = backend.transform(
        Path(smk.input.onnx), out_dir, smk.params.batch_size, smk.params.chip,
        Path(smk.input.calibration),
    )
    manifest.update(
        backend=backend.name, batch_size=smk.params.batch_size, status="ok",
        provenance=provenance.collect(config=smk.config, onnx=smk.input.onnx),
    )
    write_json(out_dir / COMPILED_MANIFEST, manifest)


run_script(snakemake, main, cell=True)
