import json

import cv2
import keras
import numpy as np
import pytest

from keras_memdpc import data_preparation, readers, synthetic_videos
from keras_memdpc.memdpc import MemDPC
from keras_memdpc.memory_pictures import (
    check_memory,
    checkpoint_names,
    memory_pictures,
    most_addressed_slots,
    nearest_videos,
    plot_slot_norms,
    plot_tsne,
    slot_norms,
    tsne_points,
    video_addressing,
)
from keras_memdpc.video_pipeline import evaluation_dataset
from keras_memdpc.video_tfrecord import shard_pattern

TINY = dict(image_size=32, num_blocks=4, block_length=3, pred_steps=2, memory_size=16)
ORANGE = np.array([255, 127, 14])  # matplotlib's tab:orange


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """8 classes x 5 videos of 60 frames at 32 px: 32 train videos, 2 windows each."""
    root = tmp_path_factory.mktemp("memory")
    written = synthetic_videos.write_dataset(
        root / "videos", videos_per_class=5, num_frames=60, size=32
    )
    dataset = readers.read_ucf101(written["splits_dir"], written["videos_dir"])
    data_preparation.prepare_dataset(dataset, root / "prepared", short_side=32, workers=1)
    return root / "prepared"


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    tiny = MemDPC(**TINY)
    tiny.build()
    # A random phi addresses every slot almost equally (p ~ 1/16 +- 1e-5);
    # larger weights make videos differ by ~1e-3, far above rounding.
    for layer in tiny.phi.layers:
        layer.kernel.assign(layer.kernel * 30.0)
    return tiny


@pytest.fixture(scope="module")
def own_addressing(prepared, model):
    """p per window from the model's call, averaged by hand: [videos, 16]."""
    windows = {}
    for clips, info in evaluation_dataset(
        shard_pattern(prepared, "rgb", "train"), 16, image_size=32, num_blocks=4,
        block_length=3, output_dtype="uint8",
    ):
        p = np.asarray(model(clips)["addressing"])  # [16, 2, 2, 1, 1, 16]
        assert p.shape == (len(clips), 2, 2, 1, 1, 16)
        for video, window in zip(info["video_index"].numpy(), p):
            windows.setdefault(video, []).append(window.reshape(-1, 16).mean(axis=0))
    return np.stack([np.mean(windows[video], axis=0) for video in sorted(windows)])


def test_nearest_videos_of_a_slot_are_those_addressing_it_most(
    prepared, model, own_addressing
):
    addressing, labels, paths = video_addressing(
        model, shard_pattern(prepared, "rgb", "train"), batch_size=24
    )
    assert addressing.shape == (32, 16) and len(labels) == len(paths) == 32
    np.testing.assert_allclose(addressing.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(addressing, own_addressing, rtol=1e-5, atol=1e-7)

    slots = [0, 7, 15]
    nearest = nearest_videos(addressing, slots, count=3)
    assert nearest.shape == (3, 3)
    for slot, videos in zip(slots, nearest):
        assert videos[0] == np.argmax(own_addressing[:, slot])
        np.testing.assert_array_equal(videos, np.argsort(-own_addressing[:, slot])[:3])
    np.testing.assert_array_equal(
        most_addressed_slots(addressing, 4), np.argsort(-own_addressing.mean(axis=0))[:4]
    )


def test_nearest_videos_ties_count_and_bad_slots():
    addressing = np.array([[0.5, 0.5], [0.7, 0.3], [0.5, 0.5]])
    np.testing.assert_array_equal(nearest_videos(addressing, [0, 1], 5), [[1, 0, 2], [0, 2, 1]])
    with pytest.raises(ValueError, match=r"slots \[2\] are outside the memory of 2 slots"):
        nearest_videos(addressing, [1, 2])


def test_a_model_without_memory_is_a_clear_error():
    with pytest.raises(ValueError, match="no memory bank"):
        check_memory(MemDPC(**TINY, predictor="regression"))


def test_slot_norms_and_their_plot_with_the_chosen_slots_in_orange(tmp_path):
    keras.utils.set_random_seed(1)
    tiny = MemDPC(**TINY)
    tiny.build()
    directions = np.random.default_rng(0).normal(size=(16, 256))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    wanted = np.arange(1.0, 17.0)[::-1]
    tiny.memory.memory.assign(directions * wanted[:, None])
    norms = slot_norms(tiny)
    np.testing.assert_allclose(norms, wanted, rtol=1e-5)

    def orange_pixels(slots):
        path = tmp_path / f"norms_{len(slots)}.png"
        plot_slot_norms(norms, slots, path)
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        assert image.shape == (300, 600, 3)
        return int(np.sum(np.abs(image.astype(int) - ORANGE).sum(axis=-1) < 30))

    assert orange_pixels([]) == 0
    assert orange_pixels([3, 10]) > 100


def test_tsne_keeps_two_addressing_clusters_apart_and_plots_panels(tmp_path):
    rng = np.random.default_rng(0)
    addressing = rng.dirichlet(np.ones(16), size=24) * 0.3
    addressing[:12, 0] += 0.7
    addressing[12:, 1] += 0.7
    labels = np.repeat([0, 1], 12)
    points = tsne_points(addressing)
    assert points.shape == (24, 2) and np.isfinite(points).all()
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    assert (labels[distances.argmin(axis=1)] == labels).all()

    plot_tsne([("a", points, labels), ("b", points, labels)], ["up", "down"],
              tmp_path / "tsne.png")
    # Two 4-inch panels and a 2-inch legend at 100 dpi.
    assert cv2.imread(str(tmp_path / "tsne.png")).shape == (400, 1000, 3)
    with pytest.raises(ValueError, match="at least 2 videos"):
        tsne_points(addressing[:1])


def test_memory_pictures_of_two_checkpoints(prepared, model, own_addressing, tmp_path):
    summary = memory_pictures(
        [("early", model), ("late", model)], str(prepared), str(tmp_path),
        slots=[2, 9], batch_size=64,
    )
    assert cv2.imread(str(tmp_path / "tsne.png")).shape == (400, 1000, 3)
    for name in ("early", "late"):
        folder = tmp_path / name
        assert cv2.imread(str(folder / "slot_norms.png")).shape == (300, 600, 3)
        # 2 slot rows of 128 px tiles 4 px apart: the slot, a 16 px gap, 3 videos.
        assert cv2.imread(str(folder / "slots.png")).shape == (4 + 2 * 132, 548, 3)
        assert json.loads((folder / "memory.json").read_text()) == summary[name]
    slots = summary["early"]["slots"]
    assert list(slots) == ["2", "9"] and summary["early"]["videos"] == 32
    for slot, entry in slots.items():
        p = [video["p"] for video in entry["nearest"]]
        assert p == pytest.approx(np.sort(own_addressing[:, int(slot)])[::-1][:3], rel=1e-5)
        assert entry["norm"] == pytest.approx(slot_norms(model)[int(slot)])


def test_bad_slots_fail_before_any_work(prepared, model, tmp_path):
    with pytest.raises(ValueError, match=r"slots \[16\] are outside the memory of 16"):
        memory_pictures([("m", model)], str(prepared), str(tmp_path / "out"), slots=[3, 16])
    assert not (tmp_path / "out").exists()


def test_checkpoint_names_are_unique():
    assert checkpoint_names(["runs/a/best.keras", "runs/a/last.keras"]) == ["best", "last"]
    assert checkpoint_names(["runs/a/best.keras", "runs/b/best.keras"]) == [
        "a_best", "b_best",
    ]
    assert checkpoint_names(["x/a/best.keras", "y/a/best.keras"]) == [
        "0_a_best", "1_a_best",
    ]
