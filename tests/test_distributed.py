"""MemDPC under tf.distribute: gradients, negatives, distributed_fit.

Logical CPU devices must be configured before TensorFlow initialises, and
multi-worker runs need processes of their own, so those tests run scripts in
subprocesses; the tiny models keep each one to seconds.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import tensorflow as tf

from keras_memdpc import MemDPC
from keras_memdpc.distributed_fit import distributed_fit

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 240

# Shared by every script: the tiny model and its random clips.
COMMON = """
import keras
import numpy as np
import tensorflow as tf
from keras_memdpc import MemDPC
from keras_memdpc.distributed_fit import distributed_fit, is_chief


def tiny_model(**kwargs):
    return MemDPC(network="resnet18", image_size=32, num_blocks=4,
                  block_length=3, pred_steps=2, memory_size=32, dropout=0.0,
                  seed=0, **kwargs)


def random_clips(count, seed):
    shape = (count, 4, 3, 32, 32, 3)
    return np.random.default_rng(seed).normal(size=shape).astype("float32")
"""

# Two logical CPU devices and a MirroredStrategy over them.
MIRRORED = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
STRATEGY = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
""" + COMMON + """

def halves(clips):
    # Replica r gets clips[2r:2r+2].
    return STRATEGY.experimental_distribute_values_from_function(
        lambda context: tf.constant(
            clips[2 * context.replica_id_in_sync_group:][:2]))
"""

GRADIENTS_SCRIPT = MIRRORED + """
import sys

with STRATEGY.scope():
    mirrored = tiny_model()
    mirrored.compile(optimizer=keras.optimizers.SGD(0.1))
    mirrored.build()
initial = sys.argv[1]
mirrored.save_weights(initial)
single = tiny_model()
single.build()
single.load_weights(initial)
clips = random_clips(4, seed=0)


def replica_gradients(clips):
    replicas = tf.distribute.get_replica_context().num_replicas_in_sync
    with tf.GradientTape() as tape:
        y_pred = mirrored(clips, training=True)
        loss = mirrored.compute_loss(y_pred=y_pred) / replicas
    return tape.gradient(loss, mirrored.trainable_variables)


@tf.function
def mirrored_gradients(clips):
    per_replica = STRATEGY.run(replica_gradients, args=(clips,))
    return [STRATEGY.reduce("SUM", g, axis=None) for g in per_replica]


# In a tf.function too: eager and graph gradients of the stem differ by ~3e-3.
@tf.function
def single_gradients(clips):
    with tf.GradientTape() as tape:
        loss = single.compute_loss(y_pred=single(clips, training=True))
    return tape.gradient(loss, single.trainable_variables)


first = single_gradients(tf.constant(clips[:2]))
second = single_gradients(tf.constant(clips[2:]))
expected = [(a.numpy() + b.numpy()) / 2 for a, b in zip(first, second)]
got = mirrored_gradients(halves(clips))
assert len(got) == len(expected) == len(mirrored.trainable_variables)
names = [v.path for v in single.trainable_variables]
for name, want, have in zip(names, expected, got):
    np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-5, err_msg=name)

# One fit step (2 clips per replica) is one SGD step on the mean gradient.
mirrored.load_weights(initial)
dataset = tf.data.Dataset.from_tensor_slices(clips).batch(4)
mirrored.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0)
for name, variable, weight, gradient in zip(
        names, mirrored.trainable_variables, single.trainable_variables,
        expected):
    np.testing.assert_allclose(
        variable.numpy(), weight.numpy() - 0.1 * gradient,
        rtol=1e-4, atol=1e-5, err_msg=name)
"""

GATHER_SCRIPT = MIRRORED + """
with STRATEGY.scope():
    model = tiny_model(gather_negatives=True)
    model.build()
clips = random_clips(4, seed=1)


@tf.function
def replica_losses(clips):
    return STRATEGY.run(
        lambda c: model.compute_loss(y_pred=model(c, training=False)),
        args=(clips,))


losses = [float(v) for v in
          STRATEGY.experimental_local_results(replica_losses(halves(clips)))]
outputs = [model(clips[2 * r:2 * r + 2], training=False) for r in range(2)]


def flat(tensor, direction):
    array = np.asarray(tensor[:, direction], dtype="float64")
    return array.reshape(-1, array.shape[-1])


def cross_entropy(rows, columns, labels):
    logits = rows @ columns.T
    peak = logits.max(axis=1)
    logsumexp = peak + np.log(np.exp(logits - peak[:, None]).sum(axis=1))
    return np.mean(logsumexp - logits[np.arange(len(rows)), labels])


for replica in range(2):
    gathered, local = 0.0, 0.0
    for direction in range(2):
        rows = flat(outputs[replica]["predictions"], direction)
        columns = [flat(out["targets"], direction) for out in outputs]
        positives = np.arange(len(rows))
        gathered += cross_entropy(
            rows, np.concatenate(columns), replica * len(rows) + positives)
        local += cross_entropy(rows, columns[replica], positives)
    np.testing.assert_allclose(losses[replica], gathered, rtol=1e-4)
    # The gathered negatives make a real difference to the loss.
    assert abs(gathered - local) > 1e-3 * abs(local), (gathered, local)
"""

FIT_SCRIPT = MIRRORED + """
import sys

with STRATEGY.scope():
    by_fit, by_loop = tiny_model(), tiny_model()
    for model in (by_fit, by_loop):
        model.compile(optimizer=keras.optimizers.SGD(0.01))
        model.build()
by_fit.save_weights(sys.argv[1])
by_loop.load_weights(sys.argv[1])
dataset = tf.data.Dataset.from_tensor_slices(random_clips(12, seed=2))
dataset = dataset.batch(4).repeat()
fitted = by_fit.fit(dataset, epochs=3, steps_per_epoch=1, verbose=0)
looped = distributed_fit(by_loop, dataset, epochs=3, steps_per_epoch=1,
                         verbose=0, strategy=STRATEGY)
for a, b in zip(by_fit.weights, by_loop.weights):
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5, err_msg=a.path)
assert fitted.history.keys() == looped.history.keys(), (fitted.history,
                                                        looped.history)
for key, values in fitted.history.items():
    np.testing.assert_allclose(looped.history[key], values, rtol=1e-5,
                               err_msg=key)
"""

WORKER_SCRIPT = """
import hashlib
import json
import os
import sys

index, ports, out = int(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
os.environ["TF_CONFIG"] = json.dumps({
    "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
    "task": {"type": "worker", "index": index},
})
import tensorflow as tf
strategy = tf.distribute.MultiWorkerMirroredStrategy()
""" + COMMON + """

class StepLosses(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(logs["loss"])


with strategy.scope():
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.SGD(0.01))
dataset = tf.data.Dataset.from_tensor_slices(random_clips(8, seed=3))
dataset = dataset.batch(4).repeat()
steps = StepLosses()
# All weights are hashed, BN moving statistics included: they are averaged
# over replicas, so both workers must hold the same copies.
history = distributed_fit(model, dataset, epochs=2, steps_per_epoch=2,
                          callbacks=[steps], verbose=0, strategy=strategy)
digest = hashlib.sha256()
for variable in model.weights:
    digest.update(variable.numpy().tobytes())
with open(out, "w") as file:
    json.dump({
        "chief": is_chief(strategy),
        "step_losses": steps.losses,
        "epoch_losses": history.history["loss"],
        "weights_sha256": digest.hexdigest(),
    }, file)
"""


def _environment():
    """The subprocesses' environment: quiet TF, this repo importable."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    environment.pop("TF_CONFIG", None)
    path = environment.get("PYTHONPATH")
    environment["PYTHONPATH"] = REPO + (os.pathsep + path if path else "")
    return environment


def _run_script(tmp_path, source, *args):
    """Runs `source` as a script in a fresh Python; fails with its stderr."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    result = subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr[-5000:]


def _free_ports(count):
    """`count` distinct free TCP ports on 127.0.0.1."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _wait_all(processes):
    """Exit codes of `processes`, None for those killed at the deadline."""
    deadline = time.monotonic() + TIMEOUT_S
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(timeout=max(0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            codes.append(None)
    return codes


def _tiny_model():
    """A compiled tiny MemDPC for the in-process tests."""
    model = MemDPC(
        network="resnet18",
        image_size=32,
        num_blocks=4,
        block_length=3,
        pred_steps=2,
        memory_size=32,
        dropout=0.0,
        seed=0,
    )
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    return model


def _clips_dataset(clips):
    """Batches of 4 clips, repeated forever."""
    return tf.data.Dataset.from_tensor_slices(clips).batch(4).repeat()


def test_mirrored_gradients_and_fit_step_match_single_device(tmp_path):
    _run_script(tmp_path, GRADIENTS_SCRIPT, tmp_path / "initial.weights.h5")


def test_gathered_negatives_loss_per_replica(tmp_path):
    _run_script(tmp_path, GATHER_SCRIPT)


def test_distributed_fit_matches_fit_under_mirrored_strategy(tmp_path):
    _run_script(tmp_path, FIT_SCRIPT, tmp_path / "initial.weights.h5")


def test_two_worker_processes_train_in_sync(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER_SCRIPT))
    ports = json.dumps(_free_ports(2))
    outputs = [tmp_path / f"worker_{index}.json" for index in range(2)]
    logs = [open(tmp_path / f"worker_{index}.log", "w+") for index in range(2)]
    workers = [
        subprocess.Popen(
            [sys.executable, str(script), str(index), ports, str(outputs[index])],
            env=_environment(),
            stdout=logs[index],
            stderr=subprocess.STDOUT,
        )
        for index in range(2)
    ]
    codes = _wait_all(workers)
    output = []
    for log in logs:
        log.seek(0)
        output.append(log.read()[-3000:])
        log.close()
    assert codes == [0, 0], "\n\n".join(output)
    results = [json.loads(path.read_text()) for path in outputs]
    assert [result["chief"] for result in results] == [True, False]
    for result in results:
        assert len(result["step_losses"]) == 4
        assert len(result["epoch_losses"]) == 2
        assert np.all(np.isfinite(result["step_losses"]))
    assert results[0]["step_losses"] == results[1]["step_losses"]
    assert results[0]["weights_sha256"] == results[1]["weights_sha256"]


def test_distributed_fit_without_strategy_trains():
    model = _tiny_model()
    clips = np.random.default_rng(4).normal(size=(8, 4, 3, 32, 32, 3))
    history = distributed_fit(
        model, _clips_dataset(clips.astype("float32")), epochs=2,
        steps_per_epoch=2, verbose=0,
    )
    assert history.epoch == [0, 1]
    assert set(history.history) == {"loss", "top1", "top5"}
    assert np.all(np.isfinite(history.history["loss"]))
    assert int(model.optimizer.iterations) == 4


def test_terminate_on_nan_stops_distributed_fit():
    model = _tiny_model()
    clips = np.full((4, 4, 3, 32, 32, 3), np.nan, dtype="float32")
    history = distributed_fit(
        model, _clips_dataset(clips), epochs=3, steps_per_epoch=2,
        callbacks=[keras.callbacks.TerminateOnNaN()], verbose=0,
    )
    assert model.stop_training
    assert int(model.optimizer.iterations) == 1
    assert history.epoch == [0]
    assert np.isnan(history.history["loss"][0])
