"""keras_memdpc.convert against a PyTorch forward pass written from DESIGN.md.

The PyTorch side below is written from the equations of DESIGN.md section 2
with torch.nn.functional only, and reads its weights under the key names and
shapes of the original state_dict (checked against the reference key lists
when ../shared/reference is present).
"""

import importlib.util
import math
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_memdpc import convert

REFERENCE = pathlib.Path(__file__).resolve().parents[2] / "shared" / "reference"
DEPTHS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}
WIDTHS = (64, 128, 256, 256)
STRIDES = (1, 2, 2, 2)
GATES = ("reset_gate", "update_gate", "out_gate")
# Small clips in the real layout: 8 blocks of 5 frames, 64 px (a 2 x 2 grid).
CLIP = dict(image_size=64, num_blocks=8, block_length=5, pred_steps=3)
TOLERANCE = 1e-4


def original_shapes(network="resnet18", memory_size=1024, aggregators=("agg_f", "agg_b"),
                    running_stats=True, prediction_channels=None, classes=None):
    """{key: (shape, dtype)} of the original model's state_dict, in its order.

    DPC: aggregators ("agg",), prediction_channels 256, running_stats False,
    memory_size None (no 'mb'). Finetuned classifier: `classes` given; the
    pretraining keys without 'mb' and network_pred, plus final_bn.* [256 * D]
    and final_fc.1.weight [classes, 256 * D], final_fc.1.bias [classes], D the
    number of aggregators (512 for the bidirectional MemDPC).
    """
    shapes = {}
    if memory_size is not None and classes is None:
        shapes["mb"] = ((memory_size, 256), "float32")

    def batch_norm(prefix, channels):
        names = ["weight", "bias"]
        if running_stats:
            names += ["running_mean", "running_var"]
        for name in names:
            shapes[f"{prefix}.{name}"] = ((channels,), "float32")
        if running_stats:
            shapes[f"{prefix}.num_batches_tracked"] = ((), "int64")

    shapes["backbone.conv1.weight"] = ((64, 3, 1, 7, 7), "float32")
    batch_norm("backbone.bn1", 64)
    in_width = 64
    for stage, (width, stride, depth) in enumerate(zip(WIDTHS, STRIDES, DEPTHS[network]), 1):
        time_kernel = 3 if stage >= 3 else 1
        for index in range(depth):
            prefix = f"backbone.layer{stage}.{index}"
            shapes[f"{prefix}.conv1.weight"] = ((width, in_width, time_kernel, 3, 3), "float32")
            batch_norm(f"{prefix}.bn1", width)
            shapes[f"{prefix}.conv2.weight"] = ((width, width, time_kernel, 3, 3), "float32")
            batch_norm(f"{prefix}.bn2", width)
            if index == 0 and (stride != 1 or in_width != width):
                shapes[f"{prefix}.downsample.0.weight"] = ((width, in_width, 1, 1, 1), "float32")
                batch_norm(f"{prefix}.downsample.1", width)
            in_width = width
    for aggregator in aggregators:
        for cell in ("ConvGRUCell_00", "cell_list.0"):
            for gate in GATES:
                shapes[f"{aggregator}.{cell}.{gate}.weight"] = ((256, 512, 1, 1), "float32")
                shapes[f"{aggregator}.{cell}.{gate}.bias"] = ((256,), "float32")
    if classes is not None:
        width = 256 * len(aggregators)
        batch_norm("final_bn", width)
        shapes["final_fc.1.weight"] = ((classes, width), "float32")
        shapes["final_fc.1.bias"] = ((classes,), "float32")
        return shapes
    outputs = prediction_channels or memory_size
    shapes["network_pred.0.weight"] = ((256, 256, 1, 1), "float32")
    shapes["network_pred.0.bias"] = ((256,), "float32")
    shapes["network_pred.2.weight"] = ((outputs, 256, 1, 1), "float32")
    shapes["network_pred.2.bias"] = ((outputs,), "float32")
    return shapes


DPC = dict(memory_size=None, aggregators=("agg",), running_stats=False, prediction_channels=256)


def random_state_dict(shapes, seed=0):
    """Random numpy weights of the given shapes.

    Scales keep the features O(1) through the residual stages and the GRU out
    of saturation, and make the memory addressing peaked, so that the loss is
    far from its chance value.
    """
    rng = np.random.default_rng(seed)
    arrays = {}
    for key, (shape, dtype) in shapes.items():
        if dtype == "int64":
            arrays[key] = np.array(100, dtype="int64")
        elif key == "mb":
            arrays[key] = rng.normal(size=shape)
        elif key.endswith("running_var"):
            arrays[key] = rng.uniform(0.5, 2.0, shape)
        elif key.endswith("running_mean"):
            arrays[key] = rng.normal(0.0, 0.2, shape)
        elif len(shape) == 1 and key.endswith("weight"):  # BatchNorm scales
            arrays[key] = rng.uniform(0.4, 1.0, shape)
        elif len(shape) == 1:
            arrays[key] = rng.normal(0.0, 0.1, shape)
        else:
            fan_in = int(np.prod(shape[1:]))
            gain = 2.0 if key.startswith("backbone") else 1.0
            if key == "network_pred.2.weight" and "mb" in shapes:
                gain = 256.0
            arrays[key] = rng.normal(0.0, math.sqrt(gain / fan_in), shape)
        arrays[key] = arrays[key].astype(dtype)
    for key in [k for k in arrays if ".cell_list.0." in k]:
        arrays[key] = arrays[key.replace(".cell_list.0.", ".ConvGRUCell_00.")]
    return arrays


def relative_error(actual, expected):
    actual, expected = np.asarray(actual, "float64"), np.asarray(expected, "float64")
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def random_clips(batch=2, seed=1):
    shape = (batch, CLIP["num_blocks"], CLIP["block_length"], CLIP["image_size"],
             CLIP["image_size"], 3)
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


# === The PyTorch reference, from DESIGN.md section 2 ===


def torch_encoder(torch, weights, clips, network, batch_statistics, pool_time=True):
    """Pre-ReLU block features [batch, blocks, 256, h, w] (NCHW), averaged over time;
    with pool_time=False [batch, blocks, 256, time, h, w] before that average."""
    functional = torch.nn.functional
    batch, blocks, frames = clips.shape[:3]
    x = torch.from_numpy(clips).permute(0, 1, 5, 2, 3, 4).reshape(batch * blocks, 3, frames,
                                                                    *clips.shape[3:5])

    def conv(x, key, stride):
        kernel = weights[key]
        return functional.conv3d(x, kernel, stride=stride,
                                 padding=tuple(k // 2 for k in kernel.shape[2:]))

    def batch_norm(x, prefix):
        if batch_statistics:
            mean = variance = None
        else:
            mean, variance = weights[f"{prefix}.running_mean"], weights[f"{prefix}.running_var"]
        return functional.batch_norm(x, mean, variance, weights[f"{prefix}.weight"],
                                     weights[f"{prefix}.bias"], training=batch_statistics,
                                     eps=1e-5)

    x = functional.relu(batch_norm(conv(x, "backbone.conv1.weight", (1, 2, 2)), "backbone.bn1"))
    x = functional.max_pool3d(x, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
    depths = DEPTHS[network]
    for stage, (stage_stride, depth) in enumerate(zip(STRIDES, depths), 1):
        for index in range(depth):
            prefix = f"backbone.layer{stage}.{index}"
            s = stage_stride if index == 0 else 1
            stride = (s, s, s) if stage >= 3 else (1, s, s)
            y = functional.relu(batch_norm(conv(x, f"{prefix}.conv1.weight", stride),
                                           f"{prefix}.bn1"))
            y = batch_norm(conv(y, f"{prefix}.conv2.weight", 1), f"{prefix}.bn2")
            shortcut = x
            if f"{prefix}.downsample.0.weight" in weights:
                shortcut = batch_norm(
                    functional.conv3d(x, weights[f"{prefix}.downsample.0.weight"], stride=stride),
                    f"{prefix}.downsample.1",
                )
            x = y + shortcut
            if not (stage == 4 and index == depth - 1):
                x = functional.relu(x)
    if not pool_time:
        return x.reshape(batch, blocks, *x.shape[1:])
    x = functional.avg_pool3d(x, (math.ceil(frames / 4), 1, 1), stride=1)
    assert x.shape[2] == 1
    return x[:, :, 0].reshape(batch, blocks, *x.shape[1:2], *x.shape[3:])


def torch_gru_step(torch, weights, prefix, x, h):
    functional = torch.nn.functional

    def gate(name, inputs):
        return functional.conv2d(inputs, weights[f"{prefix}.ConvGRUCell_00.{name}.weight"],
                                 weights[f"{prefix}.ConvGRUCell_00.{name}.bias"])

    update = torch.sigmoid(gate("update_gate", torch.cat([x, h], 1)))
    reset = torch.sigmoid(gate("reset_gate", torch.cat([x, h], 1)))
    candidate = torch.tanh(gate("out_gate", torch.cat([x, reset * h], 1)))
    return h * (1 - update) + candidate * update


def torch_gru(torch, weights, prefix, sequence, h=None):
    h = torch.zeros_like(sequence[:, 0]) if h is None else h
    for step in range(sequence.shape[1]):
        h = torch_gru_step(torch, weights, prefix, sequence[:, step], h)
    return h


def torch_predict(torch, weights, h):
    """z_hat: softmax(phi(h)) @ M (MemDPC) or phi(h) itself (DPC)."""
    functional = torch.nn.functional
    hidden = functional.relu(functional.conv2d(h, weights["network_pred.0.weight"],
                                               weights["network_pred.0.bias"]))
    out = functional.conv2d(hidden, weights["network_pred.2.weight"],
                            weights["network_pred.2.bias"])
    if "mb" not in weights:
        return out
    return torch.einsum("bkhw,kc->bchw", torch.softmax(out, dim=1), weights["mb"])


def torch_reference(numpy_weights, clips, network, aggregators, batch_statistics=False,
                    pred_steps=3):
    """(block features [B, N, h, w, C], embedding [B, 256 * D], loss) in numpy."""
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    weights = {key: torch.from_numpy(np.asarray(value)) for key, value in numpy_weights.items()}
    with torch.no_grad():
        features = torch_encoder(torch, weights, clips, network, batch_statistics)
        observed = features.shape[1] - pred_steps
        loss, contexts = 0.0, []
        for direction, prefix in enumerate(aggregators):
            sequence = features if direction == 0 else features.flip(1)
            hidden = torch_gru(torch, weights, prefix, functional.relu(sequence[:, :observed]))
            predictions = []
            for _ in range(pred_steps):
                z_hat = torch_predict(torch, weights, hidden)
                predictions.append(z_hat)
                hidden = torch_gru_step(torch, weights, prefix, functional.relu(z_hat), hidden)
            rows = torch.stack(predictions, 1).permute(0, 1, 3, 4, 2).reshape(-1, 256)
            columns = sequence[:, observed:].permute(0, 1, 3, 4, 2).reshape(-1, 256)
            loss = loss + functional.cross_entropy(rows @ columns.T, torch.arange(len(rows)))
            context = torch_gru(torch, weights, prefix, functional.relu(sequence))
            contexts.append(context.mean(dim=(2, 3)))
        return (features.permute(0, 1, 3, 4, 2).numpy(), torch.cat(contexts, 1).numpy(),
                float(loss))


def torch_classifier(numpy_weights, clips, network, aggregators, relu_before_mean=True):
    """(context [B, 256 * D], logits [B, classes]) of the finetuned classifier, in numpy.

    Inference mode: BatchNorm with running statistics, dropout off. The
    features are relu(encoder before temporal pooling) averaged over time
    (relu_before_mean=False swaps the two, to show that the test tells them apart).
    """
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    weights = {key: torch.from_numpy(np.asarray(value)) for key, value in numpy_weights.items()}
    with torch.no_grad():
        features = torch_encoder(torch, weights, clips, network, False, pool_time=False)
        if relu_before_mean:
            blocks = functional.relu(features).mean(dim=3)
        else:
            blocks = functional.relu(features.mean(dim=3))
        contexts = []
        for direction, prefix in enumerate(aggregators):
            sequence = blocks if direction == 0 else blocks.flip(1)
            contexts.append(torch_gru(torch, weights, prefix, sequence).mean(dim=(2, 3)))
        context = torch.cat(contexts, 1)
        normalised = functional.batch_norm(
            context, weights["final_bn.running_mean"], weights["final_bn.running_var"],
            weights["final_bn.weight"], weights["final_bn.bias"], training=False, eps=1e-5)
        logits = functional.linear(normalised, weights["final_fc.1.weight"],
                                   weights["final_fc.1.bias"])
        return context.numpy(), logits.numpy()


def save_checkpoint(torch, numpy_weights, path, prefix=""):
    state_dict = {prefix + key: torch.from_numpy(np.asarray(value))
                  for key, value in numpy_weights.items()}
    torch.save({"epoch": 1, "state_dict": state_dict, "best_acc": 0.5, "iteration": 10}, path)
    return path


def keras_outputs(model, clips, batch_statistics=False):
    """(block features, embedding, loss) of the converted model in inference mode."""
    features = model.encoder(clips, training=batch_statistics)
    loss = model.compute_loss(y_pred=model(clips, training=False))
    return np.asarray(features), np.asarray(model.embed(clips)), float(loss)


def assert_exact(model, weights, network, aggregators, batch_statistics=False):
    clips = random_clips()
    expected = torch_reference(weights, clips, network, aggregators, batch_statistics)
    actual = keras_outputs(model, clips, batch_statistics)
    errors = [relative_error(a, e) for a, e in zip(actual, expected)]
    rows = clips.shape[0] * CLIP["pred_steps"] * 2 * 2  # batch x steps x the 2 x 2 grid
    chance = len(aggregators) * math.log(rows)
    assert max(errors) <= TOLERANCE, f"relative errors (features, embedding, loss) {errors}"
    # The predictions matter to the loss: it is far from its chance value.
    assert abs(expected[2] - chance) > 1.0, (expected[2], chance)


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


# === Tests ===


@pytest.mark.parametrize("network, name", [("resnet18", "r18"), ("resnet34", "r34")])
def test_generated_keys_are_those_of_the_reference_files(network, name):
    path = REFERENCE / f"memdpc_{name}_state_dict_keys.txt"
    if not path.is_file():
        pytest.skip(f"no reference key list at {path}")
    listed = {}
    for line in path.read_text().splitlines():
        parts = line.rsplit(" ", 1)
        if len(parts) == 2 and "(" in parts[0] and not line.startswith("num "):
            key, shape = parts[0].split(" ", 1)
            listed[key] = (tuple(int(s) for s in shape.strip("()").split(",") if s), parts[1])
    assert list(original_shapes(network)) == list(listed)
    assert original_shapes(network) == listed


@pytest.mark.parametrize(
    "network, memory_size, aggregators",
    [("resnet18", 1024, ("agg_f", "agg_b")), ("resnet34", 64, ("agg_f", "agg_b")),
     ("resnet18", 16, ("agg_f",))],
)
def test_pretraining_checkpoint_reproduces_the_original(torch, tmp_path, network, memory_size,
                                                        aggregators):
    weights = random_state_dict(original_shapes(network, memory_size, aggregators))
    path = save_checkpoint(torch, weights, tmp_path / "model_best.pth.tar")
    model = convert.convert_checkpoint(path, **CLIP)
    config = model.get_config()
    assert (config["network"], config["memory_size"], config["bidirectional"]) == (
        network, memory_size, len(aggregators) == 2)
    assert config["predictor"] == "memory" and config["batch_norm_statistics"] == "moving"
    assert_exact(model, weights, network, aggregators)


def test_dpc_checkpoint_reproduces_the_original_with_batch_statistics(torch, tmp_path):
    weights = random_state_dict(original_shapes(**DPC))
    path = save_checkpoint(torch, weights, tmp_path / "dpc.pth.tar", prefix="module.")
    model = convert.convert_checkpoint(path, **CLIP)
    config = model.get_config()
    assert config["predictor"] == "regression" and config["batch_norm_statistics"] == "batch"
    assert not config["bidirectional"] and model.memory is None
    assert_exact(model, weights, "resnet18", ("agg",), batch_statistics=True)


def test_module_prefix_and_bare_state_dict_are_read_alike(torch, tmp_path):
    weights = random_state_dict(original_shapes(memory_size=8))
    plain = convert.load_state_dict(save_checkpoint(torch, weights, tmp_path / "a.pth"))
    path = tmp_path / "bare.pth"
    torch.save({"module." + k: torch.from_numpy(v) for k, v in weights.items()}, path)
    load = convert.load_state_dict(path)
    assert list(load) == list(plain) == list(weights)
    for key in weights:
        np.testing.assert_array_equal(load[key], weights[key])


def test_default_image_size_follows_the_released_models():
    weights = random_state_dict(original_shapes("resnet18", memory_size=8, aggregators=("agg_f",)))
    assert convert.model_from_state_dict(weights).image_size == 128
    assert convert.model_from_state_dict(weights, image_size=64).image_size == 64


def test_conv_and_gru_layouts():
    weights = random_state_dict(original_shapes("resnet18", memory_size=8, aggregators=("agg_f",)))
    model = convert.model_from_state_dict(weights, **CLIP)
    encoder = model.encoder.layer
    conv = weights["backbone.layer3.0.conv1.weight"]  # [out, in, t, h, w]
    kernel = encoder.blocks[4].conv1.conv.kernel.numpy()  # [t, h, w, in, out]
    assert kernel[2, 0, 1, 5, 7] == conv[7, 5, 2, 0, 1]
    gate = weights["agg_f.ConvGRUCell_00.out_gate.weight"]
    gru = model.aggregators[0].cell.out_gate.kernel.numpy()
    assert gru[0, 0, 300, 3] == gate[3, 300, 0, 0]
    np.testing.assert_array_equal(model.memory.memory.numpy(), weights["mb"])
    np.testing.assert_array_equal(encoder.blocks[1].bn2.moving_variance.numpy(),
                                  weights["backbone.layer1.1.bn2.running_var"])


def drop_last_block(weights):
    for key in [k for k in weights if k.startswith("backbone.layer4.1.")]:
        del weights[key]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda w: w.update({"backbone.layer5.0.conv1.weight": np.zeros((1,))}),
         "'backbone.layer5.0.conv1.weight' fills no weight"),
        (lambda w: w.pop("backbone.layer2.0.downsample.1.running_mean"),
         "no checkpoint key 'backbone.layer2.0.downsample.1.running_mean'"),
        (lambda w: w.update({"agg_f.cell_list.0.reset_gate.bias": np.zeros(256, "float32")}),
         "'agg_f.cell_list.0.reset_gate.bias' differs from 'agg_f.ConvGRUCell_00.reset_gate.bias'"),
        (lambda w: w.update({"network_pred.2.bias": np.zeros(9, "float32")}),
         "'network_pred.2.bias' of shape \\(9,\\)"),
        (drop_last_block, "\\(2, 2, 2, 1\\) match no supported encoder"),
    ],
)
def test_unmatched_keys_are_errors_naming_them(change, message):
    weights = random_state_dict(original_shapes(memory_size=8))
    change(weights)
    with pytest.raises(convert.CheckpointError, match=message):
        convert.model_from_state_dict(weights, **CLIP)


def test_a_model_weight_left_unfilled_is_an_error(monkeypatch):
    pairs = convert.weight_pairs
    monkeypatch.setattr(convert, "weight_pairs", lambda model, names: pairs(model, names)[:-1])
    weights = random_state_dict(original_shapes(memory_size=8))
    with pytest.raises(convert.CheckpointError, match=r"weight \S*/mb/memory has no checkpoint"):
        convert.model_from_state_dict(weights, **CLIP)


def test_checkpoint_errors_name_the_file(torch, tmp_path):
    weights = random_state_dict(original_shapes(memory_size=8))
    weights["extra.weight"] = np.zeros(3, "float32")
    path = save_checkpoint(torch, weights, tmp_path / "extra.pth.tar")
    with pytest.raises(convert.CheckpointError, match=f"{path}: .*'extra.weight'"):
        convert.convert_checkpoint(path)
    garbage = tmp_path / "garbage.pth.tar"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(convert.CheckpointError, match=f"{garbage}: not a readable"):
        convert.load_state_dict(garbage)


@pytest.mark.parametrize(
    "aggregators, classes, prefix",
    [(("agg_f", "agg_b"), 101, ""), (("agg",), 7, "module.")],
)
def test_finetuned_classifier_checkpoint_reproduces_the_original(torch, tmp_path, aggregators,
                                                                 classes, prefix):
    weights = random_state_dict(original_shapes(aggregators=aggregators, classes=classes))
    path = save_checkpoint(torch, weights, tmp_path / "finetuned.pth.tar", prefix=prefix)
    model = convert.convert_checkpoint(path, image_size=64, num_blocks=8, block_length=5)
    config = model.get_config()
    assert type(model).__name__ == "ActionClassifier"
    assert (config["num_classes"], config["bidirectional"], config["protocol"]) == (
        classes, len(aggregators) == 2, "finetune")
    np.testing.assert_array_equal(model.final_fc.kernel.numpy(), weights["final_fc.1.weight"].T)
    clips = random_clips()
    expected = torch_classifier(weights, clips, "resnet18", aggregators)
    actual = (model.context(clips, training=False), model(clips, training=False))
    errors = [relative_error(a, e) for a, e in zip(actual, expected)]
    assert max(errors) <= TOLERANCE, f"relative errors (context, logits) {errors}"
    # The comparison is sharp enough to see where the ReLU goes.
    _, swapped = torch_classifier(weights, clips, "resnet18", aggregators, relu_before_mean=False)
    assert relative_error(swapped, expected[1]) > 100 * TOLERANCE


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda w: w.pop("final_fc.1.bias"), "no checkpoint key 'final_fc.1.bias'"),
        (lambda w: w.update({"mb": np.zeros((8, 256), "float32")}), "'mb' fills no weight"),
        (lambda w: w.update({"final_bn.running_var": np.ones(256, "float32")}),
         "'final_bn.running_var' of shape \\(256,\\)"),
        (lambda w: w.pop("final_fc.1.weight"), "without 'final_fc.1.weight'"),
    ],
)
def test_unmatched_classifier_keys_are_errors_naming_them(change, message):
    weights = random_state_dict(original_shapes(classes=5))
    change(weights)
    with pytest.raises(convert.CheckpointError, match=message):
        convert.model_from_state_dict(weights, image_size=64)


def test_classifier_without_running_statistics_is_rejected():
    weights = random_state_dict(original_shapes(aggregators=("agg",), running_stats=False,
                                                classes=5))
    with pytest.raises(convert.CheckpointError, match="no running statistics"):
        convert.model_from_state_dict(weights, image_size=64)


def test_command_line_writes_a_loadable_keras_file(torch, tmp_path):
    weights = random_state_dict(original_shapes(classes=5))
    path = save_checkpoint(torch, weights, tmp_path / "finetuned.pth.tar")
    output = tmp_path / "classifier.keras"
    result = subprocess.run(
        [sys.executable, "-m", "keras_memdpc.convert", f"--checkpoint={path}",
         f"--output={output}", "--image_size=64"],
        capture_output=True, text=True, timeout=300,
        cwd=pathlib.Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    restored = keras.saving.load_model(output)
    assert type(restored).__name__ == "ActionClassifier"
    clips = random_clips()
    _, expected = torch_classifier(weights, clips, "resnet18", ("agg_f", "agg_b"))
    assert relative_error(restored(clips, training=False), expected) <= TOLERANCE


def test_imports_without_torch_and_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)
    # A separate copy of the module: reloading keras_memdpc.convert itself would
    # give it a new CheckpointError class, unlike the one other modules imported.
    spec = importlib.util.find_spec("keras_memdpc.convert")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(ImportError, match=r"pip install keras_memdpc\[torch\]"):
        module.load_state_dict(tmp_path / "any.pth.tar")
