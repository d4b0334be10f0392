"""Training and testing the unintentional-action (Oops) classifier; `train_oops` runs it.

Data: a folder prepared by train/prepare_data.py --dataset=oops (subsets
train and val, each video's metadata holding its failure time t_fail), or
the built-in synthetic set written with an abrupt motion change in every
video and prepared through the same Oops reader (`prepare_synthetic_oops`).

Labels are per block: a block whose frames (at times frame index / fps)
end before t_fail is intentional (0), one that starts after it
unintentional (2), one that holds it transitioning (1), exactly
keras_memdpc.readers.oops.oops_clip_label on the block's time span.

Training (paper appendix B): clips sampled as for pretraining; clips holding
a transitioning block are repeated `transition_repeats` times in the stream
(oversampled); cross-entropy over every block; Adam at 1e-3, decayed once to
1e-4 when the validation loss plateaus. "probe" freezes the representation
(encoder, GRU, phi and memory, BatchNorm in inference mode) and trains the
head only; "finetune" trains everything.

Testing: windows of the training length slide over each video one block at
a time, so every block of the video appears in up to num_blocks windows;
its class probabilities are averaged over them and the argmax is its
prediction. Metrics: accuracy, per-class accuracy (recall), the confusion
matrix (rows true, columns predicted) and the majority-class baseline.
"""

import dataclasses
import json
import math
import os

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from keras_memdpc import readers, synthetic_videos
from keras_memdpc.data_preparation import prepare_dataset
from keras_memdpc.memdpc import MemDPC
from keras_memdpc.oops_classifier import OopsClassifier, single_direction
from keras_memdpc.readers.oops import CLASSES
from keras_memdpc.run_history import (
    HISTORY_CSV,
    ResumableReduceLROnPlateau,
    backup_and_restore,
    claim_model_dir,
    remove_backup,
)
from keras_memdpc.serving import load_memdpc
from keras_memdpc.video_pipeline import (
    count_evaluation_windows,
    evaluation_dataset,
    training_dataset,
)
from keras_memdpc.video_tfrecord import read_dataset_json, shard_pattern

SYNTHETIC = "synthetic"
MODES = ("probe", "finetune")
TRAIN_SUBSET, TEST_SUBSET = "train", "val"
METRICS_JSON = "metrics.json"
_T_FAIL = r'^.*"t_fail": (-?[0-9][0-9.eE+-]*)[,}].*$'


@dataclasses.dataclass
class OopsConfig:
    """Everything an Oops run needs; None means the default of the data or checkpoint.

    image_size defaults to the checkpoint's, else 32 on the synthetic set and
    128 otherwise; batch_size to 8 / 16; epochs to 20 / 30;
    steps_per_epoch to one clip per training video.
    """

    model_dir: str = "runs/oops"
    data: str = SYNTHETIC
    checkpoint: str | None = None
    mode: str = "probe"
    network: str = "resnet18"
    image_size: int | None = None
    num_blocks: int = 8
    block_length: int = 5
    stride: int = 3
    memory_size: int = 1024
    batch_size: int | None = None
    epochs: int | None = None
    steps_per_epoch: int | None = None
    lr: float = 1e-3
    min_lr: float = 1e-4
    lr_patience: int = 2
    transition_repeats: int = 3
    synthetic_videos_per_class: int = 12
    synthetic_num_frames: int = 150
    synthetic_fps: float = 25.0
    seed: int = 0
    overwrite: bool = False
    verbose: str | int = "auto"

    def resolved(self, checkpoint_image_size=None):
        """A copy with the defaults filled in, checked."""
        synthetic = self.data == SYNTHETIC
        defaults = {
            "image_size": checkpoint_image_size
            or (synthetic_videos.DEFAULT_SIZE if synthetic else 128),
            "batch_size": 8 if synthetic else 16,
            "epochs": 20 if synthetic else 30,
        }
        values = {key: defaults[key] if getattr(self, key) is None else getattr(self, key)
                  for key in defaults}
        config = dataclasses.replace(self, **values)
        if config.mode not in MODES:
            raise ValueError(f"--mode must be one of {MODES}, got {config.mode!r}")
        for name in ("image_size", "batch_size", "epochs", "num_blocks", "block_length",
                     "stride", "transition_repeats"):
            if getattr(config, name) < 1:
                raise ValueError(f"--{name} must be positive, got {getattr(config, name)}")
        if config.num_blocks < 2:
            raise ValueError(f"--num_blocks must be at least 2, got {config.num_blocks}")
        if not 0 < config.min_lr < config.lr:
            raise ValueError(f"--min_lr must be in (0, lr={config.lr}), got {config.min_lr}")
        return config


def prepare_synthetic_oops(root, seed=0, videos_per_class=12, num_frames=150,
                           size=synthetic_videos.DEFAULT_SIZE, fps=25.0):
    """Write the synthetic set with a change in every video and prepare it as Oops data.

    Videos are written once under ROOT/videos (synthetic_videos.write_dataset,
    change_fraction=1: a video without a failure would be dropped by the
    Oops reader), read with readers.read_oops from its oops/ annotations and
    prepared once under ROOT/prepared (short side `size`). The videos must
    last 3.2 to 30 s (num_frames / fps), the Oops length filter.
    Returns the prepared folder.

    Raises ValueError when ROOT/videos holds a set written with other settings.
    """
    videos_root = os.path.join(os.fspath(root), "videos")
    prepared = os.path.join(os.fspath(root), "prepared")
    manifest_path = os.path.join(videos_root, "manifest.json")
    settings = {"seed": seed, "videos_per_class": videos_per_class, "num_frames": num_frames,
                "size": size, "change_fraction": 1.0, "fps": fps}
    if not os.path.exists(manifest_path):
        synthetic_videos.write_dataset(videos_root, **settings)
    with open(manifest_path) as f:
        manifest = json.load(f)
    differences = {key: manifest.get(key) for key, value in settings.items()
                   if manifest.get(key) != value}
    if differences:
        raise ValueError(f"{manifest_path}: written with other settings {differences}, "
                         f"not {settings}; use another folder")
    dataset = readers.read_oops(os.path.join(videos_root, "oops"),
                                os.path.join(videos_root, "videos"))
    if not all(dataset.subsets.values()):
        raise ValueError(
            f"the synthetic Oops set under {videos_root} lost a whole subset to the Oops "
            f"filters (videos of {num_frames / fps:.2f} s: they must last 3.2 to 30 s)")
    if not os.path.exists(os.path.join(prepared, "dataset.json")):
        prepare_dataset(dataset, prepared, short_side=size, workers=1)
    return prepared


def check_oops_data(data_dir):
    """dataset.json of a folder prepared from Oops annotations, with train and val videos."""
    info = read_dataset_json(data_dir)
    if info.get("name") != "oops":
        raise ValueError(
            f"{data_dir} was prepared from {info.get('name')!r} annotations; the Oops "
            "classifier needs train/prepare_data.py --dataset=oops (videos' failure times)")
    for subset in (TRAIN_SUBSET, TEST_SUBSET):
        if not info["subsets"].get(subset, {}).get("videos"):
            raise ValueError(f"{data_dir}: the prepared Oops data has no {subset!r} videos")
    return info


def failure_times(metadata):
    """t_fail (float32 [...]) from the videos' JSON metadata strings [...]."""
    return tf.strings.to_number(tf.strings.regex_replace(metadata, _T_FAIL, r"\1"), tf.float32)


def block_labels(frame_times, t_fail, num_blocks):
    """Oops labels of each block: int32 [batch, num_blocks].

    frame_times: float32 [batch, num_blocks * block_length] seconds;
    t_fail: float32 [batch]. The rule of readers.oops.oops_clip_label on
    each block's span from its first to its last frame.
    """
    times = tf.reshape(frame_times, [tf.shape(frame_times)[0], num_blocks, -1])
    start, end = times[..., 0], times[..., -1]
    t_fail = t_fail[:, None]
    return tf.where(end < t_fail, 0, tf.where(start > t_fail, 2, 1))


def _with_block_labels(num_blocks):
    def label(clips, info):
        return clips, block_labels(info["frame_times"], failure_times(info["metadata"]),
                                   num_blocks)
    return label


def oops_training_dataset(data_dir, config):
    """Endless (clips uint8 [batch, N, T, s, s, 3], labels int32 [batch, N]) for training.

    Clips holding a transitioning block come `transition_repeats` times.
    """
    clips = training_dataset(
        shard_pattern(data_dir, "rgb", TRAIN_SUBSET), config.batch_size,
        image_size=config.image_size, num_blocks=config.num_blocks,
        block_length=config.block_length, stride=config.stride, seed=config.seed,
        output_dtype="uint8", clip_times=True,
    )
    labelled = clips.map(_with_block_labels(config.num_blocks)).unbatch()
    repeats = config.transition_repeats

    def oversampled(clip, labels):
        copies = tf.where(tf.reduce_any(labels == 1), repeats, 1)
        return tf.data.Dataset.from_tensors((clip, labels)).repeat(tf.cast(copies, tf.int64))

    stream = labelled.flat_map(oversampled)
    stream = stream.shuffle(4 * config.batch_size * repeats, seed=config.seed)
    return stream.batch(config.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def oops_evaluation_dataset(data_dir, subset, config):
    """Every window of every video, one block apart: (clips, info) with info["labels"] [batch, N].

    info also holds "video_index" and "window_index" (window w starts at
    block w of its video). The dataset knows its number of batches.
    """
    pattern = shard_pattern(data_dir, "rgb", subset)
    window_stride = config.block_length * config.stride
    clips = evaluation_dataset(
        pattern, config.batch_size, image_size=config.image_size,
        num_blocks=config.num_blocks, block_length=config.block_length,
        stride=config.stride, window_stride=window_stride, output_dtype="uint8",
        clip_times=True,
    )
    windows = count_evaluation_windows(pattern, config.num_blocks, config.block_length,
                                       config.stride, window_stride)
    label = _with_block_labels(config.num_blocks)

    def with_labels(batch, info):
        labels = label(batch, info)[1]
        return batch, {"labels": labels, "video_index": info["video_index"],
                       "window_index": info["window_index"]}

    batches = -(-windows // config.batch_size)
    return clips.map(with_labels).apply(tf.data.experimental.assert_cardinality(batches))


def oops_metrics(labels, predictions):
    """Accuracy, per-class accuracy, confusion (rows true, columns predicted), baseline."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    confusion = np.zeros((len(CLASSES), len(CLASSES)), np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    counts = confusion.sum(axis=1)
    per_class = {name: (float(confusion[i, i] / counts[i]) if counts[i] else None)
                 for i, name in enumerate(CLASSES)}
    present = [value for value in per_class.values() if value is not None]
    total = int(counts.sum())
    return {
        "accuracy": float(np.trace(confusion) / total),
        "per_class_accuracy": per_class,
        "mean_class_accuracy": float(np.mean(present)),
        "confusion": confusion.tolist(),
        "classes": list(CLASSES),
        "class_counts": dict(zip(CLASSES, counts.tolist())),
        "majority_baseline": float(counts.max() / total),
        "clips": total,
    }


def evaluate_oops(classifier, data_dir, subset, config):
    """Metrics of `classifier` on every block of every video of a prepared subset.

    Each block's probabilities are averaged over the sliding windows that
    hold it; the argmax is its prediction (see the module docstring).
    """
    sums, labels = {}, {}
    for clips, info in oops_evaluation_dataset(data_dir, subset, config):
        probabilities = tf.nn.softmax(classifier.predict_on_batch(clips)).numpy()
        batch_labels = info["labels"].numpy()
        for row, (video, window) in enumerate(zip(info["video_index"].numpy(),
                                                  info["window_index"].numpy())):
            for position in range(config.num_blocks):
                key = (int(video), int(window) + position)
                sums[key] = sums.get(key, 0.0) + probabilities[row, position]
                labels[key] = int(batch_labels[row, position])
    keys = sorted(sums)
    metrics = oops_metrics([labels[key] for key in keys],
                           [int(np.argmax(sums[key])) for key in keys])
    metrics["videos"] = len({video for video, _ in keys})
    metrics["subset"] = subset
    return metrics


def make_classifier(config, pretrained=None):
    """The OopsClassifier of a resolved config.

    On the forward direction of `pretrained` (a MemDPC) when given, else on
    a randomly initialised MemDPC (smoke tests). The representation is
    frozen for mode "probe".
    """
    layout = {"image_size": config.image_size, "num_blocks": config.num_blocks,
              "block_length": config.block_length}
    if pretrained is not None:
        representation = single_direction(pretrained, **layout)
    else:
        representation = MemDPC(network=config.network, memory_size=config.memory_size,
                                 pred_steps=min(3, config.num_blocks - 1),
                                 bidirectional=False, seed=config.seed, **layout)
    representation.trainable = config.mode == "finetune"
    return OopsClassifier(representation)


def _write_json(path, value):
    temporary = f"{path}.tmp"
    with open(temporary, "w") as f:
        json.dump(value, f, indent=2)
    os.replace(temporary, path)


def train_oops(config):
    """Train the Oops classifier, test it on the val subset, write the results.

    Writes MODEL_DIR/oops.keras (the trained classifier), history.csv and
    metrics.json (evaluate_oops on val, plus the run's settings). Returns
    the metrics dict. A killed run resumes from its last finished epoch
    (MODEL_DIR/backup); a finished one (metrics.json) is refused unless
    `overwrite`.
    """
    claim_model_dir(config.model_dir, METRICS_JSON, config.overwrite)
    keras.utils.set_random_seed(config.seed)
    pretrained = load_memdpc(config.checkpoint) if config.checkpoint else None
    config = config.resolved(pretrained.image_size if pretrained else None)
    os.makedirs(config.model_dir, exist_ok=True)
    data_dir = config.data
    if data_dir == SYNTHETIC:
        name = (f"seed{config.seed}_size{config.image_size}"
                f"_videos{config.synthetic_videos_per_class}"
                f"_frames{config.synthetic_num_frames}_fps{config.synthetic_fps:g}")
        data_dir = prepare_synthetic_oops(
            os.path.join(config.model_dir, "synthetic_data", name), seed=config.seed,
            videos_per_class=config.synthetic_videos_per_class,
            num_frames=config.synthetic_num_frames, size=config.image_size,
            fps=config.synthetic_fps,
        )
    info = check_oops_data(data_dir)
    steps = config.steps_per_epoch or math.ceil(
        info["subsets"][TRAIN_SUBSET]["videos"] / config.batch_size)
    classifier = make_classifier(config, pretrained)
    classifier.compile(
        optimizer=keras.optimizers.Adam(config.lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    validation = oops_evaluation_dataset(data_dir, TEST_SUBSET, config).map(
        lambda clips, block_info: (clips, block_info["labels"]))
    history_csv = os.path.join(config.model_dir, HISTORY_CSV)
    classifier.fit(
        oops_training_dataset(data_dir, config),
        epochs=config.epochs,
        steps_per_epoch=steps,
        validation_data=validation,
        callbacks=[
            ResumableReduceLROnPlateau(
                history_csv, monitor="val_loss", factor=config.min_lr / config.lr,
                patience=config.lr_patience, min_lr=config.min_lr),
            keras.callbacks.CSVLogger(history_csv, append=True),
            backup_and_restore(config.model_dir),  # last, see its docstring
        ],
        shuffle=False,  # the dataset shuffles
        verbose=config.verbose,
    )
    model_path = os.path.join(config.model_dir, "oops.keras")
    classifier.save(model_path)
    metrics = evaluate_oops(classifier, data_dir, TEST_SUBSET, config)
    metrics.update(mode=config.mode, checkpoint=config.checkpoint, data=data_dir,
                   model=model_path, config=dataclasses.asdict(config))
    _write_json(os.path.join(config.model_dir, METRICS_JSON), metrics)
    remove_backup(config.model_dir)
    logging.info("Oops %s on %s: accuracy %.3f (majority baseline %.3f), per class %s",
                 config.mode, TEST_SUBSET, metrics["accuracy"], metrics["majority_baseline"],
                 metrics["per_class_accuracy"])
    return metrics
