import json
import os
import pathlib
import subprocess
import sys

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_memdpc import data_preparation, readers, synthetic_videos
from keras_memdpc.memdpc import MemDPC
from keras_memdpc.retrieval import (
    OTHER_CLASS,
    SAME_CLASS,
    load_memdpc,
    middle_frames,
    nearest_neighbours,
    recall_at_k,
    video_embeddings,
    video_paths,
)
from keras_memdpc.video_pipeline import evaluation_dataset
from keras_memdpc.video_tfrecord import make_sequence_example, shard_pattern

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = dict(image_size=32, num_blocks=4, block_length=3, pred_steps=2, memory_size=16)
KEYS = ["R@1", "R@5", "R@10", "R@20", "R@50"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """8 classes x 5 videos of 60 frames at 32 px: 32 train, 8 test, 2 windows each."""
    root = tmp_path_factory.mktemp("retrieval")
    written = synthetic_videos.write_dataset(
        root / "videos", videos_per_class=5, num_frames=60, size=32
    )
    dataset = readers.read_ucf101(written["splits_dir"], written["videos_dir"])
    data_preparation.prepare_dataset(dataset, root / "prepared", short_side=32, workers=1)
    return root / "prepared", dataset


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    tiny = MemDPC(**TINY)
    tiny.build()
    return tiny


def brute_force_recall(queries, query_labels, gallery, gallery_labels, ks):
    """R@k by looping: the rank of the first same-class item in cosine order."""
    first_hits = []
    for query, label in zip(queries, query_labels):
        similarity = [
            float(np.dot(query, item) / (np.linalg.norm(query) * np.linalg.norm(item)))
            for item in gallery
        ]
        order = sorted(range(len(gallery)), key=lambda j: (-similarity[j], j))
        ranks = [rank for rank, j in enumerate(order) if gallery_labels[j] == label]
        first_hits.append(ranks[0] if ranks else len(gallery))
    return {f"R@{k}": float(np.mean(np.array(first_hits) < k)) for k in ks}


def test_recall_matches_brute_force_on_random_embeddings():
    rng = np.random.default_rng(0)
    queries, gallery = rng.normal(size=(25, 8)), rng.normal(size=(70, 8))
    query_labels, gallery_labels = rng.integers(0, 6, 25), rng.integers(0, 6, 70)
    recall = recall_at_k(queries, query_labels, gallery, gallery_labels)
    assert list(recall) == KEYS
    assert recall == pytest.approx(
        brute_force_recall(queries, query_labels, gallery, gallery_labels, (1, 5, 10, 20, 50))
    )
    assert 0 < recall["R@1"] < recall["R@10"] < 1


def test_planted_nearest_neighbours_give_known_recall():
    rng = np.random.default_rng(1)
    gallery = rng.normal(size=(40, 16))
    gallery_labels = rng.integers(0, 4, 40)
    planted = rng.permutation(40)[:10]
    queries = 2.5 * gallery[planted] + 1e-6 * rng.normal(size=(10, 16))
    # The first five queries share their planted neighbour's class; the last
    # five have a class that no gallery item has.
    query_labels = np.concatenate([gallery_labels[planted[:5]], np.full(5, 9)])
    np.testing.assert_array_equal(nearest_neighbours(queries, gallery, 1)[:, 0], planted)
    assert recall_at_k(queries, query_labels, gallery, gallery_labels) == {
        key: 0.5 for key in KEYS
    }


def test_similarity_is_cosine_not_dot_product():
    # The long vector wins by dot product (10 > 1) but not by angle.
    gallery = np.array([[10.0, 10.0], [1.0, 0.1]])
    recall = recall_at_k(np.array([[1.0, 0.0]]), [1], gallery, [0, 1], ks=(1,))
    assert recall == {"R@1": 1.0}


def test_ties_go_to_the_lower_gallery_index():
    gallery = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    gallery_labels = [0, 1, 1]
    query = np.array([[3.0, 0.0]])
    np.testing.assert_array_equal(nearest_neighbours(query, gallery, 3), [[0, 1, 2]])
    assert recall_at_k(query, [1], gallery, gallery_labels, ks=(1, 2)) == {
        "R@1": 0.0, "R@2": 1.0,
    }
    assert recall_at_k(query, [0], gallery, gallery_labels, ks=(1,)) == {"R@1": 1.0}


def test_k_beyond_the_gallery_is_capped_at_the_gallery():
    gallery = np.array([[1.0, 0.0], [0.7, 0.7], [-1.0, 0.1]])
    queries = np.array([[1.0, 0.0], [1.0, 0.0]])
    # The first query's class is only at the farthest item; the second's nowhere.
    recall = recall_at_k(queries, [2, 5], gallery, [0, 1, 2])
    assert recall == {"R@1": 0.0, "R@5": 0.5, "R@10": 0.5, "R@20": 0.5, "R@50": 0.5}
    assert nearest_neighbours(queries, gallery, 50).shape == (2, 3)


def test_bad_labels_are_clear_errors():
    with pytest.raises(ValueError, match="labels >= 0"):
        recall_at_k(np.ones((1, 2)), [-1], np.ones((1, 2)), [0])
    with pytest.raises(ValueError, match="2 query embeddings for 1 labels"):
        recall_at_k(np.ones((2, 2)), [0], np.ones((1, 2)), [0])


def test_video_embeddings_average_the_embeddings_of_the_windows(prepared, model):
    data_dir, dataset = prepared
    pattern = shard_pattern(data_dir, "rgb", "test")
    embeddings, labels, paths = video_embeddings(model, pattern, 5, 32, 4, 3)

    windows = {}
    for clips, info in evaluation_dataset(
        pattern, 16, image_size=32, num_blocks=4, block_length=3, output_dtype="uint8"
    ):
        for video, embedding in zip(info["video_index"].numpy(), np.asarray(model.embed(clips))):
            windows.setdefault(video, []).append(embedding)
    # 60 frames, windows of 4 x 3 frames at stride 3 = 36 frames every 18: 2 each.
    assert [len(windows[video]) for video in sorted(windows)] == [2] * 8
    expected = np.stack([np.mean(windows[video], axis=0) for video in sorted(windows)])
    assert embeddings.shape == (8, 512)
    np.testing.assert_allclose(embeddings, expected, rtol=1e-4, atol=1e-5)
    assert np.ptp(embeddings, axis=0).max() > 1e-3
    assert dict(zip(paths, labels.tolist())) == {
        record.path: record.label for record in dataset.subsets["test"]
    }


def test_middle_frames_decode_only_the_middle_frame(tmp_path):
    def solid(value):
        return cv2.imencode(".jpg", np.full((6, 8, 3), value, np.uint8))[1].tobytes()

    videos = {"a.avi": [0, 50, 100, 150, 200], "b.avi": [10, 60, 110, 170]}
    path = tmp_path / "rgb" / "train-00000-of-00001.tfrecord"
    path.parent.mkdir()
    with tf.io.TFRecordWriter(str(path)) as writer:
        for name, values in videos.items():
            example = make_sequence_example(
                [solid(value) for value in values], path=name, label=0, fps=25.0,
                height=6, width=8,
            )
            writer.write(example.SerializeToString())
    pattern = shard_pattern(tmp_path, "rgb", "train")
    assert video_paths(pattern) == ["a.avi", "b.avi"]
    frames = middle_frames(pattern, [1, 0])
    assert frames[0].shape == (6, 8, 3)
    assert np.abs(frames[0].astype(int) - 100).max() <= 2
    assert np.abs(frames[1].astype(int) - 110).max() <= 2
    with pytest.raises(IndexError, match=r"no video at positions \[5\]"):
        middle_frames(pattern, [0, 5])


def test_load_memdpc_builds_or_loads_and_rejects_other_models(tmp_path):
    built = load_memdpc("none", **TINY)
    assert built.built and built.memory_size == 16
    other = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    other.save(tmp_path / "other.keras")
    with pytest.raises(ValueError, match="other.keras holds a Sequential"):
        load_memdpc(str(tmp_path / "other.keras"))


def test_script_runs_out_of_the_box_and_its_picture_agrees_with_r_at_1(tmp_path):
    command = [
        sys.executable, str(ROOT / "train" / "retrieve.py"), "--checkpoint=none",
        "--image_size=32", "--num_blocks=4", "--block_length=3",
        "--synthetic_videos_per_class=5", f"--output_dir={tmp_path}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "retrieval.json").read_text())
    assert list(report) == KEYS + ["queries", "gallery"]
    # The synthetic set with 5 videos per class: 1 test and 4 train videos each.
    assert (report["queries"], report["gallery"]) == (8, 32)
    recalls = [report[key] for key in KEYS]
    assert all(0 <= value <= 1 for value in recalls) and recalls == sorted(recalls)
    assert report["R@50"] == 1.0  # every class is in the gallery, which k=50 covers

    picture = cv2.cvtColor(cv2.imread(str(tmp_path / "retrieval.png")), cv2.COLOR_BGR2RGB)
    # 8 query rows of 128 px tiles 4 px apart: the query, a 16 px gap, 3 neighbours.
    assert picture.shape == (4 + 8 * 132, 4 + 4 * 132 + 16, 3)
    first_neighbour_corners = [
        tuple(picture[4 + row * 132 + 1, 4 + 132 + 16 + 1]) for row in range(8)
    ]
    assert set(first_neighbour_corners) <= {SAME_CLASS, OTHER_CLASS}
    same = [corner == SAME_CLASS for corner in first_neighbour_corners]
    assert np.mean(same) == report["R@1"]
