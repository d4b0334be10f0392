"""The MemDPC model: encoder, ConvGRU aggregators, memory, dense contrastive training.

With predictor="regression" (and batch_norm_statistics="batch") it is also the DPC model
of the same authors (Han, Xie, Zisserman, ICCV Workshops 2019), which regresses z_hat.
"""

import keras
from keras import layers, ops

from keras_memdpc.block_distributed import BlockDistributed
from keras_memdpc.conv_gru import ConvGRU
from keras_memdpc.dense_contrastive_loss import (
    dense_contrastive_logits,
    dense_contrastive_loss,
    top_k_accuracy,
)
from keras_memdpc.memory_bank import MemoryBank
from keras_memdpc.resnet_2d3d import ResNet2D3D

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PREDICTORS = ("memory", "regression")
BATCH_NORM_STATISTICS = ("moving", "batch")


def normalize_frames(frames):
    """uint8 RGB frames -> float32 normalised with the ImageNet mean and std."""
    frames = ops.cast(frames, "float32") / 255.0
    return (frames - ops.array(IMAGENET_MEAN)) / ops.array(IMAGENET_STD)


@keras.saving.register_keras_serializable(package="keras_memdpc")
class MemDPC(keras.Model):
    """Memory-augmented Dense Predictive Coding (Han, Xie, Zisserman, ECCV 2020).

    A clip of `num_blocks` blocks of `block_length` frames is encoded block by
    block (`ResNet2D3D`, blocks folded into the batch); a `ConvGRU` aggregates
    relu(z_1..z_t) into the context c_t; phi (two 1x1 convs) gives logits over
    the `MemoryBank` slots, whose softmax-weighted read is the prediction
    z_hat of the next block; the GRU steps on relu(z_hat) to predict
    `pred_steps` blocks. The bidirectional model also predicts the first
    blocks from the time-reversed sequence with a second GRU, sharing phi and
    the memory. Training minimises the dense contrastive loss of Eq. 6, summed
    over directions as the released code does.

    With predictor="regression" the model is DPC (the authors' earlier model,
    whose checkpoints `keras_memdpc.convert` imports): phi is two 1x1 convs
    256 -> 256 -> 256 whose output is z_hat itself, with no memory. DPC's
    BatchNorm keeps no running statistics and so always normalises with the
    statistics of the current batch, at inference too:
    batch_norm_statistics="batch" does the same in the encoder (its moving
    statistics are then still updated, but never read). The encoder's
    BatchNorm layers fall back to their moving statistics when the encoder is
    frozen (trainable=False), as every Keras BatchNormalization does.

    Args:
        network: encoder depth, "resnet18" or "resnet34".
        image_size: frame height and width (128 or 224 in the paper).
        num_blocks: blocks per clip (8).
        block_length: frames per block (5).
        pred_steps: blocks predicted (3).
        memory_size: memory slots k (1024); unused by the "regression" predictor.
        bidirectional: add the backward direction (the released model).
        gru_kernel_size: kernel of the GRU gates (1).
        dropout: dropout on the GRU's carried state in training (0.1).
        similarity: "dot" (the reference) or "cosine" with `temperature`.
        temperature: divisor of the cosine similarity.
        gather_negatives: under tf.distribute, contrast against the features of
            all replicas; the reference uses each replica's sub-batch only.
        seed: seed of the GRU dropout.
        predictor: "memory" (MemDPC: z_hat = softmax(phi(c)) @ M) or
            "regression" (DPC: z_hat = phi(c)).
        batch_norm_statistics: what the encoder's BatchNorm normalises with
            outside training: "moving" (its moving statistics; MemDPC) or
            "batch" (the current batch's, always; DPC).

    Input: clips [batch, num_blocks, block_length, image_size, image_size, 3],
        float32 normalised with the ImageNet mean and std, or raw uint8 RGB
        (then normalised on the device).
    Output of `call`: a dict with, for D directions (2 or 1) and the grid
        h = w = image_size / 32:
        "predictions": z_hat [batch, D, pred_steps, h, w, 256],
        "targets": the true pre-ReLU features z [batch, D, pred_steps, h, w, 256]
            (for the backward direction, blocks in reversed order),
        "addressing": memory probabilities p [batch, D, pred_steps, h, w, k]
            (only with the "memory" predictor).

    Example:
        model = MemDPC(network="resnet18", image_size=128)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        model.fit(clips_dataset, epochs=10)
        embeddings = model.embed(clips)  # [batch, 512]
    """

    def __init__(
        self,
        network="resnet18",
        image_size=128,
        num_blocks=8,
        block_length=5,
        pred_steps=3,
        memory_size=1024,
        bidirectional=True,
        gru_kernel_size=1,
        dropout=0.1,
        similarity="dot",
        temperature=0.07,
        gather_negatives=False,
        seed=None,
        predictor="memory",
        batch_norm_statistics="moving",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 0 < pred_steps < num_blocks:
            raise ValueError(
                f"pred_steps must be in [1, num_blocks), got {pred_steps} with "
                f"num_blocks={num_blocks}"
            )
        if similarity not in ("dot", "cosine"):
            raise ValueError(f"similarity must be 'dot' or 'cosine', got {similarity!r}")
        if predictor not in PREDICTORS:
            raise ValueError(f"predictor must be one of {PREDICTORS}, got {predictor!r}")
        if batch_norm_statistics not in BATCH_NORM_STATISTICS:
            raise ValueError(
                f"batch_norm_statistics must be one of {BATCH_NORM_STATISTICS}, "
                f"got {batch_norm_statistics!r}"
            )
        # === Layers ===
        self.encoder = BlockDistributed(ResNet2D3D(network), name="backbone")
        feature_dim = self.encoder.layer.output_channels
        self.aggregators = [
            ConvGRU(
                feature_dim, gru_kernel_size, dropout, seed=seed, name=f"agg_{d}"
            )
            for d in ("f", "b")[: 2 if bidirectional else 1]
        ]
        self.phi = keras.Sequential(
            [
                layers.Conv2D(
                    feature_dim,
                    1,
                    activation="relu",
                    kernel_initializer=keras.initializers.Orthogonal(0.1),
                    name="conv1",
                ),
                layers.Conv2D(
                    memory_size if predictor == "memory" else feature_dim,
                    1,
                    kernel_initializer=keras.initializers.Orthogonal(0.1),
                    name="conv2",
                ),
            ],
            name="network_pred",
        )
        self.memory = None
        if predictor == "memory":
            self.memory = MemoryBank(memory_size, feature_dim, name="mb")
        self.top1_tracker = keras.metrics.Mean(name="top1")
        self.top5_tracker = keras.metrics.Mean(name="top5")
        # === Config ===
        self.network = network
        self.image_size = image_size
        self.num_blocks = num_blocks
        self.block_length = block_length
        self.pred_steps = pred_steps
        self.memory_size = memory_size
        self.bidirectional = bidirectional
        self.gru_kernel_size = gru_kernel_size
        self.dropout = dropout
        self.similarity = similarity
        self.temperature = temperature
        self.gather_negatives = gather_negatives
        self.seed = seed
        self.predictor = predictor
        self.batch_norm_statistics = batch_norm_statistics

    @property
    def clip_shape(self):
        """Shape of one clip: (num_blocks, block_length, size, size, 3)."""
        size = self.image_size
        return (self.num_blocks, self.block_length, size, size, 3)

    def build(self, input_shape=None):
        """Creates every weight for clips of `clip_shape`."""
        clips = keras.KerasTensor((None, *self.clip_shape))
        self._block_features(clips)
        grid = self.encoder.compute_output_shape(clips.shape)[2:]
        for aggregator in self.aggregators:
            aggregator.build((None, self.num_blocks, *grid))
        self.phi.build((None, *grid))
        if self.memory is not None:
            self.memory.build((None, *grid[:2], self.memory_size))

    def _block_features(self, clips, training=None):
        """Pre-ReLU features of every block: [batch, blocks, h, w, 256]."""
        if not keras.backend.is_float_dtype(clips.dtype):
            clips = normalize_frames(clips)
        if self.batch_norm_statistics == "batch":
            training = True
        return self.encoder(ops.cast(clips, self.compute_dtype), training=training)

    def _predict(self, hidden):
        """(z_hat [batch, h, w, 256], addressing p [batch, h, w, k] or None)."""
        if self.memory is None:
            return self.phi(hidden), None
        return self.memory(self.phi(hidden))

    def _directions(self, features):
        """(aggregator, block sequence) per direction; backward is reversed."""
        sequences = [features, ops.flip(features, axis=1)]
        return list(zip(self.aggregators, sequences))

    def call(self, clips, training=None):
        features = self._block_features(clips, training=training)
        observed = self.num_blocks - self.pred_steps
        outputs = {"predictions": [], "targets": [], "addressing": []}
        for aggregator, sequence in self._directions(features):
            hidden = aggregator(ops.relu(sequence[:, :observed]), training=training)
            predictions, addressing = [], []
            for step in range(self.pred_steps):
                z_hat, p = self._predict(hidden)
                predictions.append(z_hat)
                if p is not None:
                    addressing.append(p)
                if step + 1 < self.pred_steps:
                    hidden = aggregator.cell(
                        ops.relu(z_hat), hidden, training=training
                    )
            outputs["predictions"].append(ops.stack(predictions, axis=1))
            if addressing:
                outputs["addressing"].append(ops.stack(addressing, axis=1))
            outputs["targets"].append(sequence[:, observed:])
        return {
            key: ops.stack(value, axis=1) for key, value in outputs.items() if value
        }

    def embed(self, clips, training=False):
        """The video embedding used downstream: the spatially pooled context.

        The GRU runs over all blocks (both directions when bidirectional, the
        backward one on the reversed blocks) on relu(features); the last states
        are averaged over space and concatenated.

        Input: clips as for `call`. Output: [batch, 256 * D].
        """
        features = self._block_features(clips, training=training)
        contexts = [
            ops.mean(aggregator(ops.relu(sequence), training=training), axis=(1, 2))
            for aggregator, sequence in self._directions(features)
        ]
        return ops.concatenate(contexts, axis=-1)

    def pretext_logits(self, y_pred, direction):
        """(logits, labels) of the M-way classification of one direction."""
        return dense_contrastive_logits(
            y_pred["predictions"][:, direction],
            y_pred["targets"][:, direction],
            self.similarity,
            self.temperature,
            self.gather_negatives,
        )

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The dense contrastive loss summed over directions (per replica).

        Also updates the top-1 / top-5 trackers, averaged over directions.
        """
        total, top1, top5 = 0.0, 0.0, 0.0
        directions = len(self.aggregators)
        for direction in range(directions):
            logits, labels = self.pretext_logits(y_pred, direction)
            total = total + dense_contrastive_loss(logits, labels)
            top1 = top1 + top_k_accuracy(logits, labels, 1)
            top5 = top5 + top_k_accuracy(logits, labels, 5)
        self.top1_tracker.update_state(top1 / directions)
        self.top5_tracker.update_state(top5 / directions)
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return {metric.name: metric.result() for metric in self.metrics}

    def train_step(self, *args):
        if keras.backend.backend() != "tensorflow":
            return super().train_step(*args)
        return self._tensorflow_train_step(*args)

    def test_step(self, *args):
        if keras.backend.backend() != "tensorflow":
            return super().test_step(*args)
        return self._tensorflow_test_step(*args)

    def _tensorflow_train_step(self, data):
        """One step under tf.distribute: each replica's loss over its sub-batch.

        Gradients are summed over replicas, so the loss is divided by the
        number of replicas to give the gradient of the mean.
        """
        import tensorflow as tf

        clips = keras.utils.unpack_x_y_sample_weight(data)[0]
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            y_pred = self(clips, training=True)
            loss = self.compute_loss(x=clips, y_pred=y_pred, training=True)
            scaled = self.optimizer.scale_loss(loss / replicas)
        gradients = tape.gradient(scaled, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        self._loss_tracker.update_state(loss)
        return self.compute_metrics(clips, None, y_pred)

    def _tensorflow_test_step(self, data):
        clips = keras.utils.unpack_x_y_sample_weight(data)[0]
        y_pred = self(clips, training=False)
        self._loss_tracker.update_state(
            self.compute_loss(x=clips, y_pred=y_pred, training=False)
        )
        return self.compute_metrics(clips, None, y_pred)

    def get_config(self):
        return {
            **super().get_config(),
            "network": self.network,
            "image_size": self.image_size,
            "num_blocks": self.num_blocks,
            "block_length": self.block_length,
            "pred_steps": self.pred_steps,
            "memory_size": self.memory_size,
            "bidirectional": self.bidirectional,
            "gru_kernel_size": self.gru_kernel_size,
            "dropout": self.dropout,
            "similarity": self.similarity,
            "temperature": self.temperature,
            "gather_negatives": self.gather_negatives,
            "seed": self.seed,
            "predictor": self.predictor,
            "batch_norm_statistics": self.batch_norm_statistics,
        }
