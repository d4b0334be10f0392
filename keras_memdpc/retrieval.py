"""Nearest-neighbour video retrieval with the pretrained embedding (paper section 5.6).

Every video of the query subset (the test set) looks up its nearest videos in
the gallery subset (the training set) by the cosine similarity of their
embeddings: `MemDPC.embed` (the spatially pooled context, [256 * D] for D
directions) of every centre-cropped sliding window, averaged over the
video's windows. Recall at k (R@k) is the fraction of queries with at least
one video of their own class among their k nearest gallery videos.

The picture (`retrieval_grid`, as the paper's figure 7) shows queries on the
left and their nearest gallery videos on the right, each as its middle
frame, framed in green when of the query's class and in red otherwise.
"""

import json
import os

import cv2
import keras
import numpy as np
import tensorflow as tf
from absl import logging

from keras_memdpc.memdpc import MemDPC
from keras_memdpc.video_pipeline import evaluation_dataset
from keras_memdpc.video_tfrecord import (
    parse_sequence_example,
    read_dataset_json,
    shard_files,
    shard_pattern,
)

KS = (1, 5, 10, 20, 50)
QUERY_SUBSETS = ("test", "val", "validation")
GALLERY_SUBSET = "train"
PICTURE_NEIGHBOURS = 3
MAX_SIMILARITIES = 2**24  # entries of one block of the query x gallery matrix
TILE = 128
BORDER = 4
PAD = 4
QUERY_GAP = 16
SAME_CLASS = (0, 170, 0)
OTHER_CLASS = (220, 0, 0)
NEUTRAL = (110, 110, 110)
BACKGROUND = 255


def load_memdpc(checkpoint, **random_init):
    """A MemDPC from a .keras checkpoint, or randomly initialised.

    Args:
        checkpoint: path of a MemDPC .keras file, or None / "none" for a new
            model built from `random_init` (MemDPC's arguments, e.g.
            network="resnet18", image_size=64).
    Raises ValueError naming the file when it holds another kind of model.
    """
    if checkpoint in (None, "none"):
        model = MemDPC(**random_init)
        model.build()
        return model
    model = keras.saving.load_model(checkpoint, compile=False)
    if not isinstance(model, MemDPC):
        raise ValueError(f"{checkpoint} holds a {type(model).__name__}, not a MemDPC")
    return model


def video_paths(file_pattern):
    """Source paths of the videos in the shards, in the pipeline's read order."""
    spec = {"video/path": tf.io.FixedLenFeature([], tf.string)}
    paths = tf.data.TFRecordDataset(shard_files(file_pattern)).map(
        lambda serialized: tf.io.parse_single_sequence_example(
            serialized, context_features=spec
        )[0]["video/path"]
    )
    return [path.decode() for path in paths.as_numpy_iterator()]


def middle_frames(file_pattern, video_indices):
    """The middle frame (index num_frames // 2) of chosen videos, decoded alone.

    Args:
        file_pattern: glob of prepared shards.
        video_indices: positions of videos in the read order (as
            `video_paths` and evaluation_dataset's "video_index").
    Returns {index: uint8 RGB [height, width, 3]}.
    Raises IndexError naming the shards when an index is past the last video.
    """
    wanted = {int(index) for index in video_indices}
    frames = {}
    records = tf.data.TFRecordDataset(shard_files(file_pattern))
    for index, serialized in enumerate(records):
        if len(frames) == len(wanted):
            break
        if index in wanted:
            jpegs = parse_sequence_example(serialized)["frames/encoded"]
            middle = jpegs[tf.size(jpegs) // 2]
            frames[index] = tf.io.decode_jpeg(middle, channels=3).numpy()
    missing = sorted(wanted - set(frames))
    if missing:
        raise IndexError(f"{file_pattern} holds no video at positions {missing}")
    return frames


def video_means(per_window, file_pattern, batch_size, image_size, num_blocks,
                block_length, stride=3, modality="rgb"):
    """Per-video means of a per-window function over every sliding window.

    Windows are evaluation_dataset's: centre crops, a window every half
    window (num_blocks * block_length * stride // 2 frames), read as uint8
    (the model normalises them).

    Args:
        per_window: uint8 clips [batch, num_blocks, block_length, image_size,
            image_size, 3] -> [batch, dim].
        file_pattern: glob of prepared shards, e.g.
            video_tfrecord.shard_pattern(data_dir, "rgb", "test").
        batch_size: windows per call of `per_window`.
        image_size, num_blocks, block_length, stride, modality: the clip
            layout, as in evaluation_dataset.
    Returns (means float32 [videos, dim], labels int64 [videos], paths
    [videos]) in the shards' read order.
    """
    paths = video_paths(file_pattern)
    clips = evaluation_dataset(
        file_pattern, batch_size, image_size=image_size, num_blocks=num_blocks,
        block_length=block_length, stride=stride, crops="centre",
        modality=modality, output_dtype="uint8",
    )
    values, video_indices, labels = [], [], np.zeros(len(paths), np.int64)
    for batch, info in clips:
        values.append(np.asarray(per_window(batch), np.float64))
        video_indices.append(info["video_index"].numpy())
        labels[video_indices[-1]] = info["label"].numpy()
    values = np.concatenate(values)
    video_indices = np.concatenate(video_indices)
    sums = np.zeros((len(paths), values.shape[1]))
    np.add.at(sums, video_indices, values)
    counts = np.bincount(video_indices, minlength=len(paths))
    logging.info("averaged %d windows into %d videos of %s", len(video_indices),
                 len(paths), file_pattern)
    return (sums / counts[:, None]).astype(np.float32), labels, paths


def video_embeddings(model, file_pattern, batch_size, image_size, num_blocks,
                     block_length, stride=3, modality="rgb"):
    """Per-video embeddings: `model.embed` averaged over the sliding windows.

    The paper's retrieval feature: the spatially pooled context of every
    centre-cropped window (`video_means`), averaged over the video.

    Args:
        model: a MemDPC.
        file_pattern, batch_size, image_size, num_blocks, block_length,
            stride, modality: as in `video_means`.
    Returns (embeddings float32 [videos, 256 * D], labels int64 [videos],
    paths [videos]) in the shards' read order.
    """
    return video_means(
        lambda clips: model.embed(clips, training=False), file_pattern, batch_size,
        image_size, num_blocks, block_length, stride, modality,
    )


def _unit_rows(vectors):
    vectors = np.asarray(vectors, np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def nearest_neighbours(query_embeddings, gallery_embeddings, k):
    """Indices of the k most cosine-similar gallery rows of every query.

    Args:
        query_embeddings: [queries, dim]; gallery_embeddings: [gallery, dim].
        k: neighbours wanted; more than the gallery holds gives them all.
    Returns int64 [queries, min(k, gallery)], most similar first; equal
    similarities keep gallery order (the lower index first). A zero vector
    is equally similar (0) to everything.
    """
    queries = _unit_rows(query_embeddings)
    gallery = _unit_rows(gallery_embeddings)
    k = min(k, len(gallery))
    rows = max(1, MAX_SIMILARITIES // max(1, len(gallery)))
    blocks = [
        np.argsort(-(queries[start:start + rows] @ gallery.T), axis=1, kind="stable")[:, :k]
        for start in range(0, len(queries), rows)
    ]
    return np.concatenate(blocks) if blocks else np.zeros((0, k), np.int64)


def recall_at_k(query_embeddings, query_labels, gallery_embeddings, gallery_labels, ks=KS):
    """Recall at k of cosine nearest-neighbour retrieval (the paper's R@k).

    A query counts as retrieved at k when any of its k nearest gallery items
    (`nearest_neighbours`: ties go to the lower gallery index) has its
    label. A k larger than the gallery is capped at the gallery size: R@k
    is then the fraction of queries whose class is in the gallery at all.

    Args:
        query_embeddings [queries, dim], query_labels [queries];
        gallery_embeddings [gallery, dim], gallery_labels [gallery].
        ks: the k to report.
    Returns {"R@k": float in [0, 1]} for each k in `ks`.
    Raises ValueError on mismatched lengths, no queries or an unlabelled (< 0)
    query.
    """
    query_labels = np.asarray(query_labels)
    gallery_labels = np.asarray(gallery_labels)
    if len(query_embeddings) != len(query_labels) or len(gallery_embeddings) != len(gallery_labels):
        raise ValueError(
            f"{len(query_embeddings)} query embeddings for {len(query_labels)} labels, "
            f"{len(gallery_embeddings)} gallery embeddings for {len(gallery_labels)} labels"
        )
    if len(query_labels) == 0 or len(gallery_labels) == 0:
        raise ValueError("recall_at_k needs at least one query and one gallery item")
    if np.any(query_labels < 0):
        raise ValueError("every query needs a class (labels >= 0); unlabelled videos "
                         "can only be in the gallery")
    neighbours = nearest_neighbours(query_embeddings, gallery_embeddings, max(ks))
    hits = gallery_labels[neighbours] == query_labels[:, None]
    return {f"R@{k}": float(np.mean(hits[:, :k].any(axis=1))) for k in ks}


def _centre_square(frame):
    height, width = frame.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return frame[top:top + side, left:left + side]


def frame_tile(frame, lines, border_colour):
    """A TILE x TILE picture of `frame` (centre square) in a coloured border.

    `lines` (strings) are written in the upper right corner on a dark band.
    `frame` is uint8 RGB [height, width, 3]; returns uint8 RGB [TILE, TILE, 3].
    """
    inner = TILE - 2 * BORDER
    tile = np.empty((TILE, TILE, 3), np.uint8)
    tile[:] = border_colour
    tile[BORDER:-BORDER, BORDER:-BORDER] = cv2.resize(
        np.ascontiguousarray(_centre_square(frame)), (inner, inner),
        interpolation=cv2.INTER_AREA,
    )
    return _write_text(tile, lines)


def text_tile(lines):
    """A TILE x TILE light grey tile holding lines of text (uint8 RGB)."""
    tile = np.full((TILE, TILE, 3), 235, np.uint8)
    for row, line in enumerate(lines):
        cv2.putText(tile, line, (2 * BORDER, 24 + 18 * row), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return tile


def _write_text(tile, lines):
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.32
    for row, line in enumerate(lines):
        (width, height), baseline = cv2.getTextSize(line, font, scale, 1)
        right = TILE - BORDER - 2
        top = BORDER + 2 + row * (height + baseline + 2)
        left = max(BORDER, right - width)
        cv2.rectangle(tile, (left - 2, top), (right + 1, top + height + baseline),
                      (0, 0, 0), cv2.FILLED)
        cv2.putText(tile, line, (left, top + height), font, scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return tile


def tile_grid(rows, first_column_gap=0):
    """Rows of TILE x TILE tiles on white, PAD apart; the first column set apart.

    Args:
        rows: lists of uint8 RGB [TILE, TILE, 3] tiles, all of one length n.
        first_column_gap: extra pixels between the first column and the rest.
    Returns uint8 RGB [PAD + rows * (TILE + PAD), PAD + n * (TILE + PAD) +
    first_column_gap, 3].
    """
    columns = len(rows[0])
    height = PAD + len(rows) * (TILE + PAD)
    width = PAD + columns * (TILE + PAD) + first_column_gap
    grid = np.full((height, width, 3), BACKGROUND, np.uint8)
    for row, tiles in enumerate(rows):
        top = PAD + row * (TILE + PAD)
        for column, tile in enumerate(tiles):
            left = PAD + column * (TILE + PAD) + (first_column_gap if column else 0)
            grid[top:top + TILE, left:left + TILE] = tile
    return grid


def write_png(path, image):
    """Writes uint8 RGB [height, width, 3] as a PNG; errors name the path."""
    if not cv2.imwrite(os.fspath(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write the picture {path}")


def class_name(class_names, label):
    """The name of a class index; "unlabelled" for -1."""
    return class_names[label] if label >= 0 else "unlabelled"


def retrieval_grid(query_frames, query_labels, neighbour_frames, neighbour_labels,
                   class_names):
    """The paper's figure 7: each query, then its nearest gallery videos.

    Args:
        query_frames: [rows] uint8 RGB frames of the queries.
        query_labels: [rows] class indices.
        neighbour_frames: [rows][n] frames of each query's neighbours, nearest first.
        neighbour_labels: [rows][n] their class indices.
        class_names: names of the class indices.
    Returns uint8 RGB [PAD + rows * (TILE + PAD), PAD + (1 + n) * (TILE + PAD)
    + QUERY_GAP, 3]: green borders for the query's class, red for another.
    """
    rows = []
    for frame, label, frames, labels in zip(
        query_frames, query_labels, neighbour_frames, neighbour_labels
    ):
        row = [frame_tile(frame, [class_name(class_names, label)], NEUTRAL)]
        for neighbour, neighbour_label in zip(frames, labels):
            colour = SAME_CLASS if neighbour_label == label else OTHER_CLASS
            row.append(frame_tile(neighbour, [class_name(class_names, neighbour_label)], colour))
        rows.append(row)
    return tile_grid(rows, QUERY_GAP)


def default_query_subset(subsets):
    """The first of test, val, validation that a prepared set has."""
    for name in QUERY_SUBSETS:
        if name in subsets:
            return name
    raise ValueError(f"no query subset: the data set has {sorted(subsets)}, "
                     f"none of {QUERY_SUBSETS}")


def retrieval_report(model, data_dir, output_dir=None, batch_size=8, query_subset=None,
                     gallery_subset=GALLERY_SUBSET, modality="rgb", picture_queries=8,
                     ks=KS):
    """Every query video retrieves from the gallery; R@k, and optionally files.

    Args:
        model: a MemDPC; its image_size, num_blocks and block_length set the clips.
        data_dir: a prepared data set (dataset.json and shards).
        output_dir: when given, receives retrieval.json (this dict) and
            retrieval.png (`retrieval_grid` of `picture_queries` queries
            spread evenly over the query order, with their 3 nearest videos;
            frames always from the RGB shards).
        batch_size: windows per call of `embed`.
        query_subset: default test, else val or validation.
        gallery_subset: "train" in the paper's protocol.
        modality: shards the model reads ("rgb", "flow_tvl1", "flow_dis").
        ks: the k of R@k.
    Returns {"R@1": ..., "R@50": ..., "queries": count, "gallery": count}.
    """
    info = read_dataset_json(data_dir)
    query_subset = query_subset or default_query_subset(info["subsets"])
    for subset in (query_subset, gallery_subset):
        if subset not in info["subsets"]:
            raise ValueError(f"{data_dir}: no subset {subset!r} (it has "
                             f"{sorted(info['subsets'])})")
    embeddings = {
        subset: video_embeddings(
            model, shard_pattern(data_dir, modality, subset), batch_size,
            model.image_size, model.num_blocks, model.block_length, modality=modality,
        )
        for subset in (query_subset, gallery_subset)
    }
    queries, query_labels, _ = embeddings[query_subset]
    gallery, gallery_labels, _ = embeddings[gallery_subset]
    report = {
        **recall_at_k(queries, query_labels, gallery, gallery_labels, ks),
        "queries": len(queries),
        "gallery": len(gallery),
    }
    logging.info("retrieval %s -> %s: %s", query_subset, gallery_subset, report)
    if output_dir is None:
        return report
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "retrieval.json"), "w") as f:
        json.dump(report, f, indent=2)
    shown = np.unique(np.linspace(0, len(queries) - 1, picture_queries).round().astype(int))
    neighbours = nearest_neighbours(queries[shown], gallery, PICTURE_NEIGHBOURS)
    query_frames = middle_frames(shard_pattern(data_dir, "rgb", query_subset), shown)
    gallery_frames = middle_frames(
        shard_pattern(data_dir, "rgb", gallery_subset), neighbours.ravel()
    )
    picture = retrieval_grid(
        [query_frames[index] for index in shown],
        query_labels[shown],
        [[gallery_frames[index] for index in row] for row in neighbours],
        gallery_labels[neighbours],
        info["classes"],
    )
    write_png(os.path.join(output_dir, "retrieval.png"), picture)
    return report
