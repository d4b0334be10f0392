"""The clip_times option of the tf.data pipelines: frame times and metadata per clip."""

import json

import numpy as np
import tensorflow as tf

from keras_memdpc.video_pipeline import evaluation_dataset, training_dataset
from keras_memdpc.video_tfrecord import make_sequence_example, shard_path, shard_pattern

SIZE = 8


def numbered_video(num_frames):
    """JPEG frames whose grey level encodes the frame index: 2 * index + 5."""
    return [
        tf.io.encode_jpeg(tf.constant(np.full((12, 16, 3), 2 * i + 5, np.uint8)),
                          quality=100).numpy()
        for i in range(num_frames)
    ]


def frame_numbers(clip):
    """Frame indices of a uint8 clip [blocks, frames, h, w, 3] of numbered frames."""
    levels = clip.reshape(-1, *clip.shape[2:]).mean(axis=(1, 2, 3))
    return np.round((levels - 5) / 2).astype(int)


def write_videos(directory, videos):
    """videos: (num_frames, fps, metadata) triples in one shard; returns its glob."""
    (directory / "rgb").mkdir()
    with tf.io.TFRecordWriter(shard_path(str(directory), "rgb", "train", 0, 1)) as writer:
        for index, (num_frames, fps, metadata) in enumerate(videos):
            example = make_sequence_example(
                numbered_video(num_frames), path=f"video_{index}.avi", label=index, fps=fps,
                height=12, width=16, metadata=metadata,
            )
            writer.write(example.SerializeToString())
    return shard_pattern(str(directory), "rgb", "train")


def test_training_clips_carry_the_times_of_their_frames_and_the_metadata(tmp_path):
    videos = [(30, 10.0, {"t_fail": 1.5}), (7, 4.0, {"t_fail": 0.25})]
    pattern = write_videos(tmp_path, videos)
    dataset = training_dataset(
        pattern, 2, image_size=SIZE, num_blocks=3, block_length=2, stride=2,
        output_dtype="uint8", colour_augmentation=False, clip_times=True,
    )
    for clips, info in dataset.take(4):
        assert info["frame_times"].shape == (2, 6) and info["frame_times"].dtype == tf.float32
        for clip, label, times, metadata in zip(
            clips.numpy(), info["label"].numpy(), info["frame_times"].numpy(),
            info["metadata"].numpy(),
        ):
            num_frames, fps, expected_metadata = videos[label]
            # the 7-frame video is padded with its last frame, at that frame's time
            np.testing.assert_allclose(times, frame_numbers(clip) / fps, rtol=1e-6)
            assert json.loads(metadata) == expected_metadata
    plain_clips, labels = next(iter(training_dataset(
        pattern, 2, image_size=SIZE, num_blocks=3, block_length=2, stride=2,
        output_dtype="uint8", colour_augmentation=False,
    )))
    assert labels.shape == (2,) and labels.dtype == tf.int32


def test_evaluation_windows_carry_their_frame_times_for_every_crop(tmp_path):
    pattern = write_videos(tmp_path, [(20, 5.0, {"t_fail": 2.0}), (9, 25.0, {})])
    # windows of 4 frames at stride 2 (8 frames), every 4 frames
    for crops, count in (("centre", 1), ("ten", 10)):
        dataset = evaluation_dataset(
            pattern, 3, image_size=SIZE, num_blocks=2, block_length=2, stride=2,
            crops=crops, window_stride=4, output_dtype="uint8", clip_times=True,
        )
        rows = []
        for clips, info in dataset:
            for index in range(len(clips)):
                rows.append((frame_numbers(clips[index].numpy()),
                             *(info[key][index].numpy() for key in
                               ("video_index", "window_index", "frame_times", "metadata"))))
        fps = {0: 5.0, 1: 25.0}
        assert len(rows) == count * (4 + 1)  # 20 frames: starts 0, 4, 8, 12; 9 frames: 0
        for numbers, video, window, times, metadata in rows:
            np.testing.assert_array_equal(numbers, 4 * window + 2 * np.arange(4))
            np.testing.assert_allclose(times, numbers / fps[video], rtol=1e-6)
            assert json.loads(metadata) == ({"t_fail": 2.0} if video == 0 else {})
