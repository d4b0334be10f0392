import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_memdpc import AdamL2, MemDPC
from keras_memdpc.memdpc import normalize_frames
from tests.test_dense_contrastive_loss import numpy_eq6

SMALL = dict(image_size=64, num_blocks=5, block_length=3, pred_steps=2, memory_size=32)


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def random_clips(model, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, *model.clip_shape)).astype("float32")


@pytest.mark.parametrize(
    "network, trainable, total",
    [("resnet18", 15_436_608, 15_443_648), ("resnet34", 33_801_280, 33_814_720)],
)
def test_parameter_counts_match_the_original(network, trainable, total):
    model = MemDPC(network=network, image_size=128)
    model.build()
    assert trainable_count(model) == trainable
    assert model.count_params() == total


def test_single_direction_drops_one_aggregator():
    model = MemDPC(bidirectional=False)
    model.build()
    assert trainable_count(model) == 15_436_608 - 3 * (256 * 512 + 256)


@pytest.mark.parametrize("bidirectional, directions", [(True, 2), (False, 1)])
def test_output_shapes(bidirectional, directions):
    model = MemDPC(bidirectional=bidirectional, **SMALL)
    outputs = model(random_clips(model))
    assert tuple(outputs["predictions"].shape) == (2, directions, 2, 2, 2, 256)
    assert tuple(outputs["targets"].shape) == (2, directions, 2, 2, 2, 256)
    assert tuple(outputs["addressing"].shape) == (2, directions, 2, 2, 2, 32)
    assert tuple(model.embed(random_clips(model)).shape) == (2, 256 * directions)


def test_forward_and_backward_follow_the_reference():
    model = MemDPC(**SMALL)
    clips = random_clips(model)
    outputs = model(clips, training=False)
    features = np.asarray(model.encoder(clips, training=False))
    np.testing.assert_allclose(outputs["targets"][:, 0], features[:, 3:], atol=1e-5)
    np.testing.assert_allclose(outputs["targets"][:, 1], features[:, [1, 0]], atol=1e-5)
    forward_gru, backward_gru = model.aggregators
    for direction, gru, observed in [
        (0, forward_gru, features[:, :3]),
        (1, backward_gru, features[:, [4, 3, 2]]),
    ]:
        context = gru(np.maximum(observed, 0))
        first, p = model.memory(model.phi(context))
        np.testing.assert_allclose(outputs["predictions"][:, direction, 0], first, atol=1e-5)
        hidden = gru.cell(np.maximum(first, 0), context)
        second, _ = model.memory(model.phi(hidden))
        np.testing.assert_allclose(outputs["predictions"][:, direction, 1], second, atol=1e-5)
        np.testing.assert_allclose(outputs["addressing"][:, direction, 0], p, atol=1e-6)


def test_loss_is_the_sum_of_both_directions_of_eq6():
    model = MemDPC(**SMALL)
    outputs = model(random_clips(model), training=False)
    expected = sum(
        numpy_eq6(np.asarray(outputs["predictions"][:, d]), np.asarray(outputs["targets"][:, d]))[0]
        for d in range(2)
    )
    np.testing.assert_allclose(model.compute_loss(y_pred=outputs), expected, rtol=1e-4)


def test_uint8_clips_are_normalised_on_the_device():
    model = MemDPC(**SMALL)
    frames = np.random.default_rng(1).integers(0, 256, (2, *model.clip_shape), dtype=np.uint8)
    manual = (frames / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(normalize_frames(frames), manual, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        model.embed(frames), model.embed(manual.astype("float32")), rtol=1e-4, atol=1e-5
    )


def test_embed_is_the_pooled_context_over_all_blocks():
    model = MemDPC(**SMALL)
    clips = random_clips(model)
    features = np.maximum(np.asarray(model.encoder(clips, training=False)), 0)
    forward = np.asarray(model.aggregators[0](features)).mean(axis=(1, 2))
    backward = np.asarray(model.aggregators[1](features[:, ::-1])).mean(axis=(1, 2))
    np.testing.assert_allclose(
        model.embed(clips), np.concatenate([forward, backward], -1), rtol=1e-4, atol=1e-5
    )


def test_keras_file_round_trip(tmp_path):
    model = MemDPC(similarity="cosine", temperature=0.1, **SMALL)
    clips = random_clips(model)
    before = model(clips, training=False)
    model.save(tmp_path / "memdpc.keras")
    restored = keras.saving.load_model(tmp_path / "memdpc.keras")
    after = restored(clips, training=False)
    for key in before:
        np.testing.assert_allclose(before[key], after[key], atol=1e-5)
    assert restored.get_config() == model.get_config()


def test_fit_logs_the_real_loss_and_accuracy():
    model = MemDPC(**SMALL)
    model.compile(optimizer=AdamL2(learning_rate=1e-4))
    clips = random_clips(model, batch=4)
    initial = float(model.compute_loss(y_pred=model(clips, training=False)))
    history = model.fit(clips, batch_size=2, epochs=2, verbose=0)
    assert set(history.history) == {"loss", "top1", "top5"}
    assert np.all(np.isfinite(history.history["loss"]))
    assert 0.2 * initial < history.history["loss"][0] < 5 * initial
    logs = model.evaluate(clips, batch_size=2, return_dict=True, verbose=0)
    assert 0 <= logs["top1"] <= logs["top5"] <= 1


def test_invalid_arguments_are_rejected():
    with pytest.raises(ValueError, match="pred_steps"):
        MemDPC(num_blocks=3, pred_steps=3)
    with pytest.raises(ValueError, match="network"):
        MemDPC(network="resnet50")
    with pytest.raises(ValueError, match="predictor"):
        MemDPC(predictor="linear")
    with pytest.raises(ValueError, match="batch_norm_statistics"):
        MemDPC(batch_norm_statistics="none")


def test_regression_predictor_is_dpc(tmp_path):
    model = MemDPC(predictor="regression", bidirectional=False, **SMALL)
    model.build()
    backbone, gru, phi = 14_057_536, 3 * (256 * 512 + 256), 2 * (256 * 256 + 256)
    assert trainable_count(model) == backbone + gru + phi
    assert model.memory is None
    clips = random_clips(model)
    outputs = model(clips, training=False)
    assert set(outputs) == {"predictions", "targets"}
    assert tuple(outputs["predictions"].shape) == (2, 1, 2, 2, 2, 256)
    features = np.asarray(model.encoder(clips, training=False))
    context = model.aggregators[0](np.maximum(features[:, :3], 0))
    np.testing.assert_allclose(outputs["predictions"][:, 0, 0], model.phi(context), atol=1e-5)
    model.save(tmp_path / "dpc.keras")
    restored = keras.saving.load_model(tmp_path / "dpc.keras")
    assert restored.get_config() == model.get_config()
    np.testing.assert_allclose(restored(clips)["predictions"], outputs["predictions"], atol=1e-5)
    predictions, targets = (np.asarray(outputs[k][:, 0]) for k in ("predictions", "targets"))
    expected = numpy_eq6(predictions, targets)[0]
    np.testing.assert_allclose(model.compute_loss(y_pred=outputs), expected, rtol=1e-4)


@pytest.mark.parametrize("statistics", ["moving", "batch"])
def test_batch_norm_statistics_in_inference(statistics):
    model = MemDPC(batch_norm_statistics=statistics, **SMALL)
    clips = random_clips(model, batch=3)
    alone = np.asarray(model.embed(clips[:1]))
    in_batch = np.asarray(model.embed(clips))[:1]
    targets = model(clips, training=False)["targets"][:, 0]
    features = np.asarray(model.encoder(clips, training=statistics == "batch"))
    np.testing.assert_allclose(targets, features[:, 3:], rtol=1e-4, atol=1e-5)
    if statistics == "moving":
        np.testing.assert_allclose(alone, in_batch, rtol=1e-4, atol=1e-5)
    else:
        assert np.max(np.abs(alone - in_batch)) > 1e-2


def test_adam_l2_adds_the_decay_to_the_gradient():
    weight = keras.Variable(np.array([1.0, -2.0], "float32"))
    gradient = np.array([0.5, 0.1], "float32")
    AdamL2(learning_rate=0.1, l2=0.3).apply([gradient], [weight])
    reference = keras.Variable(np.array([1.0, -2.0], "float32"))
    coupled = gradient + 0.3 * np.array([1.0, -2.0], "float32")
    keras.optimizers.Adam(learning_rate=0.1).apply([coupled], [reference])
    np.testing.assert_allclose(weight.numpy(), reference.numpy(), rtol=1e-6)


def test_training_step_runs_under_jax():
    pytest.importorskip("jax")
    script = textwrap.dedent(
        """
        import numpy as np, keras
        from keras_memdpc import AdamL2, MemDPC
        assert keras.backend.backend() == "jax"
        model = MemDPC(image_size=32, num_blocks=4, block_length=3, pred_steps=2,
                       memory_size=16)
        model.compile(optimizer=AdamL2(learning_rate=1e-3))
        clips = np.random.default_rng(0).normal(size=(2, *model.clip_shape))
        logs = model.train_on_batch(clips.astype("float32"), return_dict=True)
        logs = model.train_on_batch(clips.astype("float32"), return_dict=True)
        assert np.isfinite(logs["loss"]) and logs["loss"] > 0, logs
        assert 0 <= logs["top1"] <= 1, logs
        print("ok", logs)
        """
    )
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ok" in result.stdout
