"""Command lines of the Ascend tools: ATC (compile), ais_bench / msit (run), AMCT's CLI.

Plain data, built without CANN, so each is tested exactly.
"""

from __future__ import annotations

from chipbench.errors import UserError

PRECISIONS = ("fp16", "fp32", "int8")
#: ``--precision_mode_v2`` value per precision (CANN ≥ 7.0). INT8 compiles the AMCT deploy
#: model: its quantized layers run INT8 whatever the flag, the rest run fp16 — never
#: ``origin``, which would keep them fp32 and is not what a quantized model is built for.
PRECISION_MODE_V2 = {"fp16": "fp16", "fp32": "origin", "int8": "fp16"}
#: Legacy ``--precision_mode`` value per precision (older CANN, before precision_mode_v2).
PRECISION_MODE_LEGACY = {
    "fp16": "force_fp16",
    "fp32": "must_keep_origin_dtype",
    "int8": "force_fp16",
}
SETUP_HINT = "install the CANN toolkit and source /usr/local/Ascend/ascend-toolkit/set_env.sh"
OUTPUT_FORMATS = ("NPY", "TXT", "BIN")


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise UserError(
            f"precision {precision!r} is not supported on Ascend: use one of {', '.join(PRECISIONS)}"
        )


def output_format(outfmt: str) -> str:
    """The tool's output format (``--outfmt``), upper case; a UserError when unknown."""
    outfmt = outfmt.upper()
    if outfmt not in OUTPUT_FORMATS:
        raise UserError(f"outfmt {outfmt!r} is not known: use one of {', '.join(OUTPUT_FORMATS)}")
    return outfmt


def atc_command(
    onnx,
    output_stem,
    batch_size: int,
    soc_version: str,
    precision: str,
    input_name: str = "input",
    precision_flag: str = "precision_mode_v2",
    input_chw: tuple[int, int, int] = (3, 32, 32),
) -> list[str]:
    """The exact ``atc`` argument list compiling `onnx` to ``{output_stem}.om``.

    `precision_flag` is ``precision_mode_v2`` (CANN ≥ 7.0: ``fp16`` | ``origin``) or
    ``precision_mode`` (older CANN: ``force_fp16`` | ``must_keep_origin_dtype``); exactly one
    of the two is given. For ``int8``, `onnx` is the AMCT deploy model and the flag is fp16.
    """
    check_precision(precision)
    if precision_flag == "precision_mode_v2":
        flag = f"--precision_mode_v2={PRECISION_MODE_V2[precision]}"
    elif precision_flag == "precision_mode":
        flag = f"--precision_mode={PRECISION_MODE_LEGACY[precision]}"
    else:
        raise UserError(
            f"atc_precision_flag {precision_flag!r} is not known: use precision_mode_v2 "
            "(CANN ≥ 7.0) or precision_mode (older CANN) in the chip's settings"
        )
    if int(batch_size) < 1:
        raise UserError(f"batch size {batch_size} is not positive: use a batch size ≥ 1")
    c, h, w = (int(x) for x in input_chw)
    return [
        "atc",
        "--framework=5",
        f"--model={onnx}",
        f"--output={output_stem}",
        "--input_format=NCHW",
        f"--input_shape={input_name}:{int(batch_size)},{c},{h},{w}",
        f"--soc_version={soc_version}",
        "--log=info",
        flag,
    ]


def ais_bench_command(
    om,
    input_dir,
    output_dir,
    batch_size: int,
    outfmt: str = "NPY",
    loop: int | None = None,
    warmup: int | None = None,
    device: int | None = 0,
    output_dirname: str | None = None,
    tool: str = "ais_bench",
    python: str = "python3",
) -> list[str]:
    """The exact benchmark-tool argument list.

    ``tool="ais_bench"``: ``python3 -m ais_bench --model … --input … --output …
    [--output_dirname …] --outfmt NPY --batchsize N [--loop L] [--warmup_count W]
    [--device D]`` (option names of ais_bench's own parser).
    ``tool="msit"``: ``msit benchmark --om-model … --input … --output … [--output-dirname …]
    --outfmt NPY --batch-size N [--loop L] [--warmup-count W] [--device D]`` (option names of
    the msit benchmark guide). ``--batchsize``/``--batch-size`` only feeds the tool's
    throughput figure; batching itself follows the .om's input size.
    `python` is the interpreter that has ais_bench installed (the runner passes its own).
    """
    outfmt = output_format(outfmt)
    if tool == "ais_bench":
        command = [python, "-m", "ais_bench", "--model", str(om)]
        names = {"dirname": "--output_dirname", "bs": "--batchsize", "warmup": "--warmup_count"}
    elif tool == "msit":
        command = ["msit", "benchmark", "--om-model", str(om)]
        names = {"dirname": "--output-dirname", "bs": "--batch-size", "warmup": "--warmup-count"}
    else:
        raise UserError(f"benchmark tool {tool!r} is not known: use ais_bench or msit")
    command += ["--input", str(input_dir), "--output", str(output_dir)]
    if output_dirname is not None:
        command += [names["dirname"], str(output_dirname)]
    command += ["--outfmt", outfmt, names["bs"], str(int(batch_size))]
    if loop is not None:
        command += ["--loop", str(int(loop))]
    if warmup is not None:
        command += [names["warmup"], str(int(warmup))]
    if device is not None:
        command += ["--device", str(int(device))]
    return command


def amct_cli_command(onnx, save_path, data_dir, input_name: str, batch_size: int, batch_num: int,
                     input_chw=(3, 32, 32)) -> list[str]:
    """The ``amct_onnx calibration`` command line equivalent to `amct_plan` (not run here).

    Option names are those of the AMCT command-line guide (--model, --save_path, --input_shape,
    --data_dir, --data_types, --batch_num). Not verified: how the CLI groups the .bin files of
    `data_dir` into batches (we assume one file holds one batch of `input_shape`), so the
    workflow runs the Python API (`quantize_int8`) and this is for people reproducing by hand.
    """
    c, h, w = (int(x) for x in input_chw)
    return [
        "amct_onnx", "calibration",
        f"--model={onnx}",
        f"--save_path={save_path}",
        f"--input_shape={input_name}:{int(batch_size)},{c},{h},{w}",
        f"--data_dir={data_dir}",
        "--data_types=float32",
        f"--batch_num={int(batch_num)}",
    ]

