"""Export the Oops (unintentional action) classifier as a SavedModel for TF Serving.

    python export/export_oops.py --checkpoint=runs/oops/oops.keras \
        --output_dir=serving/memdpc_oops
    python export/export_oops.py --output_dir=/tmp/oops   # random model, smoke test

The signature serving_default takes raw uint8 RGB frames [batch, frames,
height, width, 3] (frames a multiple of the block length, at least
num_blocks blocks) and fps float32 [batch], the frame rate of the frames as
sent (25 / 3 for every 3rd frame of a 25 fps video). It returns
"window_probabilities" [batch, windows, num_blocks, 3], "block_probabilities"
[batch, blocks, 3], "failure_block" [batch] and "failure_time" [batch]
(seconds from the first frame sent); see keras_memdpc/serving.py.
"""

from absl import app, flags, logging

from keras_memdpc.memdpc import MemDPC
from keras_memdpc.oops_classifier import OopsClassifier
from keras_memdpc.serving import export_oops, load_oops_classifier

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint", None,
                    "The oops.keras written by train/oops.py. Default: a randomly "
                    "initialised classifier of --network and --image_size (smoke tests).")
flags.DEFINE_string("output_dir", None, "MODEL_DIR: the SavedModel goes to MODEL_DIR/<version>.")
flags.DEFINE_integer("version", 1, "Model version (a new number for each export).")
flags.DEFINE_enum("network", "resnet18", ["resnet18", "resnet34"], "Random model: encoder.")
flags.DEFINE_integer("image_size", 128, "Random model: frame size.")
flags.DEFINE_integer("num_blocks", 8, "Random model: blocks per window.")
flags.DEFINE_integer("block_length", 5, "Random model: frames per block.")
flags.DEFINE_bool("warmup", True, "Write TF Serving warmup requests (tensorflow-serving-api).")
flags.DEFINE_string("model_name", "memdpc_oops", "Model name in the warmup requests.")
flags.DEFINE_string("onnx_output", None, "Also write an ONNX model here (tf2onnx).")
flags.mark_flag_as_required("output_dir")

_RANDOM_MODEL_FLAGS = ("network", "image_size", "num_blocks", "block_length")


def _classifier():
    """The checkpoint's OopsClassifier, or a random one."""
    if FLAGS.checkpoint:
        given = [name for name in _RANDOM_MODEL_FLAGS if FLAGS[name].present]
        if given:
            raise app.UsageError(
                f"--{', --'.join(given)}: only for a random model (no --checkpoint); "
                "a checkpoint brings its own")
        return load_oops_classifier(FLAGS.checkpoint)
    logging.warning("no --checkpoint: exporting a randomly initialised classifier")
    return OopsClassifier(MemDPC(
        network=FLAGS.network, image_size=FLAGS.image_size, num_blocks=FLAGS.num_blocks,
        block_length=FLAGS.block_length, pred_steps=min(3, FLAGS.num_blocks - 1),
        bidirectional=False))


def main(argv):
    del argv
    try:
        path = export_oops(_classifier(), FLAGS.output_dir, version=FLAGS.version,
                           warmup=FLAGS.warmup, model_name=FLAGS.model_name,
                           onnx_path=FLAGS.onnx_output)
    except (FileExistsError, FileNotFoundError, ImportError, ValueError) as error:
        logging.error("%s", error)
        raise SystemExit(1) from None
    print(f"SavedModel: {path}")


if __name__ == "__main__":
    app.run(main)
