"""The compressive memory of MemDPC with softmax addressing."""

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="keras_memdpc")
class MemoryBank(layers.Layer):
    """A trainable bank of `size` slots of `dim` channels, read by softmax.

    Given addressing logits, p = softmax(logits) over the slots and the read
    is the convex combination z = p @ M (paper Eq. 3-4). The slots start from
    N(0, 1), as the reference: with Keras's default stddev of 0.05 the
    contrastive training stalls on its position-only plateau.

    The softmax runs in float32 under mixed precision.

    Args:
        size: number of memory slots k (1024 in MemDPC).
        dim: channels of each slot (256, the encoder's feature size).

    Input: logits [..., size].
    Output: (read [..., dim], addressing probabilities p [..., size]).

    Example:
        memory = MemoryBank(1024, 256)
        z_hat, p = memory(phi(context))  # logits [2, 4, 4, 1024]
    """

    def __init__(self, size=1024, dim=256, **kwargs):
        super().__init__(**kwargs)
        self.size = size
        self.dim = dim

    def build(self, input_shape):
        if input_shape[-1] != self.size:
            raise ValueError(
                f"MemoryBank of size {self.size} needs logits [..., {self.size}],"
                f" got shape {tuple(input_shape)}"
            )
        self.memory = self.add_weight(
            shape=(self.size, self.dim),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
            name="memory",
        )

    def call(self, logits):
        probabilities = ops.softmax(ops.cast(logits, "float32"), axis=-1)
        read = ops.matmul(
            ops.cast(probabilities, self.compute_dtype),
            ops.cast(self.memory, self.compute_dtype),
        )
        return read, probabilities

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.dim), tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "dim": self.dim}
