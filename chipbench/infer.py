"""Running a loaded model over a data set, and scoring its outputs."""

from __future__ import annotations

import numpy as np

from chipbench import host, metrics, provenance
from chipbench.backends import Runner
from chipbench.errors import UserError


def score(metric: str, outputs: np.ndarray, labels: np.ndarray, settings: dict, seed: int) -> dict:
    """Accuracy record fields for `metric` ("pair_top1" or "top1")."""
    if metric == "pair_top1":
        n_images = len(outputs) // 2
        permutation = metrics.pair_permutation(n_images, settings["pairs_per_batch"], seed)
        details = metrics.pair_matching_top1(outputs, permutation, settings["temperature"])
        return {"metric": metric, "accuracy": details.pop("accuracy"), "n_images": n_images,
                "details": details}
    if metric == "top1":
        details = metrics.top1(outputs, labels)
        return {"metric": metric, "accuracy": details.pop("accuracy"), "n_images": len(labels),
                "details": details}
    raise UserError(f"unknown metric {metric!r}: use pair_top1 or top1")


def base_record(
    model: str,
    chip: str,
    precision: str,
    weights: dict,
    backend,
    runner: Runner,
    config: dict | None = None,
    onnx=None,
    threads: int | None = None,
    protocol: dict | None = None,
) -> dict:
    """Keys every result record carries (docs/DESIGN.md, "Result records").

    ``config`` (the run's config), ``onnx`` (the model.onnx the artefact was compiled from),
    ``threads`` (the job's threads) and ``protocol`` (the timing protocol of a throughput
    run; None for an accuracy run) go into ``provenance`` (chipbench.provenance.collect).
    """
    return {
        "model": model,
        "chip": chip,
        "precision": precision,
        "status": "ok",
        "weights": weights,
        "host": host.describe(),
        "backend": {
            "name": backend.name,
            "version": backend.version(),
            "settings": runner.settings(),
        },
        "provenance": provenance.collect(
            config=config, onnx=onnx, threads=threads, protocol=protocol, runner=runner
        ),
    }
