import keras
import numpy as np
import pytest

from keras_memdpc import ConvGRU, ConvGRUCell


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def conv1x1(x, layer):
    return x @ layer.kernel.numpy()[0, 0] + layer.bias.numpy()


def numpy_gru_step(cell, x, h):
    """The reference equations with inputs concatenated as [x, h]."""
    combined = np.concatenate([x, h], -1)
    u = sigmoid(conv1x1(combined, cell.update_gate))
    r = sigmoid(conv1x1(combined, cell.reset_gate))
    n = np.tanh(conv1x1(np.concatenate([x, r * h], -1), cell.out_gate))
    return h * (1 - u) + n * u


def randomise(layer, seed):
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        weight.assign(rng.normal(scale=0.3, size=weight.shape))


def test_cell_matches_the_equations():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 3, 4)).astype("float32")
    h = rng.normal(size=(2, 3, 3, 6)).astype("float32")
    cell = ConvGRUCell(6)
    cell.build(x.shape)
    randomise(cell, 1)
    np.testing.assert_allclose(
        cell(x, h, training=False), numpy_gru_step(cell, x, h), rtol=1e-5, atol=1e-6
    )


def test_cell_init_is_orthogonal_with_gain_point_one():
    cell = ConvGRUCell(8)
    cell.build((None, 2, 2, 8))
    kernel = cell.update_gate.kernel.numpy().reshape(16, 8)
    np.testing.assert_allclose(kernel.T @ kernel, 0.01 * np.eye(8), atol=1e-6)
    np.testing.assert_array_equal(cell.update_gate.bias.numpy(), 0.0)


def test_kernel_size_three_sees_neighbours():
    cell = ConvGRUCell(4, kernel_size=3)
    x = np.zeros((1, 5, 5, 2), "float32")
    x[0, 2, 2] = 1.0
    h = cell(x, np.zeros((1, 5, 5, 4), "float32"))
    assert cell.update_gate.kernel.shape == (3, 3, 6, 4)
    changed = np.abs(np.asarray(h)[0]).sum(-1) > 0
    assert changed[1:4, 1:4].all() and not changed[0].any()


def test_dropout_applies_to_the_carried_state():
    cell = ConvGRUCell(64, dropout=0.5, seed=3)
    x = np.ones((4, 2, 2, 64), "float32")
    h = np.ones((4, 2, 2, 64), "float32")
    clean = np.asarray(cell(x, h, training=False))
    dropped = np.asarray(cell(x, h, training=True))
    zeros = dropped == 0
    assert 0.3 < zeros.mean() < 0.7
    np.testing.assert_allclose(dropped[~zeros], 2 * clean[~zeros], rtol=1e-5)


def test_layer_runs_the_cell_over_blocks():
    rng = np.random.default_rng(4)
    sequence = rng.normal(size=(2, 4, 3, 3, 5)).astype("float32")
    initial = rng.normal(size=(2, 3, 3, 6)).astype("float32")
    gru = ConvGRU(6, return_sequences=True)
    gru.build(sequence.shape)
    randomise(gru, 5)
    states, last = gru(sequence, initial_state=initial)
    h = initial
    for step in range(4):
        h = numpy_gru_step(gru.cell, sequence[:, step], h)
        np.testing.assert_allclose(states[:, step], h, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(last, h, rtol=1e-5, atol=1e-5)
    zero_start = ConvGRU(6)
    zero_start.build(sequence.shape)
    for source, target in zip(gru.weights, zero_start.weights):
        target.assign(source)
    h = np.zeros((2, 3, 3, 6))
    for step in range(4):
        h = numpy_gru_step(gru.cell, sequence[:, step], h)
    np.testing.assert_allclose(zero_start(sequence), h, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("return_sequences", [False, True])
def test_keras_file_round_trip(tmp_path, return_sequences):
    inputs = keras.Input((4, 2, 2, 3))
    outputs = ConvGRU(5, kernel_size=3, return_sequences=return_sequences)(inputs)
    model = keras.Model(inputs, outputs)
    sequence = np.random.default_rng(6).normal(size=(2, 4, 2, 2, 3)).astype("float32")
    model.save(tmp_path / "gru.keras")
    restored = keras.saving.load_model(tmp_path / "gru.keras")
    for ours, theirs in zip(
        keras.tree.flatten(model(sequence)), keras.tree.flatten(restored(sequence))
    ):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)
    config = restored.layers[-1].get_config()
    assert (config["kernel_size"], config["return_sequences"]) == (3, return_sequences)
