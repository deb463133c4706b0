"""Build the PyTorch model (checkpoint or seeded random weights), export ONNX, check it."""

from pathlib import Path

import numpy as np

from chipbench import export, models, onnx_io, train
from chipbench.scripting import read_json, run_script, write_json


def main(smk):
    entry = smk.params.model
    checkpoint = Path(smk.input.checkpoint[0]) if smk.input.checkpoint else None
    model = models.build(entry["arch"], checkpoint, smk.params.seed)
    export.export_onnx(model, Path(smk.output.onnx), smk.params.opset)
    check_inputs = (
        np.random.default_rng(smk.params.seed)
        .standard_normal((smk.params.check_batch, 3, 32, 32))
        .astype(np.float32)
    )
    check = export.compare_with_torch(model, Path(smk.output.onnx), check_inputs)
    check["onnx"] = onnx_io.onnx_io_summary(Path(smk.output.onnx))
    write_json(smk.output.check, check)
    records = [read_json(path) for path in smk.input.records]
    weights = (train.trained_weights_info(checkpoint, records) if records
               else models.weights_info(checkpoint, smk.params.seed))
    write_json(smk.output.weights, weights)


run_script(snakemake, main)
