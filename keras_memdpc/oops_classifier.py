"""The unintentional-action (Oops) classifier on MemDPC (paper section 5.7, appendix B).

A single-direction MemDPC reads a clip of N blocks. At every step t it has
the true feature z_t of block t and the prediction z_hat_t of that block
made from the blocks before it; both are averaged over space, concatenated
(2 x 256 channels) and a linear layer classifies the block as intentional
(0), transitioning (1) or unintentional (2). The first block has no past:
its z_hat is read from the GRU's zero initial state, a prediction that is
the same for every clip. A BatchNormalization precedes the linear layer,
as in the reference's action classifier; at inference it is a fixed affine
map, so the classifier stays linear in (z_t, z_hat_t).
"""

import keras
from keras import layers, ops

from keras_memdpc.memdpc import MemDPC, normalize_frames
from keras_memdpc.readers.oops import CLASSES


def encode_blocks(representation, clips, training=None):
    """The encoder output of every block, for any number of blocks.

    Args:
        representation: a MemDPC, or a model with the same `encoder` (a
            BlockDistributed ResNet2D3D), e.g. an ActionClassifier.
        clips: [batch, blocks, block_length, size, size, 3], float32 normalised
            or raw uint8; batch and blocks may be unknown until run time.
        training: BatchNorm mode; a MemDPC with batch_norm_statistics="batch"
            (DPC) always normalises with the batch's statistics.
    Returns the pre-ReLU features [batch, blocks, h, w, 256] with h = w =
    size / 32; [batch, blocks, time, h, w, 256] for an encoder that does not
    pool over time (ResNet2D3D(pool_time=False)).
    """
    if not keras.backend.is_float_dtype(clips.dtype):
        clips = normalize_frames(clips)
    if getattr(representation, "batch_norm_statistics", "moving") == "batch":
        training = True
    leading = ops.shape(clips)[:2]
    folded = ops.reshape(clips, (-1, *clips.shape[2:]))
    features = representation.encoder.layer(
        ops.cast(folded, representation.compute_dtype), training=training
    )
    return ops.reshape(features, (*leading, *features.shape[1:]))


def single_direction(representation, **overrides):
    """A single-direction MemDPC holding `representation`'s forward weights.

    Encoder, forward aggregator, phi and memory are copied; a bidirectional
    model's backward aggregator is left out. `overrides` change config
    entries that no weight depends on (image_size, num_blocks,
    block_length); pred_steps is cut to num_blocks - 1 when needed.
    """
    config = {**representation.get_config(), **overrides, "bidirectional": False}
    config["pred_steps"] = min(config["pred_steps"], config["num_blocks"] - 1)
    for key in ("name", "trainable", "dtype"):
        config.pop(key, None)
    model = MemDPC(**config)
    model.build()
    model.encoder.set_weights(representation.encoder.get_weights())
    model.aggregators[0].set_weights(representation.aggregators[0].get_weights())
    model.phi.set_weights(representation.phi.get_weights())
    if model.memory is not None:
        model.memory.set_weights(representation.memory.get_weights())
    return model


@keras.saving.register_keras_serializable(package="keras_memdpc")
class OopsClassifier(keras.Model):
    """Per-block intentional / transitioning / unintentional logits of a clip.

    Freeze the representation (`classifier.representation.trainable = False`)
    for the linear probe: its BatchNorm then uses the pretraining statistics
    and its GRU dropout is off; only the BatchNorm and linear head train.
    Left trainable, everything is finetuned.

    Args:
        representation: a single-direction MemDPC (see `single_direction`).
        num_classes: 3 (keras_memdpc.readers.oops.CLASSES).

    Input: clips [batch, num_blocks, block_length, size, size, 3], float32
        normalised with the ImageNet mean and std, or raw uint8.
    Output: logits [batch, num_blocks, num_classes].

    Example:
        classifier = OopsClassifier(single_direction(pretrained))
        logits = classifier(clips)  # [2, 8, 3] for clips [2, 8, 5, 128, 128, 3]
    """

    def __init__(self, representation, num_classes=len(CLASSES), **kwargs):
        super().__init__(**kwargs)
        if representation.bidirectional:
            raise ValueError(
                "the Oops classifier uses a single-direction MemDPC: pass "
                "single_direction(model) for a bidirectional one"
            )
        self.representation = representation
        self.num_classes = num_classes
        self.final_bn = layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name="final_bn")
        self.final_fc = layers.Dense(num_classes, name="final_fc")
        # Built now, so that the optimizer sees the head's weights however the
        # model is first used (fit on an unbuilt classifier trained nothing).
        self.build()

    @property
    def num_blocks(self):
        return self.representation.num_blocks

    def build(self, input_shape=None):
        """Creates every weight for clips of the representation's clip_shape."""
        if not self.representation.built:
            self.representation.build()
        channels = 2 * self.representation.encoder.layer.output_channels
        self.final_bn.build((None, self.num_blocks, channels))
        self.final_fc.build((None, self.num_blocks, channels))

    def _predict(self, hidden, training):
        """z_hat [batch, h, w, 256] from a GRU state."""
        logits = self.representation.phi(hidden, training=training)
        if self.representation.memory is None:
            return logits
        return self.representation.memory(logits)[0]

    def classify_features(self, features, training=None):
        """Logits [batch, blocks, classes] from block features [batch, blocks, h, w, 256].

        `blocks` must be known when tracing: the GRU is unrolled over it.
        """
        representation_training = bool(training) and self.representation.trainable
        cell = self.representation.aggregators[0].cell
        hidden = ops.zeros_like(features[:, 0])
        predictions = []
        for step in range(features.shape[1]):
            predictions.append(self._predict(hidden, representation_training))
            hidden = cell(ops.relu(features[:, step]), hidden, training=representation_training)
        predicted = ops.stack(predictions, axis=1)
        pooled = ops.concatenate(
            [ops.mean(features, axis=(2, 3)), ops.mean(predicted, axis=(2, 3))], axis=-1
        )
        return self.final_fc(self.final_bn(pooled, training=training))

    def call(self, clips, training=None):
        representation_training = bool(training) and self.representation.trainable
        features = encode_blocks(self.representation, clips, training=representation_training)
        return self.classify_features(features, training=training)

    def get_config(self):
        return {
            **super().get_config(),
            "representation": keras.saving.serialize_keras_object(self.representation),
            "num_classes": self.num_classes,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["representation"] = keras.saving.deserialize_keras_object(
            config["representation"]
        )
        return cls(**config)
