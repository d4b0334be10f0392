"""Convolutional GRU: the cell of the MemDPC aggregator and the layer running it."""

import keras
from keras import layers, ops


def _orthogonal_init():
    """Orthogonal kernels with gain 0.1, as the reference initialises GRU and phi."""
    return keras.initializers.Orthogonal(gain=0.1)


@keras.saving.register_keras_serializable(package="keras_memdpc")
class ConvGRUCell(layers.Layer):
    """One step of the convolutional GRU of DPC / MemDPC.

    With inputs concatenated in the order [x, h]:
        u = sigmoid(W_u * [x, h] + b_u)
        r = sigmoid(W_r * [x, h] + b_r)
        n = tanh(W_o * [x, r * h] + b_o)
        h' = h * (1 - u) + n * u
    In training, dropout is applied to h' and the dropped state is what is
    carried on, as in the reference code.

    Args:
        filters: channels of the hidden state.
        kernel_size: size of the square gate convolutions (1 in MemDPC).
        dropout: dropout rate applied to the new state in training.
        seed: seed of the dropout.

    Inputs: x [batch, height, width, channels], h [batch, height, width, filters].
    Output: the new state [batch, height, width, filters].

    Example:
        cell = ConvGRUCell(256)
        h = cell(x, ops.zeros([2, 4, 4, 256]))
    """

    def __init__(self, filters, kernel_size=1, dropout=0.1, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.dropout = dropout
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

        def gate(name):
            return layers.Conv2D(
                filters,
                kernel_size,
                padding="same",
                kernel_initializer=_orthogonal_init(),
                bias_initializer="zeros",
                name=name,
            )

        self.reset_gate = gate("reset_gate")
        self.update_gate = gate("update_gate")
        self.out_gate = gate("out_gate")

    def build(self, x_shape, h_shape=None):
        combined = (*x_shape[:-1], x_shape[-1] + self.filters)
        for gate in (self.reset_gate, self.update_gate, self.out_gate):
            gate.build(combined)

    def call(self, x, h, training=None):
        combined = ops.concatenate([x, h], axis=-1)
        update = ops.sigmoid(self.update_gate(combined))
        reset = ops.sigmoid(self.reset_gate(combined))
        candidate = ops.tanh(
            self.out_gate(ops.concatenate([x, h * reset], axis=-1))
        )
        new_h = h * (1 - update) + candidate * update
        if training and self.dropout > 0:
            new_h = keras.random.dropout(
                new_h, self.dropout, seed=self.seed_generator
            )
        return new_h

    def compute_output_shape(self, x_shape, h_shape=None):
        return (*x_shape[:-1], self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "dropout": self.dropout,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="keras_memdpc")
class ConvGRU(layers.Layer):
    """Runs a `ConvGRUCell` over the block axis of a feature sequence.

    The number of blocks is small and fixed (at most 8 in MemDPC), so the steps
    are unrolled: every backend traces the same explicit loop, and dropout
    draws a fresh mask at every step as the reference does.

    Args:
        filters: channels of the hidden state.
        kernel_size: size of the gate convolutions (1 in MemDPC).
        dropout: dropout on the carried state in training.
        return_sequences: also return the state after every block.
        seed: seed of the dropout.

    Input: [batch, blocks, height, width, channels]; optional `initial_state`
        [batch, height, width, filters] (zeros when omitted).
    Output: the last state [batch, height, width, filters]; with
        `return_sequences=True`, the tuple (states [batch, blocks, height,
        width, filters], last state).

    Example:
        gru = ConvGRU(256)
        context = gru(ops.relu(features))  # features [2, 5, 4, 4, 256]
    """

    def __init__(
        self,
        filters,
        kernel_size=1,
        dropout=0.1,
        return_sequences=False,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.dropout = dropout
        self.return_sequences = return_sequences
        self.seed = seed
        self.cell = ConvGRUCell(
            filters, kernel_size, dropout, seed=seed, name="cell"
        )

    def build(self, inputs_shape, initial_state_shape=None):
        if not self.cell.built:
            self.cell.build((inputs_shape[0], *inputs_shape[2:]))

    def call(self, inputs, initial_state=None, training=None):
        h = initial_state
        if h is None:
            h = ops.zeros(
                (ops.shape(inputs)[0], *inputs.shape[2:4], self.filters),
                dtype=inputs.dtype,
            )
        states = []
        for step in range(inputs.shape[1]):
            h = self.cell(inputs[:, step], h, training=training)
            states.append(h)
        if self.return_sequences:
            return ops.stack(states, axis=1), h
        return h

    def compute_output_shape(self, inputs_shape, initial_state_shape=None):
        last = (inputs_shape[0], *inputs_shape[2:4], self.filters)
        if self.return_sequences:
            return (inputs_shape[0], inputs_shape[1], *last[1:]), last
        return last

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "dropout": self.dropout,
            "return_sequences": self.return_sequences,
            "seed": self.seed,
        }
