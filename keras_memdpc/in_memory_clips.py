"""Training clips sampled from decoded videos held in memory (tf.data).

Used for the built-in synthetic set: small enough to decode once and keep.
Clips stay uint8 until the model normalises them on the device.
"""

import numpy as np
import tensorflow as tf

from keras_memdpc.frame_colour_augmentation import augment_frame_colours


def stack_videos(videos):
    """Stacks equally shaped uint8 videos [frames, h, w, 3] into one array."""
    shapes = {video.shape for video in videos}
    if len(shapes) != 1:
        raise ValueError(f"videos must share one shape, got {sorted(shapes)}")
    return np.stack(videos)


def sample_frame_indices(num_frames, clip_frames, stride, start):
    """Indices start + stride * arange(clip_frames), past the end -> last frame.

    Videos shorter than a clip are padded with their last frame, not dropped.
    """
    indices = start + stride * tf.range(clip_frames)
    return tf.minimum(indices, num_frames - 1)


def clip_dataset(
    videos,
    num_blocks,
    block_length,
    batch_size,
    stride=3,
    training=True,
    seed=0,
    colour_augmentation=True,
):
    """A dataset of clips [batch, num_blocks, block_length, h, w, 3] uint8.

    Training: random start, random horizontal flip of the whole clip, and
    (unless `colour_augmentation=False`) the reference's per-frame random
    grayscale and colour jitter; shuffled, repeated forever. Evaluation: the clip centred in each video,
    one pass, in order. Batches always hold `batch_size` clips.

    Args:
        videos: uint8 array [videos, frames, h, w, 3].
        num_blocks, block_length: clip layout (8 x 5 in MemDPC).
        batch_size: clips per batch (the global batch under tf.distribute).
        stride: frame step inside a clip (3 in MemDPC).
        training: random or centred sampling.
        seed: seed of the shuffling, starts, flips and colours.
        colour_augmentation: per-frame grayscale and colour jitter in training.
    """
    videos = tf.constant(videos)
    count, frames = videos.shape[0], videos.shape[1]
    clip_frames = num_blocks * block_length
    span = stride * (clip_frames - 1) + 1
    latest_start = max(frames - span, 0)

    def sample(index, draw_seed):
        if training:
            start = tf.random.stateless_uniform(
                [], draw_seed, 0, latest_start + 1, dtype=tf.int32
            )
        else:
            start = tf.constant(latest_start // 2, tf.int32)
        indices = sample_frame_indices(frames, clip_frames, stride, start)
        clip = tf.gather(videos[index], indices)
        if training:
            flip = tf.random.stateless_uniform([], draw_seed + 1) < 0.5
            clip = tf.cond(flip, lambda: tf.reverse(clip, axis=[2]), lambda: clip)
            if colour_augmentation:
                clip = augment_frame_colours(clip, draw_seed + 2)
        return tf.reshape(clip, [num_blocks, block_length, *clip.shape[1:]])

    indices = tf.data.Dataset.range(count)
    if training:
        indices = indices.shuffle(count, seed=seed).repeat()
        seeds = tf.data.Dataset.random(seed=seed).batch(2)
        dataset = tf.data.Dataset.zip(indices, seeds).map(
            lambda index, pair: sample(index, tf.cast(pair % (2**31), tf.int32)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    else:
        dataset = indices.map(
            lambda index: sample(index, None), num_parallel_calls=tf.data.AUTOTUNE
        )
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
