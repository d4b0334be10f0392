import keras
import numpy as np
import pytest

from keras_memdpc import BlockDistributed, ResNet2D3D


def trainable_count(layer):
    return sum(int(np.prod(w.shape)) for w in layer.trainable_weights)


@pytest.mark.parametrize(
    "network, trainable, moving",
    [("resnet18", 14_057_536, 7_040), ("resnet34", 32_422_208, 13_440)],
)
def test_parameter_counts_match_the_reference(network, trainable, moving):
    encoder = ResNet2D3D(network)
    encoder.build((None, 5, 128, 128, 3))
    assert trainable_count(encoder) == trainable
    assert encoder.count_params() - trainable == moving


@pytest.mark.parametrize("network", ["resnet18", "resnet34"])
@pytest.mark.parametrize("size, grid", [(128, 4), (224, 7)])
def test_output_shape_per_block(network, size, grid):
    encoder = ResNet2D3D(network)
    features = encoder(np.zeros((1, 5, size, size, 3), "float32"))
    assert tuple(features.shape) == (1, grid, grid, 256)
    assert encoder.compute_output_shape((None, 5, size, size, 3)) == (
        None, grid, grid, 256,
    )


def test_last_block_is_pre_activation():
    encoder = ResNet2D3D("resnet18")
    rng = np.random.default_rng(0)
    features = encoder(rng.normal(size=(2, 5, 64, 64, 3)).astype("float32"))
    assert np.min(features) < 0
    assert [b.final_relu for b in encoder.blocks][-2:] == [True, False]


def numpy_conv2d(image, kernel, stride, pad):
    """Cross-correlation of [H, W, in] with [kh, kw, in, out], PyTorch padding."""
    image = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
    kh, kw = kernel.shape[:2]
    out_h = (image.shape[0] - kh) // stride + 1
    out_w = (image.shape[1] - kw) // stride + 1
    out = np.zeros((out_h, out_w, kernel.shape[3]))
    for i in range(out_h):
        for j in range(out_w):
            patch = image[i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[i, j] = np.tensordot(patch, kernel, axes=3)
    return out


def numpy_max_pool(image, size, stride, pad):
    image = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), constant_values=-np.inf)
    out_h = (image.shape[0] - size) // stride + 1
    out = np.zeros((out_h, out_h, image.shape[2]))
    for i in range(out_h):
        for j in range(out_h):
            window = image[i * stride:i * stride + size, j * stride:j * stride + size]
            out[i, j] = window.max(axis=(0, 1))
    return out


def test_strided_stem_pads_symmetrically_like_pytorch():
    encoder = ResNet2D3D("resnet18")
    frames = np.random.default_rng(1).normal(size=(1, 2, 16, 16, 3)).astype("float32")
    encoder.build(frames.shape)
    stem = encoder.conv1(frames).numpy()
    kernel = encoder.conv1.conv.kernel.numpy()[0]
    for t in range(2):
        expected = numpy_conv2d(frames[0, t], kernel, stride=2, pad=3)
        np.testing.assert_allclose(stem[0, t], expected, rtol=1e-4, atol=1e-4)
    activated = np.maximum(stem, 0)
    pooled = encoder.maxpool(encoder.pool_pad(activated)).numpy()
    np.testing.assert_allclose(
        pooled[0, 1], numpy_max_pool(activated[0, 1], 3, 2, 1), rtol=1e-6
    )


def test_initialisation_is_kaiming_fan_out():
    encoder = ResNet2D3D("resnet18")
    encoder.build((None, 5, 64, 64, 3))
    kernel = encoder.blocks[4].conv1.conv.kernel.numpy()  # 3x3x3, 128 -> 256
    expected_std = np.sqrt(2.0 / (256 * 27))
    assert abs(kernel.std() / expected_std - 1) < 0.02
    bn = encoder.bn1
    assert (bn.epsilon, bn.momentum) == (1e-5, 0.9)
    np.testing.assert_array_equal(bn.gamma.numpy(), 1.0)


def test_config_round_trip_and_keras_file(tmp_path):
    encoder = ResNet2D3D("resnet34", name="enc")
    clone = ResNet2D3D.from_config(encoder.get_config())
    assert clone.network == "resnet34" and clone.name == "enc"
    inputs = keras.Input((4, 5, 32, 32, 3))
    model = keras.Model(inputs, BlockDistributed(ResNet2D3D("resnet18"))(inputs))
    clips = np.random.default_rng(2).normal(size=(2, 4, 5, 32, 32, 3)).astype("float32")
    path = tmp_path / "encoder.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(restored(clips), model(clips), atol=1e-5)


def test_unpooled_features_keep_time_and_average_to_the_default_output():
    pooled = ResNet2D3D("resnet18")
    frames = np.random.default_rng(2).normal(size=(2, 5, 64, 64, 3)).astype("float32")
    expected = pooled(frames).numpy()
    unpooled = ResNet2D3D.from_config({**pooled.get_config(), "pool_time": False})
    unpooled.build(frames.shape)
    unpooled.set_weights(pooled.get_weights())
    assert unpooled.count_params() == pooled.count_params()
    assert [w.path.split("/", 1)[1] for w in unpooled.weights] == [
        w.path.split("/", 1)[1] for w in pooled.weights
    ]
    features = unpooled(frames).numpy()
    assert features.shape == (2, 2, 2, 2, 256)
    assert unpooled.compute_output_shape((None, 5, 64, 64, 3)) == (None, 2, 2, 2, 256)
    np.testing.assert_allclose(features.mean(axis=1), expected, rtol=1e-5, atol=1e-5)
