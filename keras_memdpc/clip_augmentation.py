"""Clip-level augmentations: one crop and one flip shared by every frame of a clip.

Clips are [frames, height, width, channels] (or [..., height, width,
channels]); pixel values stay in [0, 255] until `to_output_dtype`. A box is
int32 [4] = (top, left, height, width) in pixels.

Resizing is one bilinear resize from the crop to the training size, without
antialiasing. The reference resized the crop to 224 and then to 128 with PIL
(whose bilinear filter widens with the downscale factor): for frames stored
with a short side of ~150 px, as the preparation writes them for 128 px
training, the crop is at most 1.17x the output, where antialiasing changes
little and the second resize only blurs. Frames stored much larger than the
training size would alias; store them near it.

Evaluation crops are squares of EVAL_CROP_FRACTION of the short side: the
reference's test crop (224 of 256), i.e. the same as resizing the short side
to image_size / 0.875 (146 px for 128) and cutting the centre image_size
square.
"""

import math

import tensorflow as tf

from keras_memdpc.memdpc import IMAGENET_MEAN, IMAGENET_STD

AREA_RANGE = (0.5, 1.0)
ASPECT_RANGE = (3 / 4, 4 / 3)
CROP_ATTEMPTS = 10
EVAL_CROP_FRACTION = 0.875
OUTPUT_DTYPES = ("float32", "bfloat16", "uint8")


def _uniform(seed, shape):
    return tf.random.stateless_uniform(shape, seed)


def _centre_box_for_aspect(height, width, aspect_range):
    """torchvision's fallback: the whole frame, cut to the nearest allowed aspect."""
    frame_aspect = width / height
    low, high = aspect_range
    crop_width = tf.where(frame_aspect > high, tf.round(height * high), width)
    crop_height = tf.where(frame_aspect < low, tf.round(width / low), height)
    top = tf.math.floordiv(height - crop_height, 2.0)
    left = tf.math.floordiv(width - crop_width, 2.0)
    return tf.cast(tf.stack([top, left, crop_height, crop_width], axis=-1), tf.int32)


def sample_crop_box(seed, height, width, area_range=AREA_RANGE,
                    aspect_range=ASPECT_RANGE, attempts=CROP_ATTEMPTS):
    """Random-resized-crop boxes, drawn as torchvision's RandomResizedCrop does.

    Up to `attempts` draws of an area fraction ~ U(area_range) and an aspect
    (width / height) log-uniform in `aspect_range`; the first box that fits
    the frame is placed uniformly at random. When none fits, the centre crop
    of the whole frame cut to the allowed aspect.

    Args:
        seed: int [2] stateless seed.
        height, width: frame size in pixels: int scalars, or int [clips] for
            one independent box per clip.
    Returns int32 [4] (top, left, height, width), or [clips, 4].
    """
    height = tf.cast(height, tf.float32)[..., None]
    width = tf.cast(width, tf.float32)[..., None]
    shape = tf.concat([tf.shape(height)[:-1], [attempts]], axis=0)
    seeds = tf.random.experimental.stateless_split(seed, 4)
    fraction = area_range[0] + (area_range[1] - area_range[0]) * _uniform(seeds[0], shape)
    log_low, log_high = math.log(aspect_range[0]), math.log(aspect_range[1])
    aspect = tf.exp(log_low + (log_high - log_low) * _uniform(seeds[1], shape))
    area = height * width * fraction
    crop_width = tf.round(tf.sqrt(area * aspect))
    crop_height = tf.round(tf.sqrt(area / aspect))
    fits = (
        (crop_width >= 1) & (crop_width <= width)
        & (crop_height >= 1) & (crop_height <= height)
    )
    top = tf.floor(_uniform(seeds[2], shape) * (height - crop_height + 1))
    left = tf.floor(_uniform(seeds[3], shape) * (width - crop_width + 1))
    boxes = tf.cast(tf.stack([top, left, crop_height, crop_width], axis=-1), tf.int32)
    first = tf.argmax(tf.cast(fits, tf.int32), axis=-1, output_type=tf.int32)
    chosen = tf.gather(boxes, first, batch_dims=len(first.shape))
    fallback = _centre_box_for_aspect(height[..., 0], width[..., 0], aspect_range)
    return tf.where(tf.reduce_any(fits, axis=-1)[..., None], chosen, fallback)


def centre_crop_box(height, width, fraction=EVAL_CROP_FRACTION):
    """The centred square of `fraction` of the short side: int32 [4]."""
    height = tf.cast(height, tf.int32)
    width = tf.cast(width, tf.int32)
    short = tf.cast(tf.minimum(height, width), tf.float32)
    side = tf.maximum(tf.cast(tf.round(fraction * short), tf.int32), 1)
    return tf.stack([(height - side) // 2, (width - side) // 2, side, side])


def ten_crop_boxes(height, width, fraction=EVAL_CROP_FRACTION):
    """int32 [5, 4]: centre, top-left, top-right, bottom-left, bottom-right squares."""
    centre = centre_crop_box(height, width, fraction)
    side = centre[2]
    bottom = tf.cast(height, tf.int32) - side
    right = tf.cast(width, tf.int32) - side
    corners = [[0, 0], [0, right], [bottom, 0], [bottom, right]]
    return tf.stack(
        [centre] + [tf.stack([top, left, side, side]) for top, left in corners]
    )


def crop_clip(frames, box):
    """The same window of every frame: [..., h, w, c] -> [..., box h, box w, c]."""
    return frames[..., box[0]:box[0] + box[2], box[1]:box[1] + box[3], :]


def resize_clip(frames, size):
    """Bilinear resize of [frames, h, w, c] to float32 [frames, size, size, c].

    Cast first: TF's bilinear kernel is ~2x faster on float32 than on uint8
    input, more than the cast costs.
    """
    return tf.image.resize(tf.cast(frames, tf.float32), [size, size], method="bilinear")


def flip_clip(frames, flip, flow=False):
    """Mirrors every frame left-right when `flip` (a bool scalar) is true.

    For optical flow, mirroring also reverses the horizontal motion: channel
    0 stores dx in [-20, 20] mapped to [0, 255], so a flipped value is
    255 - value. Frames are [..., h, w, c] in [0, 255].
    """
    flipped = tf.reverse(frames, axis=[-2])
    if flow:
        flipped = tf.concat([255 - flipped[..., :1], flipped[..., 1:]], axis=-1)
    return tf.where(flip, flipped, frames)


def normalise(frames):
    """[0, 255] RGB -> float32 (frames / 255 - ImageNet mean) / ImageNet std.

    The same normalisation as keras_memdpc.memdpc.normalize_frames, which the
    model applies on the device to uint8 input.
    """
    scale = tf.constant([255.0 * s for s in IMAGENET_STD])
    shift = tf.constant([255.0 * m for m in IMAGENET_MEAN])
    return (tf.cast(frames, tf.float32) - shift) / scale


def to_output_dtype(frames, output_dtype):
    """[0, 255] frames -> normalised float32 / bfloat16, or rounded uint8."""
    if output_dtype not in OUTPUT_DTYPES:
        raise ValueError(f"output_dtype must be one of {OUTPUT_DTYPES}, got {output_dtype!r}")
    if output_dtype == "uint8":
        return tf.cast(tf.round(tf.clip_by_value(frames, 0.0, 255.0)), tf.uint8)
    return tf.cast(normalise(frames), output_dtype)


def centre_crop(frames, size, fraction=EVAL_CROP_FRACTION):
    """[frames, h, w, c] -> float32 [frames, size, size, c], the centred square."""
    box = centre_crop_box(tf.shape(frames)[-3], tf.shape(frames)[-2], fraction)
    return resize_clip(crop_clip(frames, box), size)


def five_crops(frames, size, fraction=EVAL_CROP_FRACTION):
    """The 5 squares of `ten_crop_boxes` (centre, then the four corners).

    [frames, h, w, c] -> float32 [5, frames, size, size, c]; for data whose
    labels a mirror image changes (the synthetic set's directions).
    """
    boxes = ten_crop_boxes(tf.shape(frames)[-3], tf.shape(frames)[-2], fraction)
    return tf.stack([resize_clip(crop_clip(frames, boxes[i]), size) for i in range(5)])


def ten_crops(frames, size, fraction=EVAL_CROP_FRACTION, flow=False):
    """The 5 squares of `five_crops`, then the same 5 mirrored.

    [frames, h, w, c] -> float32 [10, frames, size, size, c]; crops 5-9 are
    crops 0-4 flipped (with flow's horizontal motion negated).
    """
    crops = five_crops(frames, size, fraction)
    return tf.concat([crops, flip_clip(crops, True, flow)], axis=0)
