"""Tests of the synthetic motion-class video data set."""

import json
import os
import re

import cv2
import numpy as np
import pytest

from keras_memdpc import synthetic_videos

NAMES = synthetic_videos.CLASS_NAMES
SMALL = dict(seed=3, videos_per_class=8, num_frames=30, size=32)


def _class_id(name):
    return NAMES.index(name)


def _video(motion_class, seed=0, num_frames=30, size=64, **change):
    rng = np.random.default_rng(seed)
    return synthetic_videos.make_video(rng, motion_class, num_frames, size, **change)


def _gray(frame):
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def _shift(frame_a, frame_b):
    """(dx, dy) of the content of frame_b relative to frame_a, by phase correlation.

    Measured on the colour channel with the most contrast.
    """
    channel = int(np.argmax(frame_a.reshape(-1, 3).std(axis=0)))
    a = frame_a[..., channel].astype(np.float32)
    b = frame_b[..., channel].astype(np.float32)
    window = cv2.createHanningWindow(a.shape[::-1], cv2.CV_32F)
    return np.array(cv2.phaseCorrelate(a, b, window)[0])


def _similarity(frame_a, frame_b):
    """(scale, angle in degrees) from frame_a to frame_b, tracked with Lucas-Kanade.

    Image y points down, so a positive angle is a clockwise turn.
    """
    a, b = _gray(frame_a), _gray(frame_b)
    points = cv2.goodFeaturesToTrack(a, 100, 0.01, 3)
    moved, found, _ = cv2.calcOpticalFlowPyrLK(a, b, points, None)
    found = found.ravel() == 1
    matrix, _ = cv2.estimateAffinePartial2D(points[found], moved[found])
    return np.hypot(matrix[0, 0], matrix[1, 0]), np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0]))


def _mean_motion(measure, video, first=0, last=None, stride=3):
    """Average of measure(frame t, frame t + stride) over frames first..last (inclusive)."""
    last = len(video) - 1 if last is None else last
    pairs = range(first, last - stride + 1, stride)
    return np.mean([measure(video[t], video[t + stride]) for t in pairs], axis=0)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    output_dir = str(tmp_path_factory.mktemp("synthetic"))
    summary = synthetic_videos.write_dataset(output_dir, fps=10, **SMALL)
    return output_dir, summary, synthetic_videos.make_dataset(**SMALL)


def test_class_names_and_ids():
    assert NAMES == (
        "translate_left", "translate_right", "translate_up", "translate_down",
        "rotate_clockwise", "rotate_counterclockwise", "zoom_in", "zoom_out",
    )
    assert synthetic_videos.camel_case("rotate_counterclockwise") == "RotateCounterclockwise"


def test_make_video_shape_dtype_and_determinism():
    video = _video(6, seed=1, num_frames=12, size=48)
    assert video.shape == (12, 48, 48, 3) and video.dtype == np.uint8
    np.testing.assert_array_equal(video, _video(6, seed=1, num_frames=12, size=48))
    assert np.abs(video.astype(int) - _video(6, seed=2, num_frames=12, size=48)).mean() > 10
    assert video.std() > 10  # textured, not flat


@pytest.mark.parametrize("kwargs", [
    dict(motion_class=8),
    dict(motion_class=-1),
    dict(motion_class=0, change_frame=30),
    dict(motion_class=0, change_frame=-1),
])
def test_make_video_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        synthetic_videos.make_video(np.random.default_rng(0), num_frames=30, size=32, **kwargs)


@pytest.mark.parametrize("name, direction", [
    ("translate_left", (-1, 0)), ("translate_right", (1, 0)),
    ("translate_up", (0, -1)), ("translate_down", (0, 1)),
])
def test_translation_moves_the_whole_frame(name, direction):
    for seed in range(3):
        shift = _mean_motion(_shift, _video(_class_id(name), seed))
        along = shift @ np.array(direction)
        across = shift @ np.array(direction[::-1])
        # 2-4 px per frame, measured over 3 frames.
        assert 5.0 < along < 13.0, (name, seed, shift)
        assert abs(across) < 1.0, (name, seed, shift)


@pytest.mark.parametrize("name, sign", [("rotate_clockwise", 1), ("rotate_counterclockwise", -1)])
def test_rotation_turns_the_whole_frame(name, sign):
    for seed in range(3):
        scale, angle = _mean_motion(_similarity, _video(_class_id(name), seed), stride=1)
        assert 4.0 < sign * angle < 13.0, (name, seed, angle)  # 5.7-11.5 degrees per frame
        assert abs(scale - 1.0) < 0.03, (name, seed, scale)


@pytest.mark.parametrize("name, sign", [("zoom_in", 1), ("zoom_out", -1)])
def test_zoom_scales_the_whole_frame(name, sign):
    for seed in range(3):
        scale, angle = _mean_motion(_similarity, _video(_class_id(name), seed), stride=1)
        assert 0.07 < sign * np.log(scale) < 0.2, (name, seed, scale)  # 1.1-1.2 per frame
        assert abs(angle) < 2.0, (name, seed, angle)


def _displacements(frame_a, frame_b):
    """Displacements [points, 2] of corners tracked with Lucas-Kanade."""
    a, b = _gray(frame_a), _gray(frame_b)
    points = cv2.goodFeaturesToTrack(a, 100, 0.01, 3)
    moved, found, _ = cv2.calcOpticalFlowPyrLK(a, b, points, None)
    return (moved - points)[found.ravel() == 1].reshape(-1, 2)


def _coherence(frame_a, frame_b):
    """(length of the mean displacement / mean length, mean length)."""
    steps = _displacements(frame_a, frame_b)
    lengths = np.linalg.norm(steps, axis=1)
    return np.linalg.norm(steps.mean(axis=0)) / lengths.mean(), lengths.mean()


def test_failure_scatters_the_dots_at_the_same_speed():
    before, after = [], []
    for seed in range(4):
        video = _video(_class_id("translate_right"), seed, num_frames=40, change_frame=20)
        before.append(_mean_motion(_coherence, video, last=20, stride=1))
        after.append(_mean_motion(_coherence, video, first=20, stride=1))
    before, after = np.mean(before, axis=0), np.mean(after, axis=0)
    # 30 dots in random directions leave a mean of about 1 / sqrt(30) of
    # their length; static noise corners and lost tracks add some more.
    assert before[0] > 0.85 and after[0] < 0.5, (before, after)
    assert 0.7 < after[1] / before[1] < 1.3, (before, after)


def test_make_dataset_records():
    videos = synthetic_videos.make_dataset(**SMALL)
    assert len(videos) == 8 * len(NAMES)
    for video in videos:
        camel = synthetic_videos.camel_case(video["class_name"])
        assert re.fullmatch(rf"v_{camel}_g0[12]_c0[1-4]", video["name"])
        assert NAMES[video["label"]] == video["class_name"]
        assert video["frames"].shape == (30, 32, 32, 3) and video["frames"].dtype == np.uint8
        assert video["split"] == ("test" if "_g02_" in video["name"] else "train")
        if video["change_frame"] is not None:
            assert 6 <= video["change_frame"] <= 24  # 20% - 80% of 30 frames
    assert len({video["name"] for video in videos}) == len(videos)
    assert 0.3 < np.mean([video["change_frame"] is not None for video in videos]) < 0.7


def test_make_dataset_test_groups_per_class():
    videos = synthetic_videos.make_dataset(seed=0, videos_per_class=12, num_frames=10, size=16)
    for label in range(len(NAMES)):
        groups = {
            split: {v["name"].split("_")[2] for v in videos
                    if v["label"] == label and v["split"] == split}
            for split in ("train", "test")
        }
        assert groups == {"train": {"g01", "g02"}, "test": {"g03"}}
    with pytest.raises(ValueError):
        synthetic_videos.make_dataset(videos_per_class=4, num_frames=10, size=16)


def test_make_dataset_is_deterministic_by_seed():
    params = dict(videos_per_class=5, num_frames=10, size=16)
    first = synthetic_videos.make_dataset(seed=7, **params)
    again = synthetic_videos.make_dataset(seed=7, **params)
    other = synthetic_videos.make_dataset(seed=8, **params)
    for a, b, c in zip(first, again, other):
        np.testing.assert_array_equal(a["frames"], b["frames"])
        assert a["change_frame"] == b["change_frame"]
        assert not np.array_equal(a["frames"], c["frames"])


def test_first_frame_colour_does_not_reveal_the_class():
    videos = synthetic_videos.make_dataset(seed=0, videos_per_class=12, num_frames=10, size=32)
    features = np.array([v["frames"][0].reshape(-1, 3).mean(axis=0) for v in videos])
    labels = np.array([v["label"] for v in videos])
    correct = 0
    for i in range(len(videos)):  # leave-one-out nearest class mean
        keep = np.arange(len(videos)) != i
        means = [features[keep & (labels == c)].mean(axis=0) for c in range(len(NAMES))]
        correct += np.argmin(np.linalg.norm(np.array(means) - features[i], axis=1)) == labels[i]
    assert correct / len(videos) < 0.3  # chance is 1/8


def _read_lines(path):
    with open(path) as handle:
        return handle.read().splitlines()


def test_write_dataset_ucf101_split_files(written):
    output_dir, summary, videos = written
    splits = os.path.join(output_dir, "splits")
    class_lines = _read_lines(os.path.join(splits, "classInd.txt"))
    assert class_lines == [f"{i + 1} {synthetic_videos.camel_case(n)}" for i, n in enumerate(NAMES)]
    class_index = {line.split()[1]: int(line.split()[0]) for line in class_lines}
    train, test = {}, set()
    for line in _read_lines(os.path.join(splits, "trainlist01.txt")):
        path, label = line.split(" ")
        assert class_index[path.split("/")[0]] == int(label)
        train[path] = int(label)
    for line in _read_lines(os.path.join(splits, "testlist01.txt")):
        assert re.fullmatch(r"\w+/v_\w+_g\d\d_c\d\d\.avi", line)
        test.add(line)
    on_disk = {
        f"{folder}/{name}" for folder in os.listdir(os.path.join(output_dir, "videos"))
        for name in os.listdir(os.path.join(output_dir, "videos", folder))
    }
    assert len(train) + len(test) == len(on_disk) == len(videos) == summary["num_videos"]
    assert set(train) | test == on_disk
    assert (len(train), len(test)) == (summary["num_train"], summary["num_test"])
    train_groups = {path.rsplit("_c", 1)[0] for path in train}
    test_groups = {path.rsplit("_c", 1)[0] for path in test}
    assert not train_groups & test_groups
    for video in videos:
        path = f"{synthetic_videos.camel_case(video['class_name'])}/{video['name']}.avi"
        assert (path in test) == (video["split"] == "test")
        assert train.get(path, video["label"] + 1) == video["label"] + 1


def test_write_dataset_oops_annotations_and_manifest(written):
    output_dir, summary, videos = written
    oops = os.path.join(output_dir, "oops")
    assert _read_lines(os.path.join(oops, "train.txt")) == [
        v["name"] for v in videos if v["split"] == "train"]
    assert _read_lines(os.path.join(oops, "val.txt")) == [
        v["name"] for v in videos if v["split"] == "test"]
    with open(os.path.join(oops, "transition_times.json")) as handle:
        times = json.load(handle)
    assert set(times) == {v["name"] for v in videos}
    for video in videos:
        entry = times[video["name"]]
        assert set(entry) == {"t", "len", "rel_t", "n_notfound", "stdev", "rel_stdev"}
        assert entry["len"] == pytest.approx(3.0)  # 30 frames at 10 fps
        assert entry["stdev"] == 0.0 and entry["rel_stdev"] == 0.0
        if video["change_frame"] is None:
            assert entry["t"] == [-1, -1, -1] and entry["rel_t"] == [-1, -1, -1]
            assert entry["n_notfound"] == 3
        else:
            t = video["change_frame"] / 10
            assert entry["t"] == pytest.approx([t] * 3)
            assert entry["rel_t"] == pytest.approx([t / 3.0] * 3)
            assert 0.2 <= entry["rel_t"][0] <= 0.8
            assert entry["n_notfound"] == 0
    assert summary["num_changed"] == sum(v["change_frame"] is not None for v in videos)
    with open(summary["manifest"]) as handle:
        manifest = json.load(handle)
    assert manifest == dict(SMALL, change_fraction=0.5, fps=10, class_names=list(NAMES),
                            count=len(videos))
    leftovers = [name for _, _, names in os.walk(output_dir) for name in names if ".tmp" in name]
    assert leftovers == []


def test_written_videos_read_back_close_to_generated(written):
    output_dir, _, videos = written
    for video in videos[::5]:
        folder = synthetic_videos.camel_case(video["class_name"])
        path = os.path.join(output_dir, "videos", folder, video["name"] + ".avi")
        frames = synthetic_videos.read_video(path)
        assert frames.shape == video["frames"].shape and frames.dtype == np.uint8
        # Compared in grey: XVID's 4:2:0 chroma blurs the colours of small dots.
        luma = [np.stack([_gray(f) for f in v]).astype(int) for v in (frames, video["frames"])]
        assert np.abs(luma[0] - luma[1]).mean() < 8


def test_read_video_errors_name_the_path(tmp_path):
    missing = str(tmp_path / "missing.avi")
    with pytest.raises(ValueError, match="missing.avi"):
        synthetic_videos.read_video(missing)
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(b"not a video")
    with pytest.raises(ValueError, match="garbage.avi"):
        synthetic_videos.read_video(str(garbage))
