"""BatchNormalization that runs TensorFlow's fused kernel where it can."""

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="keras_memdpc")
class FusedBatchNormalization(layers.BatchNormalization):
    """keras.layers.BatchNormalization over the last axis, fused on TensorFlow.

    Same weights, arguments and results as the Keras layer. On the TensorFlow
    backend, for channels-last inputs of rank 4 or 5 (5-D inputs are viewed as
    [batch * frames, height, width, channels], which keeps per-channel
    statistics), it calls tf.nn's fused batch norm: about 4x faster on a CPU
    than the unfused ops, where it dominated a training step. Its moving
    variance is updated with the unbiased batch variance, as PyTorch's
    BatchNorm (and so the reference) does. Under tf.distribute, normalisation
    uses each replica's own batch statistics (as the reference does per GPU)
    and the moving statistics are updated with their mean over replicas, so
    every replica's copy stays the same. Elsewhere, e.g. under JAX where XLA
    fuses the ops itself, it is the Keras layer.

    Defaults are PyTorch's: epsilon 1e-5, momentum 0.9 (PyTorch's 0.1).

    Input and output: [..., channels].
    """

    def __init__(self, momentum=0.9, epsilon=1e-5, **kwargs):
        super().__init__(momentum=momentum, epsilon=epsilon, **kwargs)

    def _fusable(self, inputs, mask):
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and len(inputs.shape) in (4, 5)
            and self.axis in (-1, len(inputs.shape) - 1)
            and self.center
            and self.scale
            and not self.renorm
            and not self.synchronized
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        shape = tf.shape(inputs)
        images = tf.reshape(inputs, tf.concat([[-1], shape[-3:]], axis=0))
        if training and self.trainable:
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                images, self.gamma, self.beta, epsilon=self.epsilon,
                is_training=True,
            )
            # Every replica updates the moving statistics with the replicas'
            # mean, so that all copies stay equal (saving reads one of them).
            context = tf.distribute.get_replica_context()
            if context is not None and context.num_replicas_in_sync > 1:
                mean, variance = context.all_reduce("MEAN", [mean, variance])
            keep = self.momentum
            self.moving_mean.assign(self.moving_mean * keep + mean * (1 - keep))
            self.moving_variance.assign(
                self.moving_variance * keep + variance * (1 - keep)
            )
        else:
            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                images, self.gamma, self.beta,
                mean=self.moving_mean, variance=self.moving_variance,
                epsilon=self.epsilon, is_training=False,
            )
        return tf.cast(tf.reshape(outputs, shape), self.compute_dtype)
