"""Reader of videos stored as folders of numbered JPEG frames.

Either an annotation file with lines `folder first_frame last_frame label`
(folder relative to frames_dir, label 0-based), e.g. `jumping/0001 1 17 0`,
or, without one, the layout frames_dir/<class>/<video>/img_00001.jpg.
Frame numbers are the trailing number of a JPEG file name (img_00001.jpg,
image_00001.jpg, 00001.jpeg).
"""

import os
import re

from absl import logging

from keras_memdpc.readers.text_lines import numbered_lines
from keras_memdpc.video_record import AnnotationError, VideoDataset, VideoRecord

_FRAME_PATTERN = re.compile(r"(\d+)\.jpe?g$", re.IGNORECASE)


def _frame_numbers(folder):
    """{frame number: file name} of the numbered JPEG files in a folder."""
    numbers = {}
    for name in sorted(os.listdir(folder)):
        match = _FRAME_PATTERN.search(name)
        if match is not None:
            numbers.setdefault(int(match.group(1)), name)
    return numbers


def list_frame_files(folder, first_frame, last_frame):
    """Paths of the JPEG frames of `folder` numbered first_frame..last_frame.

    Sorted by frame number (img_2.jpg before img_10.jpg); numbers with no
    file are skipped.
    """
    folder = os.fspath(folder)
    numbers = _frame_numbers(folder)
    return [os.path.join(folder, numbers[number]) for number in sorted(numbers)
            if first_frame <= number <= last_frame]


def _parse_line(path, number, line):
    """(folder, first_frame, last_frame, label) of one annotation line."""
    parts = line.rsplit(None, 3)
    if len(parts) != 4 or not all(part.isdecimal() for part in parts[1:]):
        raise AnnotationError(
            path, number, f"expected '<folder> <first_frame> <last_frame> <label>', got {line!r}")
    folder, first, last, label = parts[0], int(parts[1]), int(parts[2]), int(parts[3])
    if first > last:
        raise AnnotationError(path, number, f"first_frame {first} > last_frame {last}")
    return folder, first, last, label


def _class_names(entries):
    """Names of labels 0..K-1: each label's own top-level folder if it has one, else str(label)."""
    top_folders = {}
    for folder, _, _, label in entries:
        parts = folder.replace("\\", "/").split("/")
        top_folders.setdefault(label, set()).add(parts[0] if len(parts) > 1 else None)
    labels = sorted(top_folders)
    names = [next(iter(top_folders[label])) if len(top_folders[label]) == 1 else None
             for label in labels]
    if None not in names and len(set(names)) == len(names):
        return tuple(names)
    return tuple(str(label) for label in labels)


def _read_annotations(frames_dir, annotation_path, subset):
    entries, line_of = [], {}
    for number, line in numbered_lines(annotation_path):
        entry = _parse_line(annotation_path, number, line)
        entries.append(entry)
        line_of.setdefault(entry[3], number)
    if not entries:
        raise ValueError(f"{annotation_path}: no annotation lines")
    labels = sorted(line_of)
    for label in labels:
        if label >= len(labels):
            raise AnnotationError(
                annotation_path, line_of[label],
                f"labels must be 0..K-1 without gaps; got label {label} "
                f"among {len(labels)} distinct labels {labels}")
    records = [
        VideoRecord(os.path.join(frames_dir, folder), label,
                    {"first_frame": first, "last_frame": last})
        for folder, first, last, label in entries
    ]
    return VideoDataset("frames", _class_names(entries), {subset: records})


def _subfolders(folder):
    return sorted(name for name in os.listdir(folder)
                  if not name.startswith(".") and os.path.isdir(os.path.join(folder, name)))


def _read_layout(frames_dir, subset):
    classes = tuple(_subfolders(frames_dir))
    records = []
    without_frames = 0
    for label, class_name in enumerate(classes):
        class_dir = os.path.join(frames_dir, class_name)
        for video in _subfolders(class_dir):
            folder = os.path.join(class_dir, video)
            numbers = _frame_numbers(folder)
            if not numbers:
                without_frames += 1
                continue
            records.append(VideoRecord(
                folder, label, {"first_frame": min(numbers), "last_frame": max(numbers)}))
    if without_frames:
        logging.warning("%s: skipped %d video folders without numbered JPEG frames",
                        frames_dir, without_frames)
    if not records:
        raise ValueError(f"no <class>/<video>/ folders of numbered JPEG frames in {frames_dir}")
    return VideoDataset("frames", classes, {subset: records})


def read_frame_folders(frames_dir, annotation_path=None, subset="train"):
    """Read JPEG frame folders into a VideoDataset named "frames" with one subset.

    With `annotation_path`: one record per line, path frames_dir/<folder>,
    metadata {"first_frame", "last_frame"}; labels must be 0..K-1; class
    names are the top-level folder names when each label has its own one
    (jumping/0001 -> "jumping"), else "0", "1", ... Without it: the layout
    frames_dir/<class>/<video>/<frames>.jpg, classes sorted, first and last
    frame the smallest and largest frame numbers of the folder (folders with
    none are skipped and counted). Frame folders are not checked otherwise.

    Raises:
        AnnotationError: a malformed line, first_frame > last_frame, labels with gaps.
        ValueError: no annotation line, or no frame folder found.
    """
    frames_dir = os.fspath(frames_dir)
    if annotation_path is None:
        dataset = _read_layout(frames_dir, subset)
    else:
        dataset = _read_annotations(frames_dir, os.fspath(annotation_path), subset)
    logging.info("%s: %d classes, %d videos", frames_dir, len(dataset.classes),
                 len(dataset.subsets[subset]))
    return dataset
