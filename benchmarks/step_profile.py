"""Where the time of one MemDPC training step goes, per kind of operation.

Traces a few training steps (TensorFlow backend) with the TensorFlow profiler
and adds up the time of every executed op, grouped into convolution forward,
convolution input gradient, convolution filter gradient, BatchNorm and the
rest. Ops run one at a time (--inter_op_threads=1, the default), so their
times add up to the step instead of overlapping; each op still uses all
cores. Also times one large 3x3 convolution (256 channels, the best case of
the machine's convolution kernels) and the encoder's first 2D-stage
convolution at the step's shapes, in GFLOP/s.

    python benchmarks/step_profile.py --network=resnet18 --image_size=128 \
        --batch_size=4

Prints one JSON line.
"""

import collections
import glob
import json
import os
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

import keras_memdpc

FLAGS = flags.FLAGS
flags.DEFINE_enum("network", "resnet18", ["resnet18", "resnet34"], "Encoder depth.")
flags.DEFINE_integer("image_size", 128, "Frame size in pixels.")
flags.DEFINE_integer("batch_size", 4, "Clips per step.")
flags.DEFINE_integer("warmup_steps", 2, "Untimed steps (tracing).")
flags.DEFINE_integer("steps", 3, "Profiled steps.")
flags.DEFINE_integer("inter_op_threads", 1,
                     "Ops run at once (0: TensorFlow's default, op times overlap).")

KINDS = (
    ("conv_filter_gradient", ("BackpropFilter",)),
    ("conv_input_gradient", ("BackpropInput",)),
    ("conv_forward", ("Conv2D", "Conv3D")),
    ("batch_norm", ("BatchNorm",)),
)


def op_kind(op_type):
    """The group of an executed op type, e.g. _MklNativeConv3D -> conv_forward."""
    for kind, markers in KINDS:
        if any(marker in op_type for marker in markers):
            return kind
    return "other"


def op_seconds(trace_dir):
    """Seconds per op type, summed over the traced TensorFlow ops."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True)
    if not paths:
        raise RuntimeError(f"the profiler wrote no trace under {trace_dir}")
    space = xplane_pb2.XSpace()
    with open(max(paths, key=os.path.getmtime), "rb") as f:
        space.ParseFromString(f.read())
    seconds = collections.Counter()
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            # Executor threads: their "op_name:OpType" events are the ops,
            # inside an "ExecutorState::Process" event each.
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" in name and "::" not in name:
                    seconds[name.rsplit(":", 1)[1]] += event.duration_ps * 1e-12
    return seconds


def profile_step(network, image_size, batch_size, warmup_steps, steps):
    """(wall seconds per step, op type -> seconds per step, clip shape)."""
    model = keras_memdpc.MemDPC(network=network, image_size=image_size)
    model.compile(optimizer=keras_memdpc.AdamL2(learning_rate=1e-3, l2=1e-5))
    shape = (batch_size, *model.clip_shape)
    clips = tf.constant(np.random.default_rng(0).integers(0, 256, shape, np.uint8))
    for _ in range(warmup_steps):
        model.train_on_batch(clips)
    with tempfile.TemporaryDirectory() as trace_dir:
        tf.profiler.experimental.start(trace_dir)
        start = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(clips)
        wall = time.perf_counter() - start
        tf.profiler.experimental.stop()
        seconds = op_seconds(trace_dir)
    per_step = {op: s / steps for op, s in seconds.items()}
    return wall / steps, per_step, model.clip_shape


def conv_gflops(images, size, channels, repeats=5):
    """GFLOP/s of a stride-1 3x3 'same' convolution, forward, channels in = out."""
    x = tf.random.normal([images, size, size, channels])
    kernel = tf.random.normal([3, 3, channels, channels])
    conv = tf.function(lambda: tf.nn.conv2d(x, kernel, 1, "SAME"))
    conv()
    start = time.perf_counter()
    for _ in range(repeats):
        conv()  # Blocks until done: eager execution on the CPU is synchronous.
    seconds = (time.perf_counter() - start) / repeats
    return 2 * images * size * size * 9 * channels * channels / seconds / 1e9


def summarise(step_seconds, seconds_by_op, top=8):
    """The JSON report: totals by kind, shares of the step, the top op types."""
    by_kind = collections.Counter()
    for op, seconds in seconds_by_op.items():
        by_kind[op_kind(op)] += seconds
    total = sum(by_kind.values())
    conv = sum(by_kind[k] for k in by_kind if k.startswith("conv_"))
    return {
        "seconds_per_step": step_seconds,
        "op_seconds_per_step": total,
        "seconds_by_kind": dict(by_kind.most_common()),
        "convolution_share": conv / total,
        "top_op_types": sorted(seconds_by_op.items(), key=lambda item: -item[1])[:top],
    }


def main(argv):
    del argv
    if keras.backend.backend() != "tensorflow":
        raise app.UsageError("step_profile.py profiles the TensorFlow backend; "
                             "unset KERAS_BACKEND or set it to tensorflow")
    if FLAGS.inter_op_threads:
        tf.config.threading.set_inter_op_parallelism_threads(FLAGS.inter_op_threads)
    step_seconds, seconds_by_op, clip_shape = profile_step(
        FLAGS.network, FLAGS.image_size, FLAGS.batch_size,
        FLAGS.warmup_steps, FLAGS.steps,
    )
    report = summarise(step_seconds, seconds_by_op)
    blocks, frames, size = clip_shape[:3]
    report["conv_gflops_256_channels"] = conv_gflops(32, 32, 256)
    # The first 2D stage: 64 channels at a quarter of the frame size.
    report["conv_gflops_first_2d_stage"] = conv_gflops(
        FLAGS.batch_size * blocks * frames, size // 4, 64)
    print(json.dumps(report))


if __name__ == "__main__":
    app.run(main)
