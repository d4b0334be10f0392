"""Action classification on the MemDPC representation: training and ten-crop testing.

`train_classifier(config)` and `evaluate_classifier(config)` (the test) are
what `train/classify.py` runs; tests call them directly.

Training: `ActionClassifier` (protocol linear, nonlinear or finetune), random
init or a pretraining checkpoint, on augmented clips of the training subset
(`video_pipeline.training_dataset`: one random crop and flip per clip,
per-frame colour jitter on RGB; no flip on the synthetic set, whose classes
a mirror image changes: translate left <-> right, rotate cw <-> ccw),
restricted to a label fraction by `label_subsets.label_subset_pattern`;
cross-entropy, Adam lr 1e-3 with coupled L2, dropped once to lr / 10 when the
validation loss plateaus; validation on the centre crop of every sliding
window of the evaluation subset; best and last checkpoints, history.csv,
TensorBoard logs, resumable after a crash.

Testing (the paper's protocol): every sliding window of every video of the
evaluation subset, ten crops each (centre and four corners, with and without
a horizontal flip; only the five unflipped crops when flips are off); the
softmax is averaged over all of a video's windows and crops. Writes
metrics.json (top-1, top-5, mean class accuracy, per-class accuracy,
confusion matrix, number of videos and clips), confusion_matrix.png and
predictions.npz (per-video probabilities, for `late_fusion`).
"""

import dataclasses
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from keras_memdpc import synthetic_videos
from keras_memdpc.action_classifier import PROTOCOLS, ActionClassifier
from keras_memdpc.adam_l2 import AdamL2
from keras_memdpc.label_subsets import check_fraction, label_subset_pattern, read_video_labels
from keras_memdpc.nan_guard import NaNLossError
from keras_memdpc.pretraining import SYNTHETIC, make_callbacks, prepare_synthetic
from keras_memdpc.run_history import HISTORY_CSV, claim_model_dir, logged_rows, remove_backup
from keras_memdpc.video_pipeline import (
    count_evaluation_windows,
    evaluation_dataset,
    training_dataset,
)
from keras_memdpc.video_tfrecord import DATASET_JSON, MODALITIES, read_dataset_json, shard_pattern

EVAL_SUBSETS = ("test", "val", "validation")
CHECKPOINTS = ("best", "last")
TRAIN_SUMMARY = "train_summary.json"
METRICS_JSON = "metrics.json"
CONFUSION_PNG = "confusion_matrix.png"
PREDICTIONS_NPZ = "predictions.npz"
TOP_K = 5


@dataclasses.dataclass
class ClassifyConfig:
    """Everything a classification run needs; None means the data set's default.

    On the built-in synthetic set the defaults are a laptop-sized run (32 px,
    batch 8, 20 epochs, no colour augmentation, no flips: a mirror image
    turns a leftward motion class into the rightward one); elsewhere the
    paper's (128 px, batch 16, 100 epochs, colour augmentation on RGB,
    random flips in training and ten crops in testing; five crops without
    flips).
    `network` and `bidirectional` apply to random initialisation only: a
    checkpoint brings its own.
    """

    model_dir: str = "runs/classify"
    data: str = SYNTHETIC
    pretrained: str = ""  # a .keras file; "" or "none": random initialisation
    protocol: str = "linear"
    modality: str = "rgb"
    label_fraction: float = 1.0
    eval_subset: str = ""
    network: str = "resnet18"
    bidirectional: bool = True
    image_size: int | None = None
    num_blocks: int = 8
    block_length: int = 5
    batch_size: int | None = None
    epochs: int | None = None
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    lr: float = 1e-3
    weight_decay: float = 1e-5
    lr_patience: int = 5
    dropout: float = 0.9
    hidden_units: int = 512
    colour_augmentation: bool | None = None
    random_flip: bool | None = None
    window_stride: int | None = None
    checkpoint: str = "best"
    synthetic_videos_per_class: int = synthetic_videos.DEFAULT_VIDEOS_PER_CLASS
    seed: int = 0
    overwrite: bool = False
    verbose: str | int = "auto"

    def resolved(self):
        """A copy with the data set's defaults filled in, checked."""
        synthetic = self.data == SYNTHETIC
        defaults = {
            "colour_augmentation": not synthetic,
            "random_flip": not synthetic,
            "image_size": synthetic_videos.DEFAULT_SIZE if synthetic else 128,
            "batch_size": 8 if synthetic else 16,
            "epochs": 20 if synthetic else 100,
        }
        values = {
            key: defaults[key] if getattr(self, key) is None else getattr(self, key)
            for key in defaults
        }
        if self.pretrained.lower() == "none":
            values["pretrained"] = ""
        config = dataclasses.replace(self, **values)
        config.check()
        return config

    def check(self):
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"--protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.modality not in MODALITIES:
            raise ValueError(f"--modality must be one of {MODALITIES}, got {self.modality!r}")
        if self.checkpoint not in CHECKPOINTS and not os.path.exists(self.checkpoint):
            raise ValueError(
                f"--checkpoint must be one of {CHECKPOINTS} or a .keras file, "
                f"got {self.checkpoint!r}"
            )
        try:
            check_fraction(self.label_fraction)
        except ValueError as error:
            raise ValueError(f"--label_fraction: {error}") from None
        for name in ("image_size", "batch_size", "epochs", "num_blocks", "block_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be positive, got {getattr(self, name)}")
        if self.pretrained and not os.path.exists(self.pretrained):
            raise ValueError(f"--pretrained={self.pretrained!r}: no such file")
        if self.data != SYNTHETIC and not tf.io.gfile.exists(
            os.path.join(self.data, DATASET_JSON)
        ):
            raise ValueError(
                f"--data={self.data!r} is neither 'synthetic' nor a prepared data "
                f"set (no {DATASET_JSON} there): prepare videos with "
                "train/prepare_data.py first"
            )


def data_dir_of(config):
    """The prepared data set of the config (the synthetic set is prepared once)."""
    if config.data == SYNTHETIC:
        return prepare_synthetic(config, os.path.join(config.model_dir, "synthetic_data"))
    return config.data


def eval_subset_of(info, requested, data_dir):
    """The subset validated and tested on: `requested`, else test, val or validation."""
    subsets = info["subsets"]
    if requested:
        if requested not in subsets:
            raise ValueError(
                f"{data_dir}: no subset {requested!r} (it has {sorted(subsets)})"
            )
        return requested
    for name in EVAL_SUBSETS:
        if name in subsets:
            return name
    raise ValueError(f"{data_dir}: no test, val or validation subset to evaluate on")


def make_classifier(config, num_classes):
    """A built `ActionClassifier`: from --pretrained, or randomly initialised."""
    arguments = dict(
        image_size=config.image_size,
        num_blocks=config.num_blocks,
        block_length=config.block_length,
        protocol=config.protocol,
        dropout=config.dropout,
        hidden_units=config.hidden_units,
        seed=config.seed,
    )
    if config.pretrained:
        model = ActionClassifier.from_pretrained(config.pretrained, num_classes, **arguments)
        logging.info("initialised from %s", config.pretrained)
        return model
    model = ActionClassifier(
        num_classes, network=config.network, bidirectional=config.bidirectional, **arguments
    )
    model.build()
    logging.info("random initialisation")
    return model


def compile_classifier(model, config):
    """Cross-entropy on logits, Adam with coupled L2, top-1 / top-5 accuracy."""
    model.compile(
        optimizer=AdamL2(learning_rate=config.lr, l2=config.weight_decay),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="top1"),
            keras.metrics.SparseTopKCategoricalAccuracy(
                k=min(TOP_K, model.num_classes), name="top5"
            ),
        ],
    )


def _write_json(path, value):
    temporary = f"{path}.tmp"
    with open(temporary, "w") as f:
        json.dump(value, f, indent=2)
    os.replace(temporary, path)


def train_classifier(config):
    """Trains one classifier; returns its summary (also in train_summary.json).

    Resumes from `model_dir/backup` when a previous run of the same job was
    killed. Writes best.keras (lowest validation loss), last.keras,
    history.csv, TensorBoard logs and, with a label fraction below 1, the
    chosen videos' shards under model_dir/label_subset.
    """
    config = config.resolved()
    claim_model_dir(config.model_dir, TRAIN_SUMMARY, config.overwrite,
                    advice="--mode=test to test it, or choose another --model_dir")
    keras.utils.set_random_seed(config.seed)
    os.makedirs(config.model_dir, exist_ok=True)
    data_dir = data_dir_of(config)
    info = read_dataset_json(data_dir)
    if "train" not in info["subsets"]:
        raise ValueError(f"{data_dir}: the prepared data set has no 'train' subset")
    eval_subset = eval_subset_of(info, config.eval_subset, data_dir)
    train_pattern, train_videos = label_subset_pattern(
        data_dir, "train", config.modality, config.label_fraction, config.seed,
        os.path.join(config.model_dir, "label_subset"), info["classes"],
    )
    steps_per_epoch = config.steps_per_epoch or max(1, train_videos // config.batch_size)
    logging.info(
        "training a %s classifier on %d videos (label fraction %g), %d steps per epoch: %s",
        config.protocol, train_videos, config.label_fraction, steps_per_epoch,
        dataclasses.asdict(config),
    )
    train_data = training_dataset(
        train_pattern, config.batch_size, image_size=config.image_size,
        num_blocks=config.num_blocks, block_length=config.block_length,
        seed=config.seed, modality=config.modality,
        colour_augmentation=config.colour_augmentation, random_flip=config.random_flip,
        output_dtype="uint8",
    )
    eval_pattern = shard_pattern(data_dir, config.modality, eval_subset)
    validation_clips = count_evaluation_windows(
        eval_pattern, config.num_blocks, config.block_length
    )
    validation_data = evaluation_dataset(
        eval_pattern, config.batch_size, image_size=config.image_size,
        num_blocks=config.num_blocks, block_length=config.block_length, crops="centre",
        modality=config.modality, output_dtype="uint8",
    ).map(lambda clips, clip_info: (clips, clip_info["label"])).apply(
        tf.data.experimental.assert_cardinality(-(-validation_clips // config.batch_size))
    )

    model = make_classifier(config, len(info["classes"]))
    compile_classifier(model, config)
    callbacks = make_callbacks(config, config.model_dir, "val_loss")
    started = time.time()
    try:
        model.fit(
            train_data, epochs=config.epochs, steps_per_epoch=steps_per_epoch,
            validation_data=validation_data, validation_steps=config.validation_steps,
            callbacks=callbacks, shuffle=False, verbose=config.verbose,
        )
    except NaNLossError as error:
        raise NaNLossError(f"{error} Model directory: {config.model_dir}") from None
    rows = logged_rows(os.path.join(config.model_dir, HISTORY_CSV))
    summary = {
        "model_dir": config.model_dir,
        "data": data_dir,
        "train_videos": train_videos,
        "eval_subset": eval_subset,
        "steps_per_epoch": steps_per_epoch,
        "train_seconds": time.time() - started,
        "final": rows[-1],
        "best_val_loss": min(row["val_loss"] for row in rows),
        "trainable_weights": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        "config": dataclasses.asdict(config),
    }
    _write_json(os.path.join(config.model_dir, TRAIN_SUMMARY), summary)
    remove_backup(config.model_dir)
    return summary


def crop_predictions(model, file_pattern, batch_size, modality="rgb", window_stride=None,
                     crops="ten"):
    """Per-video softmax averaged over every sliding window and all its crops.

    Args:
        model: an `ActionClassifier` (its clip layout and image size are used).
        file_pattern: the shards of the subset to test.
        batch_size: clips per forward pass.
        modality: of the shards.
        window_stride: frames between windows (default half a window).
        crops: "ten" (the paper's test), "five" (no mirrored crops) or "centre".

    Returns:
        dict: "probabilities" float64 [videos, classes], "labels" int
        [videos], "paths" [videos] (stored video paths), "clips" int
        [videos] (windows x crops per video); videos in the pipeline's read order.
    """
    clips = evaluation_dataset(
        file_pattern, batch_size, image_size=model.image_size,
        num_blocks=model.num_blocks, block_length=model.block_length,
        crops=crops, window_stride=window_stride, modality=modality,
        output_dtype="uint8",
    )
    paths, labels = read_video_labels(file_pattern)
    sums = np.zeros((len(paths), model.num_classes))
    counts = np.zeros(len(paths), np.int64)
    for batch, clip_info in clips:
        logits = np.asarray(model.predict_on_batch(batch), np.float64)
        probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        videos = clip_info["video_index"].numpy()
        np.add.at(sums, videos, probabilities)
        np.add.at(counts, videos, 1)
    if np.any(counts == 0):
        missing = [paths[i] for i in np.flatnonzero(counts == 0)]
        raise RuntimeError(f"{file_pattern}: no clip came out of {', '.join(missing)}")
    return {
        "probabilities": sums / counts[:, None],
        "labels": np.array(labels),
        "paths": paths,
        "clips": counts,
    }


def top_k_correct(probabilities, labels, k):
    """Whether each label is among the k highest probabilities: bool [videos]."""
    top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return np.any(top == np.asarray(labels)[:, None], axis=1)


def classification_metrics(probabilities, labels, class_names):
    """Top-1, top-5, per-class accuracy and confusion matrix of per-video predictions.

    Args:
        probabilities: [videos, classes].
        labels: int [videos].
        class_names: one per class.

    Returns:
        dict: top1, top5 (top-min(5, classes)), mean_class_accuracy (over
        the classes with test videos), per_class_accuracy {name: accuracy or
        None when the class has no video}, confusion_matrix [true][predicted]
        counts, num_videos.
    """
    labels = np.asarray(labels)
    predicted = np.argmax(probabilities, axis=1)
    classes = len(class_names)
    confusion = np.zeros((classes, classes), np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    per_class = {}
    for index, name in enumerate(class_names):
        total = confusion[index].sum()
        per_class[name] = float(confusion[index, index] / total) if total else None
    present = [value for value in per_class.values() if value is not None]
    return {
        "top1": float(np.mean(predicted == labels)),
        "top5": float(np.mean(top_k_correct(probabilities, labels, min(TOP_K, classes)))),
        "mean_class_accuracy": float(np.mean(present)),
        "per_class_accuracy": per_class,
        "confusion_matrix": confusion.tolist(),
        "num_videos": int(len(labels)),
    }


def save_confusion_matrix(confusion, class_names, path, title=""):
    """A PNG of the confusion matrix, rows normalised (true class -> predicted).

    Counts are written in the cells when there are at most 30 classes.
    Needs matplotlib (pip install "keras_memdpc[plots]").
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "the confusion matrix picture needs matplotlib: pip install 'keras_memdpc[plots]'"
        ) from error

    confusion = np.asarray(confusion, np.float64)
    rows = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    classes = len(class_names)
    size = min(4 + 0.25 * classes, 30)
    figure = Figure(figsize=(size, size))
    axes = figure.subplots()
    image = axes.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, fraction=0.046)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(title)
    if classes <= 30:
        axes.set_xticks(range(classes), class_names, rotation=90)
        axes.set_yticks(range(classes), class_names)
        for i, j in zip(*np.nonzero(confusion)):
            axes.text(j, i, int(confusion[i, j]), ha="center", va="center",
                      color="white" if rows[i, j] > 0.5 else "black")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def save_predictions(path, predictions, class_names, modality):
    """predictions.npz: probabilities, labels, paths, classes, modality."""
    np.savez(
        path,
        probabilities=predictions["probabilities"],
        labels=predictions["labels"],
        paths=np.array(predictions["paths"], dtype=str),
        classes=np.array(class_names, dtype=str),
        modality=np.array(modality),
    )


def checkpoint_path(config):
    """The .keras file --checkpoint names: model_dir/best.keras, last.keras, or a path."""
    if config.checkpoint in CHECKPOINTS:
        return os.path.join(config.model_dir, f"{config.checkpoint}.keras")
    return config.checkpoint


def evaluate_classifier(config):
    """Ten-crop test of a trained classifier (five crops when `random_flip` is off:
    mirrored crops would show the mirrored class); returns the metrics (metrics.json).

    The clip layout and image size come from the checkpoint; writes
    metrics.json, confusion_matrix.png and predictions.npz under model_dir.
    """
    config = config.resolved()
    path = checkpoint_path(config)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: train first (--mode=train)")
    model = keras.saving.load_model(path, compile=False)
    data_dir = data_dir_of(config)
    info = read_dataset_json(data_dir)
    subset = eval_subset_of(info, config.eval_subset, data_dir)
    started = time.time()
    crops = "ten" if config.random_flip else "five"
    predictions = crop_predictions(
        model, shard_pattern(data_dir, config.modality, subset), config.batch_size,
        config.modality, config.window_stride, crops,
    )
    metrics = classification_metrics(
        predictions["probabilities"], predictions["labels"], info["classes"]
    )
    metrics.update({
        "num_clips": int(predictions["clips"].sum()),
        "test_seconds": time.time() - started,
        "checkpoint": path,
        "data": data_dir,
        "subset": subset,
        "modality": config.modality,
        "protocol": model.protocol,
        "crops": crops,
    })
    os.makedirs(config.model_dir, exist_ok=True)
    _write_json(os.path.join(config.model_dir, METRICS_JSON), metrics)
    save_confusion_matrix(
        metrics["confusion_matrix"], info["classes"],
        os.path.join(config.model_dir, CONFUSION_PNG),
        f"{subset}: top-1 {metrics['top1']:.3f} ({model.protocol}, {config.modality})",
    )
    save_predictions(
        os.path.join(config.model_dir, PREDICTIONS_NPZ), predictions, info["classes"],
        config.modality,
    )
    logging.info("top-1 %.4f, top-5 %.4f on %d videos of %s",
                 metrics["top1"], metrics["top5"], metrics["num_videos"], subset)
    return metrics
