"""Self-supervised MemDPC pretraining: strategy, data, model, callbacks, summary.

`pretrain(config)` is what `train/pretrain.py` runs; tests call it directly.
"""

import dataclasses
import json
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from keras_memdpc import readers, synthetic_videos
from keras_memdpc.adam_l2 import AdamL2
from keras_memdpc.data_preparation import prepare_dataset
from keras_memdpc.distributed_fit import distributed_fit, is_chief
from keras_memdpc.memdpc import MemDPC
from keras_memdpc.nan_guard import NaNLossError, RaiseOnNaN
from keras_memdpc.retrieval import retrieval_report
from keras_memdpc.run_history import (
    HISTORY_CSV,
    ResumableReduceLROnPlateau,
    backup_and_restore,
    best_logged,
    claim_model_dir,
    logged_rows,
    remove_backup,
    worker_output_dir,
)
from keras_memdpc.video_pipeline import (
    count_evaluation_windows,
    evaluation_dataset,
    training_dataset,
)
from keras_memdpc.video_tfrecord import DATASET_JSON, read_dataset_json, shard_pattern

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
PRECISIONS = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
SYNTHETIC = "synthetic"
PLATEAU_MARGIN = 0.05  # a final loss within this of the plateau has not left it
VALIDATION_SUBSETS = ("val", "validation", "test")


@dataclasses.dataclass
class PretrainConfig:
    """Everything a pretraining run needs; None means the data set's default.

    On the built-in synthetic set the defaults are a laptop-sized run (32 px,
    see synthetic_videos.DEFAULT_SIZE; batch 8; 40 epochs; lr drop patience
    20 epochs; no colour augmentation and no random-resized crop: the dots'
    colours, sizes and speeds are random already); elsewhere the paper's
    (128 px, batch 16 per replica, per-frame colour jitter and grayscale).
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
    lr_patience: int | None = None
    colour_augmentation: bool | None = None
    random_crop: bool | None = None
    mixed_precision: str = "fp32"
    jit_compile: bool = False
    gather_negatives: bool = False
    synthetic_videos_per_class: int = synthetic_videos.DEFAULT_VIDEOS_PER_CLASS
    seed: int = 0
    overwrite: bool = False
    verbose: str | int = "auto"

    def resolved(self):
        """A copy with the data set's defaults filled in, checked."""
        synthetic = self.data == SYNTHETIC
        defaults = {
            "colour_augmentation": not synthetic,
            # The dots' speed and size are random already; the crop's rescaling
            # slowed learning: 6.23 after 640 steps with it, 5.46 after 384
            # without (README demo, 2 cores).
            "random_crop": not synthetic,
            "image_size": synthetic_videos.DEFAULT_SIZE if synthetic else 128,
            "batch_size": 8 if synthetic else 16,
            "epochs": 40 if synthetic else 100,
            # The synthetic loss sits on its plateau for the first 10-15
            # epochs of 16 steps; a drop there would freeze it.
            "lr_patience": 20 if synthetic else 5,
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
        if self.data != SYNTHETIC and not tf.io.gfile.exists(
            os.path.join(self.data, DATASET_JSON)
        ):
            raise ValueError(
                f"--data={self.data!r} is neither 'synthetic' nor a prepared data "
                f"set (no {DATASET_JSON} there): prepare videos with "
                "train/prepare_data.py first"
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


def prepare_synthetic(config, root):
    """Writes the synthetic set as videos and prepares it; returns the prepared dir.

    The set is written once per (seed, size, videos per class) under `root`
    and prepared with train/prepare_data.py's code, so it reaches the model
    through the same TFRecord pipeline as a real data set. Videos keep one
    motion throughout (no Oops-style change), so that the label describes
    every clip of a video.
    """
    name = (f"synthetic_seed{config.seed}_size{config.image_size}"
            f"_videos{config.synthetic_videos_per_class}")
    videos_root = os.path.join(root, name, "videos")
    prepared = os.path.join(root, name, "prepared")
    if not os.path.exists(os.path.join(videos_root, "manifest.json")):
        synthetic_videos.write_dataset(
            videos_root,
            seed=config.seed,
            videos_per_class=config.synthetic_videos_per_class,
            num_frames=config.num_blocks * config.block_length * 3 + 30,
            size=config.image_size,
            change_fraction=0.0,
        )
    dataset = readers.read_ucf101(
        os.path.join(videos_root, "splits"), os.path.join(videos_root, "videos")
    )
    if not os.path.exists(os.path.join(prepared, "dataset.json")):
        prepare_dataset(dataset, prepared, short_side=config.image_size, workers=1)
    return prepared


def data_subsets(data_dir):
    """(train subset, validation subset or None, dataset.json) of a prepared set."""
    info = read_dataset_json(data_dir)
    subsets = info["subsets"]
    if "train" not in subsets:
        raise ValueError(f"{data_dir}: the prepared data set has no 'train' subset")
    validation = next((name for name in VALIDATION_SUBSETS if name in subsets), None)
    return "train", validation, info


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


def make_callbacks(config, output_dir, monitor="val_loss"):
    """NaN guard, best/last checkpoints, lr drop, logs, resume backup.

    `monitor` picks the best checkpoint and drives the lr drop: the
    validation loss, or the training loss when there is no validation data.
    """
    history_csv = os.path.join(output_dir, HISTORY_CSV)
    best_path = os.path.join(output_dir, "best.keras")
    return [
        RaiseOnNaN(f" ({best_path})"),
        keras.callbacks.ModelCheckpoint(os.path.join(output_dir, "last.keras")),
        keras.callbacks.ModelCheckpoint(
            best_path,
            monitor=monitor,
            save_best_only=True,
            initial_value_threshold=best_logged(history_csv, monitor),
        ),
        ResumableReduceLROnPlateau(
            history_csv,
            monitor=monitor,
            factor=0.1,
            patience=config.lr_patience,
            min_lr=config.lr * 0.1,
        ),
        keras.callbacks.CSVLogger(history_csv, append=True),
        keras.callbacks.TensorBoard(os.path.join(output_dir, "logs")),
        backup_and_restore(output_dir),  # last, see its docstring
    ]


def retrieval_comparison(model, config, data_dir):
    """Retrieval R@k of the learned and of a randomly initialised encoder.

    Every held-out video queries the training videos (train/retrieve.py's
    protocol); R@1 is the 1-nearest-neighbour class accuracy.
    """
    random_model = make_model(config)
    random_model.build()
    return {
        f"retrieval_{name}": retrieval_report(candidate, data_dir, batch_size=config.batch_size)
        for name, candidate in (("learned", model), ("random_init", random_model))
    }


def summary_text(summary):
    """The lines pretrain.py prints at the end of a run."""
    final = summary["final"]
    held_out = f", held-out loss {final['val_loss']:.3f}" if "val_loss" in final else ""
    lines = [
        f"Pretraining finished in {summary['train_seconds']:.0f} s "
        f"({summary['clips_per_second']:.2f} clips/s).",
        f"  training loss {final['loss']:.3f} (plateau of clips not told apart "
        f"{summary['plateau_loss']:.3f}){held_out}",
    ]
    if final["loss"] > summary["plateau_loss"] - PLATEAU_MARGIN:
        lines.append(
            "  the loss is still on that plateau: the features tell no clips apart yet. "
            "Train longer, or try another --seed: from some initialisations the loss "
            "never leaves it (on the synthetic set seeds 2 and, once, 0 stayed for 350 steps)"
        )
    if "val_top1" in final:
        lines.append(f"  pretext top-1 on held-out clips {final['val_top1']:.3f} "
                     f"(top-5 {final['val_top5']:.3f})")
    if "retrieval_learned" in summary:
        learned, random_init = summary["retrieval_learned"], summary["retrieval_random_init"]
        lines.append(
            f"  retrieval R@1 (= 1-NN class accuracy): learned {learned['R@1']:.3f} vs "
            f"random init {random_init['R@1']:.3f} (chance {summary['chance']:.3f}); "
            f"R@5 {learned['R@5']:.3f} vs {random_init['R@5']:.3f}"
        )
    lines.append(f"  checkpoints: {summary['model_dir']}/best.keras, last.keras; summary.json")
    return "\n".join(lines)


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
    claim_model_dir(config.model_dir, "summary.json", config.overwrite)
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
    output_dir = config.model_dir if chief else worker_output_dir(config.model_dir)
    os.makedirs(output_dir, exist_ok=True)
    if not chief:
        logging.info("this worker's own files (not the chief's) go to %s", output_dir)
    replicas = strategy.num_replicas_in_sync
    global_batch = config.batch_size * replicas
    logging.info(
        "pretraining on %d replica(s), global batch %d: %s",
        replicas, global_batch, dataclasses.asdict(config),
    )

    data_dir = (
        prepare_synthetic(config, os.path.join(output_dir, "synthetic_data"))
        if config.data == SYNTHETIC else config.data
    )
    train_subset, validation_subset, info = data_subsets(data_dir)
    train_videos = info["subsets"][train_subset]["videos"]
    steps_per_epoch = config.steps_per_epoch or max(1, train_videos // global_batch)

    def train_data(input_context=None):
        return training_dataset(
            shard_pattern(data_dir, "rgb", train_subset), global_batch,
            image_size=config.image_size, num_blocks=config.num_blocks,
            block_length=config.block_length, seed=config.seed,
            input_context=input_context,
            colour_augmentation=config.colour_augmentation,
            random_crop=config.random_crop, output_dtype="uint8",
        ).map(lambda clips, labels: clips)

    validation_data = None
    if validation_subset is not None:
        validation_pattern = shard_pattern(data_dir, "rgb", validation_subset)
        validation_batches = count_evaluation_windows(
            validation_pattern, config.num_blocks, config.block_length
        ) // global_batch
        if validation_batches == 0:
            logging.warning(
                "the %r subset holds fewer clips than one batch: no validation",
                validation_subset,
            )
            validation_subset = None
        else:
            validation_data = evaluation_dataset(
                validation_pattern, global_batch,
                image_size=config.image_size, num_blocks=config.num_blocks,
                block_length=config.block_length, crops="centre", output_dtype="uint8",
            ).map(lambda clips, info: clips).unbatch().batch(
                global_batch, drop_remainder=True
            ).apply(tf.data.experimental.assert_cardinality(validation_batches))

    with strategy.scope():
        model = make_model(config)
        model.build()
        model.compile(optimizer=make_optimizer(config), jit_compile=config.jit_compile)
    monitor = "loss" if validation_data is None else "val_loss"
    callbacks = make_callbacks(config, output_dir, monitor)
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
                train_data(), epochs=config.epochs, steps_per_epoch=steps_per_epoch,
                validation_data=validation_data, callbacks=callbacks, shuffle=False,
                verbose=config.verbose,
            )
    except NaNLossError as error:
        raise NaNLossError(f"{error} Model directory: {config.model_dir}") from None
    seconds = time.time() - started

    # The whole run's record, across resumes (a run resumed after its last
    # epoch trains no epoch in this process).
    history_csv = os.path.join(output_dir, HISTORY_CSV)
    summary = {
        "model_dir": config.model_dir,
        "epochs": config.epochs,
        "steps_per_epoch": steps_per_epoch,
        "global_batch": global_batch,
        "replicas": replicas,
        "train_seconds": seconds,
        "clips_per_second": len(history.epoch) * steps_per_epoch * global_batch / max(seconds, 1e-9),
        "final": logged_rows(history_csv)[-1],
        f"best_{monitor}": best_logged(history_csv, monitor),
        "plateau_loss": (2 if config.bidirectional else 1)
        * math.log(config.batch_size * config.pred_steps),
        "config": dataclasses.asdict(config),
    }
    if validation_subset is not None:
        summary.update(retrieval_comparison(model, config, data_dir))
        summary["chance"] = 1.0 / len(info["classes"])
    if chief:
        _write_json(os.path.join(config.model_dir, "summary.json"), summary)
    remove_backup(output_dir)
    return summary
