"""The downstream action classifier of MemDPC and its strict initialisation.

`ActionClassifier` is the reference classifier head ("LC" in the original
code) on the MemDPC encoder and aggregators; `load_pretrained` reads a
pretraining checkpoint and `copy_pretrained_weights` fills a classifier from
it, naming every weight that does not match.
"""

import os

import keras
from keras import layers, ops

from keras_memdpc.block_distributed import BlockDistributed
from keras_memdpc.conv_gru import ConvGRU
from keras_memdpc.convert import CheckpointError
from keras_memdpc.memdpc import normalize_frames
from keras_memdpc.resnet_2d3d import ResNet2D3D

PROTOCOLS = ("linear", "nonlinear", "finetune")


def _batch_norm(name):
    """BatchNorm1d with PyTorch's defaults (eps 1e-5, momentum 0.1 = Keras 0.9)."""
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


@keras.saving.register_keras_serializable(package="keras_memdpc")
class ActionClassifier(keras.Model):
    """Action classification on the MemDPC representation (DESIGN.md section 2).

    Each block is encoded (`ResNet2D3D`, blocks folded into the batch); ReLU
    is applied before the average over the encoder's remaining time steps
    (as the reference classifier does; pretraining pools first); a
    `ConvGRU` runs over all `num_blocks` blocks (with `bidirectional`, a
    second one over the time-reversed blocks); each last hidden state is
    averaged over space and the directions are concatenated (512 values).
    The head is then

        linear, finetune: final_bn (BatchNorm) -> Dropout -> final_fc (Dense)
        nonlinear: final_bn -> final_hidden (Dense hidden_units, ReLU)
            -> final_hidden_bn (BatchNorm) -> Dropout -> final_fc

    final_fc has an orthogonal kernel (gain 1) and zero bias; final_hidden
    Keras's default (Glorot uniform) initialisation. The names final_bn and
    final_fc are those of the reference's finetuned checkpoints
    (final_bn.*, final_fc.1.*).

    Protocols:
        "linear": encoder and aggregators frozen (trainable=False) AND run in
            inference mode in training too, so their BatchNorm keeps the
            pretraining statistics and the GRU applies no dropout; only
            final_bn and final_fc train.
        "nonlinear": the same frozen, inference-mode trunk; the MLP head trains.
        "finetune": everything trains (encoder BatchNorm in training mode).

    Args:
        num_classes: action classes.
        network: encoder depth, "resnet18" or "resnet34".
        image_size: frame height and width.
        num_blocks: blocks per clip (8).
        block_length: frames per block (5).
        bidirectional: also aggregate the time-reversed blocks (the released
            MemDPC model is bidirectional).
        protocol: "linear", "nonlinear" or "finetune".
        gru_kernel_size: kernel of the GRU gates (1).
        gru_dropout: dropout on the GRU's carried state when the GRU trains.
        dropout: dropout before final_fc (0.9 as the paper).
        hidden_units: width of the nonlinear head's hidden layer.
        seed: seed of the dropouts.

    Input: clips [batch, num_blocks, block_length, image_size, image_size, 3],
        float32 normalised with the ImageNet mean and std, or raw uint8 RGB
        (then normalised on the device). Optical-flow clips take the same path.
    Output: logits [batch, num_classes] (float32).

    Example:
        model = ActionClassifier.from_pretrained(
            "runs/pretrain/best.keras", num_classes=101, protocol="linear",
            image_size=128)
        logits = model(clips)
    """

    def __init__(
        self,
        num_classes,
        network="resnet18",
        image_size=128,
        num_blocks=8,
        block_length=5,
        bidirectional=True,
        protocol="finetune",
        gru_kernel_size=1,
        gru_dropout=0.1,
        dropout=0.9,
        hidden_units=512,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        # === Layers ===
        self.encoder = BlockDistributed(
            ResNet2D3D(network, pool_time=False), name="backbone"
        )
        feature_dim = self.encoder.layer.output_channels
        self.aggregators = [
            ConvGRU(feature_dim, gru_kernel_size, gru_dropout, seed=seed, name=f"agg_{d}")
            for d in ("f", "b")[: 2 if bidirectional else 1]
        ]
        self.final_bn = _batch_norm("final_bn")
        self.final_hidden = None
        if protocol == "nonlinear":
            self.final_hidden = layers.Dense(
                hidden_units, activation="relu", name="final_hidden"
            )
            self.final_hidden_bn = _batch_norm("final_hidden_bn")
        self.final_dropout = layers.Dropout(dropout, seed=seed, name="final_dropout")
        self.final_fc = layers.Dense(
            num_classes,
            kernel_initializer=keras.initializers.Orthogonal(),
            name="final_fc",
        )
        self.frozen = protocol != "finetune"
        if self.frozen:
            self.encoder.trainable = False
            for aggregator in self.aggregators:
                aggregator.trainable = False
        # === Config ===
        self.num_classes = num_classes
        self.network = network
        self.image_size = image_size
        self.num_blocks = num_blocks
        self.block_length = block_length
        self.bidirectional = bidirectional
        self.protocol = protocol
        self.gru_kernel_size = gru_kernel_size
        self.gru_dropout = gru_dropout
        self.dropout = dropout
        self.hidden_units = hidden_units
        self.seed = seed

    @classmethod
    def from_pretrained(cls, path, num_classes, **kwargs):
        """A built classifier initialised from a MemDPC checkpoint (.keras).

        The encoder depth, the directions and the GRU kernel come from the
        checkpoint; every encoder and aggregator weight is copied strictly
        (`copy_pretrained_weights`).

        Args:
            path: the .keras file pretraining wrote (best.keras, last.keras).
            num_classes: action classes.
            **kwargs: the other constructor arguments (image_size,
                num_blocks, block_length, protocol, ...).
        """
        pretrained = load_pretrained(path)
        model = cls(
            num_classes,
            network=pretrained.network,
            bidirectional=pretrained.bidirectional,
            gru_kernel_size=pretrained.gru_kernel_size,
            **kwargs,
        )
        model.build()
        copy_pretrained_weights(model, pretrained, path)
        return model

    @property
    def clip_shape(self):
        """Shape of one clip: (num_blocks, block_length, size, size, 3)."""
        size = self.image_size
        return (self.num_blocks, self.block_length, size, size, 3)

    def build(self, input_shape=None):
        """Creates every weight for clips of `clip_shape`."""
        clip_shape = (None, *self.clip_shape)
        self.encoder.build(clip_shape)
        features = self.encoder.compute_output_shape(clip_shape)
        for aggregator in self.aggregators:
            aggregator.build((None, self.num_blocks, *features[3:]))
        width = self.encoder.layer.output_channels * len(self.aggregators)
        self.final_bn.build((None, width))
        if self.final_hidden is not None:
            self.final_hidden.build((None, width))
            self.final_hidden_bn.build((None, self.hidden_units))
            width = self.hidden_units
        self.final_fc.build((None, width))

    def context(self, clips, training=None):
        """The pooled context the head reads: [batch, 256 * directions].

        Under "linear" and "nonlinear" it is computed in inference mode
        whatever `training` says.
        """
        if self.frozen:
            training = False
        if not keras.backend.is_float_dtype(clips.dtype):
            clips = normalize_frames(clips)
        features = self.encoder(ops.cast(clips, self.compute_dtype), training=training)
        blocks = ops.mean(ops.relu(features), axis=2)
        sequences = [blocks, ops.flip(blocks, axis=1)]
        return ops.concatenate(
            [
                ops.mean(aggregator(sequence, training=training), axis=(1, 2))
                for aggregator, sequence in zip(self.aggregators, sequences)
            ],
            axis=-1,
        )

    def call(self, clips, training=None):
        x = self.final_bn(self.context(clips, training=training), training=training)
        if self.final_hidden is not None:
            x = self.final_hidden_bn(self.final_hidden(x), training=training)
        x = self.final_fc(self.final_dropout(x, training=training))
        return ops.cast(x, "float32")

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "network": self.network,
            "image_size": self.image_size,
            "num_blocks": self.num_blocks,
            "block_length": self.block_length,
            "bidirectional": self.bidirectional,
            "protocol": self.protocol,
            "gru_kernel_size": self.gru_kernel_size,
            "gru_dropout": self.gru_dropout,
            "dropout": self.dropout,
            "hidden_units": self.hidden_units,
            "seed": self.seed,
        }


def load_pretrained(path):
    """The pretraining model saved in a .keras file (MemDPC, or a classifier).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError naming the file: it holds no encoder and aggregators.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"pretrained checkpoint {path} not found")
    model = keras.saving.load_model(path, compile=False)
    if not (hasattr(model, "encoder") and hasattr(model, "aggregators")):
        raise CheckpointError(
            f"{path}: a {type(model).__name__} has no MemDPC encoder and aggregators"
        )
    return model


def _relative_weights(layer, prefix=""):
    """{prefix + path inside `layer`: variable} for every weight of `layer`."""
    start = len(layer.path) + 1
    return {prefix + weight.path[start:]: weight for weight in layer.weights}


def pretrained_weight_map(model):
    """{name: variable} of the weights a checkpoint fills: encoder, then aggregators.

    Names are paths inside the encoder ("layer1_0/conv1/conv/kernel") and
    "agg_f/..." / "agg_b/..." inside each aggregator, the same in `MemDPC`
    and `ActionClassifier`. BatchNorm moving statistics are included.
    """
    weights = _relative_weights(model.encoder.layer, "backbone/")
    for aggregator in model.aggregators:
        weights.update(_relative_weights(aggregator, aggregator.name + "/"))
    return weights


def copy_pretrained_weights(classifier, pretrained, source="the checkpoint"):
    """Copies the encoder and aggregator weights of `pretrained`, strictly.

    Every encoder and aggregator weight of the classifier must have a
    weight of the same name and shape in `pretrained`, and every encoder and
    aggregator weight of `pretrained` must be used; otherwise nothing is
    copied and the error lists each missing, unused and mis-shaped weight.
    The predictor (phi) and the memory are pretraining-only and ignored.

    Args:
        classifier: a built `ActionClassifier`.
        pretrained: a built `MemDPC` (or `ActionClassifier`).
        source: names the checkpoint in the error, e.g. its path.
    """
    expected = pretrained_weight_map(classifier)
    available = pretrained_weight_map(pretrained)
    problems = []
    missing = [name for name in expected if name not in available]
    unused = [name for name in available if name not in expected]
    if missing:
        problems.append(f"missing weights: {', '.join(missing)}")
    if unused:
        problems.append(f"unused weights: {', '.join(unused)}")
    for name, variable in expected.items():
        if name in available and tuple(available[name].shape) != tuple(variable.shape):
            problems.append(
                f"{name} has shape {tuple(available[name].shape)} in the checkpoint, "
                f"{tuple(variable.shape)} in the classifier"
            )
    if problems:
        raise CheckpointError(f"{source} does not fit the classifier: {'; '.join(problems)}")
    for name, variable in expected.items():
        variable.assign(available[name])
