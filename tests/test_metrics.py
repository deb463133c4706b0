"""chipbench.metrics: the SimCLR pair-matching top-1 and classification top-1."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chipbench import metrics
from chipbench.errors import UserError


def naive_pair_correct(embeddings, permutation, temperature):
    """The report's procedure written out row by row: positive first, argmax == 0."""
    results = []
    for images in permutation:
        vectors = [embeddings[2 * i] for i in images] + [embeddings[2 * i + 1] for i in images]
        vectors = [np.asarray(v, dtype=np.float64) / max(np.linalg.norm(v), 1e-12) for v in vectors]
        rows = len(vectors)
        row_results = []
        for r in range(rows):
            partner = (r + rows // 2) % rows
            logits = [vectors[r] @ vectors[partner] / temperature]
            logits += [vectors[r] @ vectors[j] / temperature for j in range(rows) if j not in (r, partner)]
            row_results.append(int(np.argmax(logits)) == 0)
        results.append(row_results)
    return np.array(results)


def views_from(first, second):
    """Interleave two (N, D) arrays into the (2N, D) layout: rows 2i and 2i+1 = image i."""
    out = np.empty((2 * len(first), first.shape[1]), dtype=np.float32)
    out[0::2] = first
    out[1::2] = second
    return out


# ------------------------------------------------------------------------- pair_permutation


def test_permutation_of_the_test_set_has_78_batches_of_128():
    perm = metrics.pair_permutation(10_000, 128, seed=0)
    assert perm.shape == (78, 128)
    assert perm.dtype == np.int64
    flat = perm.ravel()
    assert len(np.unique(flat)) == 78 * 128  # no replacement
    assert flat.min() >= 0 and flat.max() < 10_000
    assert 10_000 - len(flat) == 16  # leftovers unused


def test_permutation_is_seeded():
    a = metrics.pair_permutation(1000, 10, seed=3)
    b = metrics.pair_permutation(1000, 10, seed=3)
    c = metrics.pair_permutation(1000, 10, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_permutation_is_not_sorted():
    perm = metrics.pair_permutation(1000, 10, seed=0)
    assert not np.array_equal(perm.ravel(), np.arange(1000))


def test_permutation_with_exactly_one_batch_uses_every_image():
    perm = metrics.pair_permutation(8, 8, seed=0)
    assert perm.shape == (1, 8)
    assert sorted(perm[0]) == list(range(8))


@pytest.mark.parametrize("pairs", [0, 1, -3])
def test_permutation_rejects_fewer_than_two_pairs(pairs):
    with pytest.raises(UserError, match="pairs_per_batch") as error:
        metrics.pair_permutation(100, pairs, seed=0)
    assert "\n" not in str(error.value)


def test_permutation_rejects_more_pairs_than_images():
    with pytest.raises(UserError, match="only 10 images") as error:
        metrics.pair_permutation(10, 11, seed=0)
    assert "\n" not in str(error.value)


# ----------------------------------------------------------------------- pair_matching_top1


def test_hand_checked_batch_of_two_pairs():
    # rows of the batch: a1, b1, a2, b2 (first views, then second views)
    a1, a2 = [1.0, 0.0], [1.0, 0.0]
    b1, b2 = [0.0, 1.0], [1.0, -0.1]
    embeddings = np.array([a1, a2, b1, b2], dtype=np.float32)
    permutation = np.array([[0, 1]])
    correct = metrics.pair_matching_predictions(embeddings, permutation, 0.07)
    # a1: positive a2 cos 1 beats b1 (0), b2 (0.995) -> right
    # b1: positive b2 cos -0.0995 loses to a1, a2 (0) -> wrong
    # a2: positive a1 cos 1 -> right
    # b2: positive b1 cos -0.0995 loses to a1, a2 (0.995) -> wrong
    np.testing.assert_array_equal(correct, [[True, False, True, False]])
    result = metrics.pair_matching_top1(embeddings, permutation, 0.07)
    assert result["accuracy"] == 50.0
    assert result["per_batch"] == [50.0]
    assert result["n_batches"] == 1
    assert result["pairs_per_batch"] == 2
    assert result["temperature"] == 0.07
    assert result["chance"] == pytest.approx(100 / 3)
    assert result["correct"] == 2 and result["rows"] == 4


def test_row_order_is_first_views_then_second_views():
    # image 0's views agree, image 1's views are opposite: rows 0 and 2 right, 1 and 3 wrong
    embeddings = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, -1, 0]], dtype=np.float32)
    correct = metrics.pair_matching_predictions(embeddings, np.array([[0, 1]]), 0.07)
    np.testing.assert_array_equal(correct, [[True, False, True, False]])
    # the same images in the other order: rows follow the permutation
    correct = metrics.pair_matching_predictions(embeddings, np.array([[1, 0]]), 0.07)
    np.testing.assert_array_equal(correct, [[False, True, False, True]])


def test_identical_views_of_distinct_images_score_100():
    rng = np.random.default_rng(0)
    first = np.eye(16, dtype=np.float32)
    embeddings = views_from(first, first * rng.uniform(0.5, 2.0, size=(16, 1)))
    result = metrics.pair_matching_top1(embeddings, metrics.pair_permutation(16, 4, 0), 0.07)
    assert result["accuracy"] == 100.0
    assert result["per_batch"] == [100.0] * 4


def test_ties_count_as_correct():
    # every vector the same: the positive ties with every negative; argmax picks index 0
    embeddings = np.ones((8, 5), dtype=np.float32)
    result = metrics.pair_matching_top1(embeddings, np.array([[0, 1, 2, 3]]), 0.07)
    assert result["accuracy"] == 100.0


def test_zero_embeddings_do_not_become_nan():
    embeddings = np.zeros((8, 5), dtype=np.float32)
    result = metrics.pair_matching_top1(embeddings, np.array([[0, 1, 2, 3]]), 0.07)
    assert result["accuracy"] == 100.0  # all cosines 0: ties, as with F.normalize's eps
    assert result["nonfinite_rows"] == 0


def test_matches_the_row_by_row_procedure_on_random_embeddings():
    rng = np.random.default_rng(1)
    n_images, dim = 100, 8
    first = rng.normal(size=(n_images, dim))
    second = first + rng.normal(scale=0.9, size=(n_images, dim))
    embeddings = views_from(first, second)
    permutation = metrics.pair_permutation(n_images, 12, seed=5)
    expected = naive_pair_correct(embeddings, permutation, 0.07)
    got = metrics.pair_matching_predictions(embeddings, permutation, 0.07)
    np.testing.assert_array_equal(got, expected)
    result = metrics.pair_matching_top1(embeddings, permutation, 0.07)
    assert result["per_batch"] == pytest.approx(list(expected.mean(axis=1) * 100))
    assert result["accuracy"] == pytest.approx(expected.mean(axis=1).mean() * 100)
    assert 0 < result["accuracy"] < 100  # a test that can fail either way


def test_accuracy_is_the_mean_of_the_batches():
    rng = np.random.default_rng(2)
    embeddings = views_from(rng.normal(size=(40, 4)), rng.normal(size=(40, 4)))
    result = metrics.pair_matching_top1(embeddings, metrics.pair_permutation(40, 8, 0), 0.07)
    assert len(result["per_batch"]) == result["n_batches"] == 5
    assert result["accuracy"] == pytest.approx(np.mean(result["per_batch"]))
    assert result["accuracy"] == pytest.approx(100 * result["correct"] / result["rows"])


def test_random_embeddings_score_near_chance():
    rng = np.random.default_rng(3)
    embeddings = rng.normal(size=(2 * 2560, 64)).astype(np.float32)
    result = metrics.pair_matching_top1(embeddings, metrics.pair_permutation(2560, 128, 0), 0.07)
    assert result["chance"] == pytest.approx(100 / 255)
    assert result["accuracy"] < 5 * result["chance"]


def test_result_does_not_depend_on_scale_or_temperature():
    rng = np.random.default_rng(4)
    first = rng.normal(size=(64, 6))
    embeddings = views_from(first, first + rng.normal(scale=1.0, size=(64, 6)))
    permutation = metrics.pair_permutation(64, 16, 0)
    base = metrics.pair_matching_top1(embeddings, permutation, 0.07)["accuracy"]
    scaled = embeddings * rng.uniform(0.1, 10, size=(128, 1))
    assert metrics.pair_matching_top1(scaled, permutation, 0.07)["accuracy"] == base
    assert metrics.pair_matching_top1(embeddings, permutation, 0.5)["accuracy"] == base


def test_unused_images_do_not_change_the_result():
    rng = np.random.default_rng(5)
    embeddings = rng.normal(size=(2 * 21, 4))
    permutation = metrics.pair_permutation(21, 5, 0)  # 4 batches, 1 image left over
    left_over = sorted(set(range(21)) - set(permutation.ravel()))
    assert len(left_over) == 1
    changed = embeddings.copy()
    changed[2 * left_over[0] : 2 * left_over[0] + 2] = 1e6
    assert (metrics.pair_matching_top1(changed, permutation)["accuracy"]
            == metrics.pair_matching_top1(embeddings, permutation)["accuracy"])


def test_same_seed_same_figure():
    rng = np.random.default_rng(6)
    embeddings = rng.normal(size=(2 * 300, 16))
    a = metrics.pair_matching_top1(embeddings, metrics.pair_permutation(300, 32, 7))
    b = metrics.pair_matching_top1(embeddings, metrics.pair_permutation(300, 32, 7))
    assert a == b


def test_nan_rows_are_wrong_and_counted():
    embeddings = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32)
    permutation = np.array([[0, 1]])
    assert metrics.pair_matching_top1(embeddings, permutation)["accuracy"] == 100.0
    embeddings[2] = np.nan
    result = metrics.pair_matching_top1(embeddings, permutation)
    assert result["nonfinite_rows"] == 1
    correct = metrics.pair_matching_predictions(embeddings, permutation)
    # every row sees the NaN either as its positive or among its negatives
    assert not correct.any()
    assert result["accuracy"] == 0.0


def test_result_is_plain_json():
    embeddings = np.random.default_rng(7).normal(size=(40, 3)).astype(np.float32)
    result = metrics.pair_matching_top1(embeddings, metrics.pair_permutation(20, 4, 0))
    assert json.loads(json.dumps(result)) == result


def test_pair_matching_rejects_bad_shapes():
    perm = np.array([[0, 1]])
    with pytest.raises(UserError, match="shape"):
        metrics.pair_matching_top1(np.zeros((5, 3)), perm)  # odd number of rows
    with pytest.raises(UserError, match="shape"):
        metrics.pair_matching_top1(np.zeros(6), perm)
    with pytest.raises(UserError, match="indexes images up to 2"):
        metrics.pair_matching_top1(np.zeros((4, 3)), np.array([[0, 2]]))
    with pytest.raises(UserError, match="permutation has shape"):
        metrics.pair_matching_top1(np.zeros((4, 3)), np.array([0, 1]))
    with pytest.raises(UserError, match="temperature"):
        metrics.pair_matching_top1(np.zeros((4, 3)), perm, temperature=0)


# ------------------------------------------------------------------------------------- top1


def test_top1_hand_checked():
    logits = np.array([[0.1, 0.9, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 5.0], [1.0, 3.0, 2.0]])
    labels = np.array([1, 0, 1, 2])
    np.testing.assert_array_equal(metrics.predict(logits), [1, 0, 2, 1])
    result = metrics.top1(logits, labels)
    assert result == {"accuracy": 50.0, "correct": 2, "total": 4, "nonfinite_rows": 0}
    assert json.loads(json.dumps(result)) == result


def test_top1_ties_take_the_first_class():
    logits = np.array([[1.0, 1.0], [0.0, 0.0]])
    np.testing.assert_array_equal(metrics.predict(logits), [0, 0])
    assert metrics.top1(logits, np.array([0, 1]))["accuracy"] == 50.0


def test_top1_counts_every_image():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(1001, 10))
    labels = rng.integers(0, 10, size=1001)
    result = metrics.top1(logits, labels)
    assert result["total"] == 1001
    assert result["correct"] == int((logits.argmax(1) == labels).sum())
    assert result["accuracy"] == pytest.approx(100 * result["correct"] / 1001)


def test_top1_nan_rows_are_wrong():
    logits = np.array([[np.nan, 0.0], [1.0, 0.0]])
    np.testing.assert_array_equal(metrics.predict(logits), [-1, 0])
    result = metrics.top1(logits, np.array([0, 0]))
    assert result["correct"] == 1 and result["nonfinite_rows"] == 1


def test_top1_rejects_length_mismatch():
    with pytest.raises(UserError, match="3 rows of logits") as error:
        metrics.top1(np.zeros((3, 10)), np.zeros(4, dtype=np.int64))
    assert "\n" not in str(error.value)


def test_top1_rejects_labels_beyond_the_classes():
    with pytest.raises(UserError, match="outputs 2 classes"):
        metrics.top1(np.zeros((2, 2)), np.array([0, 5]))


def test_top1_rejects_bad_shapes():
    with pytest.raises(UserError, match="shape"):
        metrics.top1(np.zeros(4), np.zeros(4, dtype=np.int64))
    with pytest.raises(UserError, match="empty"):
        metrics.top1(np.zeros((0, 10)), np.zeros(0, dtype=np.int64))
