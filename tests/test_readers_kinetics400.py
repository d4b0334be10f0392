"""Tests of the Kinetics-400 CSV reader on files in the official format."""

import os

import pytest

from keras_memdpc.readers import read_kinetics400
from keras_memdpc.readers.video_folder import index_videos_by_stem, locate_video
from keras_memdpc.video_record import AnnotationError, VideoRecord

TRAIN_CSV = (
    "label,youtube_id,time_start,time_end,split,is_cc\n"
    "abseiling,--07WQ2iBlw,1,11,train,0\n"
    '"passing American football (in game)",-3B32lodo2M,59,69,train,0\n'
    '"tying knot (not on a tie), or bow",zzz_x-1,123456,123466,train,1\n'
)
VAL_CSV = (
    "label,youtube_id,time_start,time_end,split,is_cc\r\n"
    "abseiling,valclip0001,0,10,val,0\r\n"
    "\r\n"
)
TEST_CSV = "youtube_id,time_start,time_end,split\nTESTclip001,30,40,test\n"


def _write(path, text=""):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    return str(path)


@pytest.fixture
def kinetics(tmp_path):
    csvs = [_write(tmp_path / "csv" / name, text) for name, text in
            [("train.csv", TRAIN_CSV), ("validate.csv", VAL_CSV), ("test.csv", TEST_CSV)]]
    videos = tmp_path / "videos"
    found = {
        "--07WQ2iBlw_000001_000011": _write(videos / "train" / "abseiling" /
                                            "--07WQ2iBlw_000001_000011.mp4"),
        "-3B32lodo2M_000059_000069": _write(videos / "train" / "passing American football" /
                                            "-3B32lodo2M_000059_000069.webm"),
        "valclip0001_000000_000010": _write(videos / "val_256" / "deeper" /
                                            "valclip0001_000000_000010.MKV"),
        "TESTclip001_000030_000040": _write(videos / "TESTclip001_000030_000040.avi"),
    }
    _write(videos / "train" / "abseiling" / "notes_000001_000011.txt")
    return csvs, str(videos), found


def test_kinetics400_reads_labels_subsets_and_finds_nested_files(kinetics):
    csvs, videos, found = kinetics
    dataset = read_kinetics400(csvs, videos)
    assert dataset.name == "kinetics400"
    assert dataset.classes == (
        "abseiling", "passing American football (in game)", "tying knot (not on a tie), or bow")
    assert dataset.subsets == {
        "train": [
            VideoRecord(found["--07WQ2iBlw_000001_000011"], 0,
                        {"youtube_id": "--07WQ2iBlw", "time_start": 1, "time_end": 11}),
            VideoRecord(found["-3B32lodo2M_000059_000069"], 1,
                        {"youtube_id": "-3B32lodo2M", "time_start": 59, "time_end": 69}),
            VideoRecord(os.path.join(videos, "train", "zzz_x-1_123456_123466.mp4"), 2,
                        {"youtube_id": "zzz_x-1", "time_start": 123456, "time_end": 123466}),
        ],
        "val": [VideoRecord(found["valclip0001_000000_000010"], 0,
                            {"youtube_id": "valclip0001", "time_start": 0, "time_end": 10})],
        "test": [VideoRecord(found["TESTclip001_000030_000040"], -1,
                             {"youtube_id": "TESTclip001", "time_start": 30, "time_end": 40})],
    }


def test_kinetics400_classes_come_only_from_labelled_csvs(kinetics):
    csvs, videos, _ = kinetics
    dataset = read_kinetics400(csvs[1:], videos)
    assert dataset.classes == ("abseiling",)
    assert sorted(dataset.subsets) == ["test", "val"]


def test_locate_video_prefers_the_subset_folder(tmp_path):
    other = _write(tmp_path / "a" / "clip.mp4")
    in_val = _write(tmp_path / "val" / "x" / "clip.mkv")
    index = index_videos_by_stem(tmp_path)
    assert index["clip"] == sorted([other, in_val])
    assert locate_video(index, str(tmp_path), "val", "clip") == in_val
    assert locate_video(index, str(tmp_path), "train", "clip") == other
    missing = locate_video(index, str(tmp_path), "train", "nope")
    assert missing == str(tmp_path / "train" / "nope.mp4")


@pytest.mark.parametrize("text, line, message", [
    ("label,youtube_id,time_start,split\nabseiling,a,1,train\n", 1, "time_end"),
    ("label,youtube_id,time_start,time_end,split,is_cc\nabseiling,a,1,11,train,0\n"
     "abseiling,b,x,11,train,0\n", 3, "time_start"),
    ("label,youtube_id,time_start,time_end,split,is_cc\nabseiling,a,1,11,train\n", 2, "fields"),
    ("label,youtube_id,time_start,time_end,split,is_cc\n,a,1,11,train,0\n", 2, "empty"),
])
def test_kinetics400_malformed_rows_name_file_and_line(tmp_path, text, line, message):
    path = _write(tmp_path / "bad.csv", text)
    with pytest.raises(AnnotationError, match=message) as error:
        read_kinetics400([path], tmp_path)
    assert (error.value.path, error.value.line_number) == (path, line)
