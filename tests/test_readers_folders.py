"""Tests of the folder-per-class video reader and the JPEG frame folder reader."""

import os

import pytest

from keras_memdpc.readers import read_frame_folders, read_video_folder
from keras_memdpc.readers.frame_folders import list_frame_files
from keras_memdpc.video_record import AnnotationError, VideoRecord


def _touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb"):
        pass
    return str(path)


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return str(path)


def test_video_folder_reads_one_folder_per_class(tmp_path):
    videos = [_touch(tmp_path / "b_walk" / "x.mp4"), _touch(tmp_path / "a_run" / "z.MKV"),
              _touch(tmp_path / "a_run" / "y.avi"), _touch(tmp_path / "b_walk" / "w.webm")]
    _touch(tmp_path / "a_run" / "notes.txt")
    _touch(tmp_path / "a_run" / "deeper" / "ignored.mp4")
    _touch(tmp_path / "loose.mp4")
    dataset = read_video_folder(tmp_path)
    assert dataset.name == "folder"
    assert dataset.classes == ("a_run", "b_walk")
    assert dataset.subsets == {"train": [
        VideoRecord(videos[2], 0, {}), VideoRecord(videos[1], 0, {}),
        VideoRecord(videos[3], 1, {}), VideoRecord(videos[0], 1, {}),
    ]}


def test_video_folder_reads_subset_folders_with_shared_classes(tmp_path):
    train_a = _touch(tmp_path / "train" / "a" / "1.mp4")
    train_b = _touch(tmp_path / "train" / "b" / "2.mov")
    val_c = _touch(tmp_path / "val" / "c" / "3.m4v")
    test_b = _touch(tmp_path / "test" / "b" / "4.mpeg")
    dataset = read_video_folder(str(tmp_path))
    assert dataset.classes == ("a", "b", "c")
    assert dataset.subsets == {
        "test": [VideoRecord(test_b, 1, {})],
        "train": [VideoRecord(train_a, 0, {}), VideoRecord(train_b, 1, {})],
        "val": [VideoRecord(val_c, 2, {})],
    }


def test_video_folder_errors_name_the_folder(tmp_path):
    _touch(tmp_path / "empty" / "class" / "readme.txt")
    with pytest.raises(ValueError, match=f"{tmp_path / 'empty'}"):
        read_video_folder(tmp_path / "empty")
    _touch(tmp_path / "mixed" / "train" / "a" / "1.mp4")
    _touch(tmp_path / "mixed" / "jump" / "2.mp4")
    with pytest.raises(ValueError, match="mixed"):
        read_video_folder(tmp_path / "mixed")


def test_list_frame_files_sorts_by_frame_number(tmp_path):
    for name in ["img_10.jpg", "img_2.jpg", "img_1.jpg", "img_3.JPEG", "notes.txt", "img_x.jpg"]:
        _touch(tmp_path / name)
    assert list_frame_files(tmp_path, 1, 10) == [
        str(tmp_path / name) for name in ["img_1.jpg", "img_2.jpg", "img_3.JPEG", "img_10.jpg"]]
    assert list_frame_files(str(tmp_path), 2, 9) == [
        str(tmp_path / "img_2.jpg"), str(tmp_path / "img_3.JPEG")]


def _expected_shared_records(frames):
    return [
        VideoRecord(str(frames / "jumping" / "0001"), 0, {"first_frame": 1, "last_frame": 17}),
        VideoRecord(str(frames / "jumping" / "0002"), 0, {"first_frame": 1, "last_frame": 18}),
        VideoRecord(str(frames / "running" / "0001"), 1, {"first_frame": 1, "last_frame": 15}),
        VideoRecord(str(frames / "running" / "0002"), 1, {"first_frame": 1, "last_frame": 15}),
    ]


def test_frame_folders_on_real_jpeg_folders(shared_data):
    frames = shared_data / "frames" / "jpeg_folders"
    with_file = read_frame_folders(frames, frames / "annotations.txt", subset="val")
    assert with_file.name == "frames"
    assert with_file.classes == ("jumping", "running")
    assert with_file.subsets == {"val": _expected_shared_records(frames)}
    from_layout = read_frame_folders(str(frames))
    assert from_layout.classes == ("jumping", "running")
    assert from_layout.subsets == {"train": _expected_shared_records(frames)}
    files = list_frame_files(frames / "jumping" / "0002", 1, 18)
    assert [os.path.basename(path) for path in files] == [f"img_{i:05d}.jpg" for i in range(1, 19)]


def test_frame_folders_annotation_class_names(tmp_path):
    consistent = _write(tmp_path / "a.txt", "walk/v1 1 5 1\njump/v2 2 9 0\nwalk/v3 1 5 1\n")
    assert read_frame_folders(tmp_path, consistent).classes == ("jump", "walk")
    flat = _write(tmp_path / "b.txt", "v1 1 5 1\nv2 1 5 0\n")
    assert read_frame_folders(tmp_path, flat).classes == ("0", "1")
    shared_folder = _write(tmp_path / "c.txt", "all/v1 1 5 0\nall/v2 1 5 1\n")
    assert read_frame_folders(tmp_path, shared_folder).classes == ("0", "1")
    mixed = _write(tmp_path / "d.txt", "walk/v1 1 5 0\nrun/v2 1 5 0\njump/v3 1 5 1\n")
    dataset = read_frame_folders(tmp_path, mixed)
    assert dataset.classes == ("0", "1")
    assert dataset.subsets["train"][2] == VideoRecord(
        str(tmp_path / "jump" / "v3"), 1, {"first_frame": 1, "last_frame": 5})


@pytest.mark.parametrize("text, line, message", [
    ("a/1 1 5 0\na/2 9 5 0\n", 2, "first_frame 9 > last_frame 5"),
    ("a/1 1 5 0\n\nb/1 1 5 2\n", 3, "without gaps"),
    ("a/1 1 5 0\nb/1 1 5\n", 2, "expected"),
    ("a/1 1 5 0\nb/1 1 5 -1\n", 2, "expected"),
])
def test_frame_folders_malformed_annotations(tmp_path, text, line, message):
    path = _write(tmp_path / "annotations.txt", text)
    with pytest.raises(AnnotationError, match=message) as error:
        read_frame_folders(tmp_path, path)
    assert (error.value.path, error.value.line_number) == (path, line)


def test_frame_folders_layout_skips_folders_without_frames(tmp_path):
    _touch(tmp_path / "wave" / "v1" / "image_00003.jpg")
    _touch(tmp_path / "wave" / "v1" / "image_00012.jpg")
    _touch(tmp_path / "wave" / "empty" / "notes.txt")
    dataset = read_frame_folders(tmp_path, subset="test")
    assert dataset.classes == ("wave",)
    assert dataset.subsets == {"test": [
        VideoRecord(str(tmp_path / "wave" / "v1"), 0, {"first_frame": 3, "last_frame": 12})]}
    with pytest.raises(ValueError, match="no <class>/<video>/"):
        read_frame_folders(tmp_path / "wave" / "empty")
