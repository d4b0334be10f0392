"""Pretrain MemDPC (self-supervised) on the built-in synthetic set or a prepared data set.

    python train/pretrain.py                       # synthetic demo, CPU
    python train/pretrain.py --strategy=mirrored --data=... --image_size=128

Rerun the same command after a crash to resume from the last finished epoch.
"""

import json

from absl import app, flags, logging

from keras_memdpc import synthetic_videos
from keras_memdpc.nan_guard import NaNLossError
from keras_memdpc.pretraining import (
    PRECISIONS,
    STRATEGIES,
    PretrainConfig,
    pretrain,
    summary_text,
)

FLAGS = flags.FLAGS
flags.DEFINE_enum("strategy", "default", STRATEGIES, "tf.distribute strategy.")
flags.DEFINE_string("data", "synthetic", "'synthetic' (built-in) or a prepared data set.")
flags.DEFINE_enum("network", "resnet18", ["resnet18", "resnet34"], "Encoder depth.")
flags.DEFINE_integer("image_size", None, "Frame size (default 32 synthetic, 128 otherwise).")
flags.DEFINE_integer("num_blocks", 8, "Blocks per clip.")
flags.DEFINE_integer("block_length", 5, "Frames per block.")
flags.DEFINE_integer("memory_size", 1024, "Memory slots k.")
flags.DEFINE_integer("pred_steps", 3, "Future blocks predicted.")
flags.DEFINE_bool("bidirectional", True, "Also predict backwards in time.")
flags.DEFINE_integer("batch_size", None, "Clips per replica (default 8 synthetic, 16 otherwise).")
flags.DEFINE_integer("epochs", None, "Epochs (default 25 synthetic, 100 otherwise).")
flags.DEFINE_integer("steps_per_epoch", None, "Steps per epoch (default: one pass over the videos).")
flags.DEFINE_float("lr", 1e-3, "Adam learning rate; dropped once to lr/10 on a plateau.")
flags.DEFINE_float("weight_decay", 1e-5, "Coupled L2 (adam) or decoupled decay (adamw).")
flags.DEFINE_enum("optimizer", "adam", ["adam", "adamw"], "adam: coupled L2 as the original.")
flags.DEFINE_integer("lr_patience", None,
                     "Epochs without val_loss improvement before the lr drop (default 20 synthetic, 5).")
flags.DEFINE_bool(
    "colour_augmentation", None,
    "Per-frame colour jitter and grayscale (default: off synthetic, on otherwise).",
)
flags.DEFINE_bool(
    "random_crop", None,
    "Random-resized crop per clip (default: off synthetic, on otherwise).",
)
flags.DEFINE_enum("mixed_precision", "fp32", sorted(PRECISIONS), "fp32, bf16, or fp16 with loss scaling.")
flags.DEFINE_bool("jit_compile", False, "XLA-compile the training step.")
flags.DEFINE_bool("gather_negatives", False, "Contrast against all replicas' features.")
flags.DEFINE_integer("synthetic_videos_per_class", synthetic_videos.DEFAULT_VIDEOS_PER_CLASS,
                     "Size of the synthetic set.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_string("model_dir", "runs/pretrain", "Checkpoints, logs and summary.")
flags.DEFINE_bool("overwrite", False, "Train again in a model_dir holding a finished run.")


def main(argv):
    del argv
    config = PretrainConfig(
        **{field: FLAGS[field].value for field in PretrainConfig.__dataclass_fields__
           if field in FLAGS}
    )
    try:
        summary = pretrain(config)
    except (NaNLossError, FileExistsError, ValueError) as error:
        logging.error("%s", error)
        raise SystemExit(1) from None
    print("\n" + summary_text(summary))
    logging.info("summary: %s", json.dumps(summary))


if __name__ == "__main__":
    app.run(main)
