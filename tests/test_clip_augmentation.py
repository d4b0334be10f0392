import numpy as np
import tensorflow as tf

from keras_memdpc.clip_augmentation import (
    centre_crop,
    centre_crop_box,
    crop_clip,
    five_crops,
    flip_clip,
    normalise,
    resize_clip,
    sample_crop_box,
    ten_crop_boxes,
    ten_crops,
    to_output_dtype,
)
from keras_memdpc.frame_colour_augmentation import augment_frame_colours
from keras_memdpc.memdpc import IMAGENET_MEAN, IMAGENET_STD, normalize_frames

SEED = tf.constant([4, 2], tf.int64)


def random_frames(shape, seed=0):
    return tf.constant(np.random.default_rng(seed).integers(0, 256, shape), tf.uint8)


def test_crop_boxes_follow_the_area_and_aspect_ranges():
    height, width = 150, 200
    boxes = sample_crop_box(SEED, tf.fill([2000], height), tf.fill([2000], width)).numpy()
    top, left, crop_height, crop_width = boxes.T
    area = crop_height * crop_width / (height * width)
    aspect = crop_width / crop_height
    # Rounding the sides to whole pixels moves area and aspect by < 1 %.
    assert area.min() >= 0.5 - 0.01 and area.max() <= 1.0
    assert aspect.min() >= 3 / 4 - 0.01 and aspect.max() <= 4 / 3 + 0.01
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + crop_height <= height).all() and (left + crop_width <= width).all()
    assert area.min() < 0.52 and area.max() > 0.97  # the whole range is used
    assert np.log(aspect).min() < -0.25 and np.log(aspect).max() > 0.25
    assert len(np.unique(top)) > 20 and len(np.unique(left)) > 20


def test_one_box_is_deterministic_by_seed():
    first = sample_crop_box(SEED, 150, 200).numpy()
    assert first.shape == (4,)
    np.testing.assert_array_equal(first, sample_crop_box(SEED, 150, 200).numpy())
    others = [sample_crop_box(SEED + i, 150, 200).numpy() for i in range(1, 6)]
    assert any(not np.array_equal(first, other) for other in others)


def test_no_fitting_box_falls_back_to_the_centre_crop():
    # A 1-pixel-high strip cannot hold half its area at an aspect <= 4/3.
    np.testing.assert_array_equal(sample_crop_box(SEED, 1, 100).numpy(), [0, 49, 1, 1])
    np.testing.assert_array_equal(sample_crop_box(SEED, 100, 1).numpy(), [49, 0, 1, 1])


def test_crop_and_flip_are_shared_while_colours_differ_per_frame():
    frame = random_frames([1, 20, 24, 3])
    clip = tf.repeat(frame, 12, axis=0)  # 12 identical frames
    box = sample_crop_box(SEED, 20, 24)
    cropped = flip_clip(resize_clip(crop_clip(clip, box), 8), tf.constant(True)).numpy()
    assert (cropped == cropped[0]).all()
    expected = tf.image.resize(
        tf.cast(frame[:, box[0]:box[0] + box[2], box[1]:box[1] + box[3]], tf.float32), [8, 8]
    ).numpy()[0, :, ::-1]
    np.testing.assert_allclose(cropped[0], expected, atol=1e-4)
    coloured = augment_frame_colours(tf.cast(tf.round(cropped), tf.uint8), SEED).numpy()
    distinct = {coloured[i].tobytes() for i in range(12)}
    assert len(distinct) > 8


def test_flip_mirrors_and_negates_horizontal_flow():
    frames = random_frames([3, 4, 5, 3])
    mirrored = frames.numpy()[:, :, ::-1]
    np.testing.assert_array_equal(flip_clip(frames, tf.constant(False)), frames)
    np.testing.assert_array_equal(flip_clip(frames, tf.constant(True)), mirrored)
    flow = flip_clip(frames, tf.constant(True), flow=True).numpy()
    np.testing.assert_array_equal(flow[..., 0], 255 - mirrored[..., 0])
    np.testing.assert_array_equal(flow[..., 1:], mirrored[..., 1:])
    np.testing.assert_array_equal(flip_clip(frames, tf.constant(False), flow=True), frames)


def test_five_and_ten_crops_are_the_corners_and_centre_with_and_without_flip():
    frames = random_frames([2, 16, 20, 3])
    np.testing.assert_array_equal(
        ten_crop_boxes(16, 20, 0.75).numpy(),
        [[2, 4, 12, 12], [0, 0, 12, 12], [0, 8, 12, 12], [4, 0, 12, 12], [4, 8, 12, 12]],
    )
    crops = ten_crops(frames, 12, fraction=0.75).numpy()
    f = frames.numpy().astype(np.float32)
    windows = [f[:, 2:14, 4:16], f[:, :12, :12], f[:, :12, 8:], f[:, 4:, :12], f[:, 4:, 8:]]
    expected = np.stack(windows + [w[:, :, ::-1] for w in windows])
    assert crops.shape == (10, 2, 12, 12, 3)
    np.testing.assert_array_equal(crops, expected)
    np.testing.assert_array_equal(five_crops(frames, 12, fraction=0.75).numpy(), expected[:5])


def test_centre_crop_is_the_centred_square_of_seven_eighths_of_the_short_side():
    np.testing.assert_array_equal(centre_crop_box(150, 200).numpy(), [9, 34, 131, 131])
    frames = random_frames([2, 16, 24, 3])
    np.testing.assert_array_equal(
        centre_crop(frames, 14).numpy(), frames.numpy()[:, 1:15, 5:19].astype(np.float32)
    )


def test_normalisation_of_white_and_black_and_the_output_dtypes():
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    white = tf.fill([1, 2, 2, 3], 255.0)
    black = tf.zeros([1, 2, 2, 3])
    np.testing.assert_allclose(normalise(white)[0, 0, 0], (1 - mean) / std, rtol=1e-6)
    np.testing.assert_allclose(normalise(black)[0, 0, 0], -mean / std, rtol=1e-6)
    pixels = random_frames([2, 3, 3, 3])
    np.testing.assert_allclose(
        normalise(pixels), normalize_frames(pixels), rtol=1e-6, atol=1e-6
    )  # the model's on-device normalisation of uint8 clips
    half = tf.constant([[-3.0, 0.4, 127.5, 254.6, 300.0]])
    np.testing.assert_array_equal(to_output_dtype(half, "uint8"), [[0, 0, 128, 255, 255]])
    assert to_output_dtype(white, "bfloat16").dtype == tf.bfloat16
    assert to_output_dtype(white, "float32").dtype == tf.float32
