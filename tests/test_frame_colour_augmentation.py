import numpy as np
import tensorflow as tf

from keras_memdpc.frame_colour_augmentation import (
    augment_frame_colours,
    colour_jitter,
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
