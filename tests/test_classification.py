import dataclasses
import json

import keras
import numpy as np
import pytest

from keras_memdpc import MemDPC, readers, synthetic_videos
from keras_memdpc.classification import (
    ClassifyConfig,
    classification_metrics,
    crop_predictions,
    evaluate_classifier,
    train_classifier,
)
from keras_memdpc.data_preparation import prepare_dataset
from keras_memdpc.video_pipeline import evaluation_dataset
from keras_memdpc.video_tfrecord import read_dataset_json, shard_pattern

TINY = dict(image_size=32, num_blocks=4, block_length=3)
FRAMES = 40  # one window of 4 x 3 frames at stride 3 (36 frames) fits


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A tiny prepared synthetic set: 8 classes, 4 train and 1 test video each."""
    root = tmp_path_factory.mktemp("synthetic")
    written = synthetic_videos.write_dataset(
        root / "videos", videos_per_class=5, num_frames=FRAMES, size=32, change_fraction=0.0
    )
    dataset = readers.read_ucf101(written["splits_dir"], written["videos_dir"])
    prepare_dataset(dataset, root / "prepared", short_side=32, workers=1, videos_per_shard=3)
    return str(root / "prepared")


class MeanColourModel(keras.Model):
    """Logits = mean RGB of the clip (uint8) @ a fixed matrix: easy to recompute."""

    image_size, num_blocks, block_length, num_classes = 32, 4, 3, 8

    def __init__(self):
        super().__init__()
        self.matrix = np.random.default_rng(0).normal(size=(3, 8)).astype("float32") / 20

    def call(self, clips, training=None):
        colours = keras.ops.mean(keras.ops.cast(clips, "float32"), axis=(1, 2, 3, 4))
        return keras.ops.matmul(colours, self.matrix)


def test_crop_prediction_averages_the_softmax_of_every_crop_and_window(prepared):
    model = MeanColourModel()
    pattern = shard_pattern(prepared, "rgb", "test")
    # window_stride 2: (40 - 36) // 2 + 1 = 3 windows per video, 30 clips.
    predictions = crop_predictions(model, pattern, batch_size=7, window_stride=2)

    clips, info = next(iter(evaluation_dataset(
        pattern, 1000, crops="ten", window_stride=2, output_dtype="uint8", **TINY
    )))
    logits = clips.numpy().astype(np.float64).mean(axis=(1, 2, 3, 4)) @ model.matrix
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    videos = info["video_index"].numpy()
    assert len(videos) == 8 * 3 * 10
    assert len({tuple(row) for row in np.round(softmax, 6)}) > 8 * 3  # crops differ
    for video in range(8):
        rows = videos == video
        assert predictions["clips"][video] == rows.sum() == 30
        np.testing.assert_allclose(
            predictions["probabilities"][video], softmax[rows].mean(axis=0), rtol=1e-5
        )
        assert predictions["labels"][video] == info["label"].numpy()[rows][0]
    assert sorted(predictions["labels"]) == list(range(8))
    assert all(
        synthetic_videos.camel_case(synthetic_videos.CLASS_NAMES[label]) in path
        for path, label in zip(predictions["paths"], predictions["labels"])
    )


def test_metrics_of_known_predictions():
    probabilities = np.array([
        [0.50, 0.20, 0.10, 0.10, 0.05, 0.05, 0.00],  # true 0: top-1 right
        [0.50, 0.20, 0.10, 0.10, 0.05, 0.05, 0.00],  # true 1: 2nd
        [0.05, 0.00, 0.05, 0.10, 0.10, 0.20, 0.50],  # true 1: last, outside the top 5
        [0.10, 0.60, 0.10, 0.10, 0.05, 0.05, 0.00],  # true 2: 3rd (ties keep class order)
    ])
    metrics = classification_metrics(probabilities, [0, 1, 1, 2], list("abcdefg"))
    assert metrics["top1"] == 0.25 and metrics["top5"] == 0.75
    assert metrics["per_class_accuracy"] == {
        "a": 1.0, "b": 0.0, "c": 0.0, "d": None, "e": None, "f": None, "g": None
    }
    assert metrics["mean_class_accuracy"] == pytest.approx(1 / 3)
    expected = np.zeros((7, 7), int)
    expected[0, 0] = expected[1, 0] = expected[1, 6] = expected[2, 1] = 1
    assert metrics["confusion_matrix"] == expected.tolist()
    assert metrics["num_videos"] == 4


def test_train_then_ten_crop_test_from_a_checkpoint_writes_metrics_png_and_predictions(
    prepared, tmp_path
):
    pretrained = MemDPC(pred_steps=2, memory_size=16, seed=1, **TINY)
    pretrained.build()
    pretrained.save(tmp_path / "memdpc.keras")
    config = ClassifyConfig(
        model_dir=str(tmp_path / "run"), data=prepared, pretrained=str(tmp_path / "memdpc.keras"),
        protocol="linear", label_fraction=0.5, batch_size=4, epochs=1, steps_per_epoch=2,
        colour_augmentation=False, verbose=0, **TINY,
    )
    summary = train_classifier(config)
    assert summary["train_videos"] == 16 and summary["eval_subset"] == "test"
    assert summary["trainable_weights"] == 2 * 512 + 512 * 8 + 8
    subset = json.loads((tmp_path / "run" / "label_subset" / "label_subset.json").read_text())
    assert set(subset["per_class"].values()) == {2} and len(subset["per_class"]) == 8

    metrics = evaluate_classifier(config)
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written == metrics
    assert metrics["num_videos"] == 8 and metrics["num_clips"] == 80
    assert 0 <= metrics["top1"] <= metrics["top5"] <= 1
    assert list(metrics["per_class_accuracy"]) == read_dataset_json(prepared)["classes"]
    assert np.sum(metrics["confusion_matrix"]) == 8
    assert (tmp_path / "run" / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with np.load(tmp_path / "run" / "predictions.npz") as saved:
        np.testing.assert_allclose(saved["probabilities"].sum(axis=1), 1.0, rtol=1e-6)
        assert len(saved["paths"]) == 8 and str(saved["modality"]) == "rgb"
    best = keras.saving.load_model(tmp_path / "run" / "best.keras")
    np.testing.assert_array_equal(best.encoder.layer.conv1.conv.kernel,
                                  pretrained.encoder.layer.conv1.conv.kernel)

    assert metrics["crops"] == "ten"
    unflipped = evaluate_classifier(dataclasses.replace(config, random_flip=False))
    assert unflipped["crops"] == "five" and unflipped["num_clips"] == 40

    with pytest.raises(FileExistsError, match="--overwrite"):
        train_classifier(config)


def test_flips_are_off_by_default_only_on_the_synthetic_set(prepared):
    """A mirror image turns the synthetic TranslateLeft into TranslateRight."""
    assert ClassifyConfig().resolved().random_flip is False
    assert ClassifyConfig(data=prepared).resolved().random_flip is True


@pytest.mark.parametrize(
    "change, message",
    [({"protocol": "probe"}, "--protocol"), ({"label_fraction": 0.0}, "--label_fraction"),
     ({"data": "/nowhere"}, "--data"), ({"pretrained": "/nowhere.keras"}, "--pretrained"),
     ({"modality": "depth"}, "--modality")],
)
def test_bad_flags_are_clear_errors(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        train_classifier(ClassifyConfig(model_dir=str(tmp_path), **{**TINY, **change}))
