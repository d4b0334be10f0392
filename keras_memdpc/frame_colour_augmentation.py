"""Per-frame colour augmentation of the reference pipeline, one affine map per frame.

The reference draws random grayscale (p = 0.25) and then colour jitter
(brightness, contrast, saturation ~ U(0.5, 1.5), hue ~ U(-0.25, 0.25), the
four in a random order) for EVERY FRAME of a clip, so colour is no reliable
cue to predict the future from: the model has to use structure and motion.

Each of these operations maps a pixel's RGB row vector x affinely
(l = luma weights (0.299, 0.587, 0.114), 1 = (1, 1, 1)):
    grayscale   x -> x l 1^T
    brightness  x -> b x
    contrast    x -> c x + (1 - c) m 1       m = mean luma of the frame
    saturation  x -> s x + (1 - s) x l 1^T
    hue         x -> x Y R Y^-1              R rotates the chroma (I, Q) plane
                                             of YIQ by 360 h degrees
so a frame's whole chain composes into one 3x3 matrix and one offset
(`colour_transforms`), applied in a single pass over the pixels and clipped
once (`apply_colour_transforms`). Saturation, hue and contrast all keep a
pixel's luma and map gray to gray, and brightness is a scalar: in this form
the four jitters commute, so their order (random per frame in the
reference) does not change the result and is fixed here. Two differences
from torchvision's ColorJitter, taken for speed (one fused pass instead of
five, no HSV round trip; see benchmarks/input_pipeline.py):
- values are clipped at the end only, not after every operation; results
  differ only where an intermediate value leaves the valid range (the only
  place where the reference's random order mattered);
- hue rotates chroma around the luma axis in YIQ (luma is kept) instead of
  shifting the HSV hue (max and min channel are kept). Both turn red towards
  yellow for h > 0, by comparable angles.

Frames are [frames, height, width, 3] RGB; matrices [frames, 3, 3] act on row
vectors (x -> x @ M + t); offsets [frames, 3] are in the frames' units.
"""

import math

import numpy as np
import tensorflow as tf

GRAYSCALE_PROBABILITY = 0.25
JITTER_RANGE = (0.5, 1.5)
HUE_RANGE = (-0.25, 0.25)
LUMA = (0.299, 0.587, 0.114)

# Columns Y, I, Q of the NTSC transform, for row vectors: yiq = rgb @ _RGB_TO_YIQ.
_RGB_TO_YIQ = np.array(
    [[0.299, 0.596, 0.211], [0.587, -0.274, -0.523], [0.114, -0.322, 0.312]]
)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)


def _luma_matrix():
    """[3, 3]: x @ it puts the luma of x into all three channels."""
    return tf.constant(np.outer(LUMA, np.ones(3)), tf.float32)


def _uniform(seed, count, low, high):
    return tf.random.stateless_uniform([count], seed, low, high)


def grayscale_matrices(seed, count, probability=GRAYSCALE_PROBABILITY):
    """[count, 3, 3]: the luma matrix for frames drawn gray, identity otherwise.

    Args:
        seed: int [2] stateless seed.
        count: number of frames.
        probability: chance of each frame independently becoming gray.
    """
    chosen = _uniform(seed, count, 0.0, 1.0) < probability
    identity = tf.eye(3, batch_shape=[count])
    return tf.where(chosen[:, None, None], _luma_matrix(), identity)


def hue_matrices(hue):
    """[count, 3, 3] rotations of the YIQ chroma plane by hue[i] turns.

    Luma and gray are kept; h > 0 turns red towards yellow, as an HSV hue
    shift does.
    """
    angle = -2.0 * math.pi * hue
    cos, sin = tf.cos(angle), tf.sin(angle)
    ones, zeros = tf.ones_like(angle), tf.zeros_like(angle)
    rotation = tf.stack(
        [
            tf.stack([ones, zeros, zeros], -1),
            tf.stack([zeros, cos, sin], -1),
            tf.stack([zeros, -sin, cos], -1),
        ],
        axis=1,
    )
    to_yiq = tf.constant(_RGB_TO_YIQ, tf.float32)
    to_rgb = tf.constant(_YIQ_TO_RGB, tf.float32)
    return to_yiq @ rotation @ to_rgb


def jitter_transforms(seed, channel_means):
    """Brightness, contrast, saturation and hue factors drawn per frame.

    Composed as brightness, contrast, saturation, hue: in this affine form
    the order does not matter (see the module docstring).

    Args:
        seed: int [2] stateless seed.
        channel_means: float32 [count, 3], mean RGB of each frame as it enters
            the jitter (contrast blends with its mean luma).
    Returns (matrices [count, 3, 3], offsets [count, 3]), offsets in the
    units of `channel_means`.
    """
    count = tf.shape(channel_means)[0]
    seeds = tf.random.experimental.stateless_split(seed, 4)
    brightness = _uniform(seeds[0], count, *JITTER_RANGE)
    contrast = _uniform(seeds[1], count, *JITTER_RANGE)
    saturation = _uniform(seeds[2], count, *JITTER_RANGE)[:, None, None]
    hue = _uniform(seeds[3], count, *HUE_RANGE)
    identity = tf.eye(3, batch_shape=[count])
    saturation_matrices = saturation * identity + (1.0 - saturation) * _luma_matrix()
    scale = (brightness * contrast)[:, None, None]
    matrices = scale * saturation_matrices @ hue_matrices(hue)
    mean_luma = tf.reduce_sum(channel_means * tf.constant(LUMA), axis=1)
    offsets = ((1.0 - contrast) * brightness * mean_luma)[:, None] * tf.ones([1, 3])
    return matrices, offsets


def colour_transforms(seed, channel_means, grayscale_probability=GRAYSCALE_PROBABILITY):
    """Random grayscale, then the jitter: one (matrix, offset) per frame.

    Args:
        seed: int [2] stateless seed.
        channel_means: float32 [count, 3] mean RGB of each frame.
        grayscale_probability: chance of each frame becoming gray.
    Returns (matrices [count, 3, 3], offsets [count, 3]).
    """
    seeds = tf.random.experimental.stateless_split(seed, 2)
    count = tf.shape(channel_means)[0]
    gray = grayscale_matrices(seeds[0], count, grayscale_probability)
    gray_means = (channel_means[:, None, :] @ gray)[:, 0]
    matrices, offsets = jitter_transforms(seeds[1], gray_means)
    return gray @ matrices, offsets


def apply_colour_transforms(frames, matrices, offsets):
    """frames [count, h, w, 3] float32 -> frames @ matrices + offsets, per frame.

    Written as three broadcast products so that XLA fuses it into one pass;
    unclipped.
    """
    matrices = matrices[:, None, None]
    offsets = offsets[:, None, None]
    return (
        frames[..., 0:1] * matrices[..., 0, :]
        + frames[..., 1:2] * matrices[..., 1, :]
        + frames[..., 2:3] * matrices[..., 2, :]
        + offsets
    )


@tf.function(jit_compile=True)
def _transform_and_clip(frames, matrices, offsets, high):
    return tf.clip_by_value(apply_colour_transforms(frames, matrices, offsets), 0.0, high)


def channel_means(frames):
    """Mean RGB of each frame: [count, h, w, 3] -> float32 [count, 3].

    Reduced over rows first, then columns: both reductions keep a contiguous
    inner axis, which is ~4x faster on CPU than reducing [1, 2] at once.
    """
    frames = tf.cast(frames, tf.float32)
    count, height, width = tf.unstack(tf.shape(frames)[:3])
    rows = tf.reduce_mean(tf.reshape(frames, [count, height, width * 3]), axis=1)
    return tf.reduce_mean(tf.reshape(rows, [count, width, 3]), axis=1)


def colour_jitter(frames, seed):
    """Brightness, contrast, saturation and hue, drawn per frame.

    Args:
        frames: float32 RGB [frames, h, w, 3] in [0, 1].
        seed: int [2] stateless seed.
    Returns the jittered frames, clipped to [0, 1].
    """
    matrices, offsets = jitter_transforms(seed, channel_means(frames))
    return _transform_and_clip(frames, matrices, offsets, 1.0)


def random_grayscale(frames, seed, probability=GRAYSCALE_PROBABILITY):
    """Each frame of float32 RGB [frames, h, w, 3] independently becomes gray.

    Gray frames hold their luma in all 3 channels; the others are unchanged.
    """
    matrices = grayscale_matrices(seed, tf.shape(frames)[0], probability)
    return _transform_and_clip(frames, matrices, tf.zeros([tf.shape(frames)[0], 3]), 1.0)


def augment_frame_colours(frames, seed):
    """uint8 RGB [frames, h, w, 3] -> grayscale then jitter per frame, uint8."""
    pixels = tf.cast(frames, tf.float32)
    matrices, offsets = colour_transforms(seed, channel_means(pixels))
    jittered = _transform_and_clip(pixels, matrices, offsets, 255.0)
    return tf.cast(tf.round(jittered), tf.uint8)
