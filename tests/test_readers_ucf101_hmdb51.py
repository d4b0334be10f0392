"""Tests of the UCF101 and HMDB51 split file readers on files in the official formats."""

import os

import pytest

from keras_memdpc.readers import read_hmdb51, read_ucf101
from keras_memdpc.video_record import AnnotationError, VideoRecord

CLASS_IND = "1 ApplyEyeMakeup\r\n2 ApplyLipstick\r\n3 Archery\r\n"
TRAIN_LIST = (
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\n"
    "\r\n"
    "Archery/v_Archery_g10_c03.avi 3\r\n"
    "ApplyLipstick/clip_without_groups.avi 2\r\n"
)
TEST_LIST = "ApplyLipstick/v_ApplyLipstick_g01_c02.avi\r\nArchery/v_Archery_g02_c05.avi\r\n"


def _write(path, text):
    """Write text as is (keeps Windows line endings)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    return str(path)


@pytest.fixture
def ucf_splits(tmp_path):
    splits = tmp_path / "ucfTrainTestlist"
    _write(splits / "classInd.txt", CLASS_IND)
    _write(splits / "trainlist01.txt", TRAIN_LIST)
    _write(splits / "testlist01.txt", TEST_LIST)
    _write(splits / "trainlist02.txt", "Archery/v_Archery_g01_c01.avi 3\n")
    _write(splits / "testlist02.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g20_c04.avi\n")
    return str(splits)


def test_ucf101_reads_classes_train_and_test(ucf_splits):
    dataset = read_ucf101(ucf_splits, "/videos/UCF-101")
    assert dataset.name == "ucf101"
    assert dataset.classes == ("ApplyEyeMakeup", "ApplyLipstick", "Archery")
    assert dataset.subsets["train"] == [
        VideoRecord("/videos/UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", 0,
                    {"group": 8, "clip": 1}),
        VideoRecord("/videos/UCF-101/Archery/v_Archery_g10_c03.avi", 2, {"group": 10, "clip": 3}),
        VideoRecord("/videos/UCF-101/ApplyLipstick/clip_without_groups.avi", 1, {}),
    ]
    assert dataset.subsets["test"] == [
        VideoRecord("/videos/UCF-101/ApplyLipstick/v_ApplyLipstick_g01_c02.avi", 1,
                    {"group": 1, "clip": 2}),
        VideoRecord("/videos/UCF-101/Archery/v_Archery_g02_c05.avi", 2, {"group": 2, "clip": 5}),
    ]


def test_ucf101_reads_the_requested_split(ucf_splits):
    dataset = read_ucf101(ucf_splits, "/v", split=2)
    assert [(r.path, r.label) for r in dataset.subsets["train"]] == [
        ("/v/Archery/v_Archery_g01_c01.avi", 2)]
    assert [(r.path, r.label) for r in dataset.subsets["test"]] == [
        ("/v/ApplyEyeMakeup/v_ApplyEyeMakeup_g20_c04.avi", 0)]


@pytest.mark.parametrize("split", [0, 4, "1"])
def test_ucf101_rejects_unknown_splits(ucf_splits, split):
    with pytest.raises(ValueError, match="split"):
        read_ucf101(ucf_splits, "/v", split=split)


@pytest.mark.parametrize("file_name, text, line, message", [
    ("classInd.txt", "1 ApplyEyeMakeup\nApplyLipstick 2\n", 2, "index"),
    ("classInd.txt", "1 ApplyEyeMakeup\n3 Archery\n", 2, "without gaps"),
    ("classInd.txt", "1 ApplyEyeMakeup\n1 Archery\n", 2, "index 1"),
    ("trainlist01.txt", "Archery/v_Archery_g01_c01.avi 3\nArchery/v_Archery_g01_c02.avi\n",
     2, "label"),
    ("trainlist01.txt", "\n\nArchery/v_Archery_g01_c01.avi 4\n", 3, "outside 1..3"),
    ("trainlist01.txt", "Archery/v_Archery_g01_c01.avi 1\n", 1, "'Archery'"),
    ("testlist01.txt", "Archery/v_Archery_g01_c01.avi\nBowling/v_Bowling_g01_c01.avi\n",
     2, "'Bowling'"),
    ("testlist01.txt", "Archery/v_Archery_g01_c01.avi 3\n", 1, "only"),
])
def test_ucf101_malformed_lines_name_file_and_line(ucf_splits, file_name, text, line, message):
    path = _write(os.path.join(ucf_splits, file_name), text)
    with pytest.raises(AnnotationError, match=message) as error:
        read_ucf101(ucf_splits, "/v")
    assert error.value.path == path
    assert error.value.line_number == line
    assert str(error.value).startswith(f"{path}:{line}:")


def _write_hmdb_splits(split_dir):
    # Official files: one per class and split, a trailing space on every line.
    _write(split_dir / "ride_bike_test_split1.txt",
           "Bike_Ride_ride_bike_f_cm_np1_ba_med_0.avi 1 \n"
           "Bike_Ride_ride_bike_f_cm_np1_fr_med_1.avi 2 \n"
           "Bike_Ride_ride_bike_f_cm_np1_le_bad_2.avi 0 \n")
    _write(split_dir / "brush_hair_test_split1.txt",
           "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 2 \r\n"
           "\r\n"
           "Brushing_Hair_with_Beth_brush_hair_h_nm_np1_le_goo_0.avi 1 \r\n")
    _write(split_dir / "ride_bike_test_split2.txt",
           "Bike_Ride_ride_bike_f_cm_np1_ba_med_0.avi 2 \n")
    _write(split_dir / "brush_hair_test_split2.txt",
           "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 0 \n")


def test_hmdb51_reads_tags_and_leaves_out_unused_videos(tmp_path):
    _write_hmdb_splits(tmp_path / "splits")
    dataset = read_hmdb51(tmp_path / "splits", "/hmdb")
    assert dataset.name == "hmdb51"
    assert dataset.classes == ("brush_hair", "ride_bike")
    assert dataset.subsets == {
        "train": [
            VideoRecord("/hmdb/brush_hair/Brushing_Hair_with_Beth_brush_hair_h_nm_np1_le_goo_0.avi",
                        0, {}),
            VideoRecord("/hmdb/ride_bike/Bike_Ride_ride_bike_f_cm_np1_ba_med_0.avi", 1, {}),
        ],
        "test": [
            VideoRecord("/hmdb/brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi", 0, {}),
            VideoRecord("/hmdb/ride_bike/Bike_Ride_ride_bike_f_cm_np1_fr_med_1.avi", 1, {}),
        ],
    }


def test_hmdb51_reads_the_requested_split(tmp_path):
    _write_hmdb_splits(tmp_path / "splits")
    dataset = read_hmdb51(tmp_path / "splits", "/hmdb", split=2)
    assert dataset.subsets == {"train": [], "test": [
        VideoRecord("/hmdb/ride_bike/Bike_Ride_ride_bike_f_cm_np1_ba_med_0.avi", 1, {})]}


def test_hmdb51_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty"):
        read_hmdb51(tmp_path / "empty", "/hmdb")
    with pytest.raises(ValueError, match="split"):
        read_hmdb51(tmp_path / "empty", "/hmdb", split=4)
    path = _write(tmp_path / "bad" / "jump_test_split1.txt", "a.avi 1 \nb.avi 3 \n")
    with pytest.raises(AnnotationError, match="tag") as error:
        read_hmdb51(tmp_path / "bad", "/hmdb")
    assert (error.value.path, error.value.line_number) == (path, 2)
