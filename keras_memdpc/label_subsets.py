"""Label-scarce training subsets: stratified by class, seeded and nested.

The paper's data-efficiency study trains on 10 %, 20 % and 50 % of the
labelled training videos. `stratified_subset` keeps
max(1, round(fraction * n_c)) videos of each class c (round half up, at most
n_c), taken in the order of one seeded permutation per class. That order does
not depend on the fraction, so the subsets are nested: the 10 % subset lies
inside the 20 % subset, which lies inside the 50 % subset (for one seed).
Videos are identified by their stored path, so the choice is the same for
every modality of one prepared data set (RGB and flow shards hold the same
videos).

`label_subset_pattern` applies a fraction to a prepared data set for the
tf.data pipeline, which reads whole shards: it copies the chosen videos'
records, byte for byte and without decoding, into shards of the same layout
under a folder of its own (shard i of the subset holds the chosen videos of
source shard i, so each shard still mixes classes), with label_subset.json
listing them. The copy is written once and reused by later runs with the same
settings; fraction 1.0 reads the source shards directly.
"""

import json
import math
import os

import numpy as np
import tensorflow as tf
from absl import logging

from keras_memdpc.video_tfrecord import shard_files, shard_path, shard_pattern

SUBSET_JSON = "label_subset.json"
_CONTEXT = {
    "video/path": tf.io.FixedLenFeature([], tf.string),
    "video/label": tf.io.FixedLenFeature([], tf.int64),
}


def class_subset_size(class_count, fraction):
    """Videos kept of a class of `class_count`: max(1, round half up), at most all."""
    return min(class_count, max(1, math.floor(fraction * class_count + 0.5)))


def check_fraction(fraction):
    if not 0 < fraction <= 1:
        raise ValueError(f"label fraction must be in (0, 1], got {fraction}")


def stratified_subset(paths, labels, fraction, seed=0):
    """The paths of a stratified, seeded, nested subset of labelled videos.

    Args:
        paths: video identifiers (unique), e.g. the stored video paths.
        labels: their int classes (0-based), same length.
        fraction: in (0, 1].
        seed: the permutation of each class is drawn from (seed, class).

    Returns:
        The chosen paths, sorted.
    """
    check_fraction(fraction)
    if len(paths) != len(labels):
        raise ValueError(f"{len(paths)} paths but {len(labels)} labels")
    if len(set(paths)) != len(paths):
        raise ValueError("video paths must be unique")
    by_class = {}
    for path, label in zip(paths, labels):
        if int(label) < 0:
            raise ValueError(f"{path}: unlabelled video (label {label}) in a labelled subset")
        by_class.setdefault(int(label), []).append(path)
    chosen = []
    for label, members in sorted(by_class.items()):
        members = sorted(members)
        order = np.random.default_rng([seed, label]).permutation(len(members))
        count = class_subset_size(len(members), fraction)
        chosen += [members[i] for i in order[:count]]
    return sorted(chosen)


def _records_with_context(file_name):
    """(serialized record, path, label) of every video of one shard, in file order."""

    def parse(serialized):
        context, _ = tf.io.parse_single_sequence_example(serialized, context_features=_CONTEXT)
        return serialized, context["video/path"], context["video/label"]

    return tf.data.TFRecordDataset(file_name).map(parse).as_numpy_iterator()


def read_video_labels(file_pattern):
    """(paths, labels) of every video in the shards, in the pipeline's read order.

    Only the context features are parsed; the order is that of
    `video_pipeline.evaluation_dataset`'s video_index (sorted shard files,
    records in file order).
    """
    paths, labels = [], []
    for file_name in shard_files(file_pattern):
        for _, path, label in _records_with_context(file_name):
            paths.append(path.decode())
            labels.append(int(label))
    return paths, labels


def _write_records(path, records):
    temporary = f"{path}.incomplete"
    with tf.io.TFRecordWriter(temporary) as writer:
        for record in records:
            writer.write(record)
    tf.io.gfile.rename(temporary, path, overwrite=True)


def label_subset_pattern(data_dir, subset, modality, fraction, seed, output_dir,
                         class_names=None):
    """Shards holding a label fraction of a prepared subset; returns (pattern, videos).

    Args:
        data_dir: the prepared data set (keras_memdpc.data_preparation).
        subset: e.g. "train".
        modality: "rgb", "flow_tvl1" or "flow_dis".
        fraction: in (0, 1]; 1.0 returns the source shards' pattern.
        seed: of `stratified_subset`.
        output_dir: where the subset's shards and label_subset.json go.
        class_names: names written next to the per-class counts, or None.

    Returns:
        (file pattern of the shards to train on, number of videos chosen).
    """
    check_fraction(fraction)
    source = shard_pattern(data_dir, modality, subset)
    paths, labels = read_video_labels(source)
    if fraction == 1:
        return source, len(paths)
    chosen = stratified_subset(paths, labels, fraction, seed)
    settings = {"source": source, "fraction": fraction, "seed": seed, "videos": chosen}
    json_path = os.path.join(output_dir, SUBSET_JSON)
    pattern = shard_pattern(output_dir, modality, subset)
    if tf.io.gfile.exists(json_path):
        with tf.io.gfile.GFile(json_path) as f:
            previous = json.load(f)
        if {key: previous.get(key) for key in settings} == settings:
            logging.info("reusing the label subset in %s", output_dir)
            return pattern, len(chosen)
        tf.io.gfile.remove(json_path)
    keep = set(chosen)
    tf.io.gfile.makedirs(os.path.join(output_dir, modality))
    for stale in tf.io.gfile.glob(pattern):
        tf.io.gfile.remove(stale)
    files = shard_files(source)
    for index, file_name in enumerate(files):
        records = [
            serialized for serialized, path, _ in _records_with_context(file_name)
            if path.decode() in keep
        ]
        _write_records(shard_path(output_dir, modality, subset, index, len(files)), records)
    counts = {}
    for path, label in zip(paths, labels):
        if path in keep:
            name = str(label) if class_names is None else class_names[label]
            counts[name] = counts.get(name, 0) + 1
    with tf.io.gfile.GFile(json_path + ".incomplete", "w") as f:
        json.dump({**settings, "per_class": counts}, f, indent=2)
    tf.io.gfile.rename(json_path + ".incomplete", json_path, overwrite=True)
    logging.info(
        "label fraction %g of %s: %d of %d videos in %s",
        fraction, source, len(chosen), len(paths), output_dir,
    )
    return pattern, len(chosen)
