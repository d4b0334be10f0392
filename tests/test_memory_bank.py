import keras
import numpy as np
import pytest

from keras_memdpc import MemoryBank


def test_reads_are_convex_combinations_of_the_slots():
    memory = MemoryBank(16, 8)
    logits = np.random.default_rng(0).normal(scale=3, size=(2, 3, 3, 16)).astype("float32")
    read, p = memory(logits)
    p = np.asarray(p)
    slots = memory.memory.numpy()
    assert read.shape == (2, 3, 3, 8) and p.shape == (2, 3, 3, 16)
    assert (p >= 0).all()
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-6)
    expected_p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(p, expected_p, rtol=1e-5)
    np.testing.assert_allclose(read, p @ slots, rtol=1e-5, atol=1e-6)
    assert (np.asarray(read) <= slots.max(0) + 1e-6).all()
    assert (np.asarray(read) >= slots.min(0) - 1e-6).all()


def test_slots_start_from_a_unit_normal():
    memory = MemoryBank(1024, 256)
    memory.build((None, 1024))
    slots = memory.memory.numpy()
    assert abs(slots.std() - 1.0) < 0.01 and abs(slots.mean()) < 0.01


def test_wrong_logit_size_is_a_clear_error():
    with pytest.raises(ValueError, match="size 16"):
        MemoryBank(16, 8)(np.zeros((2, 15), "float32"))


def test_mixed_precision_keeps_probabilities_in_float32():
    memory = MemoryBank(8, 4, dtype="mixed_bfloat16")
    read, p = memory(np.zeros((2, 8), "float32"))
    assert keras.backend.standardize_dtype(p.dtype) == "float32"
    assert keras.backend.standardize_dtype(read.dtype) == "bfloat16"


def test_config_round_trip_and_keras_file(tmp_path):
    inputs = keras.Input((8,))
    model = keras.Model(inputs, MemoryBank(8, 4, name="mb")(inputs))
    model.save(tmp_path / "mb.keras")
    restored = keras.saving.load_model(tmp_path / "mb.keras")
    logits = np.random.default_rng(1).normal(size=(3, 8)).astype("float32")
    for ours, theirs in zip(model(logits), restored(logits)):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)
    assert restored.get_layer("mb").get_config()["size"] == 8
