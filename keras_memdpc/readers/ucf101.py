"""Reader of the official UCF101 split files (ucfTrainTestlist/).

    classInd.txt      `1 ApplyEyeMakeup`                            (1-based)
    trainlist0N.txt   `ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1`
    testlist0N.txt    `ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi` (class from the folder)

Blank lines and Windows line endings are accepted.
"""

import os
import re

from absl import logging

from keras_memdpc.readers.text_lines import numbered_lines
from keras_memdpc.video_record import AnnotationError, VideoDataset, VideoRecord

_NAME_PATTERN = re.compile(r"^v_.+_g(\d+)_c(\d+)$")


def _read_classes(path):
    """Class names indexed by 0-based label from classInd.txt."""
    names = {}
    line_of = {}
    for number, line in numbered_lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdecimal():
            raise AnnotationError(path, number, f"expected '<index> <ClassName>', got {line!r}")
        index, name = int(parts[0]), parts[1]
        if index < 1:
            raise AnnotationError(path, number, f"class indices start at 1, got {index}")
        if index in names:
            raise AnnotationError(path, number, f"class index {index} is listed twice")
        if name in names.values():
            raise AnnotationError(path, number, f"class {name!r} is listed twice")
        names[index] = name
        line_of[index] = number
    if not names:
        raise ValueError(f"{path}: no classes")
    for index in sorted(names):
        if index > len(names):
            raise AnnotationError(
                path, line_of[index],
                f"class indices must be 1..{len(names)} without gaps, got {index}")
    return tuple(names[index] for index in range(1, len(names) + 1))


def _metadata(relative_path):
    """{"group", "clip"} from a v_<Class>_gNN_cNN name, else {}."""
    stem = os.path.splitext(os.path.basename(relative_path))[0]
    match = _NAME_PATTERN.match(stem)
    if match is None:
        return {}
    return {"group": int(match.group(1)), "clip": int(match.group(2))}


def _class_folder(relative_path):
    """The class folder of `Class/video.avi`, or None without a folder."""
    folder = os.path.dirname(relative_path)
    return os.path.basename(folder) if folder else None


def _read_train_list(path, classes, video_dir):
    records = []
    for number, line in numbered_lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdecimal():
            raise AnnotationError(path, number, f"expected '<path> <label>', got {line!r}")
        relative, label = parts[0], int(parts[1]) - 1
        if not 0 <= label < len(classes):
            raise AnnotationError(
                path, number, f"label {label + 1} is outside 1..{len(classes)} of classInd.txt")
        folder = _class_folder(relative)
        if folder in classes and folder != classes[label]:
            raise AnnotationError(
                path, number,
                f"label {label + 1} is {classes[label]!r} but the path is in class {folder!r}")
        records.append(
            VideoRecord(os.path.join(video_dir, relative), label, _metadata(relative)))
    return records


def _read_test_list(path, classes, video_dir):
    records = []
    for number, line in numbered_lines(path):
        parts = line.split()
        if len(parts) != 1:
            raise AnnotationError(path, number, f"expected only '<Class>/<video>', got {line!r}")
        relative = parts[0]
        folder = _class_folder(relative)
        if folder not in classes:
            raise AnnotationError(
                path, number, f"class folder {folder!r} of {relative!r} is not in classInd.txt")
        records.append(VideoRecord(
            os.path.join(video_dir, relative), classes.index(folder), _metadata(relative)))
    return records


def read_ucf101(split_dir, video_dir, split=1):
    """Read UCF101 split `split` (1, 2 or 3) into a VideoDataset named "ucf101".

    Subsets "train" (trainlist0N.txt) and "test" (testlist0N.txt); a video's
    path is video_dir joined with the listed relative path; metadata is
    {"group": 8, "clip": 1} for a v_<Class>_g08_c01 name, else {}.

    Raises:
        ValueError: `split` is not 1, 2 or 3.
        AnnotationError: a malformed line, an unknown class or label.
    """
    if split not in (1, 2, 3):
        raise ValueError(f"UCF101 split must be 1, 2 or 3, got {split!r}")
    split_dir, video_dir = os.fspath(split_dir), os.fspath(video_dir)
    classes = _read_classes(os.path.join(split_dir, "classInd.txt"))
    train_path = os.path.join(split_dir, f"trainlist0{split}.txt")
    test_path = os.path.join(split_dir, f"testlist0{split}.txt")
    subsets = {
        "train": _read_train_list(train_path, classes, video_dir),
        "test": _read_test_list(test_path, classes, video_dir),
    }
    logging.info("UCF101 split %d: %d classes, %d train, %d test videos", split,
                 len(classes), len(subsets["train"]), len(subsets["test"]))
    return VideoDataset("ucf101", classes, subsets)
