"""Reader of the official HMDB51 split files (testTrainMulti_7030_splits/).

One file per class and split, `<class>_test_split<N>.txt`, lines
`<video>.avi <tag>` (official files end with a space): tag 1 = train,
2 = test, 0 = unused. Videos live in video_dir/<class>/<video>.avi.
"""

import os

from absl import logging

from keras_memdpc.readers.text_lines import numbered_lines
from keras_memdpc.video_record import AnnotationError, VideoDataset, VideoRecord

_SUBSET_OF_TAG = {"1": "train", "2": "test", "0": None}


def read_hmdb51(split_dir, video_dir, split=1):
    """Read HMDB51 split `split` (1, 2 or 3) into a VideoDataset named "hmdb51".

    Classes are the sorted class names of the split files; subsets "train"
    (tag 1) and "test" (tag 2); unused videos (tag 0) are left out. A video's
    path is video_dir/<class>/<video>; metadata is empty.

    Raises:
        ValueError: `split` is not 1, 2 or 3.
        FileNotFoundError: no split file of that split in `split_dir`.
        AnnotationError: a malformed line.
    """
    if split not in (1, 2, 3):
        raise ValueError(f"HMDB51 split must be 1, 2 or 3, got {split!r}")
    split_dir, video_dir = os.fspath(split_dir), os.fspath(video_dir)
    suffix = f"_test_split{split}.txt"
    classes = tuple(sorted(
        name[: -len(suffix)] for name in os.listdir(split_dir)
        if name.endswith(suffix) and len(name) > len(suffix)))
    if not classes:
        raise FileNotFoundError(f"no HMDB51 split files <class>{suffix} in {split_dir}")
    subsets = {"train": [], "test": []}
    unused = 0
    for label, class_name in enumerate(classes):
        path = os.path.join(split_dir, class_name + suffix)
        for number, line in numbered_lines(path):
            parts = line.rsplit(None, 1)
            if len(parts) != 2 or parts[1] not in _SUBSET_OF_TAG:
                raise AnnotationError(
                    path, number, f"expected '<video> <tag>' with tag 0, 1 or 2, got {line!r}")
            video, tag = parts
            subset = _SUBSET_OF_TAG[tag]
            if subset is None:
                unused += 1
                continue
            subsets[subset].append(
                VideoRecord(os.path.join(video_dir, class_name, video), label, {}))
    logging.info("HMDB51 split %d: %d classes, %d train, %d test, %d unused videos left out",
                 split, len(classes), len(subsets["train"]), len(subsets["test"]), unused)
    return VideoDataset("hmdb51", classes, subsets)
