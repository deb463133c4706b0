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


def on_first_images(record: dict, outputs: np.ndarray, n_images: int, labels: np.ndarray,
                    settings: dict, seed: int) -> tuple[dict, np.ndarray]:
    """An accuracy record and its outputs cut to the first `n_images` test images, rescored.

    Every accuracy run scores a prefix of the test set (accuracy_images), so two runs compare
    on the shorter one's images. `outputs` has rows in proportion to the images (pair_top1:
    two views each); a record already on `n_images` images comes back unchanged.
    """
    if record["n_images"] == n_images:
        return record, outputs
    outputs = outputs[:len(outputs) * n_images // record["n_images"]]
    metric = record["metric"]
    rescored = score(metric, outputs, labels[:n_images], settings.get(metric, {}), seed)
    return dict(record, **rescored), outputs


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
