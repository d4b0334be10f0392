"""Cosine k-nearest-neighbour classification of embeddings."""

import numpy as np


def knn_accuracy(train_embeddings, train_labels, test_embeddings, test_labels, k=1):
    """Accuracy of a majority vote over the k most cosine-similar train items.

    Ties in the vote go to the class of the nearest neighbour among the tied.

    Args:
        train_embeddings: [train, dim]; train_labels: [train] ints.
        test_embeddings: [test, dim]; test_labels: [test] ints.
        k: neighbours that vote.
    """
    train = _unit(np.asarray(train_embeddings, "float64"))
    test = _unit(np.asarray(test_embeddings, "float64"))
    train_labels = np.asarray(train_labels)
    nearest = np.argsort(-(test @ train.T), axis=1, kind="stable")[:, :k]
    predictions = np.array([_vote(train_labels[row]) for row in nearest])
    return float(np.mean(predictions == np.asarray(test_labels)))


def _unit(vectors):
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _vote(neighbour_labels):
    """The most common label; among equals, the one seen first (nearest)."""
    labels, first_seen, counts = np.unique(
        neighbour_labels, return_index=True, return_counts=True
    )
    best = counts == counts.max()
    return labels[best][np.argmin(first_seen[best])]
