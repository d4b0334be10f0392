"""Reader of the official Kinetics-400 CSV files.

Header `label,youtube_id,time_start,time_end,split,is_cc`, e.g.
`abseiling,-3B32lodo2M,59,69,val,0`; labels with spaces or commas are
quoted; the test CSV has no label column. A clip's file is named
`<youtube_id>_<start:06d>_<end:06d>.<ext>` somewhere under the video folder.
"""

import csv
import os

from absl import logging

from keras_memdpc.readers.video_folder import index_videos_by_stem, locate_video
from keras_memdpc.video_record import AnnotationError, VideoDataset, VideoRecord

_REQUIRED_COLUMNS = ("youtube_id", "time_start", "time_end", "split")


def _parse_time(path, line_number, column, value):
    try:
        return int(value)
    except ValueError:
        raise AnnotationError(
            path, line_number, f"{column} must be an integer, got {value!r}") from None


def _read_rows(path):
    """Yield (line number, label or None, youtube_id, start, end, split) of one CSV."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        missing = [name for name in _REQUIRED_COLUMNS if name not in header]
        if missing:
            raise AnnotationError(path, 1, f"header {header} lacks the columns {missing}")
        column = {name: header.index(name) for name in header}
        for row in reader:
            if not row or not "".join(row).strip():
                continue
            number = reader.line_num
            if len(row) != len(header):
                raise AnnotationError(
                    path, number, f"expected {len(header)} fields {header}, got {row}")
            youtube_id = row[column["youtube_id"]].strip()
            subset = row[column["split"]].strip()
            label = row[column["label"]].strip() if "label" in column else None
            if not youtube_id or not subset or label == "":
                raise AnnotationError(path, number, f"empty label, youtube_id or split in {row}")
            start = _parse_time(path, number, "time_start", row[column["time_start"]].strip())
            end = _parse_time(path, number, "time_end", row[column["time_end"]].strip())
            yield number, label, youtube_id, start, end, subset


def read_kinetics400(csv_paths, video_dir):
    """Read Kinetics-400 CSV files into a VideoDataset named "kinetics400".

    `csv_paths` lists the CSV files (e.g. train.csv, validate.csv, test.csv).
    Subsets are the values of the split column ("train", "val", "test");
    classes are the sorted labels of all labelled rows; rows without a label
    column get label -1. Each clip is looked up by file stem under
    `video_dir` (any video extension, any folder depth); a clip not found
    gets the path video_dir/<split>/<stem>.mp4 so that preparation reports
    it missing. Metadata: {"youtube_id": str, "time_start": int, "time_end": int}.

    Raises:
        AnnotationError: a malformed header or row.
    """
    if isinstance(csv_paths, (str, os.PathLike)):
        csv_paths = [csv_paths]
    video_dir = os.fspath(video_dir)
    rows = [row for path in csv_paths for row in _read_rows(os.fspath(path))]
    classes = tuple(sorted({row[1] for row in rows if row[1] is not None}))
    label_of = {name: index for index, name in enumerate(classes)}
    index = index_videos_by_stem(video_dir)
    subsets = {}
    found = 0
    for _, label, youtube_id, start, end, subset in rows:
        stem = f"{youtube_id}_{start:06d}_{end:06d}"
        if stem in index:
            found += 1
        subsets.setdefault(subset, []).append(VideoRecord(
            locate_video(index, video_dir, subset, stem),
            -1 if label is None else label_of[label],
            {"youtube_id": youtube_id, "time_start": start, "time_end": end}))
    logging.info("Kinetics-400: %d classes, %s clips, %d of %d found under %s", len(classes),
                 {subset: len(records) for subset, records in subsets.items()},
                 found, len(rows), video_dir)
    return VideoDataset("kinetics400", classes, subsets)
