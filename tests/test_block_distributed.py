import keras
import numpy as np

from keras_memdpc import BlockDistributed, ResNet2D3D


def clips(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def test_inference_agrees_with_time_distributed():
    encoder = ResNet2D3D("resnet18")
    x = clips((2, 3, 5, 32, 32, 3))
    ours = BlockDistributed(encoder)(x, training=False)
    theirs = keras.layers.TimeDistributed(encoder)(x, training=False)
    assert tuple(ours.shape) == (2, 3, 1, 1, 256)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_batch_norm_statistics_cover_all_blocks():
    dense = keras.layers.Dense(2, use_bias=False, kernel_initializer="identity")
    norm = keras.layers.BatchNormalization(momentum=0.0)
    inner = keras.Sequential([dense, norm])
    x = clips((4, 3, 2))
    x[:, 0] += 10.0  # block 0 alone has a very different mean
    BlockDistributed(inner)(x, training=True)
    np.testing.assert_allclose(norm.moving_mean, x.reshape(-1, 2).mean(0), rtol=1e-5)


def test_compute_output_shape_and_config_round_trip():
    layer = BlockDistributed(ResNet2D3D("resnet18"), name="backbone")
    assert layer.compute_output_shape((None, 8, 5, 128, 128, 3)) == (
        None, 8, 4, 4, 256,
    )
    clone = BlockDistributed.from_config(layer.get_config())
    assert clone.name == "backbone" and clone.layer.network == "resnet18"
