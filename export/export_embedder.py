"""Export the MemDPC embedder as a SavedModel for TF Serving (MODEL_DIR/<version>/).

    python export/export_embedder.py --checkpoint=runs/pretrain/best.keras \
        --output_dir=serving/memdpc_embedder
    python export/export_embedder.py --output_dir=/tmp/embedder   # random model, smoke test

The signature serving_default takes raw uint8 RGB frames [batch, frames,
height, width, 3] of any frame size (frames a multiple of the block length,
at least num_blocks blocks) and returns "embedding" [batch, 256 * directions]
and "block_features" [batch, blocks, 256]; see keras_memdpc/serving.py.
Warmup requests go to assets.extra/tf_serving_warmup_requests.
"""

from absl import app, flags, logging

from keras_memdpc.memdpc import MemDPC
from keras_memdpc.serving import export_embedder, load_representation

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint", None,
                    "A pretraining (MemDPC) or classification (ActionClassifier) .keras "
                    "checkpoint. Default: a randomly initialised MemDPC of --network and "
                    "--image_size (smoke tests).")
flags.DEFINE_string("output_dir", None, "MODEL_DIR: the SavedModel goes to MODEL_DIR/<version>.")
flags.DEFINE_integer("version", 1, "Model version (a new number for each export).")
flags.DEFINE_bool("l2_normalize", False, "L2-normalise the embedding.")
flags.DEFINE_enum("network", "resnet18", ["resnet18", "resnet34"], "Random model: encoder.")
flags.DEFINE_integer("image_size", 128, "Random model: frame size.")
flags.DEFINE_integer("num_blocks", 8, "Random model: blocks per window.")
flags.DEFINE_integer("block_length", 5, "Random model: frames per block.")
flags.DEFINE_bool("warmup", True, "Write TF Serving warmup requests (tensorflow-serving-api).")
flags.DEFINE_string("model_name", "memdpc_embedder", "Model name in the warmup requests.")
flags.DEFINE_string("onnx_output", None, "Also write an ONNX model here (tf2onnx).")
flags.mark_flag_as_required("output_dir")

_RANDOM_MODEL_FLAGS = ("network", "image_size", "num_blocks", "block_length")


def _representation():
    """The checkpoint's MemDPC or ActionClassifier, or a random MemDPC."""
    if FLAGS.checkpoint:
        given = [name for name in _RANDOM_MODEL_FLAGS if FLAGS[name].present]
        if given:
            raise app.UsageError(
                f"--{', --'.join(given)}: only for a random model (no --checkpoint); "
                "a checkpoint brings its own")
        return load_representation(FLAGS.checkpoint)
    logging.warning("no --checkpoint: exporting a randomly initialised model")
    return MemDPC(network=FLAGS.network, image_size=FLAGS.image_size,
                  num_blocks=FLAGS.num_blocks, block_length=FLAGS.block_length)


def main(argv):
    del argv
    try:
        path = export_embedder(_representation(), FLAGS.output_dir, version=FLAGS.version,
                               l2_normalize=FLAGS.l2_normalize, warmup=FLAGS.warmup,
                               model_name=FLAGS.model_name, onnx_path=FLAGS.onnx_output)
    except (FileExistsError, FileNotFoundError, ImportError, ValueError) as error:
        logging.error("%s", error)
        raise SystemExit(1) from None
    print(f"SavedModel: {path}")


if __name__ == "__main__":
    app.run(main)
