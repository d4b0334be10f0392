"""Reader of a folder-per-class video layout, and finding video files by name.

Layouts read by `read_video_folder`:
    video_dir/<class>/<video>.<ext>            one subset, "train"
    video_dir/<subset>/<class>/<video>.<ext>   subsets train, val, validation, test

`index_videos_by_stem` and `locate_video` find video files whose name is
known but whose extension and folder are not (Kinetics, Oops).
"""

import os

from absl import logging

from keras_memdpc.video_record import VideoDataset, VideoRecord

VIDEO_EXTENSIONS = (
    ".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv",
)
SUBSET_FOLDERS = ("train", "val", "validation", "test")


def is_video_file(name):
    """Whether a file name ends with a video extension (case-insensitive)."""
    return os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def index_videos_by_stem(video_dir):
    """Map each file stem to the sorted paths of the video files with that stem.

    Walks `video_dir` recursively once; e.g. {"abc_000010_000020":
    ["video_dir/train/abseiling/abc_000010_000020.mkv"]}. A missing
    `video_dir` gives an empty index.
    """
    index = {}
    for folder, _, names in os.walk(os.fspath(video_dir)):
        for name in names:
            if is_video_file(name):
                stem = os.path.splitext(name)[0]
                index.setdefault(stem, []).append(os.path.join(folder, name))
    for paths in index.values():
        paths.sort()
    return index


def locate_video(index, video_dir, subset, stem):
    """Path of the video named `stem` of `subset`, from an index_videos_by_stem index.

    Prefers a file under video_dir/<subset>/ when several share the stem.
    When none is found returns video_dir/<subset>/<stem>.mp4, so that
    preparation reports the file as missing.
    """
    candidates = index.get(stem, [])
    subset_dir = os.path.join(os.fspath(video_dir), subset) + os.sep
    for path in candidates:
        if path.startswith(subset_dir):
            return path
    if candidates:
        return candidates[0]
    return os.path.join(os.fspath(video_dir), subset, stem + ".mp4")


def _visible_entries(folder):
    """Sorted names in `folder`, without hidden ones (.ipynb_checkpoints...)."""
    return sorted(name for name in os.listdir(folder) if not name.startswith("."))


def _subfolders(folder):
    return [name for name in _visible_entries(folder)
            if os.path.isdir(os.path.join(folder, name))]


def _class_videos(subset_dir):
    """{class name: sorted video paths} of one folder of class folders."""
    videos = {}
    for class_name in _subfolders(subset_dir):
        class_dir = os.path.join(subset_dir, class_name)
        videos[class_name] = [
            os.path.join(class_dir, name)
            for name in _visible_entries(class_dir)
            if is_video_file(name) and os.path.isfile(os.path.join(class_dir, name))
        ]
    return videos


def read_video_folder(video_dir):
    """Read a folder-per-class video layout into a VideoDataset named "folder".

    Classes are the sorted class folder names, shared by all subsets (a class
    may be missing from a subset). Videos are the files with a video
    extension directly inside a class folder, sorted; other files are
    ignored. Metadata is empty.

    Raises:
        ValueError: no video found, or subset folders mixed with other folders.
    """
    video_dir = os.fspath(video_dir)
    top_folders = _subfolders(video_dir)
    subset_names = [name for name in top_folders if name in SUBSET_FOLDERS]
    if subset_names:
        others = [name for name in top_folders if name not in SUBSET_FOLDERS]
        if others:
            raise ValueError(
                f"{video_dir}: subset folders {subset_names} mixed with other folders "
                f"{others}; use either <class>/ or <subset>/<class>/ folders")
        by_subset = {name: _class_videos(os.path.join(video_dir, name)) for name in subset_names}
    else:
        by_subset = {"train": _class_videos(video_dir)}
    classes = tuple(sorted({name for videos in by_subset.values() for name in videos}))
    label = {name: index for index, name in enumerate(classes)}
    subsets = {
        subset: [VideoRecord(path, label[class_name], {})
                 for class_name, paths in sorted(videos.items()) for path in paths]
        for subset, videos in by_subset.items()
    }
    if not any(subsets.values()):
        raise ValueError(
            f"no video files ({', '.join(VIDEO_EXTENSIONS)}) in class folders of {video_dir}")
    logging.info("%s: %d classes, %s", video_dir, len(classes),
                 {subset: len(records) for subset, records in subsets.items()})
    return VideoDataset("folder", classes, subsets)
