"""Reader of the Oops data set annotations, and the Oops clip labels.

annotation_dir holds train.txt and val.txt (one video name per line) and
transition_times.json: {name: {"t": [three worker times in s, -1 = none],
"len": seconds, "rel_t": [t / len, ...], ...}}. Videos are found by name
under the video folder (e.g. oops_video/train/<name>.mp4).

Following the Oops authors' loader, a video's failure time t_fail is the
median of "t", and a video is dropped when t_fail < 0, the median of
"rel_t" lies outside [0.01, 0.99], or its length lies outside [3.2, 30] s.
Clip labels (per clip, not per video) come from `oops_clip_label`.
"""

import json
import os
import statistics

from absl import logging

from keras_memdpc.readers.text_lines import numbered_lines
from keras_memdpc.readers.video_folder import index_videos_by_stem, is_video_file, locate_video
from keras_memdpc.video_record import VideoDataset, VideoRecord

CLASSES = ("intentional", "transitioning", "unintentional")
SUBSET_FILES = {"train": "train.txt", "val": "val.txt"}
TRANSITION_TIMES = "transition_times.json"
REL_T_RANGE = (0.01, 0.99)
LENGTH_RANGE = (3.2, 30.0)

DROP_ABSENT = "absent from transition_times.json"
DROP_NO_FAILURE = "no failure (t_fail < 0)"
DROP_BORDER = f"failure near an end (median rel_t outside {list(REL_T_RANGE)})"
DROP_LENGTH = f"length outside {list(LENGTH_RANGE)} s"


def oops_clip_label(clip_start, clip_end, t_fail):
    """Label of a clip from `clip_start` to `clip_end` seconds of a video failing at `t_fail`.

    0 (intentional) if the clip ends before t_fail, 1 (transitioning) if it
    contains t_fail (ends included), 2 (unintentional) if it starts after it.
    """
    if clip_start > clip_end:
        raise ValueError(f"clip starts at {clip_start} s after it ends at {clip_end} s")
    if clip_end < t_fail:
        return 0
    if clip_start > t_fail:
        return 2
    return 1


def _numbers(json_path, name, entry, key):
    """The list of numbers entry[key], checked."""
    values = entry.get(key) if isinstance(entry, dict) else None
    if (not isinstance(values, list) or not values
            or not all(isinstance(value, (int, float)) for value in values)):
        raise ValueError(f"{json_path}: entry {name!r}: {key!r} must be a non-empty list of "
                         f"numbers, got {values!r}")
    return [float(value) for value in values]


def _video_metadata(json_path, name, entry):
    """(metadata, None) for a kept video, or (None, drop reason)."""
    t_fail = statistics.median(_numbers(json_path, name, entry, "t"))
    rel_t = statistics.median(_numbers(json_path, name, entry, "rel_t"))
    length = entry.get("len")
    if not isinstance(length, (int, float)):
        raise ValueError(f"{json_path}: entry {name!r}: 'len' must be a number, got {length!r}")
    if t_fail < 0:
        return None, DROP_NO_FAILURE
    if not REL_T_RANGE[0] <= rel_t <= REL_T_RANGE[1]:
        return None, DROP_BORDER
    if not LENGTH_RANGE[0] <= length <= LENGTH_RANGE[1]:
        return None, DROP_LENGTH
    return {"t_fail": t_fail, "duration": float(length), "rel_t": rel_t}, None


def _video_names(path):
    """Video names of a train.txt / val.txt file, without video extensions."""
    names = []
    for _, name in numbered_lines(path):
        if is_video_file(name):
            name = os.path.splitext(name)[0]
        names.append(name)
    return names


def read_oops(annotation_dir, video_dir):
    """Read the Oops annotations into a VideoDataset named "oops".

    Subsets "train" and "val"; classes ("intentional", "transitioning",
    "unintentional") are per clip, so every video has label -1 and metadata
    {"t_fail": s, "duration": s, "rel_t": median relative failure time}.
    Dropped videos are counted per reason and logged. A video's path is the
    file found by name under `video_dir` (preferring video_dir/<subset>/),
    else video_dir/<subset>/<name>.mp4 so that preparation reports it missing.

    Raises:
        ValueError: an entry of transition_times.json lacks or mistypes t, rel_t or len.
    """
    annotation_dir, video_dir = os.fspath(annotation_dir), os.fspath(video_dir)
    json_path = os.path.join(annotation_dir, TRANSITION_TIMES)
    with open(json_path, encoding="utf-8") as handle:
        times = json.load(handle)
    if not isinstance(times, dict):
        raise ValueError(f"{json_path}: expected a JSON object of videos, got {type(times)}")
    index = index_videos_by_stem(video_dir)
    subsets = {}
    for subset, file_name in SUBSET_FILES.items():
        names = _video_names(os.path.join(annotation_dir, file_name))
        records = []
        dropped = {}
        for name in names:
            if name in times:
                metadata, reason = _video_metadata(json_path, name, times[name])
            else:
                metadata, reason = None, DROP_ABSENT
            if reason is not None:
                dropped[reason] = dropped.get(reason, 0) + 1
                continue
            records.append(VideoRecord(locate_video(index, video_dir, subset, name), -1, metadata))
        logging.info("Oops %s: kept %d of %d videos; dropped %s",
                     subset, len(records), len(names), dropped or "none")
        subsets[subset] = records
    return VideoDataset("oops", CLASSES, subsets)
