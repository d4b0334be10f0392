"""Self-supervised MemDPC pretraining: strategy, data, model, callbacks, summary.

`pretrain(config)` is what `train/pretrain.py` runs; tests call it directly.
"""

import csv
import dataclasses
import json
import math
import os
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from keras_memdpc import synthetic_videos
from keras_memdpc.adam_l2 import AdamL2
from keras_memdpc.distributed_fit import distributed_fit, is_chief
from keras_memdpc.in_memory_clips import clip_dataset, stack_videos
from keras_memdpc.knn import knn_accuracy
from keras_memdpc.memdpc import MemDPC
from keras_memdpc.nan_guard import NaNLossError, RaiseOnNaN

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
PRECISIONS = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
SYNTHETIC = "synthetic"


@dataclasses.dataclass
class PretrainConfig:
    """Everything a pretraining run needs; None means the data set's default.

    On the built-in synthetic set the defaults are a laptop-sized run (64 px,
    batch 8, no colour augmentation: its colours are already uninformative,
    and per-frame jitter kept the 2-core demo on the position-only plateau
    for its whole budget); elsewhere the paper's (128 px, batch 16 per
    replica, per-frame colour jitter and grayscale).
    """

    model_dir: str = "runs/pretrain"
    data: str = SYNTHETIC
    strategy: str = "default"
    network: str = "resnet18"
    image_size: int | None = None
    num_blocks: int = 8
    block_length: int = 5
    pred_steps: int = 3
    memory_size: int = 1024
    bidirectional: bool = True
    batch_size: int | None = None
    epochs: int | None = None
    steps_per_epoch: int | None = None
    lr: float = 1e-3
    weight_decay: float = 1e-5
    optimizer: str = "adam"
    lr_patience: int = 5
    colour_augmentation: bool | None = None
    mixed_precision: str = "fp32"
    jit_compile: bool = False
    gather_negatives: bool = False
    synthetic_videos_per_class: int = 12
    seed: int = 0
    overwrite: bool = False
    verbose: str | int = "auto"

    def resolved(self):
        """A copy with the data set's defaults filled in, checked."""
        synthetic = self.data == SYNTHETIC
        defaults = {
            "colour_augmentation": not synthetic,
            "image_size": 64 if synthetic else 128,
            "batch_size": 8 if synthetic else 16,
            "epochs": 25 if synthetic else 100,
        }
        values = {
            key: defaults[key] if getattr(self, key) is None else getattr(self, key)
            for key in defaults
        }
        config = dataclasses.replace(self, **values)
        config.check()
        return config

    def check(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"--strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.mixed_precision not in PRECISIONS:
            raise ValueError(
                f"--mixed_precision must be one of {sorted(PRECISIONS)}, "
                f"got {self.mixed_precision!r}"
            )
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError(f"--optimizer must be adam or adamw, got {self.optimizer!r}")
        for name in ("image_size", "batch_size", "epochs", "num_blocks", "block_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be positive, got {getattr(self, name)}")
        if self.data != SYNTHETIC:
            raise ValueError(
                f"--data={self.data!r}: only the built-in synthetic set "
                "('synthetic') can be read yet; prepared TFRecord data sets "
                "come with train/prepare_data.py"
            )


def make_strategy(name):
    """The tf.distribute strategy named by --strategy."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "--strategy=multi_worker needs the TF_CONFIG environment "
                "variable describing the cluster and this worker's task"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.NotFoundError) as error:
        raise ValueError(f"--strategy=tpu: no TPU found ({error})") from error
    return tf.distribute.TPUStrategy(resolver)


def synthetic_split(config, image_size):
    """(train videos, train labels, test videos, test labels) of the synthetic set."""
    frames = config.num_blocks * config.block_length * 3 + 30
    items = synthetic_videos.make_dataset(
        seed=config.seed,
        videos_per_class=config.synthetic_videos_per_class,
        num_frames=frames,
        size=image_size,
    )
    split = {}
    for name in ("train", "test"):
        chosen = [item for item in items if item["split"] == name]
        split[name] = (
            stack_videos([item["frames"] for item in chosen]),
            np.array([item["label"] for item in chosen]),
        )
    return split["train"] + split["test"]


def make_model(config):
    """The MemDPC model of the config (call under the strategy's scope)."""
    return MemDPC(
        network=config.network,
        image_size=config.image_size,
        num_blocks=config.num_blocks,
        block_length=config.block_length,
        pred_steps=config.pred_steps,
        memory_size=config.memory_size,
        bidirectional=config.bidirectional,
        gather_negatives=config.gather_negatives,
        seed=config.seed,
    )


def make_optimizer(config):
    """Adam with coupled L2 (the reference), or AdamW."""
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(config.lr, weight_decay=config.weight_decay)
    return AdamL2(learning_rate=config.lr, l2=config.weight_decay)


def logged_rows(history_csv):
    """The epochs a CSVLogger file records, as dicts of floats."""
    if not os.path.exists(history_csv):
        return []
    with open(history_csv) as f:
        return [
            {key: float(value) for key, value in row.items() if value}
            for row in csv.DictReader(f)
        ]


def best_logged(history_csv, monitor):
    """The lowest finite `monitor` value in a CSVLogger file, or None."""
    values = [row[monitor] for row in logged_rows(history_csv) if monitor in row]
    finite = [v for v in values if math.isfinite(v)]
    return min(finite) if finite else None


def make_callbacks(config, output_dir):
    """NaN guard, best/last checkpoints, lr drop, logs, resume backup."""
    history_csv = os.path.join(output_dir, "history.csv")
    best_path = os.path.join(output_dir, "best.keras")
    return [
        RaiseOnNaN(f" ({best_path})"),
        keras.callbacks.ModelCheckpoint(os.path.join(output_dir, "last.keras")),
        keras.callbacks.ModelCheckpoint(
            best_path,
            monitor="val_loss",
            save_best_only=True,
            initial_value_threshold=best_logged(history_csv, "val_loss"),
        ),
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss",
            factor=0.1,
            patience=config.lr_patience,
            min_lr=config.lr * 0.1,
        ),
        keras.callbacks.CSVLogger(history_csv, append=True),
        keras.callbacks.TensorBoard(os.path.join(output_dir, "logs")),
        # Last, so an epoch counts as done only once everything above ran.
        keras.callbacks.BackupAndRestore(
            os.path.join(output_dir, "backup"), double_checkpoint=True
        ),
    ]


def embeddings(model, videos, config, batch_size):
    """Embeddings of the centred clip of each video, [videos, dim]."""
    clips = clip_dataset(
        videos, config.num_blocks, config.block_length, 1, training=False
    ).unbatch().batch(batch_size)
    return np.concatenate([np.asarray(model.embed(batch)) for batch in clips])


def knn_report(model, config, train, test):
    """1-NN motion-class accuracy of the learned and a random-init encoder."""
    (train_videos, train_labels), (test_videos, test_labels) = train, test
    random_model = make_model(config)
    random_model.build()
    report = {}
    for name, candidate in (("learned", model), ("random_init", random_model)):
        report[f"knn_top1_{name}"] = knn_accuracy(
            embeddings(candidate, train_videos, config, config.batch_size),
            train_labels,
            embeddings(candidate, test_videos, config, config.batch_size),
            test_labels,
        )
    report["knn_chance"] = 1.0 / len(synthetic_videos.CLASS_NAMES)
    return report


def _check_not_finished(model_dir, overwrite):
    summary_path = os.path.join(model_dir, "summary.json")
    if os.path.exists(summary_path) and not overwrite:
        raise FileExistsError(
            f"{model_dir} holds a finished run ({summary_path}); pass "
            "--overwrite to train again there, or choose another --model_dir"
        )


def _write_json(path, value):
    temporary = f"{path}.tmp"
    with open(temporary, "w") as f:
        json.dump(value, f, indent=2)
    os.replace(temporary, path)


def pretrain(config):
    """Runs one pretraining job and returns its summary dict.

    Resumes from `model_dir/backup` when a previous run of the same job was
    killed. Writes best.keras, last.keras, history.csv, TensorBoard logs and
    summary.json under `model_dir` (the chief's; other workers of a
    multi-worker job write to a temporary folder).
    """
    config = config.resolved()
    _check_not_finished(config.model_dir, config.overwrite)
    if config.mixed_precision == "fp16" and not tf.config.list_physical_devices("GPU"):
        raise ValueError(
            "--mixed_precision=fp16 needs a GPU (TensorFlow has no float16 "
            "CPU kernels for 3D pooling); use bf16 on CPUs"
        )
    # Multi-worker collectives must be set up before TensorFlow runs any op.
    strategy = make_strategy(config.strategy)
    keras.utils.set_random_seed(config.seed)
    keras.mixed_precision.set_global_policy(PRECISIONS[config.mixed_precision])
    chief = is_chief(strategy)
    output_dir = config.model_dir if chief else tempfile.mkdtemp(prefix="worker_")
    os.makedirs(output_dir, exist_ok=True)
    replicas = strategy.num_replicas_in_sync
    global_batch = config.batch_size * replicas
    logging.info(
        "pretraining on %d replica(s), global batch %d: %s",
        replicas, global_batch, dataclasses.asdict(config),
    )

    train_videos, train_labels, test_videos, test_labels = synthetic_split(
        config, config.image_size
    )
    steps_per_epoch = config.steps_per_epoch or max(1, len(train_videos) // global_batch)
    validation_batch = min(global_batch, len(test_videos))
    train_data = clip_dataset(
        train_videos, config.num_blocks, config.block_length, global_batch,
        training=True, seed=config.seed,
        colour_augmentation=config.colour_augmentation,
    )
    validation_data = clip_dataset(
        test_videos, config.num_blocks, config.block_length, validation_batch,
        training=False,
    )

    with strategy.scope():
        model = make_model(config)
        model.build()
        model.compile(optimizer=make_optimizer(config), jit_compile=config.jit_compile)
    callbacks = make_callbacks(config, output_dir)
    started = time.time()
    try:
        if config.strategy == "multi_worker":
            history = distributed_fit(
                model, train_data, config.epochs, steps_per_epoch,
                callbacks=callbacks, verbose=config.verbose, strategy=strategy,
                validation_data=validation_data,
            )
        else:
            history = model.fit(
                train_data, epochs=config.epochs, steps_per_epoch=steps_per_epoch,
                validation_data=validation_data, callbacks=callbacks,
                verbose=config.verbose,
            )
    except NaNLossError as error:
        raise NaNLossError(f"{error} Model directory: {config.model_dir}") from None
    seconds = time.time() - started

    # The whole run's record, across resumes (a run resumed after its last
    # epoch trains no epoch in this process).
    history_csv = os.path.join(output_dir, "history.csv")
    summary = {
        "model_dir": config.model_dir,
        "epochs": config.epochs,
        "steps_per_epoch": steps_per_epoch,
        "global_batch": global_batch,
        "replicas": replicas,
        "train_seconds": seconds,
        "clips_per_second": len(history.epoch) * steps_per_epoch * global_batch / max(seconds, 1e-9),
        "final": logged_rows(history_csv)[-1],
        "best_val_loss": best_logged(history_csv, "val_loss"),
        "plateau_loss": (2 if config.bidirectional else 1)
        * math.log(config.batch_size * config.pred_steps),
        "config": dataclasses.asdict(config),
    }
    summary.update(
        knn_report(model, config, (train_videos, train_labels), (test_videos, test_labels))
    )
    if chief:
        _write_json(os.path.join(config.model_dir, "summary.json"), summary)
    return summary
