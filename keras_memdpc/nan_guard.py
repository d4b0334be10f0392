"""Stops training at the first non-finite loss, before anything saves it."""

import math

import keras


class NaNLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class RaiseOnNaN(keras.callbacks.Callback):
    """Raises `NaNLossError` as soon as a batch logs a non-finite loss.

    keras.callbacks.TerminateOnNaN only asks fit to stop, and fit still runs
    the epoch-end callbacks, which would checkpoint the broken weights over
    the last good ones. Raising aborts fit before any of them runs. Put this
    callback first.

    Args:
        checkpoint_hint: where the last good checkpoint is, for the message.
    """

    def __init__(self, checkpoint_hint=""):
        super().__init__()
        self.checkpoint_hint = checkpoint_hint
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss):
            raise NaNLossError(
                f"the training loss became {loss} at epoch {self.epoch + 1}, "
                f"step {batch + 1}; training stopped and the last good "
                f"checkpoint is kept{self.checkpoint_hint}. Try a lower --lr, "
                "or fp32 instead of fp16."
            )
