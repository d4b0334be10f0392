"""The on-disk format of prepared videos: sharded TFRecord SequenceExamples.

One SequenceExample per video. Context features:
    video/path       bytes   the source video or frame folder
    video/label      int64   0-based class, -1 when unlabelled
    video/fps        float   frames per second of the stored frames
    video/num_frames int64   number of stored frames
    video/height     int64   stored frame height in pixels
    video/width      int64   stored frame width in pixels
    video/modality   bytes   "rgb", "flow_tvl1" or "flow_dis"
    video/metadata   bytes   JSON object of the reader's metadata (Oops t_fail...)
Feature list:
    frames/encoded   bytes   one JPEG per frame, in order

Layout of a prepared data set:
    OUTPUT_DIR/dataset.json                       classes, subsets, counts
    OUTPUT_DIR/<modality>/<subset>-00003-of-00016.tfrecord
"""

import json
import os

import tensorflow as tf

MODALITIES = ("rgb", "flow_tvl1", "flow_dis")
DATASET_JSON = "dataset.json"


def shard_path(output_dir, modality, subset, index, num_shards):
    """Path of one shard, e.g. OUT/rgb/train-00003-of-00016.tfrecord."""
    name = f"{subset}-{index:05d}-of-{num_shards:05d}.tfrecord"
    return os.path.join(output_dir, modality, name)


def shard_pattern(output_dir, modality, subset):
    """Glob pattern matching every shard of one subset and modality."""
    return os.path.join(output_dir, modality, f"{subset}-*-of-*.tfrecord")


def shard_files(file_pattern):
    """The shards matching `file_pattern`, sorted (the pipelines' read order)."""
    files = sorted(tf.io.gfile.glob(file_pattern))
    if not files:
        raise FileNotFoundError(f"no TFRecord shards match {file_pattern}")
    return files


def make_sequence_example(encoded_frames, *, path, label, fps, height, width,
                          modality="rgb", metadata=None):
    """A tf.train.SequenceExample holding one video's JPEG frames."""
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")

    def int64(value):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))

    def data(value):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    context = tf.train.Features(feature={
        "video/path": data(os.fsencode(path)),
        "video/label": int64(label),
        "video/fps": tf.train.Feature(float_list=tf.train.FloatList(value=[fps])),
        "video/num_frames": int64(len(encoded_frames)),
        "video/height": int64(height),
        "video/width": int64(width),
        "video/modality": data(modality.encode()),
        "video/metadata": data(json.dumps(metadata or {}, sort_keys=True).encode()),
    })
    frames = tf.train.FeatureList(feature=[data(jpeg) for jpeg in encoded_frames])
    return tf.train.SequenceExample(
        context=context,
        feature_lists=tf.train.FeatureLists(feature_list={"frames/encoded": frames}),
    )


_CONTEXT_SPEC = {
    "video/path": tf.io.FixedLenFeature([], tf.string),
    "video/label": tf.io.FixedLenFeature([], tf.int64),
    "video/fps": tf.io.FixedLenFeature([], tf.float32),
    "video/num_frames": tf.io.FixedLenFeature([], tf.int64),
    "video/height": tf.io.FixedLenFeature([], tf.int64),
    "video/width": tf.io.FixedLenFeature([], tf.int64),
    "video/modality": tf.io.FixedLenFeature([], tf.string),
    "video/metadata": tf.io.FixedLenFeature([], tf.string, default_value="{}"),
}
_SEQUENCE_SPEC = {"frames/encoded": tf.io.FixedLenSequenceFeature([], tf.string)}


def parse_sequence_example(serialized):
    """Graph-mode parse: a dict of the context features plus "frames/encoded" [n]."""
    context, sequence = tf.io.parse_single_sequence_example(
        serialized, context_features=_CONTEXT_SPEC, sequence_features=_SEQUENCE_SPEC
    )
    return {**context, "frames/encoded": sequence["frames/encoded"]}


def read_dataset_json(output_dir):
    """The dataset.json written by preparation, as a dict."""
    path = os.path.join(output_dir, DATASET_JSON)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found: {output_dir} is not a prepared data set "
            "(run train/prepare_data.py first)"
        )
    with open(path) as f:
        return json.load(f)
