"""The Oops classifier: per-block labels, the model, its data and its training."""

import csv
import json
import os

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_memdpc import synthetic_videos
from keras_memdpc.memdpc import MemDPC
from keras_memdpc.oops_classifier import OopsClassifier, single_direction
from keras_memdpc.oops_training import (
    OopsConfig,
    block_labels,
    check_oops_data,
    failure_times,
    make_classifier,
    oops_evaluation_dataset,
    oops_metrics,
    oops_training_dataset,
    prepare_synthetic_oops,
    train_oops,
)
from keras_memdpc.readers.oops import oops_clip_label

TINY = dict(image_size=32, num_blocks=4, block_length=3, memory_size=16)
FPS = 10.0
FADE = 0.4  # brightness after the failure in the fading set


def tiny_memdpc(**overrides):
    model = MemDPC(**{**TINY, "pred_steps": 2, "seed": 0, **overrides})
    model.build()
    return model


def random_clips(count=2, seed=0):
    shape = (count, 4, 3, 32, 32, 3)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_block_labels_follow_oops_clip_label_on_each_block_span():
    rng = np.random.default_rng(0)
    # 3 blocks of 2 frames; frame times on a 0.1 s grid so that t_fail often
    # falls exactly on a block's first or last frame.
    starts = rng.integers(0, 20, 64)
    frame_times = (starts[:, None] + np.arange(6)) / 10.0
    t_fail = rng.integers(0, 30, 64) / 10.0
    labels = block_labels(tf.constant(frame_times, tf.float32),
                          tf.constant(t_fail, tf.float32), 3).numpy()
    expected = [
        [oops_clip_label(np.float32(times[2 * b]), np.float32(times[2 * b + 1]),
                         np.float32(fail)) for b in range(3)]
        for times, fail in zip(frame_times, t_fail)
    ]
    np.testing.assert_array_equal(labels, expected)
    assert {0, 1, 2} <= set(labels.ravel())


def test_failure_times_are_read_from_the_metadata_json():
    values = [2.5, 1e-05, 12.0, 3, 0.04]
    metadata = [json.dumps({"duration": 6.0, "rel_t": 0.5, "t_fail": value}, sort_keys=True)
                for value in values]
    metadata.append(json.dumps({"t_fail": 7.25}))
    np.testing.assert_allclose(failure_times(tf.constant(metadata)).numpy(), values + [7.25],
                               rtol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError):
        failure_times(tf.constant(['{"label": 3}']))


def test_metrics_from_a_known_confusion():
    labels = [0, 0, 0, 0, 1, 2, 2, 2]
    predictions = [0, 0, 2, 0, 2, 2, 2, 0]
    metrics = oops_metrics(labels, predictions)
    assert metrics["confusion"] == [[3, 0, 1], [0, 0, 1], [1, 0, 2]]
    assert metrics["accuracy"] == pytest.approx(5 / 8)
    assert metrics["per_class_accuracy"] == pytest.approx(
        {"intentional": 0.75, "transitioning": 0.0, "unintentional": 2 / 3})
    assert metrics["majority_baseline"] == pytest.approx(4 / 8)
    assert metrics["class_counts"] == {"intentional": 4, "transitioning": 1, "unintentional": 3}
    assert oops_metrics([0, 2], [0, 0])["per_class_accuracy"]["transitioning"] is None


def test_single_direction_keeps_the_forward_context():
    bidirectional = tiny_memdpc()
    forward = single_direction(bidirectional)
    assert not forward.bidirectional and len(forward.aggregators) == 1
    clips = random_clips()
    np.testing.assert_allclose(forward.embed(clips), bidirectional.embed(clips)[:, :256],
                               atol=1e-5)
    longer = single_direction(bidirectional, num_blocks=6)
    assert longer.num_blocks == 6 and longer.clip_shape == (6, 3, 32, 32, 3)


def test_the_classifier_reads_a_checkpoints_forward_direction_frozen_for_probes():
    pretrained = tiny_memdpc()
    for mode in ("probe", "finetune"):
        config = tiny_config(mode=mode, num_blocks=5)
        classifier = make_classifier(config, pretrained)
        representation = classifier.representation
        assert representation.num_blocks == 5 and not representation.bidirectional
        assert representation.trainable == (mode == "finetune")
        for kept, original in zip(representation.aggregators[0].get_weights(),
                                  pretrained.aggregators[0].get_weights()):
            np.testing.assert_array_equal(kept, original)
    assert make_classifier(tiny_config()).representation.memory_size == 16


def test_a_block_is_classified_from_its_feature_and_its_prediction_from_the_past():
    classifier = OopsClassifier(tiny_memdpc(bidirectional=False))
    addressing = classifier.representation.phi.layers[-1]
    kernel, bias = addressing.get_weights()
    addressing.set_weights([1000 * kernel, bias])  # peaked addressing: z_hat varies
    clips = random_clips(count=1)
    changed = clips.copy()
    changed[:, 2] = 255 - changed[:, 2]
    head, _ = classifier.final_fc.get_weights()
    differences = {}
    for part in ("z", "z_hat"):  # rows 0-255 read z_t, rows 256-511 z_hat_t
        kernel = head.copy()
        if part == "z":
            kernel[256:] = 0
        else:
            kernel[:256] = 0
        classifier.final_fc.set_weights([kernel, np.ones(3, np.float32)])
        logits = classifier(clips).numpy()
        assert logits.shape == (1, 4, 3)
        differences[part] = np.abs(classifier(changed).numpy() - logits).max(axis=(0, 2))
    # block 2 changed: z_2 moves; z_hat_3, predicted from blocks 0-2, moves
    assert (differences["z"][[0, 1, 3]] < 1e-6).all() and differences["z"][2] > 1e-2
    assert (differences["z_hat"][:3] < 1e-6).all() and differences["z_hat"][3] > 1e-3
    with pytest.raises(ValueError, match="single_direction"):
        OopsClassifier(tiny_memdpc())


def test_the_probe_trains_the_head_only_and_saves(tmp_path):
    finetuned = OopsClassifier(tiny_memdpc(bidirectional=False))
    assert len(finetuned.trainable_weights) > 50
    classifier = OopsClassifier(tiny_memdpc(bidirectional=False))
    classifier.representation.trainable = False
    assert [w.path.split("/", 1)[1] for w in classifier.trainable_weights] == [
        "final_bn/gamma", "final_bn/beta", "final_fc/kernel", "final_fc/bias"]
    classifier.compile(optimizer=keras.optimizers.Adam(1e-2),
                       loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    clips = random_clips(count=4)
    labels = np.random.default_rng(1).integers(0, 3, (4, 4))
    before = [w.copy() for w in classifier.get_weights()]
    classifier.fit(clips, labels, epochs=1, batch_size=4, verbose=0)
    changed = [w.path.split("/", 1)[1] for w, old in zip(classifier.weights, before)
               if not np.array_equal(w.numpy(), old)]
    # BatchNorm in the frozen encoder kept its statistics, the GRU had no dropout
    assert sorted(changed) == ["final_bn/beta", "final_bn/gamma", "final_bn/moving_mean",
                               "final_bn/moving_variance", "final_fc/bias", "final_fc/kernel"]
    classifier.save(tmp_path / "oops.keras")
    loaded = keras.saving.load_model(tmp_path / "oops.keras", compile=False)
    np.testing.assert_allclose(loaded(clips), classifier(clips), atol=1e-6)


def test_non_oops_data_is_refused_with_the_fix(tmp_path):
    (tmp_path / "dataset.json").write_text(json.dumps({"name": "ucf101", "subsets": {}}))
    with pytest.raises(ValueError, match="--dataset=oops"):
        check_oops_data(str(tmp_path))


def test_a_synthetic_set_written_with_other_settings_is_not_reused(tmp_path):
    (tmp_path / "videos").mkdir()
    manifest = {"seed": 0, "videos_per_class": 5, "num_frames": 40, "size": 64,
                "change_fraction": 1.0, "fps": FPS}
    (tmp_path / "videos" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="manifest.json.*other settings.*'size': 64"):
        prepare_synthetic_oops(tmp_path, videos_per_class=5, num_frames=40, size=32, fps=FPS)


def write_fading_oops_set(root):
    """The synthetic Oops set whose frames darken to FADE from the failure on.

    The synthetic set's failures are changes of motion (the dots scatter);
    a fade makes the failure visible in every later frame, so the windows'
    block labels can be checked against the frames' brightness.
    """
    written = synthetic_videos.write_dataset(
        os.path.join(root, "videos"), videos_per_class=5, num_frames=40, size=32,
        change_fraction=1.0, fps=FPS)
    with open(os.path.join(written["oops_dir"], "transition_times.json")) as f:
        times = json.load(f)
    for folder, _, files in os.walk(written["videos_dir"]):
        for name in files:
            path = os.path.join(folder, name)
            frames = synthetic_videos.read_video(path)
            change = round(times[name[:-len(".avi")]]["t"][0] * FPS)
            frames[change:] = np.round(frames[change:] * FADE).astype(np.uint8)
            writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"XVID"), FPS, (32, 32))
            for frame in frames:
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            writer.release()
    return prepare_synthetic_oops(root, videos_per_class=5, num_frames=40, size=32, fps=FPS)


@pytest.fixture(scope="module")
def fading_set(tmp_path_factory):
    return write_fading_oops_set(str(tmp_path_factory.mktemp("fading")))


def tiny_config(**overrides):
    return OopsConfig(**{**TINY, "stride": 1, "batch_size": 8, **overrides}).resolved()


def test_evaluation_windows_slide_one_block_and_carry_each_block_label(fading_set):
    windows = {}
    for clips, info in oops_evaluation_dataset(fading_set, "val", tiny_config()):
        for video, window, labels, clip in zip(info["video_index"].numpy(),
                                               info["window_index"].numpy(),
                                               info["labels"].numpy(), clips.numpy()):
            windows.setdefault(video, []).append((window, labels, clip))
    assert len(windows) == 8
    for video_windows in windows.values():
        # 40 frames, windows of 4 blocks of 3 frames, one block (3 frames) apart
        assert [window for window, _, _ in video_windows] == list(range(10))
        labels_of, brightness = {}, {}
        for window, labels, clip in video_windows:
            for position in range(4):
                labels_of.setdefault(window + position, set()).add(int(labels[position]))
                brightness[window + position] = clip[position].mean()
        assert all(len(found) == 1 for found in labels_of.values())
        labels = [labels_of[block].pop() for block in range(13)]
        assert labels == sorted(labels) and labels.count(1) == 1
        bright = [brightness[b] for b in range(13) if labels[b] == 0]
        dark = [brightness[b] for b in range(13) if labels[b] == 2]
        assert max(dark) < 0.7 * min(bright)  # the frames faded after the failure


def test_transitioning_clips_are_oversampled(fading_set):
    fractions = []
    for repeats in (1, 4):
        config = tiny_config(transition_repeats=repeats)
        labels = np.concatenate([labels.numpy() for _, labels in
                                 oops_training_dataset(fading_set, config).take(6)])
        fractions.append(np.mean((labels == 1).any(axis=1)))
    assert fractions[1] > fractions[0] + 0.1


def test_a_probe_of_a_pretrained_encoder_detects_the_synthetic_failures(
    synthetic_pretraining, tmp_path
):
    """The built-in Oops set (dots scatter from the failure on), the default
    20-epoch probe of the shared pretrained fixture. Measured: 0.675 against
    a majority baseline of 0.506; a random encoder gets 0.475 (README)."""
    config = OopsConfig(model_dir=str(tmp_path), checkpoint=synthetic_pretraining["path"],
                        verbose=0)
    metrics = train_oops(config)
    assert metrics["videos"] == 32 and metrics["clips"] == 32 * 10
    assert sum(map(sum, metrics["confusion"])) == metrics["clips"]
    assert metrics["accuracy"] > metrics["majority_baseline"] + 0.08, metrics
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["accuracy"] == metrics["accuracy"] and saved["mode"] == "probe"
    assert (tmp_path / "oops.keras").exists() and (tmp_path / "history.csv").exists()


def test_an_oops_run_killed_after_its_last_epoch_is_tested_without_training_again(
        tmp_path, monkeypatch):
    from keras_memdpc import oops_training

    def killed(*args, **kwargs):
        raise RuntimeError("killed before the test")

    config = OopsConfig(model_dir=str(tmp_path), **TINY, stride=1, batch_size=8, epochs=2,
                        synthetic_videos_per_class=5, synthetic_num_frames=40,
                        synthetic_fps=FPS, verbose=0)
    with monkeypatch.context() as patch:
        patch.setattr(oops_training, "evaluate_oops", killed)
        with pytest.raises(RuntimeError, match="killed"):
            train_oops(config)
    assert (tmp_path / "backup").is_dir()
    metrics = train_oops(config)
    with open(tmp_path / "history.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0", "1"]  # no epoch again
    assert 0 <= metrics["accuracy"] <= 1 and (tmp_path / "metrics.json").exists()
    assert not (tmp_path / "backup").exists()
    written = (tmp_path / "metrics.json").read_text()
    with pytest.raises(FileExistsError, match="--overwrite"):  # a finished run is kept
        train_oops(config)
    assert (tmp_path / "metrics.json").read_text() == written
