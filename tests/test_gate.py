"""The accuracy gate on hand-checkable outputs, and on a deliberately broken model."""

from __future__ import annotations

import numpy as np
import pytest

from chipbench import gate, infer, metrics
from chipbench.errors import UserError


def test_row_cosines_by_hand():
    reference = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0], [3.0, 4.0]])
    outputs = np.array([[2.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    cosines = gate.row_cosines(reference, outputs)
    np.testing.assert_allclose(cosines, [1.0, np.sqrt(0.5), 1.0, 0.0])


def test_agreement_of_a_classifier():
    reference = np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0], [1.0, 3.0, 0.0], [0.0, 0.0, 1.0]])
    outputs = reference.copy()
    outputs[3] = [1.0, 0.0, 0.0]  # one image changes class and points elsewhere
    result = gate.agreement(reference, outputs, "top1")
    assert result["top1_agreement"] == 75.0
    assert result["min_cosine"] == 0.0
    assert result["mean_cosine"] == pytest.approx(0.75)
    assert "top1_agreement" not in gate.agreement(reference, outputs, "pair_top1")


def test_shape_mismatch_is_a_user_error():
    with pytest.raises(UserError, match=r"^outputs of shape \(2, 3\) cannot be compared"):
        gate.row_cosines(np.zeros((3, 3)), np.zeros((2, 3)))


def test_verdict_threshold_is_relative_to_the_reference():
    assert gate.verdict(89.0, 89.26, 0.99)["passed"]
    failing = gate.verdict(88.0, 89.26, 0.99)
    assert not failing["passed"]
    assert failing["required_accuracy"] == pytest.approx(88.3674)
    assert gate.verdict(0.0, 0.0, 0.99)["relative_accuracy"] is None


def test_a_model_with_scaled_weights_fails_the_gate():
    """A linear classifier that is right on every image, then broken by scaling its weights."""
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((16, 10))
    features = rng.standard_normal((500, 16))
    labels = (features @ weights).argmax(axis=1)  # the reference is right everywhere
    reference = features @ weights
    broken_weights = weights * np.linspace(-1.0, 1.0, 10)  # per-class scaling flips classes
    broken = features @ broken_weights
    reference_accuracy = metrics.top1(reference, labels)["accuracy"]
    broken_accuracy = metrics.top1(broken, labels)["accuracy"]
    assert reference_accuracy == 100.0 and broken_accuracy < 60.0
    assert not gate.verdict(broken_accuracy, reference_accuracy, 0.99)["passed"]
    assert gate.agreement(reference, broken, "top1")["top1_agreement"] == broken_accuracy
    # a mildly perturbed copy still passes
    noisy = reference + 1e-6 * rng.standard_normal(reference.shape)
    assert gate.verdict(metrics.top1(noisy, labels)["accuracy"], reference_accuracy, 0.99)["passed"]


def test_runs_compare_on_the_first_images_the_shorter_one_scored():
    """Four images, right on images 0 and 1 only: on the first two the run scores 100 %."""
    labels = np.array([0, 1, 2, 0])
    outputs = np.eye(3)[[0, 1, 0, 1]]  # argmax 0, 1, 0, 1
    full = {"chip": "cpu", "metric": "top1", "accuracy": 50.0, "n_images": 4}
    cut, cut_outputs = infer.on_first_images(full, outputs, 2, labels, {}, 0)
    assert cut["accuracy"] == 100.0 and cut["n_images"] == 2 and cut["chip"] == "cpu"
    np.testing.assert_array_equal(cut_outputs, outputs[:2])
    assert infer.on_first_images(full, outputs, 4, labels, {}, 0) == (full, outputs)


def test_pair_top1_runs_keep_both_views_of_the_first_images():
    """pair_top1 outputs hold image i's two views in rows 2i and 2i + 1; images 2 and 3 swap
    views with each other, so only the first two images match their views for sure."""
    embeddings = np.eye(4)[[0, 0, 1, 1, 2, 3, 3, 2]]
    record = {"metric": "pair_top1", "accuracy": 0.0, "n_images": 4}
    settings = {"pair_top1": {"pairs_per_batch": 2, "temperature": 0.07}}
    cut, cut_outputs = infer.on_first_images(record, embeddings, 2, np.zeros(4, int), settings, 0)
    np.testing.assert_array_equal(cut_outputs, embeddings[:4])
    assert cut["n_images"] == 2 and cut["accuracy"] == 100.0
