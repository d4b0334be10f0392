"""Clips per second per core of the training input pipeline, against raw JPEG decoding.

Measures keras_memdpc.video_pipeline.training_dataset (full augmentation:
sampling, random-resized crop decoded from the JPEGs, flip, per-frame
grayscale and colour jitter, normalisation) on `--threads` cores, and in the
same run the rate of plain tf.io.decode_jpeg over the same stored frames,
converted into the clips per second it would allow (frames / 40). Either on
prepared shards (--file_pattern) or on a synthetic prepared set written
first (--make_data: --num_videos videos of --num_frames textured 200 x 150
frames, JPEG quality 90, the short side 150 px of a 128 px training set).

    python benchmarks/input_pipeline.py --make_data --threads=1 --seconds=20

Prints one JSON line. "per_core" divides by --threads; "per_cpu_second"
divides by the CPU time the process used (tf.data's own threads, XLA and the
Python loop included), which is the honest figure on a shared machine.
"""

import json
import os
import tempfile
import time

import cv2
import numpy as np
import tensorflow as tf
from absl import app, flags

from keras_memdpc.video_pipeline import training_dataset
from keras_memdpc.video_tfrecord import (
    make_sequence_example,
    parse_sequence_example,
    shard_path,
    shard_pattern,
)

FLAGS = flags.FLAGS
flags.DEFINE_string("file_pattern", None, "Glob of prepared TFRecord shards.")
flags.DEFINE_bool(
    "make_data", False, "Write a synthetic prepared set to a temporary directory first."
)
flags.DEFINE_integer("num_videos", 16, "Synthetic videos (--make_data).")
flags.DEFINE_integer("num_frames", 150, "Frames per synthetic video (--make_data).")
flags.DEFINE_integer("image_size", 128, "Training frame size in pixels.")
flags.DEFINE_integer("batch_size", 8, "Clips per batch.")
flags.DEFINE_integer("threads", 1, "tf.data private threadpool size = cores used.")
flags.DEFINE_float("seconds", 20.0, "Timed seconds per measurement.")
flags.DEFINE_enum("output_dtype", "float32", ["float32", "bfloat16", "uint8"], "Clip dtype.")

SHARDS = 4
FRAME_HEIGHT, FRAME_WIDTH = 150, 200
JPEG_QUALITY = 90


def textured_video(rng, num_frames, height=FRAME_HEIGHT, width=FRAME_WIDTH):
    """uint8 [frames, h, w, 3]: drifting coloured gratings plus sensor noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    gratings = [
        (rng.uniform(0.03, 0.4, 2), rng.uniform(-2, 2, 2), rng.uniform(10, 40, 3))
        for _ in range(6)
    ]
    video = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        frame = np.full((height, width, 3), 128.0, np.float32)
        for frequency, velocity, amplitude in gratings:
            phase = frequency[0] * (x - velocity[0] * t) + frequency[1] * (y - velocity[1] * t)
            frame += amplitude * np.sin(phase)[..., None]
        frame += rng.normal(0, 3, frame.shape)
        video[t] = np.clip(frame, 0, 255)
    return video


def write_synthetic_set(output_dir, num_videos, num_frames, seed=0):
    """Writes OUTPUT_DIR/rgb/train-*-of-00004.tfrecord; returns their glob."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(output_dir, "rgb"), exist_ok=True)
    writers = [
        tf.io.TFRecordWriter(shard_path(output_dir, "rgb", "train", i, SHARDS))
        for i in range(SHARDS)
    ]
    quality = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    for index in range(num_videos):
        jpegs = [
            cv2.imencode(".jpg", frame[..., ::-1], quality)[1].tobytes()
            for frame in textured_video(rng, num_frames)
        ]
        example = make_sequence_example(
            jpegs, path=f"synthetic/{index:05d}", label=index % 10, fps=25.0,
            height=FRAME_HEIGHT, width=FRAME_WIDTH,
        )
        writers[index % SHARDS].write(example.SerializeToString())
    for writer in writers:
        writer.close()
    return shard_pattern(output_dir, "rgb", "train")


def _with_threads(dataset, threads):
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    options.threading.max_intra_op_parallelism = 1
    return dataset.with_options(options)


def _timed(dataset, items_per_element, seconds):
    """(items per second, items per CPU second) over `seconds` after a warm-up."""
    iterator = iter(dataset)
    for _ in range(3):
        next(iterator)
    count = 0
    wall, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < seconds:
        next(iterator)
        count += items_per_element
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return count / wall, count / cpu


def stored_jpegs(file_pattern, limit=4000):
    """Up to `limit` JPEG strings of the stored frames, in file order."""
    records = tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(file_pattern)))
    jpegs = []
    for serialized in records:
        jpegs.extend(parse_sequence_example(serialized)["frames/encoded"].numpy())
        if len(jpegs) >= limit:
            break
    return jpegs[:limit]


def decode_rate(file_pattern, threads, seconds, clip_frames=40):
    """Frames per second (and per CPU second) of tf.io.decode_jpeg, 40 at a time."""
    jpegs = tf.constant(stored_jpegs(file_pattern))
    usable = (len(jpegs) // clip_frames) * clip_frames
    groups = tf.reshape(jpegs[:usable], [-1, clip_frames])
    decoded = tf.data.Dataset.from_tensor_slices(groups).repeat().map(
        lambda group: tf.stack(
            [tf.io.decode_jpeg(group[i], channels=3) for i in range(clip_frames)]
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return _timed(_with_threads(decoded.prefetch(2), threads), clip_frames, seconds)


def measure(file_pattern, image_size, batch_size, threads, seconds, output_dtype):
    """Pipeline and decode rates on `threads` cores; returns a dict."""
    load_before = os.getloadavg()[0]
    clips = training_dataset(
        file_pattern, batch_size, image_size=image_size, output_dtype=output_dtype
    )
    clips_per_second, clips_per_cpu_second = _timed(
        _with_threads(clips, threads), batch_size, seconds
    )
    frames_per_second, frames_per_cpu_second = decode_rate(file_pattern, threads, seconds)
    decode_clips_per_core = frames_per_second / 40 / threads
    return {
        "image_size": image_size,
        "batch_size": batch_size,
        "output_dtype": output_dtype,
        "threads": threads,
        "clips_per_second": round(clips_per_second, 2),
        "clips_per_second_per_core": round(clips_per_second / threads, 2),
        "clips_per_cpu_second": round(clips_per_cpu_second, 2),
        "decode_frames_per_second_per_core": round(frames_per_second / threads, 1),
        "decode_frames_per_cpu_second": round(frames_per_cpu_second, 1),
        "decode_clips_per_second_per_core": round(decode_clips_per_core, 2),
        "fraction_of_decode_rate": round(clips_per_second / threads / decode_clips_per_core, 3),
        "fraction_of_decode_rate_cpu": round(
            clips_per_cpu_second / (frames_per_cpu_second / 40), 3
        ),
        "machine_cores": os.cpu_count(),
        "load_average_before": round(load_before, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
    }


def main(argv):
    del argv
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    if FLAGS.make_data == bool(FLAGS.file_pattern):
        raise app.UsageError("give exactly one of --file_pattern and --make_data")
    with tempfile.TemporaryDirectory() as directory:
        file_pattern = FLAGS.file_pattern or write_synthetic_set(
            directory, FLAGS.num_videos, FLAGS.num_frames
        )
        result = measure(
            file_pattern, FLAGS.image_size, FLAGS.batch_size, FLAGS.threads,
            FLAGS.seconds, FLAGS.output_dtype,
        )
    print(json.dumps(result))


if __name__ == "__main__":
    app.run(main)
