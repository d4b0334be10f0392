import json
import os

import numpy as np
import pytest
import tensorflow as tf

from keras_memdpc.label_subsets import (
    SUBSET_JSON,
    label_subset_pattern,
    read_video_labels,
    stratified_subset,
)
from keras_memdpc.video_tfrecord import make_sequence_example, shard_path, shard_pattern

# Class sizes and the videos kept per fraction, worked out by hand:
# max(1, round half up(fraction * n)), e.g. 0.5 * 7 = 3.5 -> 4, 0.1 * 25 = 2.5 -> 3.
CLASS_SIZES = {0: 10, 1: 7, 2: 3, 3: 1, 4: 25}
EXPECTED_COUNTS = {
    0.1: {0: 1, 1: 1, 2: 1, 3: 1, 4: 3},
    0.2: {0: 2, 1: 1, 2: 1, 3: 1, 4: 5},
    0.5: {0: 5, 1: 4, 2: 2, 3: 1, 4: 13},
    1.0: {0: 10, 1: 7, 2: 3, 3: 1, 4: 25},
}


def videos(shuffle_seed=None):
    paths = [f"class{c}/video{i:02d}.avi" for c, n in CLASS_SIZES.items() for i in range(n)]
    labels = [c for c, n in CLASS_SIZES.items() for _ in range(n)]
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(len(paths))
        paths, labels = [paths[i] for i in order], [labels[i] for i in order]
    return paths, labels


@pytest.mark.parametrize("fraction", sorted(EXPECTED_COUNTS))
def test_each_class_keeps_round_fraction_of_its_videos_at_least_one(fraction):
    chosen = stratified_subset(*videos(), fraction, seed=3)
    counts = {c: 0 for c in CLASS_SIZES}
    for path in chosen:
        counts[int(path[len("class")])] += 1
    assert counts == EXPECTED_COUNTS[fraction]
    assert chosen == sorted(set(chosen))


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_subsets_are_nested(seed):
    paths, labels = videos()
    subsets = [set(stratified_subset(paths, labels, f, seed)) for f in (0.1, 0.2, 0.5, 1.0)]
    assert subsets[0] < subsets[1] < subsets[2] < subsets[3] == set(paths)


def test_choice_depends_on_the_seed_only_not_on_the_input_order():
    first = stratified_subset(*videos(), 0.2, seed=5)
    assert stratified_subset(*videos(shuffle_seed=1), 0.2, seed=5) == first
    others = [stratified_subset(*videos(), 0.2, seed=s) for s in (6, 7, 8)]
    assert any(other != first for other in others)


@pytest.mark.parametrize(
    "paths, labels, fraction, message",
    [(["a", "b"], [0, 1], 0.0, "fraction"), (["a", "b"], [0, 1], 1.5, "fraction"),
     (["a", "b"], [0, -1], 0.5, "b: unlabelled"), (["a", "a"], [0, 0], 0.5, "unique"),
     (["a", "b"], [0], 0.5, "2 paths but 1 labels")],
)
def test_bad_input_is_a_clear_error(paths, labels, fraction, message):
    with pytest.raises(ValueError, match=message):
        stratified_subset(paths, labels, fraction)


def write_shards(data_dir, num_shards=3):
    """Prepared-style train shards of the CLASS_SIZES videos; returns {path: record}."""
    paths, labels = videos(shuffle_seed=0)
    records = {}
    os.makedirs(os.path.join(data_dir, "rgb"))
    for index in range(num_shards):
        with tf.io.TFRecordWriter(shard_path(data_dir, "rgb", "train", index, num_shards)) as w:
            for path, label in list(zip(paths, labels))[index::num_shards]:
                record = make_sequence_example(
                    [path.encode(), b"jpeg-2"], path=path, label=label, fps=25.0,
                    height=4, width=4,
                ).SerializeToString()
                records[path] = record
                w.write(record)
    return records


def read_shard(file_name):
    return [record.numpy() for record in tf.data.TFRecordDataset(file_name)]


def test_label_subset_shards_copy_the_chosen_records_shard_by_shard(tmp_path):
    data_dir, output = str(tmp_path / "data"), str(tmp_path / "subset")
    records = write_shards(data_dir)
    pattern, count = label_subset_pattern(data_dir, "train", "rgb", 0.5, 4, output)
    expected = stratified_subset(*videos(), 0.5, seed=4)
    assert count == len(expected) == 25
    assert pattern == shard_pattern(output, "rgb", "train")
    paths, labels = read_video_labels(pattern)
    assert sorted(paths) == expected
    for index in range(3):
        source = read_shard(shard_path(data_dir, "rgb", "train", index, 3))
        copied = read_shard(shard_path(output, "rgb", "train", index, 3))
        assert copied == [r for r in source if r in {records[p] for p in expected}]
    info = json.loads((tmp_path / "subset" / SUBSET_JSON).read_text())
    assert info["videos"] == expected and info["per_class"]["4"] == 13

    stamp = os.path.getmtime(shard_path(output, "rgb", "train", 0, 3))
    assert label_subset_pattern(data_dir, "train", "rgb", 0.5, 4, output) == (pattern, 25)
    assert os.path.getmtime(shard_path(output, "rgb", "train", 0, 3)) == stamp

    smaller, count = label_subset_pattern(data_dir, "train", "rgb", 0.1, 4, output)
    assert sorted(read_video_labels(smaller)[0]) == stratified_subset(*videos(), 0.1, seed=4)
    assert count == 7


def test_full_fraction_reads_the_source_shards(tmp_path):
    data_dir = str(tmp_path / "data")
    write_shards(data_dir)
    pattern, count = label_subset_pattern(data_dir, "train", "rgb", 1.0, 0, str(tmp_path / "x"))
    assert pattern == shard_pattern(data_dir, "rgb", "train") and count == 46
    assert not (tmp_path / "x").exists()
