"""Decode a video file or a folder of JPEG frames into resized uint8 RGB frames.

Frames come out as uint8 RGB arrays [height, width, 3] (one at a time from
`VideoFrames` / `FrameFolderFrames`, or stacked [frames, height, width, 3] by
`decode_video` / `decode_frame_folder`), resized so that the short side equals
`short_side` with the aspect ratio kept. Each frame is resized as soon as it is
decoded, so a 1080p video never sits in memory at full size.

Resizing never enlarges by default: a video whose short side is already at or
below `short_side` (UCF101's 320x240 for the paper's 256) keeps its size, since
upscaled pixels add no detail and the training pipeline resizes its crops
anyway. Pass `upscale=True` to enlarge those too. Shrinking uses area
interpolation (cv2.INTER_AREA), enlarging bilinear. Every frame of a video gets
the size computed from its first frame.

Video files are read with OpenCV's FFmpeg backend (cv2.VideoCapture): avi
(DivX, Xvid, FMP4, h264), mp4, mkv and webm. A file that cannot be used raises
`VideoDecodeError` with a short reason: "missing", "empty file", "unreadable"
(FFmpeg cannot open it, e.g. an mp4 cut before its index) or "no frames". A file
that stops decoding early (cut or damaged) yields what decodes and is flagged
`truncated`: fewer frames than the container announces, beyond a slack of
max(2, 2 %) for containers whose frame count is an estimate from the duration
(mkv announces 311 frames for the 310 it holds).

A frame folder is decoded from its list of JPEG files. It has no frame rate of
its own: `fps` says what it was extracted at (25 by default, the rate of UCF101
and HMDB51). An unreadable JPEG ends the video there (truncated); an unreadable
first JPEG raises VideoDecodeError.
"""

import os
from typing import NamedTuple

import cv2
import numpy as np

DEFAULT_FRAME_FOLDER_FPS = 25.0
_MIN_FRAME_COUNT_SLACK = 2
_FRAME_COUNT_SLACK_FRACTION = 0.02


class VideoDecodeError(Exception):
    """A video or frame folder with no usable frames.

    Attributes:
        path: the file or folder.
        reason: "missing", "empty file", "unreadable" or "no frames".
    """

    def __init__(self, path, reason):
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self):
        return f"{self.path}: {self.reason}"


class DecodedVideo(NamedTuple):
    """A decoded video.

    Attributes:
        frames: uint8 RGB [frames, height, width, 3].
        fps: frames per second (0.0 when the container does not say).
        truncated: decoding stopped before the announced end.
        expected_frames: frames the container or folder announced, or None.
    """

    frames: np.ndarray
    fps: float
    truncated: bool
    expected_frames: object


def resized_size(height, width, short_side, upscale=False):
    """(height, width) with the short side at `short_side`, aspect ratio kept.

    Without `upscale`, a frame whose short side is already <= short_side keeps
    its size.
    """
    if short_side <= 0:
        raise ValueError(f"short_side must be positive, got {short_side}")
    short = min(height, width)
    if short <= short_side and not upscale:
        return height, width
    scale = short_side / short
    if height <= width:
        return short_side, max(1, round(width * scale))
    return max(1, round(height * scale)), short_side


class _Resizer:
    """Resizes every frame to the size computed from the first one."""

    def __init__(self, short_side, upscale):
        self.short_side = short_side
        self.upscale = upscale
        self.size = None

    def __call__(self, frame):
        if self.size is None:
            self.size = resized_size(*frame.shape[:2], self.short_side, self.upscale)
        height, width = self.size
        if frame.shape[:2] == (height, width):
            return frame
        shrinking = height <= frame.shape[0] and width <= frame.shape[1]
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        return cv2.resize(frame, (width, height), interpolation=interpolation)


def _is_truncated(decoded, expected):
    if expected is None:
        return False
    slack = max(_MIN_FRAME_COUNT_SLACK, int(expected * _FRAME_COUNT_SLACK_FRACTION))
    return decoded < expected - slack


class VideoFrames:
    """The frames of one video file, decoded and resized one at a time.

    Constructing it opens the file (raising VideoDecodeError "missing", "empty
    file" or "unreadable"). Iterate once to get uint8 RGB frames [h, w, 3];
    iteration raises VideoDecodeError "no frames" when none decode. After the
    iteration `num_frames` and `truncated` are set.

    Attributes:
        path, fps (0.0 when unknown), expected_frames (int or None),
        num_frames, truncated, frame_size ((height, width) once a frame is out).
    """

    def __init__(self, path, short_side=256, upscale=False):
        path = os.fspath(path)
        if not os.path.exists(path):
            raise VideoDecodeError(path, "missing")
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            raise VideoDecodeError(path, "empty file")
        capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        if not capture.isOpened():
            raise VideoDecodeError(path, "unreadable")
        fps = capture.get(cv2.CAP_PROP_FPS)
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.path = path
        self.fps = float(fps) if np.isfinite(fps) and fps > 0 else 0.0
        self.expected_frames = count if count > 0 else None
        self.num_frames = 0
        self.truncated = False
        self._capture = capture
        self._resize = _Resizer(short_side, upscale)

    @property
    def frame_size(self):
        return self._resize.size

    def __iter__(self):
        if self._capture is None:
            raise RuntimeError(f"{self.path}: VideoFrames can be iterated only once")
        capture, self._capture = self._capture, None
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                self.num_frames += 1
                yield self._resize(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        finally:
            capture.release()
        if self.num_frames == 0:
            raise VideoDecodeError(self.path, "no frames")
        self.truncated = _is_truncated(self.num_frames, self.expected_frames)


class FrameFolderFrames:
    """The frames of a video stored as JPEG files, read and resized one at a time.

    Iterate once to get uint8 RGB frames [h, w, 3] in the order of
    `frame_paths`. A missing or unreadable JPEG ends the video there
    (`truncated`); when it is the first one, or `frame_paths` is empty, the
    iteration raises VideoDecodeError.

    Attributes:
        path (the folder), fps, expected_frames (len(frame_paths)),
        num_frames, truncated, frame_size ((height, width) once a frame is out).
    """

    def __init__(self, folder, frame_paths, short_side=256, upscale=False,
                 fps=DEFAULT_FRAME_FOLDER_FPS):
        self.path = os.fspath(folder)
        self.fps = float(fps)
        self.expected_frames = len(frame_paths)
        self.num_frames = 0
        self.truncated = False
        self._frame_paths = list(frame_paths)
        self._resize = _Resizer(short_side, upscale)

    @property
    def frame_size(self):
        return self._resize.size

    def __iter__(self):
        if not self._frame_paths:
            raise VideoDecodeError(self.path, "no frames")
        for frame_path in self._frame_paths:
            frame = cv2.imread(os.fspath(frame_path), cv2.IMREAD_COLOR)
            if frame is None:
                if self.num_frames == 0:
                    reason = "unreadable" if os.path.exists(frame_path) else "missing"
                    raise VideoDecodeError(os.fspath(frame_path), reason)
                self.truncated = True
                return
            self.num_frames += 1
            yield self._resize(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))


def _stacked(frames):
    frame_list = list(frames)
    return DecodedVideo(
        frames=np.stack(frame_list),
        fps=frames.fps,
        truncated=frames.truncated,
        expected_frames=frames.expected_frames,
    )


def decode_video(path, short_side=256, upscale=False):
    """Decode a video file into a DecodedVideo, frames uint8 RGB [n, h, w, 3]."""
    return _stacked(VideoFrames(path, short_side, upscale))


def decode_frame_folder(folder, frame_paths, short_side=256, upscale=False,
                        fps=DEFAULT_FRAME_FOLDER_FPS):
    """Decode a folder's JPEG frames into a DecodedVideo, frames [n, h, w, 3]."""
    return _stacked(FrameFolderFrames(folder, frame_paths, short_side, upscale, fps))
