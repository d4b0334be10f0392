"""Optical flow of consecutive frames as uint8 images: values, sign, clipping, shapes."""

import cv2
import numpy as np
import pytest

from keras_memdpc.optical_flow import compute_flow, flow_to_image, image_to_flow


def textured_pair(dx, dy, size=64):
    """Two RGB frames [2, size, size, 3]; the content moves dx px right and dy px down."""
    noise = np.random.default_rng(0).uniform(0, 255, (size + 40, size + 40)).astype(np.float32)
    texture = cv2.normalize(cv2.GaussianBlur(noise, (0, 0), 2.0), None, 0, 255,
                            cv2.NORM_MINMAX).astype(np.uint8)
    first = texture[20:20 + size, 20:20 + size]
    second = texture[20 - dy:20 - dy + size, 20 - dx:20 - dx + size]
    return np.stack([first, second])[..., None].repeat(3, axis=-1)


def test_mapping_of_pixels_to_grey_levels():
    flow = np.array([[[0.0, -20.0], [20.0, 10.0], [35.0, -80.0]]], np.float32)
    image = flow_to_image(flow)
    assert image.dtype == np.uint8 and image.shape == (1, 3, 3)
    # [-20, 20] -> [0, 255] linearly, 0 -> 127.5 rounds up, beyond +-20 clips.
    np.testing.assert_array_equal(image[..., :2], [[[128, 0], [255, 191], [255, 0]]])
    np.testing.assert_array_equal(image[..., 2], 0)
    decoded = image_to_flow(image)
    np.testing.assert_allclose(decoded, [[[0.0, -20.0], [20.0, 10.0], [20.0, -20.0]]],
                               atol=0.08)  # half a grey level is 0.078 px


@pytest.mark.parametrize("method", ["tvl1", "dis"])
def test_a_known_shift_decodes_back_in_the_interior(method):
    images = compute_flow(textured_pair(dx=3, dy=2), method=method)
    assert images.shape == (1, 64, 64, 3) and images.dtype == np.uint8
    interior = image_to_flow(images[0, 16:48, 16:48]).reshape(-1, 2)
    np.testing.assert_allclose(np.median(interior, axis=0), [3.0, 2.0], atol=0.2)
    np.testing.assert_array_equal(images[..., 2], 0)


@pytest.mark.parametrize("method", ["tvl1", "dis"])
def test_n_frames_give_n_minus_one_flow_images(method):
    frames = np.concatenate([textured_pair(1, 0), textured_pair(0, 1)])
    assert compute_flow(frames, method).shape == (3, 64, 64, 3)
    assert compute_flow(frames[:1], method).shape == (0, 64, 64, 3)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="uint8"):
        compute_flow(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="flow method"):
        compute_flow(np.zeros((2, 8, 8, 3), np.uint8), method="farneback")
