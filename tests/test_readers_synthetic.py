"""The UCF101 and Oops readers read the files written by the synthetic set writer."""

import json
import os

import pytest

from keras_memdpc import synthetic_videos
from keras_memdpc.readers import read_oops, read_ucf101

NUM_FRAMES = 30
FPS = 5  # 6 s videos: inside the Oops length range [3.2, 30] s


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("synthetic")
    return synthetic_videos.write_dataset(
        output_dir, videos_per_class=5, num_frames=NUM_FRAMES, size=16, fps=FPS)


def test_ucf101_reads_the_synthetic_split_files(written):
    dataset = read_ucf101(written["splits_dir"], written["videos_dir"])
    assert dataset.classes == tuple(
        synthetic_videos.camel_case(name) for name in synthetic_videos.CLASS_NAMES)
    assert len(dataset.subsets["train"]) == written["num_train"]
    assert len(dataset.subsets["test"]) == written["num_test"]
    for subset, records in dataset.subsets.items():
        for record in records:
            assert os.path.isfile(record.path)
            class_folder = os.path.basename(os.path.dirname(record.path))
            assert dataset.classes[record.label] == class_folder
            # 5 clips per class: group 1 holds clips 1-4 (train), group 2 clip 1 (test).
            expected_group = 2 if subset == "test" else 1
            assert record.metadata["group"] == expected_group
            assert 1 <= record.metadata["clip"] <= 4


def test_oops_reads_the_synthetic_annotations(written):
    dataset = read_oops(written["oops_dir"], written["videos_dir"])
    with open(os.path.join(written["oops_dir"], "transition_times.json"), encoding="utf-8") as f:
        times = json.load(f)
    kept = [record for records in dataset.subsets.values() for record in records]
    assert kept and len(kept) == written["num_changed"]
    for subset, records in dataset.subsets.items():
        for record in records:
            assert os.path.isfile(record.path)
            name = os.path.splitext(os.path.basename(record.path))[0]
            assert record.label == -1
            assert record.metadata["t_fail"] == times[name]["t"][0]
            assert record.metadata["duration"] == NUM_FRAMES / FPS
            change_frame = record.metadata["t_fail"] * FPS
            assert 0.2 * NUM_FRAMES <= change_frame <= 0.8 * NUM_FRAMES
    assert len(dataset.subsets["train"]) + len(dataset.subsets["val"]) == len(kept)
    names_by_subset = {
        subset: {os.path.splitext(os.path.basename(r.path))[0] for r in records}
        for subset, records in dataset.subsets.items()
    }
    ucf_test = read_ucf101(written["splits_dir"], written["videos_dir"]).subsets["test"]
    test_names = {os.path.splitext(os.path.basename(r.path))[0] for r in ucf_test}
    assert names_by_subset["val"] <= test_names
    assert not names_by_subset["train"] & test_names
