import numpy as np

from keras_memdpc.knn import knn_accuracy


def brute_force_knn(train, train_labels, test, k):
    predictions = []
    for query in test:
        similarity = [
            query @ item / (np.linalg.norm(query) * np.linalg.norm(item)) for item in train
        ]
        order = sorted(range(len(train)), key=lambda i: -similarity[i])[:k]
        votes = {}
        for rank, index in enumerate(order):
            count, first = votes.get(train_labels[index], (0, rank))
            votes[train_labels[index]] = (count + 1, first)
        predictions.append(max(votes, key=lambda label: (votes[label][0], -votes[label][1])))
    return np.array(predictions)


def test_matches_a_brute_force_vote():
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(40, 6)), rng.normal(size=(15, 6))
    train_labels, test_labels = rng.integers(0, 3, 40), rng.integers(0, 3, 15)
    for k in (1, 3, 5):
        expected = np.mean(brute_force_knn(train, train_labels, test, k) == test_labels)
        assert knn_accuracy(train, train_labels, test, test_labels, k) == expected


def test_uses_direction_not_length():
    train = np.array([[1.0, 0.0], [0.0, 1.0]])
    test = np.array([[100.0, 1.0], [0.1, 3.0]])
    assert knn_accuracy(train, [0, 1], test, [0, 1]) == 1.0
