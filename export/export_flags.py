"""Flags and the checkpoint-or-random choice shared by the two export scripts."""

from absl import app, flags, logging

FLAGS = flags.FLAGS
RANDOM_MODEL_FLAGS = ("network", "image_size", "num_blocks", "block_length")


def define_flags(checkpoint_help, model_name):
    """The flags of both scripts; `model_name` is the warmup requests' default."""
    flags.DEFINE_string("checkpoint", None, checkpoint_help)
    flags.DEFINE_string("output_dir", None,
                        "MODEL_DIR: the SavedModel goes to MODEL_DIR/<version>.")
    flags.DEFINE_integer("version", 1, "Model version (a new number for each export).")
    flags.DEFINE_enum("network", "resnet18", ["resnet18", "resnet34"], "Random model: encoder.")
    flags.DEFINE_integer("image_size", 128, "Random model: frame size.")
    flags.DEFINE_integer("num_blocks", 8, "Random model: blocks per window.")
    flags.DEFINE_integer("block_length", 5, "Random model: frames per block.")
    flags.DEFINE_bool("warmup", True, "Write TF Serving warmup requests (tensorflow-serving-api).")
    flags.DEFINE_string("model_name", model_name, "Model name in the warmup requests.")
    flags.DEFINE_string("onnx_output", None, "Also write an ONNX model here (tf2onnx).")
    flags.mark_flag_as_required("output_dir")


def model_from_flags(load, make_random):
    """load(--checkpoint), or make_random(**the random-model flags) without one."""
    if FLAGS.checkpoint:
        given = [name for name in RANDOM_MODEL_FLAGS if FLAGS[name].present]
        if given:
            raise app.UsageError(
                f"--{', --'.join(given)}: only for a random model (no --checkpoint); "
                "a checkpoint brings its own")
        return load(FLAGS.checkpoint)
    logging.warning("no --checkpoint: exporting a randomly initialised model")
    return make_random(**{name: FLAGS[name].value for name in RANDOM_MODEL_FLAGS})


def run_export(export):
    """Calls export() -> SavedModel path; a bad checkpoint or input is a logged
    error and exit status 1."""
    try:
        path = export()
    except (FileExistsError, FileNotFoundError, ImportError, ValueError) as error:
        logging.error("%s", error)
        raise SystemExit(1) from None
    print(f"SavedModel: {path}")
