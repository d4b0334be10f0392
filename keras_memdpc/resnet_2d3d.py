"""The 2D+3D ResNet block encoder of DPC / MemDPC."""

import math

import keras
from keras import layers, ops

from keras_memdpc.fused_batch_norm import FusedBatchNormalization

STAGE_WIDTHS = (64, 128, 256, 256)
STAGE_STRIDES = (1, 2, 2, 2)
STAGE_IS_3D = (False, False, True, True)
DEPTHS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}


def _kaiming_normal():
    """PyTorch's kaiming_normal_(mode='fan_out', nonlinearity='relu')."""
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_out", distribution="untruncated_normal"
    )


def _batch_norm(name):
    """BatchNorm with PyTorch's defaults (eps 1e-5, momentum 0.1 = Keras 0.9)."""
    return FusedBatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


class _Conv(layers.Layer):
    """A bias-free Conv3D padded symmetrically as PyTorch pads.

    Keras 'same' padding is asymmetric when the stride is 2 and the input is
    even, which shifts every feature map; strided convs pad explicitly
    instead. With stride 1 and odd kernels 'same' is symmetric, and lets the
    convolution pad internally without copying its input.
    """

    def __init__(self, filters, kernel_size, strides, **kwargs):
        super().__init__(**kwargs)
        strided = any(s > 1 for s in strides)
        self.pad = layers.ZeroPadding3D([k // 2 for k in kernel_size]) if strided else None
        self.conv = layers.Conv3D(
            filters,
            kernel_size,
            strides=strides,
            padding="valid" if strided else "same",
            use_bias=False,
            kernel_initializer=_kaiming_normal(),
            name="conv",
        )

    def _padded_shape(self, input_shape):
        return input_shape if self.pad is None else self.pad.compute_output_shape(input_shape)

    def build(self, input_shape):
        self.conv.build(self._padded_shape(input_shape))

    def call(self, x):
        return self.conv(x if self.pad is None else self.pad(x))

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(self._padded_shape(input_shape))


class _BasicBlock(layers.Layer):
    """ResNet basic block: two convs with BN, identity or projection shortcut.

    2D blocks use 1x3x3 kernels and stride (1, s, s); 3D blocks use 3x3x3
    kernels and stride (s, s, s). `final_relu=False` leaves the output
    pre-activation (the last block of the encoder).
    """

    def __init__(self, filters, stride, is_3d, project, final_relu, **kwargs):
        super().__init__(**kwargs)
        kernel = (3, 3, 3) if is_3d else (1, 3, 3)
        strides = (stride, stride, stride) if is_3d else (1, stride, stride)
        self.final_relu = final_relu
        self.conv1 = _Conv(filters, kernel, strides, name="conv1")
        self.bn1 = _batch_norm("bn1")
        self.conv2 = _Conv(filters, kernel, (1, 1, 1), name="conv2")
        self.bn2 = _batch_norm("bn2")
        self.downsample_conv = None
        if project:
            self.downsample_conv = layers.Conv3D(
                filters,
                1,
                strides=strides,
                use_bias=False,
                kernel_initializer=_kaiming_normal(),
                name="downsample_conv",
            )
            self.downsample_bn = _batch_norm("downsample_bn")

    def build(self, input_shape):
        mid_shape = self.conv1.compute_output_shape(input_shape)
        self.conv1.build(input_shape)
        self.bn1.build(mid_shape)
        self.conv2.build(mid_shape)
        self.bn2.build(mid_shape)
        if self.downsample_conv is not None:
            self.downsample_conv.build(input_shape)
            self.downsample_bn.build(mid_shape)

    def call(self, x, training=None):
        shortcut = x
        if self.downsample_conv is not None:
            shortcut = self.downsample_bn(
                self.downsample_conv(x), training=training
            )
        y = ops.relu(self.bn1(self.conv1(x), training=training))
        y = self.bn2(self.conv2(y), training=training) + shortcut
        return ops.relu(y) if self.final_relu else y

    def compute_output_shape(self, input_shape):
        return self.conv1.compute_output_shape(input_shape)


@keras.saving.register_keras_serializable(package="keras_memdpc")
class ResNet2D3D(layers.Layer):
    """The 2D+3D ResNet that encodes one video block (DPC / MemDPC encoder).

    Stem: 1x7x7 conv (stride 1,2,2) -> BN -> ReLU -> 1x3x3 max-pool (stride
    1,2,2). Stages of widths 64, 128, 256, 256 with strides 1, 2, 2, 2; stages
    1-2 use 2D (1x3x3) blocks, stages 3-4 3D (3x3x3) blocks. The last block has
    no final ReLU, so features are pre-activation. Then the average pool over
    the remaining ceil(frames / 4) time steps, as the reference code does.

    Args:
        network: "resnet18" or "resnet34".
        pool_time: average over the remaining time steps (the default, as
            in pretraining); False returns them, e.g. so that the action
            classifier can apply ReLU before pooling, as the reference does.
            It changes no weight.

    Input: [batch, frames, height, width, channels] (frames 5 in MemDPC).
    Output: [batch, height / 32, width / 32, 256]: 4x4 at 128 px, 7x7 at 224;
        with pool_time=False, [batch, ceil(frames / 4), height / 32,
        width / 32, 256].

    Example:
        encoder = ResNet2D3D("resnet18")
        features = encoder(keras.random.normal([2, 5, 128, 128, 3]))
        # features.shape == (2, 4, 4, 256)
    """

    def __init__(self, network="resnet18", pool_time=True, **kwargs):
        super().__init__(**kwargs)
        if network not in DEPTHS:
            raise ValueError(
                f"network must be one of {sorted(DEPTHS)}, got {network!r}"
            )
        self.network = network
        self.pool_time = pool_time
        self.output_channels = STAGE_WIDTHS[-1]
        self.conv1 = _Conv(64, (1, 7, 7), (1, 2, 2), name="conv1")
        self.bn1 = _batch_norm("bn1")
        self.pool_pad = layers.ZeroPadding3D((0, 1, 1))
        self.maxpool = layers.MaxPooling3D((1, 3, 3), strides=(1, 2, 2))
        self.blocks = []
        in_width = 64
        depths = DEPTHS[network]
        for stage, (width, stride, is_3d, depth) in enumerate(
            zip(STAGE_WIDTHS, STAGE_STRIDES, STAGE_IS_3D, depths)
        ):
            for index in range(depth):
                first = index == 0
                last = stage == len(depths) - 1 and index == depth - 1
                self.blocks.append(
                    _BasicBlock(
                        width,
                        stride if first else 1,
                        is_3d,
                        project=first and (stride != 1 or in_width != width),
                        final_relu=not last,
                        name=f"layer{stage + 1}_{index}",
                    )
                )
                in_width = width

    def build(self, input_shape):
        shape = self.conv1.compute_output_shape(input_shape)
        self.conv1.build(input_shape)
        self.bn1.build(shape)
        shape = self.maxpool.compute_output_shape(
            self.pool_pad.compute_output_shape(shape)
        )
        for block in self.blocks:
            block.build(shape)
            shape = block.compute_output_shape(shape)

    def call(self, x, training=None):
        x = ops.relu(self.bn1(self.conv1(x), training=training))
        x = self.maxpool(self.pool_pad(x))
        for block in self.blocks:
            x = block(x, training=training)
        if not self.pool_time:
            return x
        # The reference pools with kernel ceil(frames / 4), stride 1: the
        # stages leave exactly ceil(frames / 4) frames, so this is their mean.
        return ops.mean(x, axis=1)

    def compute_output_shape(self, input_shape):
        size = [None if s is None else math.ceil(s / 32) for s in input_shape[2:4]]
        if self.pool_time:
            return (input_shape[0], *size, self.output_channels)
        frames = None if input_shape[1] is None else math.ceil(input_shape[1] / 4)
        return (input_shape[0], frames, *size, self.output_channels)

    def get_config(self):
        return {
            **super().get_config(),
            "network": self.network,
            "pool_time": self.pool_time,
        }
