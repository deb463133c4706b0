"""PyTorch eager on the host CPU: the FP32 reference every other result is gated against.

The backend runs the PyTorch model itself, not the ONNX file, so compile rebuilds it from
what the export rule recorded: the architecture (the model entry's ``arch``, passed in the
``model`` keyword with the other `model_keys`) and the weights (``weights.json`` beside
``model.onnx``: seeded random weights, a configured checkpoint or the one trained by the
workflow, whose sha256 must still match). Compile then checks that the rebuilt model
reproduces ``model.onnx`` under ONNX Runtime, so the reference is the very model the other
chips run, and stores its state_dict (``model.pt``) for ``load``. A bring-your-own ONNX
model has no PyTorch source and cannot run here (UserError).

Inference: ``torch.inference_mode()``, float32, NCHW, ``torch.set_num_threads(threads)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from chipbench.backends.base import Availability, Backend, Runner
from chipbench.errors import UserError
from chipbench.provenance import file_sha256

STATE_DICT_FILE = "model.pt"
WEIGHTS_FILE = "weights.json"
#: Largest |torch − onnxruntime| / max |torch| accepted between the rebuilt model and the ONNX.
MAX_REL_ERROR = 1e-4
CHECK_IMAGES = 4


def _threads(torch, threads: int) -> dict:
    torch.set_num_threads(int(threads))
    try:  # only possible before the first parallel region of the process
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    return {"intra_op_threads": torch.get_num_threads(),
            "inter_op_threads": torch.get_num_interop_threads()}


def read_weights(onnx_path: Path) -> dict:
    path = Path(onnx_path).parent / WEIGHTS_FILE
    if not path.is_file():
        raise UserError(
            f"{path} is missing: the PyTorch backend rebuilds the model from the export rule's "
            "weights record; rerun export_onnx"
        )
    return json.loads(path.read_text())


def rebuild(onnx_path: Path, model: dict | None):
    """(nn.Module in eval mode, arch, weights record) of the exported model at `onnx_path`."""
    from chipbench import models

    weights = read_weights(onnx_path)
    if weights.get("source") == "onnx" or (model or {}).get("onnx"):
        raise UserError(
            f"{onnx_path} is a bring-your-own ONNX model: PyTorch eager needs the PyTorch "
            "model, so it cannot run here; leave the pytorch chip out of this model's chips"
        )
    arch = (model or {}).get("arch")
    if not arch:
        raise UserError(
            "the PyTorch backend needs the model's architecture: the compile rule must pass "
            "the model entry's model_keys (model=...)"
        )
    if weights.get("source") == "random":
        return models.build(arch, None, int(weights["seed"])), arch, weights
    if weights.get("source") in ("checkpoint", "trained"):
        # a configured checkpoint, or the one trained here (results/models/<model>/trained.pth)
        checkpoint = Path((model or {}).get("checkpoint") or weights["path"])
        if not checkpoint.is_file():
            raise UserError(
                f"checkpoint {checkpoint} does not exist: fix the model's checkpoint path"
                if weights["source"] == "checkpoint" else
                f"trained checkpoint {checkpoint} is missing: run the workflow again to retrain it"
            )
        sha256 = file_sha256(checkpoint)
        if sha256 != weights.get("sha256"):
            raise UserError(
                f"checkpoint {checkpoint} changed since model.onnx was exported (sha256 "
                f"{sha256[:12]}… ≠ {str(weights.get('sha256'))[:12]}…): rerun export_onnx"
            )
        return models.build(arch, checkpoint, 0), arch, weights
    raise UserError(f"{WEIGHTS_FILE} beside {onnx_path} has an unknown source "
                    f"{weights.get('source')!r}: rerun export_onnx")


def check_against_onnx(module, onnx_path: Path) -> dict:
    """The rebuilt model must reproduce the ONNX model (same check as the export rule)."""
    from chipbench import export

    inputs = np.random.default_rng(0).standard_normal((CHECK_IMAGES, 3, 32, 32)).astype(np.float32)
    check = export.compare_with_torch(module, onnx_path, inputs)
    if not check["max_rel_error"] <= MAX_REL_ERROR:
        raise UserError(
            f"the rebuilt PyTorch model differs from {onnx_path} (max relative error "
            f"{check['max_rel_error']:.2e} > {MAX_REL_ERROR:g}): rerun export_onnx"
        )
    return {k: check[k] for k in ("max_abs_error", "max_rel_error", "rel_error_definition",
                                  "n_inputs")}


class TorchRunner(Runner):
    def __init__(self, module, threads: int):
        import torch

        self._torch = torch
        self._module = module.eval()
        self._settings = {
            "mode": "eager",
            "dtype": "float32",
            "memory_format": "contiguous (NCHW)",
            "grad": "torch.inference_mode()",
            **_threads(torch, threads),
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "mkldnn": bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "input": "wrapped without copy (copied only when the array is read-only)",
        }

    def run(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        if not batch.flags.writeable:  # torch.from_numpy wants writable memory
            batch = batch.copy()
        with torch.inference_mode():
            return self._module(torch.from_numpy(batch)).numpy()

    def settings(self) -> dict:
        return dict(self._settings)


class PyTorchBackend(Backend):
    name = "pytorch"
    precisions = ("fp32",)
    static_batch = False
    #: compile rebuilds the network from the architecture and the weights (seeded or a
    #: checkpoint), and refuses a bring-your-own ONNX model, which has no PyTorch source.
    model_keys = ("arch", "checkpoint", "onnx")

    def availability(self, chip: dict) -> Availability:
        try:
            import torch  # noqa: F401
        except ImportError as error:
            return Availability(False, f"torch is not importable ({error})")
        return Availability(True)

    def version(self) -> str:
        import torch

        return torch.__version__

    def compile(self, onnx_path, out_dir, precision, batch_size, chip, calibration,
                model: dict | None = None):
        import torch

        if precision != "fp32":
            raise UserError(
                f"the PyTorch eager reference runs fp32 only, not {precision!r}: fix "
                "chips.<name>.precisions"
            )
        onnx_path, out_dir = Path(onnx_path), Path(out_dir)
        module, arch, weights = rebuild(onnx_path, model)
        check = check_against_onnx(module, onnx_path)
        out_dir.mkdir(parents=True, exist_ok=True)
        torch.save(module.state_dict(), out_dir / STATE_DICT_FILE)
        return {"state_dict": STATE_DICT_FILE, "arch": arch, "precision": precision,
                "weights": weights, "onnx_check": check}

    def load(self, compiled_dir, manifest, chip, threads):
        import torch

        from chipbench import models

        if manifest["arch"] not in models.ARCHITECTURES:
            raise UserError(f"unknown architecture {manifest['arch']!r} in the compiled manifest: "
                            "recompile")
        module = models.ARCHITECTURES[manifest["arch"]]()
        state = torch.load(Path(compiled_dir) / manifest["state_dict"], map_location="cpu",
                           weights_only=True)
        module.load_state_dict(state, strict=True)
        settings = (chip or {}).get("settings") or {}
        return TorchRunner(module, int(settings.get("threads") or threads))


BACKEND = PyTorchBackend()
