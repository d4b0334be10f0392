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

from absl import app, flags

from export_flags import define_flags, model_from_flags, run_export
from keras_memdpc.memdpc import MemDPC
from keras_memdpc.oops_classifier import OopsClassifier
from keras_memdpc.serving import export_oops, load_oops_classifier

FLAGS = flags.FLAGS
define_flags(
    "The oops.keras written by train/oops.py. Default: a randomly initialised "
    "classifier of --network and --image_size (smoke tests).",
    model_name="memdpc_oops",
)


def random_classifier(num_blocks, **options):
    """An OopsClassifier on a random single-direction MemDPC."""
    return OopsClassifier(MemDPC(num_blocks=num_blocks, pred_steps=min(3, num_blocks - 1),
                                 bidirectional=False, **options))


def main(argv):
    del argv
    run_export(lambda: export_oops(
        model_from_flags(load_oops_classifier, random_classifier), FLAGS.output_dir,
        version=FLAGS.version, warmup=FLAGS.warmup, model_name=FLAGS.model_name,
        onnx_path=FLAGS.onnx_output))


if __name__ == "__main__":
    app.run(main)
