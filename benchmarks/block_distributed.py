"""BlockDistributed (blocks folded into the batch) vs keras.layers.TimeDistributed.

Both wrap the same ResNet2D3D and run on the same clips
[batch, blocks, frames, size, size, 3]; the two are timed alternately in one
run so machine noise hits both alike. Prints one JSON line with the times and
the speed-up, for inference and for a training step (forward + gradients).

    python benchmarks/block_distributed.py --image_size=128 --batch_size=4
"""

import json
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from keras_memdpc import BlockDistributed, ResNet2D3D

FLAGS = flags.FLAGS
flags.DEFINE_enum("network", "resnet18", ["resnet18", "resnet34"], "Encoder depth.")
flags.DEFINE_integer("image_size", 128, "Frame size in pixels.")
flags.DEFINE_integer("batch_size", 4, "Clips per call.")
flags.DEFINE_integer("num_blocks", 8, "Blocks per clip.")
flags.DEFINE_integer("repeats", 3, "Timed calls of each wrapper per mode.")


def step_functions(wrapper):
    """(inference, training step) tf.functions of one wrapped encoder."""

    @tf.function
    def infer(clips):
        return wrapper(clips, training=False)

    @tf.function
    def train(clips):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(wrapper(clips, training=True)))
        return tape.gradient(loss, wrapper.trainable_variables)

    return {"inference": infer, "training": train}


def measure(network, image_size, batch_size, num_blocks, repeats):
    """Median seconds per call of each wrapper and mode; returns a dict."""
    encoder = ResNet2D3D(network)
    clips = tf.constant(
        np.random.default_rng(0).normal(
            size=(batch_size, num_blocks, 5, image_size, image_size, 3)
        ).astype("float32")
    )
    wrappers = {
        "block_distributed": step_functions(BlockDistributed(encoder)),
        "time_distributed": step_functions(keras.layers.TimeDistributed(encoder)),
    }
    times = {name: {"inference": [], "training": []} for name in wrappers}
    for _ in range(repeats + 1):  # the first round traces and is dropped
        for name, functions in wrappers.items():
            for mode, function in functions.items():
                start = time.perf_counter()
                tf.nest.map_structure(lambda t: t.numpy(), function(clips))
                times[name][mode].append(time.perf_counter() - start)
    result = {
        "network": network, "image_size": image_size, "batch_size": batch_size,
        "num_blocks": num_blocks,
    }
    for mode in ("inference", "training"):
        ours = float(np.median(times["block_distributed"][mode][1:]))
        theirs = float(np.median(times["time_distributed"][mode][1:]))
        result[f"{mode}_seconds_block_distributed"] = ours
        result[f"{mode}_seconds_time_distributed"] = theirs
        result[f"{mode}_speedup"] = theirs / ours
    return result


def main(argv):
    del argv
    print(json.dumps(measure(
        FLAGS.network, FLAGS.image_size, FLAGS.batch_size, FLAGS.num_blocks,
        FLAGS.repeats,
    )))


if __name__ == "__main__":
    app.run(main)
