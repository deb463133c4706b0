"""The accuracy gate: every (chip, precision) against the FP32 reference, MLPerf style.

A result passes when its accuracy is at least `min_relative_accuracy` (default 0.99) of the
reference's accuracy on the same inputs. Agreement of the raw outputs is reported beside it:
cosine similarity of each output row with the reference's (mean and minimum) and, for
classifiers, the share of images whose top-1 class matches the reference's.
"""

from __future__ import annotations

import numpy as np

from chipbench.errors import UserError


def row_cosines(reference: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """Cosine similarity of each output row with the reference row (float64)."""
    if reference.shape != outputs.shape:
        raise UserError(
            f"outputs of shape {outputs.shape} cannot be compared with reference outputs of "
            f"shape {reference.shape}: rerun both on the same test set"
        )
    a = reference.reshape(len(reference), -1).astype(np.float64)
    b = outputs.reshape(len(outputs), -1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosines = np.einsum("ij,ij->i", a, b) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    zero_a, zero_b = ~a.any(axis=1), ~b.any(axis=1)
    cosines[zero_a & zero_b] = 1.0  # two all-zero rows agree
    cosines[zero_a ^ zero_b] = 0.0  # a zero row against a non-zero one does not
    return np.nan_to_num(cosines, nan=-1.0)  # non-finite outputs count as disagreement


def agreement(reference: np.ndarray, outputs: np.ndarray, metric: str) -> dict:
    """How closely `outputs` follow the reference outputs for the same inputs."""
    cosines = row_cosines(reference, outputs)
    result = {
        "mean_cosine": float(cosines.mean()),
        "min_cosine": float(cosines.min()),
        "n_outputs": int(len(cosines)),
    }
    if metric == "top1":
        same = reference.argmax(axis=1) == outputs.argmax(axis=1)
        result["top1_agreement"] = float(100.0 * same.mean())
    return result


def verdict(accuracy: float, reference_accuracy: float, min_relative_accuracy: float) -> dict:
    """Pass when accuracy ≥ min_relative_accuracy × reference accuracy."""
    required = min_relative_accuracy * reference_accuracy
    return {
        "passed": bool(accuracy >= required),
        "accuracy": accuracy,
        "reference_accuracy": reference_accuracy,
        "required_accuracy": required,
        "relative_accuracy": accuracy / reference_accuracy if reference_accuracy > 0 else None,
        "min_relative_accuracy": min_relative_accuracy,
    }
