"""Clips per second of one MemDPC training step (forward, backward, Adam).

The batch is random uint8 clips placed on the device once and normalised on
the device inside the model, so the figure is the model's, not the host's.
Runs under whatever KERAS_BACKEND says (tensorflow by default).

    python benchmarks/train_step.py --network=resnet18 --image_size=128 \
        --batch_size=4 --precision=fp32
    KERAS_BACKEND=jax python benchmarks/train_step.py --batch_size=64 \
        --precision=bf16

Prints one JSON line.
"""

import json
import time

import keras
import numpy as np
from absl import app, flags

import keras_memdpc

FLAGS = flags.FLAGS
flags.DEFINE_enum("network", "resnet18", ["resnet18", "resnet34"], "Encoder depth.")
flags.DEFINE_integer("image_size", 128, "Frame size in pixels.")
flags.DEFINE_integer("batch_size", 4, "Clips per step.")
flags.DEFINE_enum("precision", "fp32", ["fp32", "bf16", "fp16"], "Compute precision.")
flags.DEFINE_bool("bidirectional", True, "Forward and backward prediction.")
flags.DEFINE_bool("jit_compile", False, "XLA-compile the step (always on under JAX).")
flags.DEFINE_integer("warmup_steps", 2, "Untimed steps (tracing, compilation).")
flags.DEFINE_integer("steps", 5, "Timed steps.")

POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def device_batch(shape, seed=0):
    """A random uint8 batch converted to a tensor of the active backend."""
    frames = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    return keras.ops.convert_to_tensor(frames)


def device_name():
    """The accelerator (or CPU) the active backend computes on."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.devices()[0].device_kind
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return tf.config.experimental.get_device_details(gpus[0]).get(
            "device_name", "GPU") if gpus else "CPU"
    return keras.backend.backend()


def measure(network, image_size, batch_size, precision, bidirectional,
            jit_compile, warmup_steps, steps):
    """Times `steps` training steps after `warmup_steps`; returns a dict."""
    keras.mixed_precision.set_global_policy(POLICIES[precision])
    # Keras runs a JAX train step op by op unless it is jitted.
    jit_compile = jit_compile or keras.backend.backend() == "jax"
    model = keras_memdpc.MemDPC(
        network=network, image_size=image_size, bidirectional=bidirectional
    )
    model.compile(
        optimizer=keras_memdpc.AdamL2(learning_rate=1e-3, l2=1e-5),
        jit_compile=jit_compile,
    )
    clips = device_batch((batch_size, *model.clip_shape))
    for _ in range(warmup_steps):
        model.train_on_batch(clips)
    start = time.perf_counter()
    for _ in range(steps):
        logs = model.train_on_batch(clips, return_dict=True)
    seconds = time.perf_counter() - start
    return {
        "backend": keras.backend.backend(),
        "device": device_name(),
        "network": network,
        "image_size": image_size,
        "batch_size": batch_size,
        "precision": precision,
        "bidirectional": bidirectional,
        "jit_compile": jit_compile,
        "steps": steps,
        "seconds_per_step": seconds / steps,
        "clips_per_second": batch_size * steps / seconds,
        "final_loss": float(logs["loss"]),
    }


def main(argv):
    del argv
    result = measure(
        FLAGS.network, FLAGS.image_size, FLAGS.batch_size, FLAGS.precision,
        FLAGS.bidirectional, FLAGS.jit_compile, FLAGS.warmup_steps, FLAGS.steps,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    app.run(main)
