"""Imports the original PyTorch MemDPC and DPC checkpoints into Keras models.

Pretraining checkpoints become a `MemDPC`; finetuned classifier checkpoints
(keys final_bn.* and final_fc.1.*, no 'mb' and no network_pred) become an
`ActionClassifier` with protocol "finetune".

The converted model holds the same numbers as the checkpoint, in Keras layouts:
conv kernels [out, in, t, h, w] -> [t, h, w, in, out] (3D) and [out, in, h, w]
-> [h, w, in, out] (2D: GRU gates and phi); the GRU gates concatenate their
inputs as [x, h] in both frameworks, so input channels 0:256 act on x and
256:512 on h (or r * h) on both sides; BatchNorm weight, bias, running_mean,
running_var -> gamma, beta, moving_mean, moving_variance (num_batches_tracked
is dropped); the memory 'mb' [k, 256] is copied as it is; the classifier's
linear layer final_fc.1.weight [classes, 256 * directions] -> final_fc kernel
[256 * directions, classes].

What is read from the state_dict: the kind of model, the encoder depth
(blocks per stage), the number of classes of a classifier, the predictor (a
memory 'mb' for MemDPC; DPC's network_pred 256 -> 256 -> 256 regresses
z_hat), the memory size, the directions ('agg_f' and 'agg_b';
DPC's single 'agg'), the GRU kernel size, and whether BatchNorm kept running
statistics (DPC's did not: its model normalises with batch statistics, which
`MemDPC(batch_norm_statistics="batch")` reproduces). The clip layout and the
frame size are not in the weights: image_size defaults to the released
models' (128 for R18, 224 for R34); the model accepts other sizes too. A
classifier checkpoint with a single 'agg' (DPC's) becomes a unidirectional
classifier; one without BatchNorm running statistics is rejected, since
`ActionClassifier` normalises with moving statistics at inference.

Usage:
    python -m keras_memdpc.convert --checkpoint memdpc.pth.tar --output memdpc.keras
    python -m keras_memdpc.convert --checkpoint finetuned.pth.tar --output classifier.keras
"""

import pickle

import numpy as np
from absl import app, flags, logging

from keras_memdpc.memdpc import MemDPC
from keras_memdpc.resnet_2d3d import DEPTHS

DEFAULT_IMAGE_SIZES = {"resnet18": 128, "resnet34": 224}
GRU_GATES = ("reset_gate", "update_gate", "out_gate")
# The original ConvGRU registers its cell twice: the same tensor under both names.
GRU_CELL_ALIASES = ("ConvGRUCell_00", "cell_list.0")
CLASSIFIER_PREFIXES = ("final_bn.", "final_fc.")
# PyTorch Linear weights [out, in], which Keras holds as [in, out].
LINEAR_WEIGHTS = ("final_fc.1.weight",)


class CheckpointError(ValueError):
    """A checkpoint that does not match the model: names the file and the keys."""


def load_state_dict(path):
    """The tensors of a PyTorch checkpoint file as float32 / int numpy arrays.

    Reads with torch.load(weights_only=True): the file is a pickle, and only
    tensors and plain containers are unpickled. Accepts the dict the original
    training code saves ({'state_dict': ..., 'epoch': ..., ...}) or a bare
    state_dict, with or without the 'module.' prefix of nn.DataParallel
    (removed here).

    Returns: {key: numpy array} in the checkpoint's own (PyTorch) layouts.
    """
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            "Reading PyTorch checkpoints needs torch: pip install keras_memdpc[torch]"
        ) from error
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint: {error}") from error
    if isinstance(checkpoint, dict) and "state_dict" in checkpoint:
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not all(
        isinstance(value, torch.Tensor) for value in checkpoint.values()
    ):
        raise CheckpointError(
            f"{path}: holds neither a state_dict nor a dict with a 'state_dict' of tensors"
        )
    state_dict = {}
    for key, tensor in checkpoint.items():
        name = key.removeprefix("module.")
        if name in state_dict:
            raise CheckpointError(f"{path}: key {name!r} appears with and without 'module.'")
        tensor = tensor.detach()
        state_dict[name] = (tensor.float() if tensor.is_floating_point() else tensor).numpy()
    return state_dict


def _aggregator_prefixes(state_dict):
    """The checkpoint's GRU prefixes, in `MemDPC.aggregators` order."""
    if any(key.startswith("agg.") for key in state_dict):
        return ["agg"]
    prefixes = [p for p in ("agg_f", "agg_b") if any(k.startswith(p + ".") for k in state_dict)]
    if prefixes not in (["agg_f"], ["agg_f", "agg_b"]):
        raise CheckpointError("found no aggregator: no key starts with 'agg.' or 'agg_f.'")
    return prefixes


def _network(state_dict):
    """'resnet18' or 'resnet34', from the number of blocks in each stage."""
    depths = tuple(
        len({key.split(".")[2] for key in state_dict if key.startswith(f"backbone.layer{stage}.")})
        for stage in (1, 2, 3, 4)
    )
    for network, expected in DEPTHS.items():
        if depths == expected:
            return network
    raise CheckpointError(
        f"blocks per stage {depths} match no supported encoder "
        f"({', '.join(f'{n} {d}' for n, d in DEPTHS.items())})"
    )


def is_classifier(state_dict):
    """Whether the state_dict is a finetuned classifier's (it has final_bn.* or final_fc.*)."""
    return any(key.startswith(CLASSIFIER_PREFIXES) for key in state_dict)


def _classifier_config(state_dict):
    if "final_fc.1.weight" not in state_dict:
        found = sorted(k for k in state_dict if k.startswith(CLASSIFIER_PREFIXES))
        raise CheckpointError(
            f"a classifier checkpoint ({', '.join(found)}) without 'final_fc.1.weight'"
        )
    if "backbone.bn1.running_mean" not in state_dict:
        raise CheckpointError(
            "a classifier checkpoint whose BatchNorm has no running statistics "
            "('backbone.bn1.running_mean' is missing): ActionClassifier normalises "
            "with moving statistics at inference"
        )
    return {"num_classes": state_dict["final_fc.1.weight"].shape[0]}


def infer_config(state_dict):
    """The `MemDPC` or `ActionClassifier` arguments that the tensors determine.

    Args:
        state_dict: {key: array} as `load_state_dict` returns it.

    Returns: dict with network, bidirectional and gru_kernel_size; for a
        classifier (`is_classifier`) also num_classes; for a pretraining
        checkpoint also predictor, batch_norm_statistics, and memory_size for
        the "memory" predictor.

    Raises:
        CheckpointError: when the keys describe no supported model.
    """
    prefixes = _aggregator_prefixes(state_dict)
    gates = [k for k in state_dict if k.startswith(prefixes[0] + ".") and k.endswith("gate.weight")]
    config = {
        "network": _network(state_dict),
        "bidirectional": len(prefixes) == 2,
        "gru_kernel_size": state_dict[gates[0]].shape[-1] if gates else 1,
    }
    if is_classifier(state_dict):
        return {**config, **_classifier_config(state_dict)}
    config["predictor"] = "memory" if "mb" in state_dict else "regression"
    config["batch_norm_statistics"] = (
        "moving" if "backbone.bn1.running_mean" in state_dict else "batch"
    )
    if "mb" in state_dict:
        config["memory_size"] = state_dict["mb"].shape[0]
    return config


def _batch_norm_pairs(prefix, layer, moving):
    pairs = [(f"{prefix}.weight", layer.gamma), (f"{prefix}.bias", layer.beta)]
    if moving:
        pairs += [
            (f"{prefix}.running_mean", layer.moving_mean),
            (f"{prefix}.running_var", layer.moving_variance),
        ]
    return pairs


def _moving_statistics(model):
    """Whether `model` normalises with BatchNorm moving statistics at inference.

    Only a `MemDPC` converted from DPC uses batch statistics throughout.
    """
    return not isinstance(model, MemDPC) or model.batch_norm_statistics == "moving"


def weight_pairs(model, aggregator_prefixes):
    """(PyTorch key, Keras variable) for the weights of `model` that a checkpoint fills.

    Every trainable weight is listed; the BatchNorm moving statistics are
    listed unless the model normalises with batch statistics. The GRU is
    listed once, under its 'ConvGRUCell_00' name. After the encoder and the
    aggregators come phi and the memory of a `MemDPC`, or final_bn and
    final_fc of an `ActionClassifier`.

    Args:
        model: a built `MemDPC` or `ActionClassifier`.
        aggregator_prefixes: the checkpoint's name of each of
            `model.aggregators`: ['agg_f', 'agg_b'], ['agg_f'] or ['agg'] (DPC).
    """
    moving = _moving_statistics(model)
    encoder = model.encoder.layer
    pairs = [("backbone.conv1.weight", encoder.conv1.conv.kernel)]
    pairs += _batch_norm_pairs("backbone.bn1", encoder.bn1, moving)
    for block in encoder.blocks:
        prefix = "backbone." + block.name.replace("_", ".")
        for conv, bn in (("conv1", "bn1"), ("conv2", "bn2")):
            pairs.append((f"{prefix}.{conv}.weight", getattr(block, conv).conv.kernel))
            pairs += _batch_norm_pairs(f"{prefix}.{bn}", getattr(block, bn), moving)
        if block.downsample_conv is not None:
            pairs.append((f"{prefix}.downsample.0.weight", block.downsample_conv.kernel))
            pairs += _batch_norm_pairs(f"{prefix}.downsample.1", block.downsample_bn, moving)
    for aggregator, name in zip(model.aggregators, aggregator_prefixes, strict=True):
        for gate in GRU_GATES:
            conv = getattr(aggregator.cell, gate)
            prefix = f"{name}.{GRU_CELL_ALIASES[0]}.{gate}"
            pairs += [(f"{prefix}.weight", conv.kernel), (f"{prefix}.bias", conv.bias)]
    if not isinstance(model, MemDPC):
        pairs += _batch_norm_pairs("final_bn", model.final_bn, moving=True)
        pairs += [
            ("final_fc.1.weight", model.final_fc.kernel),
            ("final_fc.1.bias", model.final_fc.bias),
        ]
        return pairs
    for index, conv in zip((0, 2), model.phi.layers):
        prefix = f"network_pred.{index}"
        pairs += [(f"{prefix}.weight", conv.kernel), (f"{prefix}.bias", conv.bias)]
    if model.memory is not None:
        pairs.append(("mb", model.memory.memory))
    return pairs


def _keras_layout(key, array):
    """A checkpoint tensor in the layout of its Keras weight.

    Conv kernels [out, in, *kernel] -> [*kernel, in, out]; Linear weights
    [out, in] -> [in, out]; anything else as it is.
    """
    if array.ndim in (4, 5):
        return np.transpose(array, (*range(2, array.ndim), 1, 0))
    if key in LINEAR_WEIGHTS:
        return array.T
    return array


def _merge_gru_aliases(state_dict):
    """The state_dict with each GRU tensor once, under its 'ConvGRUCell_00' name.

    A 'cell_list.0' key must hold the same tensor as its 'ConvGRUCell_00' twin.
    """
    state_dict = dict(state_dict)
    first, second = GRU_CELL_ALIASES
    for key in [k for k in state_dict if f".{second}." in k]:
        original = key.replace(f".{second}.", f".{first}.")
        duplicate = state_dict.pop(key)
        if original not in state_dict:
            state_dict[original] = duplicate
        elif not np.array_equal(state_dict[original], duplicate):
            raise CheckpointError(f"{key!r} differs from {original!r}, which it should repeat")
    return state_dict


def load_weights(model, state_dict, aggregator_prefixes):
    """Assigns the checkpoint's tensors to `model`, strictly.

    Every tensor of the checkpoint must fill a weight of the model and every
    weight of the model must be filled (num_batches_tracked, the duplicate GRU
    keys, and the moving statistics of a model normalising with batch
    statistics excepted); otherwise nothing is assigned and the error names
    each unmatched key and weight.

    Args:
        model: a built `MemDPC` or `ActionClassifier`.
        state_dict: {key: array} as `load_state_dict` returns it.
        aggregator_prefixes: as for `weight_pairs`.
    """
    tensors = {
        key: value
        for key, value in _merge_gru_aliases(state_dict).items()
        if not key.endswith(".num_batches_tracked")
    }
    pairs = weight_pairs(model, aggregator_prefixes)
    filled = {id(variable) for _, variable in pairs}
    ignored = set()
    if not _moving_statistics(model):
        ignored = {
            id(v) for v in model.encoder.weights if v.name in ("moving_mean", "moving_variance")
        }
    keys = {key for key, _ in pairs}
    problems = [f"checkpoint key {k!r} fills no weight" for k in tensors if k not in keys]
    problems += [
        f"no checkpoint key {k!r} for weight {v.path}" for k, v in pairs if k not in tensors
    ]
    problems += [
        f"weight {v.path} has no checkpoint key"
        for v in model.weights
        if id(v) not in filled and id(v) not in ignored
    ]
    arrays = []
    for key, variable in pairs:
        if key in tensors:
            array = _keras_layout(key, tensors[key])
            if tuple(array.shape) != tuple(variable.shape):
                problems.append(
                    f"checkpoint key {key!r} of shape {tensors[key].shape} does not fit "
                    f"weight {variable.path} of shape {tuple(variable.shape)}"
                )
            arrays.append((variable, array))
    if problems:
        raise CheckpointError("; ".join(problems))
    for variable, array in arrays:
        variable.assign(array)


def model_from_state_dict(state_dict, image_size=None, **kwargs):
    """A built `MemDPC`, or `ActionClassifier` ("finetune"), holding the checkpoint's weights.

    Args:
        state_dict: {key: array} as `load_state_dict` returns it.
        image_size: frame size the model is built for; default 128 for R18
            and 224 for R34 (the released models).
        **kwargs: further arguments of the model that the weights do not
            determine (num_blocks, block_length; pred_steps, dropout, ... for
            `MemDPC`; dropout, gru_dropout, ... for `ActionClassifier`).

    Returns: the model, in the layouts and names of this package.
    """
    # Imported here: action_classifier imports CheckpointError from this module.
    from keras_memdpc.action_classifier import ActionClassifier

    config = infer_config(state_dict)
    if image_size is None:
        image_size = DEFAULT_IMAGE_SIZES[config["network"]]
    if is_classifier(state_dict):
        model = ActionClassifier(image_size=image_size, protocol="finetune", **config, **kwargs)
    else:
        model = MemDPC(image_size=image_size, **config, **kwargs)
    model.build()
    load_weights(model, state_dict, _aggregator_prefixes(state_dict))
    return model


def convert_checkpoint(checkpoint, output=None, image_size=None, **kwargs):
    """Reads a PyTorch checkpoint file, returns the Keras model, optionally saved.

    Args:
        checkpoint: path of the .pth.tar file.
        output: path of the .keras file to write, or None.
        image_size, **kwargs: as for `model_from_state_dict`.

    Returns: a `MemDPC` (pretraining checkpoint) or an `ActionClassifier`
        (finetuned classifier checkpoint).

    Raises:
        CheckpointError naming `checkpoint` when its keys do not match.
    """
    state_dict = load_state_dict(checkpoint)
    try:
        model = model_from_state_dict(state_dict, image_size=image_size, **kwargs)
    except CheckpointError as error:
        raise CheckpointError(f"{checkpoint}: {error}") from error
    logging.info("%s -> %s %s", checkpoint, type(model).__name__, infer_config(state_dict))
    if output is not None:
        model.save(output)
        logging.info("wrote %s", output)
    return model


def _define_flags():
    flags.DEFINE_string("checkpoint", None, "PyTorch checkpoint (.pth.tar) to read.", required=True)
    flags.DEFINE_string("output", None, "Keras model file (.keras) to write.", required=True)
    flags.DEFINE_integer("image_size", None, "Frame size (default 128 for R18, 224 for R34).")
    flags.DEFINE_integer("num_blocks", 8, "Blocks per clip.")
    flags.DEFINE_integer("block_length", 5, "Frames per block.")
    flags.DEFINE_integer(
        "pred_steps", None, "Future blocks predicted (pretraining checkpoints only; default 3)."
    )


def main(argv):
    del argv
    values = flags.FLAGS
    kwargs = {"num_blocks": values.num_blocks, "block_length": values.block_length}
    if values.pred_steps is not None:
        kwargs["pred_steps"] = values.pred_steps
    convert_checkpoint(values.checkpoint, values.output, image_size=values.image_size, **kwargs)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
