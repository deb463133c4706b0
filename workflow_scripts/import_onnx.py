"""Take a bring-your-own ONNX model as it is: check it and record its hash as the weights."""

import hashlib
from pathlib import Path

import onnx

from chipbench import onnx_io
from chipbench.errors import UserError
from chipbench.scripting import run_script, write_json
from chipbench.tools import link_or_copy


def main(smk):
    source = Path(smk.input.onnx)
    try:
        onnx.checker.check_model(str(source))
    except onnx.checker.ValidationError as error:
        first = (str(error).strip().splitlines() or ["invalid"])[0]
        raise UserError(
            f"ONNX model {source} is not valid ONNX ({first}): export it again, or fix "
            f"models.{smk.wildcards.model}.onnx"
        ) from None
    link_or_copy(source, Path(smk.output.onnx))
    write_json(smk.output.check, {"imported": str(source), "onnx": onnx_io.onnx_io_summary(source)})
    sha256 = hashlib.sha256(source.read_bytes()).hexdigest()
    write_json(smk.output.weights, {"source": "onnx", "path": str(source), "sha256": sha256})


run_script(snakemake, main)
