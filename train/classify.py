"""Action classification on a pretrained (or random) MemDPC: train, then ten-crop test.

    python train/classify.py --pretrained=runs/pretrain/best.keras --protocol=linear
    python train/classify.py --data=prepared/ucf101 --pretrained=memdpc.keras \
        --protocol=finetune --label_fraction=0.1 --model_dir=runs/ucf_ft_10
    python train/classify.py --mode=test --model_dir=runs/ucf_ft_10 --data=prepared/ucf101

Training ends with the test. Rerun the same training command after a crash to
resume from the last finished epoch. The test writes metrics.json,
confusion_matrix.png and predictions.npz (for train/fuse.py) under --model_dir.
"""

import json

from absl import app, flags, logging

from keras_memdpc import synthetic_videos
from keras_memdpc.action_classifier import PROTOCOLS
from keras_memdpc.classification import (
    CHECKPOINTS,
    ClassifyConfig,
    evaluate_classifier,
    train_classifier,
)
from keras_memdpc.convert import CheckpointError
from keras_memdpc.nan_guard import NaNLossError
from keras_memdpc.video_tfrecord import MODALITIES

FLAGS = flags.FLAGS
flags.DEFINE_enum("mode", "train", ["train", "test"], "train (then test) or test only.")
flags.DEFINE_enum("protocol", "linear", PROTOCOLS, "Frozen trunk + linear or MLP head, or finetune all.")
flags.DEFINE_string("pretrained", "", "Pretraining checkpoint (.keras); none or empty: random init.")
flags.DEFINE_string("data", "synthetic", "'synthetic' (built-in) or a prepared data set.")
flags.DEFINE_enum("modality", "rgb", MODALITIES, "Stream to train and test on.")
flags.DEFINE_float("label_fraction", 1.0, "Labelled training videos used (0.1, 0.2, 0.5, 1.0): stratified, nested.")
flags.DEFINE_string("eval_subset", "", "Subset to validate and test on (default: test, val or validation).")
flags.DEFINE_enum("network", "resnet18", ["resnet18", "resnet34"], "Encoder depth (random init only).")
flags.DEFINE_bool("bidirectional", True, "Two aggregators (random init only).")
flags.DEFINE_integer("image_size", None, "Frame size (default 32 synthetic, 128 otherwise).")
flags.DEFINE_integer("num_blocks", 8, "Blocks per clip.")
flags.DEFINE_integer("block_length", 5, "Frames per block.")
flags.DEFINE_integer("batch_size", None, "Clips per step (default 8 synthetic, 16 otherwise).")
flags.DEFINE_integer("epochs", None, "Epochs (default 20 synthetic, 100 otherwise).")
flags.DEFINE_integer("steps_per_epoch", None, "Steps per epoch (default: one pass over the videos).")
flags.DEFINE_integer("validation_steps", None, "Validation batches per epoch (default: all).")
flags.DEFINE_float("lr", 1e-3, "Adam learning rate; dropped once to lr/10 on a validation plateau.")
flags.DEFINE_float("weight_decay", 1e-5, "Coupled L2, as torch Adam's weight_decay.")
flags.DEFINE_integer("lr_patience", 5, "Epochs without val_loss improvement before the lr drop.")
flags.DEFINE_float("dropout", 0.9, "Dropout before the last layer.")
flags.DEFINE_integer("hidden_units", 512, "Hidden width of the nonlinear head.")
flags.DEFINE_bool(
    "colour_augmentation", None,
    "Per-frame colour jitter and grayscale (default: off synthetic, on otherwise).",
)
flags.DEFINE_bool(
    "random_flip", None,
    "Random horizontal flips in training and mirrored test crops (default: off synthetic, "
    "whose classes a mirror image changes; on otherwise).",
)
flags.DEFINE_integer("window_stride", None, "Frames between test windows (default half a window).")
flags.DEFINE_string("checkpoint", "best", f"Tested model: one of {CHECKPOINTS} in --model_dir, or a .keras file.")
flags.DEFINE_integer("synthetic_videos_per_class", synthetic_videos.DEFAULT_VIDEOS_PER_CLASS,
                     "Size of the synthetic set.")
flags.DEFINE_integer("seed", 0, "Random seed (also of the label subset).")
flags.DEFINE_string("model_dir", "runs/classify", "Checkpoints, logs, metrics.")
flags.DEFINE_bool("overwrite", False, "Train again in a model_dir holding a finished run.")


def main(argv):
    del argv
    values = {
        field: FLAGS[field].value for field in ClassifyConfig.__dataclass_fields__
        if field in FLAGS
    }
    config = ClassifyConfig(**values)
    try:
        if FLAGS.mode == "train":
            summary = train_classifier(config)
            logging.info("training summary: %s", json.dumps(summary))
        metrics = evaluate_classifier(config)
    except (CheckpointError, FileExistsError, FileNotFoundError, NaNLossError,
            ValueError) as error:
        logging.error("%s", error)
        raise SystemExit(1) from None
    print(
        "\n{}-crop test on {} videos ({} clips) of {}: top-1 {:.3f}, top-5 {:.3f}, "
        "mean class accuracy {:.3f}\n  {}/metrics.json, confusion_matrix.png, "
        "predictions.npz".format(
            metrics["crops"].capitalize(), metrics["num_videos"], metrics["num_clips"],
            metrics["subset"],
            metrics["top1"], metrics["top5"], metrics["mean_class_accuracy"],
            config.model_dir,
        )
    )


if __name__ == "__main__":
    app.run(main)
