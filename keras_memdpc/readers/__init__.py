"""Readers of the official annotation formats into VideoDataset objects.

Readers parse split and annotation files only: they neither open videos
nor check that video files exist (preparation reports missing files).
"""

from keras_memdpc.readers.frame_folders import read_frame_folders
from keras_memdpc.readers.hmdb51 import read_hmdb51
from keras_memdpc.readers.kinetics400 import read_kinetics400
from keras_memdpc.readers.oops import read_oops
from keras_memdpc.readers.ucf101 import read_ucf101
from keras_memdpc.readers.video_folder import read_video_folder

__all__ = [
    "read_frame_folders",
    "read_hmdb51",
    "read_kinetics400",
    "read_oops",
    "read_ucf101",
    "read_video_folder",
]
