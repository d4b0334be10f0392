"""SavedModels of the MemDPC embedder and of the Oops classifier, for TF Serving.

Both take raw video and do all preprocessing inside the graph, so a client
sends decoded frames and nothing else:

    frames  uint8 [batch, frames, height, width, 3]  RGB, any frame size

Frames are the model's input frames, i.e. already sampled at the model's
stride (every 3rd frame of the video for the paper's models). Their count
must be a multiple of the block length and at least num_blocks blocks;
otherwise, and for any other dtype, rank or channel count, the request fails
with an error instead of an answer. Each frame is resized (bilinear,
antialiased) so that its short side is image_size / 0.875 and the centred
image_size square is cut, the evaluation crop of keras_memdpc.video_pipeline;
then it is normalised with the ImageNet mean and std. The n = frames /
block_length blocks are encoded once; sliding windows of num_blocks blocks,
one block apart (n - num_blocks + 1 windows), are what the model reads.

Embedder (`export_embedder`) of a pretraining MemDPC or of an
ActionClassifier (classification checkpoint), signature serving_default:
    embedding       float32 [batch, 256 * directions]  the pooled context
                    averaged over the windows; L2-normalised when exported
                    with l2_normalize. With exactly num_blocks blocks it is
                    MemDPC.embed (ActionClassifier.context) of the clip.
    block_features  float32 [batch, blocks, 256]  each block's feature as
                    the aggregator reads it (after ReLU; the classifier
                    averages over the encoder's time steps after ReLU),
                    averaged over space.

Oops classifier (`export_oops`), signature serving_default, with a second
input fps float32 [batch], the frame rate of the frames as sent (e.g. 25 / 3
for every 3rd frame of a 25 fps video):
    window_probabilities  float32 [batch, windows, num_blocks, 3]
    block_probabilities   float32 [batch, blocks, 3]  each block's
                          probabilities averaged over the windows holding it
    failure_block         int32 [batch]  the block k maximising the
                          likelihood of "intentional before k, transitioning
                          at k, unintentional after k"
    failure_time          float32 [batch]  seconds from the first frame to
                          the middle of that block: (k * block_length +
                          (block_length - 1) / 2) / fps
Classes are in the order intentional, transitioning, unintentional.

Exports are written as MODEL_DIR/<version>/ (saved_model.pb, variables/)
with assets.extra/tf_serving_warmup_requests, one PredictRequest per record
(PredictionLog), which TF Serving replays before it serves.
"""

import os

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from keras_memdpc.action_classifier import ActionClassifier
from keras_memdpc.clip_augmentation import EVAL_CROP_FRACTION, normalise
from keras_memdpc.memdpc import MemDPC
from keras_memdpc.oops_classifier import OopsClassifier, encode_blocks

SIGNATURE = "serving_default"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
FRAMES_SPEC = tf.TensorSpec([None, None, None, None, 3], tf.uint8, name="frames")
FPS_SPEC = tf.TensorSpec([None], tf.float32, name="fps")


def _layers(model):
    """`model` and every layer nested in it."""
    found, pending = [], [model]
    while pending:
        layer = pending.pop(0)
        found.append(layer)
        pending.extend(getattr(layer, "layers", []))
    return found


def _load_one(path, kinds, description):
    """The one layer of `kinds` in a .keras file (the model itself or nested)."""
    model = keras.saving.load_model(path, compile=False)
    found = [layer for layer in _layers(model) if isinstance(layer, kinds)]
    if len(found) != 1:
        raise ValueError(
            f"{path}: expected {description} or a model holding exactly one, found "
            f"{len(found)} in a {type(model).__name__}"
        )
    return found[0]


def load_memdpc(path):
    """The MemDPC of a .keras checkpoint: a pretraining model, or one model holding one.

    Raises ValueError naming the file when it holds no MemDPC or several.
    """
    return _load_one(path, MemDPC, "a MemDPC model")


def load_representation(path):
    """What the embedder exports from a .keras checkpoint: a MemDPC or an ActionClassifier.

    Raises ValueError naming the file when it holds neither, or several.
    """
    return _load_one(path, (MemDPC, ActionClassifier), "a MemDPC or an ActionClassifier")


def load_oops_classifier(path):
    """The OopsClassifier saved in a .keras file (train/oops.py's oops.keras)."""
    model = keras.saving.load_model(path, compile=False)
    if not isinstance(model, OopsClassifier):
        raise ValueError(f"{path}: expected an OopsClassifier, got a {type(model).__name__}")
    return model


def preprocess_frames(frames, image_size, antialias=True):
    """Raw frames -> model input: short side resized, centre crop, normalised.

    uint8 [batch, frames, height, width, 3] -> float32 [batch, frames,
    image_size, image_size, 3]. The short side becomes
    round(image_size / 0.875) (bilinear, antialiased unless `antialias` is
    False: ONNX has no antialiased resize), then the centred image_size
    square is cut.
    """
    shape = tf.shape(frames)
    height, width = shape[2], shape[3]
    scale = round(image_size / EVAL_CROP_FRACTION) / tf.cast(tf.minimum(height, width), tf.float32)
    resized_height = tf.maximum(tf.cast(tf.round(tf.cast(height, tf.float32) * scale), tf.int32),
                                image_size)
    resized_width = tf.maximum(tf.cast(tf.round(tf.cast(width, tf.float32) * scale), tf.int32),
                               image_size)
    images = tf.reshape(frames, tf.concat([[-1], shape[2:]], axis=0))
    images = tf.image.resize(tf.cast(images, tf.float32), [resized_height, resized_width],
                             method="bilinear", antialias=antialias)
    top = (resized_height - image_size) // 2
    left = (resized_width - image_size) // 2
    images = images[:, top:top + image_size, left:left + image_size, :]
    images = tf.reshape(images, [shape[0], shape[1], image_size, image_size, 3])
    return normalise(tf.clip_by_value(images, 0.0, 255.0))


def frames_to_blocks(frames, representation, antialias=True):
    """Checked, preprocessed frames as blocks [batch, blocks, block_length, size, size, 3].

    Fails (tf.errors.InvalidArgumentError) unless the frame count is a
    multiple of block_length and at least num_blocks blocks.
    """
    length, blocks = representation.block_length, representation.num_blocks
    count = tf.shape(frames)[1]
    tf.debugging.assert_equal(
        count % length, 0,
        message=f"frames: the number of frames must be a multiple of the block length "
                f"{length}")
    tf.debugging.assert_greater_equal(
        count, blocks * length,
        message=f"frames: at least num_blocks * block_length = {blocks * length} frames "
                "are needed")
    size = representation.image_size
    clips = preprocess_frames(frames, size, antialias)
    return tf.reshape(clips, [tf.shape(frames)[0], -1, length, size, size, 3])


def sliding_windows(features, num_blocks):
    """Windows of `num_blocks` consecutive blocks, one block apart.

    [batch, blocks, ...] -> ([batch * windows, num_blocks, ...], windows)
    with windows = blocks - num_blocks + 1, batch-major.
    """
    count = tf.shape(features)[1] - num_blocks + 1
    indices = tf.range(count)[:, None] + tf.range(num_blocks)[None, :]
    windows = tf.gather(features, indices, axis=1)
    return tf.reshape(windows, [-1, num_blocks, *features.shape[2:]]), count


def aggregator_inputs(representation, clips):
    """What the aggregators read of each block: [batch, blocks, h, w, 256].

    relu(z) for a MemDPC; for an encoder that keeps its time steps (the
    ActionClassifier's), their mean after ReLU.
    """
    features = tf.nn.relu(encode_blocks(representation, clips, training=False))
    if len(features.shape) == 6:
        features = tf.reduce_mean(features, axis=2)
    return features


def window_contexts(representation, windows):
    """Pooled contexts: windows [clips, blocks, h, w, 256] of aggregator inputs -> [clips, 256 D].

    Directions are concatenated, the backward one reading the blocks reversed.
    """
    sequences = [windows, tf.reverse(windows, axis=[1])]
    contexts = [
        tf.reduce_mean(aggregator(sequence, training=False), axis=[1, 2])
        for aggregator, sequence in zip(representation.aggregators, sequences)
    ]
    return tf.concat(contexts, axis=-1)


def embed_frames(representation, frames, l2_normalize=False, antialias=True):
    """The embedder's outputs for raw frames (see the module docstring)."""
    features = aggregator_inputs(representation,
                                 frames_to_blocks(frames, representation, antialias))
    windows, count = sliding_windows(features, representation.num_blocks)
    contexts = window_contexts(representation, windows)
    embedding = tf.reduce_mean(
        tf.reshape(contexts, [tf.shape(frames)[0], count, contexts.shape[-1]]), axis=1
    )
    if l2_normalize:
        embedding = tf.math.l2_normalize(embedding, axis=-1)
    return {"embedding": embedding, "block_features": tf.reduce_mean(features, axis=[2, 3])}


def average_over_windows(window_values, num_blocks):
    """[batch, windows, num_blocks, c] -> [batch, blocks, c]: each block's mean.

    Window w holds blocks w .. w + num_blocks - 1.
    """
    total, count = 0.0, 0.0
    windows = tf.ones_like(window_values[:1, :, 0, :1])
    for position in range(num_blocks):
        padding = [[0, 0], [position, num_blocks - 1 - position], [0, 0]]
        total += tf.pad(window_values[:, :, position], padding)
        count += tf.pad(windows, padding)
    return total / count


def failure_block(block_probabilities):
    """int32 [batch]: the most likely transitioning block of [batch, blocks, 3] probabilities.

    Maximises log p(intentional) summed over the blocks before k, plus log
    p(transitioning) of block k, plus log p(unintentional) summed after k.
    """
    log_p = tf.math.log(tf.maximum(block_probabilities, 1e-12))
    before = tf.math.cumsum(log_p[..., 0], axis=1, exclusive=True)
    after = tf.math.cumsum(log_p[..., 2], axis=1, exclusive=True, reverse=True)
    return tf.argmax(before + log_p[..., 1] + after, axis=1, output_type=tf.int32)


def classify_frames(classifier, frames, fps, antialias=True):
    """The Oops classifier's outputs for raw frames (see the module docstring)."""
    representation = classifier.representation
    tf.debugging.assert_equal(
        tf.shape(fps)[0], tf.shape(frames)[0], message="fps: one value per video is needed")
    tf.debugging.assert_positive(fps, message="fps: frame rates must be positive")
    features = encode_blocks(representation, frames_to_blocks(frames, representation, antialias),
                             training=False)
    num_blocks = representation.num_blocks
    windows, count = sliding_windows(features, num_blocks)
    probabilities = tf.nn.softmax(classifier.classify_features(windows, training=False))
    window_probabilities = tf.reshape(
        probabilities, [tf.shape(frames)[0], count, num_blocks, probabilities.shape[-1]])
    block_probabilities = average_over_windows(window_probabilities, num_blocks)
    block = failure_block(block_probabilities)
    length = representation.block_length
    middle = tf.cast(block, tf.float32) * length + (length - 1) / 2
    return {
        "window_probabilities": window_probabilities,
        "block_probabilities": block_probabilities,
        "failure_block": block,
        "failure_time": middle / fps,
    }


def version_dir(model_dir, version):
    """MODEL_DIR/<version>, which must not exist yet."""
    path = os.path.join(os.fspath(model_dir), str(int(version)))
    if tf.io.gfile.exists(path):
        raise FileExistsError(
            f"{path} exists: TF Serving versions are immutable; pass another version "
            "or remove it")
    return path


def _write_archive(model, function, input_signature, export_dir):
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SIGNATURE, function, input_signature)
    archive.write_out(export_dir, verbose=False)


def example_frames(representation, seed=0):
    """Random uint8 frames [1, num_blocks * block_length, s, s, 3] for warmup requests.

    s = round(image_size / 0.875), the size the graph resizes to.
    """
    size = round(representation.image_size / EVAL_CROP_FRACTION)
    count = representation.num_blocks * representation.block_length
    return np.random.default_rng(seed).integers(0, 256, (1, count, size, size, 3), np.uint8)


def write_warmup_requests(export_dir, model_name, requests):
    """assets.extra/tf_serving_warmup_requests: one PredictionLog record per request.

    requests: a list of {input name: numpy array}. Needs tensorflow-serving-api.
    """
    try:
        from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
    except ImportError as error:
        raise ImportError(
            "warmup requests need tensorflow-serving-api (pip install "
            "'keras_memdpc[serving]'), or export without them") from error
    path = os.path.join(export_dir, WARMUP_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for inputs in requests:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = SIGNATURE
            for name, value in inputs.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def export_onnx(function, input_signature, path, opset=17):
    """Convert a serving function to ONNX with tf2onnx; returns `path`.

    tf2onnx drops the graph's assertions: a bad frame count then fails
    inside the graph (at a reshape) rather than with the SavedModel's message.
    """
    try:
        import tf2onnx
    except ImportError as error:
        raise ImportError("ONNX export needs tf2onnx (pip install 'keras_memdpc[onnx]')") \
            from error
    tf2onnx.convert.from_function(
        tf.function(function, input_signature=input_signature),
        input_signature=input_signature, opset=opset, output_path=path)
    logging.info("ONNX model written to %s", path)
    return path


def export_embedder(representation, model_dir, version=1, l2_normalize=False,
                    warmup=True, model_name="memdpc_embedder", onnx_path=None):
    """Write the embedder SavedModel to MODEL_DIR/<version>; returns that path.

    With `onnx_path`, also an ONNX model of the same function, whose resize
    is not antialiased (ONNX has no such resize). Antialiasing only acts when
    frames shrink: for frames whose short side is at most
    round(image_size / 0.875) both give the same outputs.
    """
    export_dir = version_dir(model_dir, version)
    if not representation.built:
        representation.build()

    def serve(frames):
        return embed_frames(representation, frames, l2_normalize)

    _write_archive(representation, serve, [FRAMES_SPEC], export_dir)
    if warmup:
        write_warmup_requests(export_dir, model_name,
                              [{"frames": example_frames(representation)}])
    logging.info("embedder SavedModel written to %s", export_dir)
    if onnx_path:
        export_onnx(lambda frames: embed_frames(representation, frames, l2_normalize,
                                                antialias=False),
                    [FRAMES_SPEC], onnx_path)
    return export_dir


def export_oops(classifier, model_dir, version=1, warmup=True, model_name="memdpc_oops",
                onnx_path=None):
    """Write the Oops classifier SavedModel to MODEL_DIR/<version>; returns that path.

    `onnx_path` as in `export_embedder`.
    """
    export_dir = version_dir(model_dir, version)

    def serve(frames, fps):
        return classify_frames(classifier, frames, fps)

    _write_archive(classifier, serve, [FRAMES_SPEC, FPS_SPEC], export_dir)
    if warmup:
        fps = np.array([25.0 / 3.0], np.float32)
        write_warmup_requests(export_dir, model_name,
                              [{"frames": example_frames(classifier.representation),
                                "fps": fps}])
    logging.info("Oops classifier SavedModel written to %s", export_dir)
    if onnx_path:
        export_onnx(lambda frames, fps: classify_frames(classifier, frames, fps,
                                                        antialias=False),
                    [FRAMES_SPEC, FPS_SPEC], onnx_path)
    return export_dir
