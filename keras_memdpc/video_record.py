"""What an annotation reader yields: one video with its label, and a data set.

Readers of the official formats (keras_memdpc.readers) turn split or
annotation files into a `VideoDataset`; preparation (train/prepare_data.py)
turns its records into sharded TFRecords.
"""

import dataclasses


class AnnotationError(ValueError):
    """A malformed annotation line; the message names the file and line."""

    def __init__(self, path, line_number, message):
        super().__init__(f"{path}:{line_number}: {message}")
        self.path = path
        self.line_number = line_number


@dataclasses.dataclass(frozen=True)
class VideoRecord:
    """One video of a data set.

    Attributes:
        path: the video file, or the folder of a video stored as JPEG frames.
        label: 0-based class index, or -1 where the subset has no labels.
        metadata: format-specific extras, e.g. {"first_frame": 1,
            "last_frame": 17} for frame folders or {"t_fail": 3.2,
            "duration": 9.5} for Oops. Values are str, int or float.
    """

    path: str
    label: int
    metadata: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class VideoDataset:
    """A data set: class names and named subsets of videos.

    Attributes:
        name: the format, e.g. "ucf101".
        classes: class names, index = label.
        subsets: e.g. {"train": [VideoRecord, ...], "test": [...]}.
    """

    name: str
    classes: tuple
    subsets: dict
