"""Per-frame colour augmentation of the reference pipeline, in tf.data ops.

The reference draws random grayscale (p = 0.25) and colour jitter
(brightness, contrast, saturation ~ U(0.5, 1.5), hue ~ U(-0.25, 0.25)) for
EVERY FRAME of a clip, so colour is no reliable cue to predict the future
from: the model has to use structure and motion.
"""

import tensorflow as tf

GRAYSCALE_PROBABILITY = 0.25
JITTER_RANGE = (0.5, 1.5)
HUE_RANGE = (-0.25, 0.25)


def _gray(frames):
    """Luminance [frames, h, w, 1] of RGB frames in [0, 1]."""
    return tf.image.rgb_to_grayscale(frames)


def _per_frame(values):
    """[frames] -> [frames, 1, 1, 1] for broadcasting over pixels."""
    return values[:, None, None, None]


def _uniform(seed, count, low, high, offset):
    return tf.random.stateless_uniform([count], seed + offset, low, high)


def colour_jitter(frames, seed):
    """Brightness, contrast, saturation, hue, drawn per frame, in that order.

    Args:
        frames: float32 RGB [frames, h, w, 3] in [0, 1].
        seed: int32 [2] stateless seed.
    Returns the jittered frames, clipped to [0, 1].
    """
    count = tf.shape(frames)[0]
    brightness = _uniform(seed, count, *JITTER_RANGE, 1)
    frames = tf.clip_by_value(frames * _per_frame(brightness), 0.0, 1.0)
    contrast = _per_frame(_uniform(seed, count, *JITTER_RANGE, 2))
    mean = tf.reduce_mean(_gray(frames), axis=[1, 2, 3], keepdims=True)
    frames = tf.clip_by_value((frames - mean) * contrast + mean, 0.0, 1.0)
    saturation = _per_frame(_uniform(seed, count, *JITTER_RANGE, 3))
    gray = _gray(frames)
    frames = tf.clip_by_value((frames - gray) * saturation + gray, 0.0, 1.0)
    hue = _per_frame(_uniform(seed, count, *HUE_RANGE, 4))
    hsv = tf.image.rgb_to_hsv(frames)
    shifted = tf.math.floormod(hsv[..., :1] + hue, 1.0)
    return tf.image.hsv_to_rgb(tf.concat([shifted, hsv[..., 1:]], axis=-1))


def random_grayscale(frames, seed, probability=GRAYSCALE_PROBABILITY):
    """Each frame independently becomes gray (luminance in all 3 channels)."""
    count = tf.shape(frames)[0]
    chosen = _uniform(seed, count, 0.0, 1.0, 5) < probability
    gray = tf.repeat(_gray(frames), 3, axis=-1)
    return tf.where(_per_frame(chosen), gray, frames)


def augment_frame_colours(frames, seed):
    """uint8 RGB [frames, h, w, 3] -> grayscale then jitter per frame, uint8."""
    frames = tf.image.convert_image_dtype(frames, tf.float32)
    frames = colour_jitter(random_grayscale(frames, seed), seed)
    return tf.image.convert_image_dtype(frames, tf.uint8, saturate=True)
