import numpy as np
import pytest

from keras_memdpc import (
    dense_contrastive_logits,
    dense_contrastive_loss,
    top_k_accuracy,
)


def numpy_eq6(predictions, targets):
    """Paper Eq. 6 with the reference's (batch, step, h, w) ordering, by loops."""
    batch, steps, height, width, _ = predictions.shape
    rows, columns = [], []
    for b in range(batch):
        for s in range(steps):
            for i in range(height):
                for j in range(width):
                    rows.append(predictions[b, s, i, j])
                    columns.append(targets[b, s, i, j])
    scores = np.array(rows, "float64") @ np.array(columns, "float64").T
    top = scores.max(1, keepdims=True)
    log_softmax = scores - top - np.log(np.exp(scores - top).sum(1, keepdims=True))
    return -np.mean(np.diag(log_softmax)), scores


def random_features(seed, shape=(3, 3, 2, 2, 8)):
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape).astype("float32"), rng.normal(size=shape).astype("float32")


def test_loss_matches_numpy_eq6():
    predictions, targets = random_features(0)
    logits, labels = dense_contrastive_logits(predictions, targets)
    expected, scores = numpy_eq6(predictions, targets)
    assert tuple(logits.shape) == (36, 36)
    np.testing.assert_allclose(logits, scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(labels, np.arange(36))
    np.testing.assert_allclose(dense_contrastive_loss(logits, labels), expected, rtol=1e-5)


def test_cosine_similarity_with_temperature():
    predictions, targets = random_features(1)
    logits, labels = dense_contrastive_logits(
        predictions, targets, similarity="cosine", temperature=0.5
    )
    unit_p = predictions / np.linalg.norm(predictions, axis=-1, keepdims=True)
    unit_t = targets / np.linalg.norm(targets, axis=-1, keepdims=True)
    expected, scores = numpy_eq6(unit_p / 0.5, unit_t)
    np.testing.assert_allclose(logits, scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dense_contrastive_loss(logits, labels), expected, rtol=1e-5)


def test_unknown_similarity_is_an_error():
    predictions, targets = random_features(2)
    with pytest.raises(ValueError, match="similarity"):
        dense_contrastive_logits(predictions, targets, similarity="l1")


def test_top_k_accuracy_counts_the_positive_among_the_best():
    logits = np.array(
        [[5.0, 1.0, 0.0], [3.0, 2.0, 1.0], [2.0, 3.0, 1.0]], "float32"
    )
    labels = np.arange(3, dtype="int32")
    assert float(top_k_accuracy(logits, labels, 1)) == pytest.approx(1 / 3)
    assert float(top_k_accuracy(logits, labels, 2)) == pytest.approx(2 / 3)
    assert float(top_k_accuracy(logits, labels, 5)) == pytest.approx(1.0)
