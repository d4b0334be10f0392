import numpy as np
import tensorflow as tf

from keras_memdpc.frame_colour_augmentation import (
    LUMA,
    apply_colour_transforms,
    augment_frame_colours,
    colour_jitter,
    colour_transforms,
    hue_matrices,
    random_grayscale,
)

SEED = tf.constant([3, 7], tf.int32)


def constant_clip(frames=200, colour=(0.6, 0.3, 0.2)):
    return tf.ones([frames, 4, 4, 3]) * tf.constant(colour)


def test_grayscale_hits_about_a_quarter_of_the_frames_independently():
    out = random_grayscale(constant_clip(), SEED).numpy()
    gray = np.all(np.isclose(out[..., 0], out[..., 1]) & np.isclose(out[..., 1], out[..., 2]), axis=(1, 2))
    assert 0.15 < gray.mean() < 0.35
    luminance = 0.2989 * 0.6 + 0.587 * 0.3 + 0.114 * 0.2
    np.testing.assert_allclose(out[gray][..., 0], luminance, atol=1e-3)
    np.testing.assert_allclose(out[~gray], constant_clip().numpy()[~gray])


def test_jitter_differs_per_frame_and_stays_in_range():
    out = colour_jitter(constant_clip(), SEED).numpy()
    assert out.min() >= 0 and out.max() <= 1
    per_frame = out[:, 0, 0]
    assert len(np.unique(per_frame.round(4), axis=0)) > 150
    assert np.allclose(out, out[:, :1, :1])  # one draw per frame, same for all pixels


def test_brightness_alone_scales_within_the_range():
    out = colour_jitter(constant_clip(colour=(0.4, 0.4, 0.4)), SEED).numpy()
    ratio = out[:, 0, 0, 0] / 0.4  # gray input: contrast, saturation, hue are no-ops
    assert ratio.min() >= 0.5 - 1e-4 and ratio.max() <= 1.5 + 1e-4
    assert ratio.max() - ratio.min() > 0.8


def test_uint8_round_trip_is_deterministic_by_seed():
    frames = tf.constant(np.random.default_rng(0).integers(0, 256, (6, 8, 8, 3)), tf.uint8)
    first = augment_frame_colours(frames, SEED).numpy()
    again = augment_frame_colours(frames, SEED).numpy()
    other = augment_frame_colours(frames, SEED + 1).numpy()
    assert first.dtype == np.uint8 and first.shape == (6, 8, 8, 3)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_contrast_scales_around_the_mean_luma_and_brightness_scales_it():
    # Gray frames, half 0.3 and half 0.5: saturation and hue leave gray alone,
    # brightness b scales the mean (0.4), contrast c the spread around it.
    frames = tf.concat([tf.fill([300, 2, 2, 3], 0.3), tf.fill([300, 2, 2, 3], 0.5)], axis=1)
    out = colour_jitter(frames, SEED).numpy()
    assert np.allclose(out[..., 0], out[..., 2], atol=1e-5)  # still gray
    brightness = out[:, :, :, 0].mean(axis=(1, 2)) / 0.4
    spread = (out[:, 2, 0, 0] - out[:, 0, 0, 0]) / 0.2  # = brightness * contrast
    contrast = spread / brightness
    for factor in (brightness, contrast):
        assert factor.min() >= 0.5 - 1e-4 and factor.max() <= 1.5 + 1e-4
        assert factor.max() - factor.min() > 0.8


def test_hue_rotation_keeps_gray_and_luma_and_turns_red_towards_yellow():
    hue = tf.constant([0.0, 1 / 12, -1 / 12, 0.25])
    matrices = hue_matrices(hue).numpy()
    np.testing.assert_allclose(matrices[0], np.eye(3), atol=1e-6)
    np.testing.assert_allclose(np.ones(3) @ matrices, np.ones((4, 3)), atol=1e-5)
    pixels = np.random.default_rng(0).uniform(0, 1, (10, 3))
    for matrix in matrices:
        np.testing.assert_allclose(pixels @ matrix @ LUMA, pixels @ LUMA, atol=1e-5)
    red = np.array([1.0, 0.0, 0.0])
    towards_yellow, towards_magenta = red @ matrices[1], red @ matrices[2]
    assert towards_yellow[1] > towards_yellow[2]
    assert towards_magenta[2] > towards_magenta[1]


def test_certain_grayscale_then_jitter_leaves_every_frame_gray():
    frames = tf.constant(np.random.default_rng(1).uniform(0, 255, (20, 3, 3, 3)), tf.float32)
    means = tf.reduce_mean(frames, axis=[1, 2])
    matrices, offsets = colour_transforms(SEED, means, grayscale_probability=1.0)
    out = apply_colour_transforms(frames, matrices, offsets).numpy()
    np.testing.assert_allclose(out[..., 0], out[..., 1], atol=1e-3)
    np.testing.assert_allclose(out[..., 1], out[..., 2], atol=1e-3)
