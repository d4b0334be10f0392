"""A `Model.fit`-like training loop for strategies where Keras 3 fit fails.

Keras 3's `Model.fit` fails under `tf.distribute.MultiWorkerMirroredStrategy`
(keras-team/keras#20585: a PerReplica value reaches `strategy.reduce` while
the model is built symbolically, then "Invalid reduction dimension 0" in
`reduce_per_replica`). A plain custom loop, `experimental_distribute_dataset`
plus `strategy.run` inside a `tf.function`, works unpatched, so
`distributed_fit` runs the model's own `train_step` that way and drives the
Keras callbacks as fit does. It is the path that
`train/pretrain.py --strategy=multi_worker` uses; it also runs under any other
tf.distribute strategy, or none.
"""

import keras
import tensorflow as tf


def is_chief(strategy):
    """Whether this process is the chief, the one that logs and saves.

    True for every strategy but MultiWorkerMirroredStrategy. There, the chief
    is the task of type "chief", or worker 0 when the cluster has no chief
    (or when there is no cluster at all).
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    resolver = strategy.cluster_resolver
    if resolver is None or resolver.task_type is None:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def _build(model, dataset, strategy):
    """Creates the model's and the optimizer's variables before tracing.

    Variables must exist before the step function runs in replica context;
    Keras fit creates them the same way. Compiled Keras metrics (`metrics=`
    in compile) are not built here: models that track their own metrics, as
    MemDPC does, need nothing more.
    """
    with strategy.scope():
        if not model.built:
            if callable(dataset):
                raise ValueError(
                    "build the model before distributed_fit when the data comes "
                    "from a dataset function"
                )
            x_spec = keras.utils.unpack_x_y_sample_weight(dataset.element_spec)[0]
            model.build(x_spec.shape)
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)


def _distribute(dataset, strategy):
    """A distributed dataset of a tf.data.Dataset or of a dataset function."""
    if callable(dataset):
        return strategy.distribute_datasets_from_function(dataset)
    return strategy.experimental_distribute_dataset(dataset)


def _make_step_function(model, strategy, step_method):
    """A tf.function that runs `step_method` (train or test) on each replica."""

    @tf.function
    def step(batch):
        strategy.run(step_method, args=(batch,))

    return step


def _evaluate(model, step, dataset, strategy):
    """One pass of `step` (the test step) over `dataset`; logs prefixed val_."""
    model.reset_metrics()
    for batch in strategy.experimental_distribute_dataset(dataset):
        step(batch)
    return {f"val_{name}": value for name, value in _metric_logs(model).items()}


def _next_batch(iterator, steps_per_epoch, epochs):
    """The next distributed batch; a clear error when the dataset runs out."""
    try:
        return next(iterator)
    except StopIteration:
        raise ValueError(
            f"The dataset ran out of batches: {steps_per_epoch} steps x "
            f"{epochs} epochs need that many batches (use dataset.repeat())."
        ) from None


def _metric_logs(model):
    """The model's metrics, read in cross-replica context, as floats."""
    return {metric.name: float(metric.result()) for metric in model.metrics}


def _train_epoch(model, step, iterator, callbacks, steps_per_epoch, epochs):
    """Runs one epoch's steps with their batch callbacks; returns its logs.

    Stops early when a callback sets `model.stop_training`.
    """
    logs = {}
    for batch_index in range(steps_per_epoch):
        callbacks.on_train_batch_begin(batch_index)
        step(_next_batch(iterator, steps_per_epoch, epochs))
        logs = _metric_logs(model)
        callbacks.on_train_batch_end(batch_index, logs)
        if model.stop_training:
            break
    return dict(logs)


def distributed_fit(
    model,
    dataset,
    epochs,
    steps_per_epoch,
    callbacks=None,
    initial_epoch=0,
    verbose=1,
    strategy=None,
    validation_data=None,
):
    """Trains `model` like `model.fit`, with `strategy.run` in a tf.function.

    Args:
        model: a compiled keras.Model, created and compiled under
            `strategy.scope()`.
        dataset: a tf.data.Dataset of global batches, repeated as needed,
            distributed with `strategy.experimental_distribute_dataset` (under
            multi-worker, the default auto-shard policy applies); or a
            function of a tf.distribute.InputContext returning that pipeline's
            per-replica batches (`strategy.distribute_datasets_from_function`;
            build the model first). Every epoch takes `steps_per_epoch`
            batches from one persistent iterator.
        epochs: the epoch to stop before, counted from 0 as in fit.
        steps_per_epoch: training steps per epoch.
        callbacks: keras.callbacks.Callback instances or a CallbackList.
        initial_epoch: epoch to start from, as in fit.
        verbose: "auto" or 1 progress bar, 0 silent, 2 one line per epoch;
            only the chief shows progress.
        strategy: the tf.distribute strategy; default the current one.
        validation_data: an optional finite tf.data.Dataset of global batches,
            evaluated with `model.test_step` after every epoch (logs val_*).

    Returns:
        The keras.callbacks.History of the run (`model.history`).
    """
    strategy = strategy or tf.distribute.get_strategy()
    verbose = 1 if verbose == "auto" else verbose
    if not isinstance(callbacks, keras.callbacks.CallbackList):
        callbacks = keras.callbacks.CallbackList(
            callbacks,
            add_history=True,
            add_progbar=verbose != 0 and is_chief(strategy),
            verbose=verbose,
            epochs=epochs,
            steps=steps_per_epoch,
            model=model,
        )
    _build(model, dataset, strategy)
    step = _make_step_function(model, strategy, model.train_step)
    test_step = _make_step_function(model, strategy, model.test_step)
    iterator = iter(_distribute(dataset, strategy))
    model.stop_training = False
    callbacks.on_train_begin()
    # keras.callbacks.BackupAndRestore sets this when it restores a backup.
    initial_epoch = model._initial_epoch or initial_epoch
    epoch_logs = None
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        callbacks.on_epoch_begin(epoch)
        epoch_logs = _train_epoch(
            model, step, iterator, callbacks, steps_per_epoch, epochs
        )
        if validation_data is not None and not model.stop_training:
            epoch_logs.update(_evaluate(model, test_step, validation_data, strategy))
        callbacks.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    if epochs > initial_epoch:
        model.optimizer.finalize_variable_values(model.trainable_weights)
    callbacks.on_train_end(logs=epoch_logs)
    return model.history
