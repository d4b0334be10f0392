import keras
import numpy as np
import pytest

from keras_memdpc import MemDPC
from keras_memdpc.action_classifier import (
    ActionClassifier,
    copy_pretrained_weights,
    load_pretrained,
)
from keras_memdpc.convert import CheckpointError

TINY = dict(image_size=32, num_blocks=4, block_length=3)
CLASSES = 5
# Independent of the code: the R18 encoder's trainable parameters
# (DESIGN.md section 2) and its BatchNorm moving statistics; a 1x1 ConvGRU
# gate maps [x, h] (512 channels) to 256, three gates per direction.
ENCODER_TRAINABLE, ENCODER_MOVING = 14_057_536, 7_040
GRU = 3 * (512 * 256 + 256)


def head_trainable(protocol, width=512):
    bn_fc = 2 * width + width * CLASSES + CLASSES
    if protocol == "nonlinear":
        return bn_fc + (width * 512 + 512) + 2 * 512
    return bn_fc


def count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def clips(batch=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (batch, 4, 3, 32, 32, 3)).astype("uint8")


def classifier(protocol, **kwargs):
    model = ActionClassifier(CLASSES, protocol=protocol, seed=0, **{**TINY, **kwargs})
    model.build()
    return model


@pytest.mark.parametrize(
    "protocol, bidirectional",
    [("linear", True), ("linear", False), ("nonlinear", True), ("finetune", True)],
)
def test_each_protocol_trains_exactly_its_weights(protocol, bidirectional):
    model = classifier(protocol, bidirectional=bidirectional)
    directions = 2 if bidirectional else 1
    head = head_trainable(protocol, 256 * directions)
    trunk = ENCODER_TRAINABLE + directions * GRU
    expected = head + (trunk if protocol == "finetune" else 0)
    assert count(model.trainable_weights) == expected
    moving = ENCODER_MOVING + 2 * 256 * directions + (2 * 512 if protocol == "nonlinear" else 0)
    assert model.count_params() == trunk + head + moving
    trained_names = {w.path.split("/")[1] for w in model.trainable_weights}
    if protocol == "finetune":
        assert {"backbone", "agg_f", "final_bn", "final_fc"} <= trained_names
    else:
        assert trained_names == {"final_bn", "final_fc"} | (
            {"final_hidden", "final_hidden_bn"} if protocol == "nonlinear" else set()
        )


def trunk_state(model):
    weights = model.encoder.weights + [w for a in model.aggregators for w in a.weights]
    return [np.array(w) for w in weights]


@pytest.mark.parametrize("protocol", ["linear", "nonlinear"])
def test_frozen_trunk_runs_in_inference_mode_while_the_head_trains(protocol):
    model = classifier(protocol)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=True,
    )
    before = trunk_state(model)
    head_mean = np.array(model.final_bn.moving_mean)
    head_kernel = np.array(model.final_fc.kernel)
    model.train_on_batch(clips(), np.array([0, 1, 2, 3]))
    for old, new in zip(before, trunk_state(model)):
        np.testing.assert_array_equal(old, new)
    assert not np.allclose(head_mean, model.final_bn.moving_mean)
    assert not np.allclose(head_kernel, model.final_fc.kernel)
    x = clips(seed=1)
    np.testing.assert_array_equal(
        model.context(x, training=True), model.context(x, training=False)
    )


def test_finetuning_runs_the_encoder_in_training_mode():
    model = classifier("finetune")
    moving_mean = np.array(model.encoder.layer.bn1.moving_mean)
    model(clips(), training=True)
    assert not np.allclose(moving_mean, model.encoder.layer.bn1.moving_mean)
    x = clips(seed=1)
    assert not np.allclose(model.context(x, training=True), model.context(x, training=False))


def test_context_applies_relu_before_the_temporal_mean_and_reverses_the_backward_gru():
    model = classifier("linear")
    x = clips(batch=2)
    normalised = (x / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    features = np.array(model.encoder(normalised.astype("float32")))
    assert features.shape == (2, 4, 1, 1, 1, 256)
    blocks = np.maximum(features, 0).mean(axis=2)
    forward = np.array(model.aggregators[0](blocks)).mean(axis=(1, 2))
    backward = np.array(model.aggregators[1](blocks[:, ::-1])).mean(axis=(1, 2))
    np.testing.assert_allclose(
        model.context(x), np.concatenate([forward, backward], axis=1), rtol=1e-5, atol=1e-6
    )


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """{"both", "forward"}: (path, model) of bidirectional and forward-only MemDPC files."""
    folder = tmp_path_factory.mktemp("checkpoints")
    saved = {}
    for name, bidirectional in (("both", True), ("forward", False)):
        model = MemDPC(pred_steps=2, memory_size=16, bidirectional=bidirectional, seed=1, **TINY)
        model.build()
        rng = np.random.default_rng(2)
        for weight in model.encoder.weights:  # moving statistics too, not left at 0 / 1
            weight.assign(rng.normal(size=weight.shape).astype("float32") * 0.1 + 0.5)
        model.save(folder / f"{name}.keras")
        saved[name] = (str(folder / f"{name}.keras"), model)
    return saved


def test_loads_every_encoder_and_aggregator_weight_of_a_checkpoint(checkpoints):
    path, pretrained = checkpoints["both"]
    model = ActionClassifier.from_pretrained(path, CLASSES, protocol="finetune", **TINY)
    assert model.network == "resnet18" and model.bidirectional
    pairs = list(zip(pretrained.encoder.weights, model.encoder.weights, strict=True))
    for aggregator, loaded in zip(pretrained.aggregators, model.aggregators, strict=True):
        pairs += list(zip(aggregator.weights, loaded.weights, strict=True))
    assert len(pairs) == 20 + 20 * 4 + 2 * 6  # R18: 20 convs, 20 BatchNorms
    for source, loaded in pairs:
        np.testing.assert_array_equal(source, loaded)


def test_a_checkpoint_lacking_weights_is_refused_naming_them(checkpoints):
    model = classifier("linear")
    kernel = np.array(model.encoder.layer.conv1.conv.kernel)
    with pytest.raises(CheckpointError) as error:
        copy_pretrained_weights(
            model, load_pretrained(checkpoints["forward"][0]), "forward.keras"
        )
    message = str(error.value)
    assert message.startswith("forward.keras")
    for gate in ("reset_gate", "update_gate", "out_gate"):
        for weight in ("kernel", "bias"):
            assert f"agg_b/cell/{gate}/{weight}" in message
    assert "agg_f/" not in message and "backbone/" not in message
    np.testing.assert_array_equal(kernel, model.encoder.layer.conv1.conv.kernel)


def test_checkpoint_weights_the_classifier_cannot_use_are_refused(checkpoints, tmp_path):
    model = classifier("linear", bidirectional=False)
    with pytest.raises(CheckpointError, match="unused weights: agg_b/cell/reset_gate/kernel"):
        copy_pretrained_weights(model, load_pretrained(checkpoints["both"][0]))
    with pytest.raises(FileNotFoundError, match="nowhere.keras"):
        load_pretrained(str(tmp_path / "nowhere.keras"))


def test_config_and_keras_file_round_trip(tmp_path):
    model = classifier("nonlinear", hidden_units=32)
    model.save(tmp_path / "classifier.keras")
    restored = keras.saving.load_model(tmp_path / "classifier.keras")
    assert restored.get_config() == model.get_config()
    assert count(restored.trainable_weights) == count(model.trainable_weights)
    x = clips(batch=2)
    np.testing.assert_allclose(restored(x), model(x), rtol=1e-5, atol=1e-6)
