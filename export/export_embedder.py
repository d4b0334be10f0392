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

from absl import app, flags

from export_flags import define_flags, model_from_flags, run_export
from keras_memdpc.memdpc import MemDPC
from keras_memdpc.serving import export_embedder, load_representation

FLAGS = flags.FLAGS
define_flags(
    "A pretraining (MemDPC) or classification (ActionClassifier) .keras checkpoint. "
    "Default: a randomly initialised MemDPC of --network and --image_size (smoke tests).",
    model_name="memdpc_embedder",
)
flags.DEFINE_bool("l2_normalize", False, "L2-normalise the embedding.")


def main(argv):
    del argv
    run_export(lambda: export_embedder(
        model_from_flags(load_representation, MemDPC), FLAGS.output_dir, version=FLAGS.version,
        l2_normalize=FLAGS.l2_normalize, warmup=FLAGS.warmup, model_name=FLAGS.model_name,
        onnx_path=FLAGS.onnx_output))


if __name__ == "__main__":
    app.run(main)
