"""Train and test the unintentional-action (Oops) classifier (paper section 5.7, appendix B).

    python train/oops.py                                   # synthetic transitions, CPU
    python train/oops.py --data=data/oops_150 --checkpoint=runs/pretrain/best.keras \
        --mode=finetune --model_dir=runs/oops_finetune

--data is a folder prepared by train/prepare_data.py --dataset=oops, or
"synthetic": the built-in synthetic videos written with an abrupt motion
change each and prepared through the Oops reader. Writes MODEL_DIR/oops.keras,
history.csv and metrics.json (accuracy, per-class accuracy, confusion
matrix, majority-class baseline on the val subset). Rerun a killed run's
command to resume it from its last finished epoch.
"""

import json

from absl import app, flags, logging

from keras_memdpc.oops_training import MODES, OopsConfig, train_oops

FLAGS = flags.FLAGS
flags.DEFINE_string("data", "synthetic", "'synthetic' or a folder prepared with --dataset=oops.")
flags.DEFINE_string("checkpoint", None,
                    "A pretraining .keras checkpoint (MemDPC: the Oops model needs its "
                    "predictor and memory); its forward direction is used. Default: a "
                    "randomly initialised MemDPC.")
flags.DEFINE_enum("mode", "probe", list(MODES),
                  "probe: frozen representation, train the head; finetune: train all.")
flags.DEFINE_enum("network", "resnet18", ["resnet18", "resnet34"],
                  "Encoder depth of a random model (without --checkpoint).")
flags.DEFINE_integer("image_size", None,
                     "Frame size (default: the checkpoint's, else 32 synthetic, 128).")
flags.DEFINE_integer("num_blocks", 8, "Blocks per clip.")
flags.DEFINE_integer("block_length", 5, "Frames per block.")
flags.DEFINE_integer("stride", 3, "Step between the frames of a clip.")
flags.DEFINE_integer("memory_size", 1024, "Memory slots of a random model.")
flags.DEFINE_integer("batch_size", None, "Clips per batch (default 8 synthetic, 16 otherwise).")
flags.DEFINE_integer("epochs", None, "Epochs (default 20 synthetic, 30 otherwise).")
flags.DEFINE_integer("steps_per_epoch", None, "Steps per epoch (default: a clip per video).")
flags.DEFINE_float("lr", 1e-3, "Adam learning rate.")
flags.DEFINE_float("min_lr", 1e-4, "The learning rate after the one decay on a plateau.")
flags.DEFINE_integer("lr_patience", 2, "Epochs without val_loss improvement before the decay.")
flags.DEFINE_integer("transition_repeats", 3,
                     "Times a training clip holding the failure is used (oversampling).")
flags.DEFINE_integer("synthetic_videos_per_class", 12, "Size of the synthetic set.")
flags.DEFINE_integer("synthetic_num_frames", 150, "Frames per synthetic video.")
flags.DEFINE_float("synthetic_fps", 25.0, "Frame rate of the synthetic videos.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_string("model_dir", "runs/oops", "Where oops.keras, history.csv, metrics.json go.")
flags.DEFINE_bool("overwrite", False, "Train again in a model_dir that holds a finished run.")


def main(argv):
    del argv
    config = OopsConfig(**{field: FLAGS[field].value for field in OopsConfig.__dataclass_fields__
                           if field in FLAGS})
    try:
        metrics = train_oops(config)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        logging.error("%s", error)
        raise SystemExit(1) from None
    per_class = ", ".join(
        f"{name} {'n/a' if value is None else f'{value:.3f}'}"
        for name, value in metrics["per_class_accuracy"].items())
    print(
        f"\nOops {config.mode} on {metrics['subset']}: accuracy {metrics['accuracy']:.3f} "
        f"(majority-class baseline {metrics['majority_baseline']:.3f}), mean class "
        f"accuracy {metrics['mean_class_accuracy']:.3f}\n"
        f"  per class: {per_class}\n"
        f"  confusion (rows true, columns predicted): {json.dumps(metrics['confusion'])}\n"
        f"  {metrics['clips']} clips of {metrics['videos']} videos; model {metrics['model']}, "
        f"metrics {config.model_dir}/metrics.json")


if __name__ == "__main__":
    app.run(main)
