"""Accuracy metrics of the two reports.

* ``pair_top1`` - the SimCLR report's "accuracy1": contrastive pair-matching top-1.
  Every test image has two augmented views; embeddings row ``2i`` and ``2i + 1`` are the views
  of image ``i``. The images are split into batches of P pairs (128 in the report, i.e. 256
  vectors). Within a batch the 2P embeddings (first views of the P images, then their second
  views) are L2-normalised and compared by cosine similarity; each row's self-similarity is
  dropped, its partner view is the positive and the other 2P - 2 vectors are the negatives,
  and the row is correct when the positive logit (cosine / temperature) is at least as high as
  every negative logit. Batch top-1 is the fraction of correct rows; the result is the mean
  over batches, in percent. Chance is 100 / (2P - 1) %. CIFAR labels are never used.

  How this differs from the original report: the original draws the 128 pairs of every batch
  at random *with replacement* and *unseeded*, so the same image can appear twice in a batch
  (its views then count as negatives of each other) and its figure (65.39 on 310, 65.55 on
  310P) cannot be reproduced. Here the batches come from a *seeded permutation without
  replacement* (:func:`pair_permutation`): every image is used at most once, the
  ``n_images % pairs_per_batch`` leftover images are not used, and the figure is
  deterministic for a given seed - two chips given the same embeddings get the same number,
  so differences between chips are differences between their outputs.

  Ties: the original takes ``argmax`` over ``[positive, negatives...]`` and counts index 0 as
  correct; ``argmax`` returns the first maximum, so a negative that *ties* with the positive
  still counts as correct. This module keeps that rule (``positive >= max(negatives)``).

* ``top1`` - classification top-1 of the SimCLRv2 report: argmax of the logits against the
  CIFAR-10 labels, over every image.

Rows containing NaN never count as correct (a chip that overflows in fp16 must lose accuracy,
not gain it from ``argmax`` picking the first NaN); their number is reported.
"""

from __future__ import annotations

import numpy as np

from chipbench.errors import UserError

__all__ = [
    "pair_permutation",
    "pair_matching_predictions",
    "pair_matching_top1",
    "predict",
    "top1",
]

#: F.normalize's epsilon: an all-zero embedding stays zero instead of becoming NaN.
NORM_EPS = 1e-12


def pair_permutation(n_images: int, pairs_per_batch: int, seed: int) -> np.ndarray:
    """Image indices of every scoring batch: int64 (n_images // pairs_per_batch, pairs_per_batch).

    A permutation of ``range(n_images)`` drawn from ``numpy.random.default_rng(seed)``, cut
    into full batches; the ``n_images % pairs_per_batch`` leftover images are not used
    (10,000 images at 128 pairs per batch give 78 batches and leave 16 out).
    """
    n_images = int(n_images)
    pairs_per_batch = int(pairs_per_batch)
    if pairs_per_batch < 2:
        raise UserError(
            f"pairs_per_batch is {pairs_per_batch}: pair matching needs at least 2 pairs per "
            "batch; set metrics.pair_top1.pairs_per_batch ≥ 2"
        )
    if pairs_per_batch > n_images:
        raise UserError(
            f"pairs_per_batch is {pairs_per_batch} but there are only {n_images} images: "
            f"set metrics.pair_top1.pairs_per_batch ≤ {n_images}"
        )
    n_batches = n_images // pairs_per_batch
    order = np.random.default_rng(seed).permutation(n_images)
    return order[: n_batches * pairs_per_batch].reshape(n_batches, pairs_per_batch).astype(np.int64)


def _check_pair_inputs(embeddings, permutation, temperature) -> tuple[np.ndarray, np.ndarray]:
    embeddings = np.asarray(embeddings)
    permutation = np.asarray(permutation)
    if embeddings.ndim != 2 or len(embeddings) == 0 or len(embeddings) % 2:
        raise UserError(
            f"pair matching needs embeddings of shape (2 × images, dim) with views of image i "
            f"in rows 2i and 2i+1, got shape {embeddings.shape}: the model must output one "
            "vector per input"
        )
    if permutation.ndim != 2 or permutation.shape[0] == 0 or permutation.shape[1] < 2:
        raise UserError(
            f"pair permutation has shape {permutation.shape}: build it with "
            "metrics.pair_permutation (at least one batch of ≥ 2 pairs)"
        )
    if not np.issubdtype(permutation.dtype, np.integer):
        raise UserError(f"pair permutation has dtype {permutation.dtype}: it must hold integer image indices")
    n_images = len(embeddings) // 2
    if permutation.min() < 0 or permutation.max() >= n_images:
        raise UserError(
            f"pair permutation indexes images up to {int(permutation.max())} but the embeddings "
            f"hold {n_images} images: build the permutation for {n_images} images"
        )
    if not temperature > 0:
        raise UserError(
            f"temperature is {temperature}: set metrics.pair_top1.temperature > 0"
        )
    return embeddings, permutation


def _batch_correct(vectors: np.ndarray, temperature: float) -> np.ndarray:
    """Per-row correctness for one batch of 2P vectors (first views, then second views)."""
    rows = len(vectors)
    half = rows // 2
    vectors = vectors.astype(np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.maximum(norms, NORM_EPS)
    logits = (unit @ unit.T) / temperature
    index = np.arange(rows)
    partner = (index + half) % rows
    positive = logits[index, partner].copy()
    # Drop the diagonal and the positive: what is left are the 2P - 2 negatives of each row.
    logits[index, index] = -np.inf
    logits[index, partner] = -np.inf
    hardest_negative = logits.max(axis=1)
    # NaN anywhere in a row makes the comparison False (and max() propagates NaN).
    return positive >= hardest_negative


def pair_matching_predictions(
    embeddings: np.ndarray, permutation: np.ndarray, temperature: float = 0.07
) -> np.ndarray:
    """Per-row correctness: bool (n_batches, 2 × pairs_per_batch).

    Row ``r < P`` of batch ``b`` is the first view of image ``permutation[b, r]``; row
    ``P + r`` is its second view. Two runs scored with the same permutation can be compared
    row by row (e.g. how often an fp16 chip disagrees with the fp32 reference).
    """
    embeddings, permutation = _check_pair_inputs(embeddings, permutation, temperature)
    correct = np.empty((permutation.shape[0], 2 * permutation.shape[1]), dtype=bool)
    for b, images in enumerate(permutation):
        vectors = np.concatenate([embeddings[2 * images], embeddings[2 * images + 1]])
        correct[b] = _batch_correct(vectors, float(temperature))
    return correct


def pair_matching_top1(
    embeddings: np.ndarray, permutation: np.ndarray, temperature: float = 0.07
) -> dict:
    """The SimCLR report's "accuracy1", reproducibly (see the module docstring).

    Returns ``accuracy`` (percent, the mean of the per-batch top-1), ``per_batch`` (percent per
    batch), ``n_batches``, ``pairs_per_batch``, ``temperature``, ``chance`` (100 / (2P - 1)),
    ``correct`` and ``rows`` (counts over all batches) and ``nonfinite_rows`` (rows whose
    embedding holds NaN or infinity; those never count as correct). Plain Python types, so the
    dict goes straight into a JSON record.
    """
    correct = pair_matching_predictions(embeddings, permutation, temperature)
    embeddings = np.asarray(embeddings)
    used = np.asarray(permutation).reshape(-1)
    used_rows = np.concatenate([2 * used, 2 * used + 1])
    nonfinite = int((~np.isfinite(embeddings[used_rows])).any(axis=1).sum())
    per_batch = correct.mean(axis=1) * 100.0
    pairs = int(np.asarray(permutation).shape[1])
    return {
        "accuracy": float(per_batch.mean()),
        "per_batch": [float(x) for x in per_batch],
        "n_batches": int(correct.shape[0]),
        "pairs_per_batch": pairs,
        "temperature": float(temperature),
        "chance": 100.0 / (2 * pairs - 1),
        "correct": int(correct.sum()),
        "rows": int(correct.size),
        "nonfinite_rows": nonfinite,
    }


def predict(logits: np.ndarray) -> np.ndarray:
    """Predicted class per row: int64 argmax of the logits; -1 for a row holding NaN."""
    logits = np.asarray(logits)
    if logits.ndim != 2 or logits.shape[1] == 0:
        raise UserError(
            f"classification needs logits of shape (images, classes), got shape {logits.shape}: "
            "the model must output one score per class"
        )
    predictions = logits.argmax(axis=1).astype(np.int64)
    predictions[np.isnan(logits).any(axis=1)] = -1
    return predictions


def top1(logits: np.ndarray, labels: np.ndarray) -> dict:
    """Classification top-1 over every image: ``accuracy`` (percent), ``correct``, ``total``,
    ``nonfinite_rows`` (rows holding NaN: counted as wrong)."""
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    predictions = predict(logits)
    if labels.ndim != 1 or len(labels) != len(logits):
        raise UserError(
            f"{len(logits)} rows of logits but labels of shape {labels.shape}: score the outputs "
            "of exactly the labelled images, one label per image"
        )
    if len(labels) == 0:
        raise UserError("no images to score: the test set is empty; set dataset.test_images ≥ 1")
    n_classes = logits.shape[1]
    if labels.min() < 0 or labels.max() >= n_classes:
        raise UserError(
            f"labels range over {int(labels.min())}..{int(labels.max())} but the model outputs "
            f"{n_classes} classes: use a model with one output per class (10 for CIFAR-10)"
        )
    correct = int((predictions == labels).sum())
    return {
        "accuracy": 100.0 * correct / len(labels),
        "correct": correct,
        "total": int(len(labels)),
        "nonfinite_rows": int(np.isnan(logits).any(axis=1).sum()),
    }
