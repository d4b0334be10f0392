"""Per-block application of a layer, with blocks folded into the batch."""

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="keras_memdpc")
class BlockDistributed(layers.Wrapper):
    """Applies a layer to every video block, as keras.layers.TimeDistributed.

    Same contract as TimeDistributed over axis 1, but computed as ONE call of
    the wrapped layer on [batch * blocks, ...]. TimeDistributed calls the layer
    once per block, so BatchNormalization would see per-block statistics; the
    reference MemDPC code normalises over all blocks of all clips, as here.

    Args:
        layer: the layer to apply to each block, e.g. `ResNet2D3D`.

    Input: [batch, blocks, ...block shape], e.g. clips
        [batch, blocks, frames, height, width, channels].
    Output: [batch, blocks, ...layer output shape].

    Example:
        encoder = BlockDistributed(ResNet2D3D("resnet18"))
        features = encoder(keras.random.normal([2, 8, 5, 128, 128, 3]))
        # features.shape == (2, 8, 4, 4, 256)
    """

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build((None, *input_shape[2:]))

    def call(self, inputs, training=None):
        blocks = inputs.shape[1]
        folded = ops.reshape(inputs, (-1, *inputs.shape[2:]))
        outputs = self.layer(folded, training=training)
        return ops.reshape(outputs, (-1, blocks, *outputs.shape[1:]))

    def compute_output_shape(self, input_shape):
        inner = self.layer.compute_output_shape((None, *input_shape[2:]))
        return (input_shape[0], input_shape[1], *inner[1:])
