"""The dense contrastive (InfoNCE) loss of DPC / MemDPC, paper Eq. 6."""

import keras
from keras import ops


def _gather_across_replicas(columns):
    """All replicas' columns, and where this replica's rows start among them.

    Only under a tf.distribute strategy with more than one replica; elsewhere
    the columns are returned as they are with offset 0. Every replica must hold
    the same number of rows (batches with drop_remainder=True).
    """
    if keras.backend.backend() != "tensorflow":
        return columns, 0
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return columns, 0
    gathered = context.all_gather(columns, axis=0)
    offset = tf.cast(context.replica_id_in_sync_group, "int32") * tf.shape(
        columns
    )[0]
    return gathered, offset


def dense_contrastive_logits(
    predictions,
    targets,
    similarity="dot",
    temperature=1.0,
    gather_negatives=False,
):
    """Scores of every predicted position against every true position.

    Rows are the predictions and columns the true features, both flattened in
    (batch, step, height, width) order, so row i's positive is column i and
    every other column of the batch is a negative. The targets are not
    stopped: gradients flow into both sides, as in the reference.

    Args:
        predictions: [batch, steps, height, width, channels] predicted z_hat.
        targets: [batch, steps, height, width, channels] true features z.
        similarity: "dot" (the reference: plain dot product) or "cosine"
            (L2-normalised features divided by `temperature`).
        temperature: divisor of the cosine similarity.
        gather_negatives: under tf.distribute, score against the columns of
            all replicas instead of this replica's only.

    Returns:
        (logits [rows, columns] float32, labels [rows] int32: the positive's
        column for each row).
    """
    channels = predictions.shape[-1]
    rows = ops.reshape(ops.cast(predictions, "float32"), (-1, channels))
    columns = ops.reshape(ops.cast(targets, "float32"), (-1, channels))
    if similarity == "cosine":
        rows = ops.normalize(rows, axis=-1) / temperature
        columns = ops.normalize(columns, axis=-1)
    elif similarity != "dot":
        raise ValueError(f"similarity must be 'dot' or 'cosine', got {similarity!r}")
    offset = 0
    if gather_negatives:
        columns, offset = _gather_across_replicas(columns)
    labels = ops.arange(ops.shape(rows)[0], dtype="int32") + offset
    return ops.matmul(rows, ops.transpose(columns)), labels


def dense_contrastive_loss(logits, labels):
    """Mean cross-entropy of each row against its positive column."""
    positives = ops.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
    return ops.mean(ops.logsumexp(logits, axis=1) - positives)


def top_k_accuracy(logits, labels, k):
    """Fraction of rows whose positive column is among the k best scores."""
    k = min(k, logits.shape[1]) if logits.shape[1] is not None else k
    return ops.mean(ops.cast(ops.in_top_k(labels, logits, k), "float32"))
